"""Discover the files behind the given paths, folders and globs, and name their tables: by file,
by folder (``--table-from folder``), by config-file overrides, and one per workbook sheet."""

from __future__ import annotations

import asyncio
import glob
import hashlib
import logging
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from glob import has_magic
from pathlib import Path
from typing import Any

from pgingest.config import LoadOptions
from pgingest.errors import ConfigError, PgIngestError
from pgingest.model import WORKBOOK_FORMATS
from pgingest.pg.loop import run as run_loop
from pgingest.schema.names import deduplicate_names, normalize_identifier
from pgingest.sources.base import CsvOptions
from pgingest.sources.inputs import (
    MEMBER_MARK,
    archive_members,
    is_archive,
    is_member,
    is_remote,
    is_virtual,
    real,
    split_member,
)
from pgingest.sources.remote import ObjectInfo, forget, list_objects, register

log = logging.getLogger("pgingest.discover")

# Below this size a file is detected and hashed in the event loop's thread: a thread hop costs
# more than the work, and with thousands of small files the hops add up.
SMALL_FILE_BYTES = 1 << 20
# Files a folder scan picks up (an explicitly named file is always taken, whatever its name).
DATA_SUFFIXES = {
    ".csv",
    ".tsv",
    ".tab",
    ".txt",
    ".psv",
    ".dat",
    ".parquet",
    ".pq",
    ".parq",
    ".xlsx",
    ".xlsm",
    ".xls",
    ".xlsb",
    ".ods",
    ".ndjson",
    ".jsonl",
}
COMPRESSION_SUFFIXES = {".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd"}


@dataclass(frozen=True, slots=True)
class Discovered:
    """One input: a file to load, or a path that named nothing loadable."""

    path: str
    error: str | None = None
    root: str | None = None
    """The folder given to load that this file was found in (``None``: named directly)."""


class RealPaths:
    """Local paths with their symlinks resolved, for one discovery: each folder once, then a
    file by one ``lstat`` of its own. (``os.path.realpath`` of every file ``lstat``-ed each
    part of its path, several times per file: for 2,000 files in one folder, most of the
    planning's 0.16 s, paid by every worker of ``--workers``.)"""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def folder(self, path: str) -> str:
        """``os.path.realpath(path)``, remembered."""
        known = self._folders.get(path)
        if known is None:
            known = self._folders[path] = os.path.realpath(path)
        return known

    def file(self, path: str) -> str:
        """``os.path.realpath(path)``: its folder's, remembered, and its own name unless it
        is a link."""
        head, tail = os.path.split(path)
        if tail in ("", ".", "..") or os.path.islink(path):
            return os.path.realpath(path)
        return os.path.join(self.folder(head or os.curdir), tail)


def _is_data_file(path: Path) -> bool:
    # Hidden files, and the lock files spreadsheet programs leave beside an open workbook.
    if path.name.startswith((".", "~$", ".~lock.")):
        return False
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in DATA_SUFFIXES


def discover(
    paths: Iterable[str], options: LoadOptions | None = None, resolved: RealPaths | None = None
) -> list[Discovered]:
    """Expand files, folders (recursively) and glob patterns into files, in a stable order.

    A folder contributes the data files under it (by suffix, hidden files skipped); a glob
    contributes every file it matches; a file named explicitly is always taken. A path that
    matches nothing is returned with an error, so the other inputs still load.

    Args:
        paths: what the user gave.
        options: the run's options (the retry bounds of a remote listing's transient fault).
        resolved: the discovery's resolved folders, when it spans several calls.

    Returns:
        The files, each once, in the order given (folders and globs sorted).
    """
    seen: set[str] = set()
    out: list[Discovered] = []
    resolved = resolved or RealPaths()

    def add(p: Path, root: Path | None = None) -> None:
        key = resolved.file(str(p))
        if key not in seen:
            seen.add(key)
            out.append(Discovered(str(p), root=str(root) if root is not None else None))

    for raw in paths:
        if is_member(raw):  # one member of an archive, named: opened (or failed) at load
            if is_remote(raw):
                shown = register(raw)
                archive, _member = split_member(shown) or (shown, "")
                forget(archive)  # the run takes the archive's identity afresh
                out.append(Discovered(shown))
            else:
                out.append(Discovered(raw))
            continue
        if is_remote(raw):
            for item in _discover_remote(raw, options or LoadOptions()):
                if item.error is not None or item.path not in seen:
                    seen.add(item.path)
                    out.append(item)
            continue
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p))
            if not found:
                out.append(Discovered(raw, f"{raw}: no data files in this folder"))
            for p in found:
                add(p, path)
        elif path.is_file():
            add(path)
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(raw), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                out.append(Discovered(raw, f"{raw}: no file matches this pattern"))
            root = _glob_root(os.path.expanduser(raw))
            for p in files:
                add(p, root)
        else:
            out.append(Discovered(raw, f"{raw}: no such file or folder"))
    return _expand_archives(out)


def _expand_archives(found: list[Discovered]) -> list[Discovered]:
    """Each zip archive among the inputs replaced by its data-file members, each a file of
    its own (``<archive>!/<member>``, sources.inputs); an archive that cannot be read is an
    input that named nothing loadable."""
    out: list[Discovered] = []
    for item in found:
        if item.error is not None or not is_archive(item.path):
            out.append(item)
            continue
        try:
            members = [m for m in archive_members(item.path) if _is_data_file(Path(m))]
        except (OSError, zipfile.BadZipFile) as exc:
            text = getattr(exc, "strerror", None) or exc
            out.append(Discovered(item.path, f"{item.path}: cannot read the archive: {text}"))
            continue
        if not members:
            out.append(Discovered(item.path, f"{item.path}: no data files in this archive"))
        out.extend(Discovered(m, root=item.path + MEMBER_MARK) for m in members)
    return out


def _discover_remote(raw: str, options: LoadOptions) -> list[Discovered]:
    """The objects behind a URL: one object, or the data files under a prefix or matching a
    glob (sources.remote). Paths are display URLs (no user info, query string, fragment)."""
    shown = register(raw)
    try:
        listed = _list_retried(raw, shown, options)
    except OSError as exc:
        return [Discovered(shown, f"{shown}: cannot list: {exc.strerror or exc}")]
    if listed is None:
        return [Discovered(shown)]
    root = shown if shown.endswith("/") and not has_magic(shown) else _remote_root(shown)
    files = [o.path for o in listed if has_magic(shown) or _is_data_file(Path(o.path))]
    if not files:
        what = "pattern" if has_magic(shown) else "prefix"
        return [Discovered(shown, f"{shown}: no data objects under this {what}")]
    return [Discovered(f, root=root) for f in files]


def _list_retried(raw: str, shown: str, options: LoadOptions) -> list[ObjectInfo] | None:
    """:func:`list_objects`, a transient fault (timeout, 5xx, reset) retried with the run's
    bounds by the one retry helper. Discovery runs in a worker thread (``plan_targets``): the
    retry's waits run on a loop of its own there."""

    from pgingest.pg.retry import RetryPolicy, retry  # (the driver: only for a URL)

    policy = RetryPolicy(options.max_retries, options.retry_base, options.retry_max)

    async def attempt() -> list[ObjectInfo] | None:
        return list_objects(raw)

    def retrying(attempt_no: int, delay: float, exc: BaseException) -> None:
        log.warning("%s: listing failed (%s); retry %d in %.1f s", shown, exc, attempt_no, delay)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return run_loop(
            retry(
                attempt,
                policy,
                on_retry=retrying,
                retryable=lambda exc: isinstance(exc, ConnectionError | TimeoutError),
            )
        )
    return list_objects(raw)  # (in an event loop's thread: one try, never a blocking wait)


def _remote_root(url: str) -> str:
    """The prefix of a remote glob or folder named without its slash."""
    cut = url.find("*")
    for mark in "?[":
        at = url.find(mark)
        if at != -1 and (cut == -1 or at < cut):
            cut = at
    return url[: url.rfind("/", 0, cut) + 1] if cut != -1 else url.rstrip("/") + "/"


def default_table_name(path: str) -> str:
    """The table a file loads into by default: its name without suffixes, normalized."""
    name = Path(path).name
    lowered = name.lower()
    for suffix in sorted(COMPRESSION_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem = Path(name).stem or name
    return normalize_identifier(stem)


def _glob_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (``data/*/x.csv`` -> ``data``)."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path()


def folder_of(path: str, root: str | None, resolved: RealPaths | None = None) -> str:
    """The file's folder below ``root`` as ``a/b`` (``""`` at the root or without one)."""
    if root is None:
        return ""
    if is_virtual(path):  # (a remote object's or a member's folder, by its name)
        below = path[len(root) :] if path.startswith(root) else ""
        return below.rsplit("/", 1)[0] if "/" in below else ""
    resolved = resolved or RealPaths()
    folder = resolved.folder(os.path.dirname(path) or os.curdir)
    top = resolved.folder(root)
    if folder == top:
        return ""
    below = top.rstrip("/") + "/"
    return folder[len(below) :] if folder.startswith(below) else ""


def folder_table_name(path: str, root: str | None, resolved: RealPaths | None = None) -> str:
    """The table of a file with ``--table-from folder``: its folder's path below the load root,
    normalized (``sales/emea/q1.xlsx`` -> ``sales_emea``); a file at the root, or named
    directly, takes its root folder's own name. ``resolved``: the discovery's folders."""
    resolved = resolved or RealPaths()
    folder = folder_of(path, root, resolved)
    if not folder and is_virtual(path):
        base = (root or path).removesuffix(MEMBER_MARK).rstrip("/")
        folder = base.rsplit("/", 2)[-2 if root is None else -1]
        if is_archive(folder):
            folder = folder[: -len(".zip")]
    elif not folder:
        top = root if root is not None else os.path.dirname(path) or os.curdir
        folder = os.path.basename(resolved.folder(top))
    parts = []
    for part in folder.split("/"):
        try:
            parts.append(normalize_identifier(part))
        except ConfigError:  # nothing ASCII in it (e.g. 売上): left out of the name
            continue
    if not parts:
        digest = hashlib.sha1(folder.encode(), usedforsecurity=False).hexdigest()[:8]
        return f"folder_{digest}"
    return normalize_identifier("_".join(parts))


@dataclass(frozen=True, slots=True)
class Target:
    """One unit of loading: a file (or one sheet of a workbook) and the options it loads with."""

    path: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """LoadOptions fields that differ from the run's (``table``, ``sheet``, ...)."""


def options_for(base: LoadOptions, overrides: Mapping[str, Any]) -> LoadOptions:
    """``base`` with a target's overrides (folder, source, sheet) applied."""
    return replace(base, **overrides) if overrides else base


def plan_targets(
    paths: Sequence[str], options: LoadOptions
) -> tuple[list[Target], list[Discovered]]:
    """Discover the inputs (command-line paths and the config file's ``sources``) and give
    each file its options: folder overrides, the source's, the folder table.

    Returns:
        The targets in order, and the inputs that named nothing loadable.
    """
    inputs: list[tuple[str, Mapping[str, Any]]] = [(p, {}) for p in paths]
    for source in options.sources:
        inputs.append((str(source["path"]), {k: v for k, v in source.items() if k != "path"}))
    targets: list[Target] = []
    missing: list[Discovered] = []
    seen: set[tuple[str, str | None]] = set()
    resolved = RealPaths()
    for raw, source_overrides in inputs:
        for found in discover([raw], options, resolved):
            if found.error is not None:
                missing.append(found)
                continue
            overrides: dict[str, Any] = {}
            folder = folder_of(found.path, found.root, resolved)
            for prefix, values in sorted(options.folders.items(), key=lambda kv: kv[0].count("/")):
                if folder == prefix or folder.startswith(prefix + "/") or prefix == "":
                    overrides.update(values)
            overrides.update(source_overrides)
            table_from = overrides.get("table_from", options.table_from)
            if "table" not in overrides and table_from == "folder" and options.table is None:
                overrides["table"] = folder_table_name(found.path, found.root, resolved)
            same = real(found.path) if is_virtual(found.path) else resolved.file(found.path)
            key = (same, overrides.get("table"))
            if key in seen:
                continue
            seen.add(key)
            targets.append(Target(found.path, overrides))
    return targets, missing


def expand_sheets(target: Target, options: LoadOptions, is_workbook: bool) -> list[Target]:
    """``sheet: all`` without a sheet column: one target per non-empty sheet, to table
    ``<table>_<sheet>`` (sheets whose names normalize alike: the first in the workbook keeps
    it, the next get ``_2``, ``_3``). Other targets are returned as they are.

    Raises:
        SourceError: the workbook cannot be read.
    """
    if not is_workbook or options.sheet != "all" or options.sheet_column:
        return [target]
    from pgingest.sources.workbook import sheet_names  # no pyarrow needed to list sheets

    base = options.table or default_table_name(target.path)
    names = sheet_names(target.path)
    tables: list[str] = []
    positional: list[bool] = []
    for position, name in enumerate(names, start=1):
        try:
            suffix, made_up = normalize_identifier(name), False
        except ConfigError:  # nothing ASCII in the name (e.g. 日本語): its position
            suffix, made_up = f"sheet{position}", True
        tables.append(normalize_identifier(f"{base}_{suffix}"))
        positional.append(made_up)
    # Sheets whose names normalize alike ("Data 1", "data-1") each get a table of their own.
    tables = deduplicate_names(tables, made_up=positional)
    return [
        Target(target.path, {**target.overrides, "sheet": name, "table": table})
        for name, table in zip(names, tables, strict=True)
    ]


def csv_options(options: LoadOptions) -> CsvOptions:
    """The CSV reading options of ``options`` (flags left unset are sniffed)."""
    return CsvOptions(
        header=options.header,
        names=options.headers,
        null_strings=options.null_strings,
        delimiter=options.delimiter,
        quotechar=options.quote,
        escape=options.escape,
        encoding=options.encoding,
        skip_bad_rows=options.on_error == "skip",
    )


def sheet_targets(
    targets: Sequence[Target], options: LoadOptions
) -> tuple[list[Target], list[tuple[str, str]], list[tuple[str, str]]]:
    """The run's targets with each workbook whose sheets each go to their own table
    (``sheet: all``) expanded to one target per sheet (reads workbooks: call in a thread).

    Returns:
        The targets, the files that could not be read as (path, error), and the sheets not
        loaded as (path, why): chart sheets, which hold no cells.
    """

    from pgingest.sources.detect import detect  # reads the file: pyarrow only now

    out: list[Target] = []
    failed: list[tuple[str, str]] = []
    skipped: list[tuple[str, str]] = []
    for target in targets:
        own = options_for(options, target.overrides)
        if own.sheet != "all" or own.sheet_column:
            out.append(target)
            continue
        try:
            info = detect(target.path, own.format, csv_options(own))
            is_workbook = info.format in WORKBOOK_FORMATS
            out.extend(expand_sheets(target, own, is_workbook))
        except PgIngestError as exc:
            failed.append((target.path, " ".join(str(exc).split())))
            continue
        if is_workbook:
            from pgingest.sources.workbook import chart_sheets  # (workbooks only: XML parsers)

            skipped.extend(
                (target.path, f"sheet {name!r} is a chart sheet (a chart, no cells)")
                for name in sorted(chart_sheets(target.path))
            )
    return out, failed, skipped


RUN_WIDE = ("mode", "pk", "delete_missing", "strategy", "analyze")
"""Options that only the whole run can set (its files are scheduled together)."""


def check_run_wide(targets: Sequence[Target], options: LoadOptions) -> None:
    """Refuse a folder or source that sets an option only the whole run can set.

    Raises:
        ConfigError: naming the file and the options.
    """
    for target in targets:
        own = options_for(options, target.overrides)
        per_target = {name for name in RUN_WIDE if getattr(own, name) != getattr(options, name)}
        if per_target:
            raise ConfigError(
                f"{target.path}: {', '.join(sorted(per_target))} can only be set for"
                " the whole run (top of the config file or the command line), not"
                " per folder or source"
            )

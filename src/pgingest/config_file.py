"""The YAML config file (``--config``): load options, per-folder overrides, sources, paths and
the DSN, checked against :class:`~pgingest.config.LoadOptions`.

The command line reads it into click's ``default_map`` (:mod:`pgingest.cli.options`), so its
values meet the same conversion and checks as the flags'.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pgingest.config import MANIFEST_SCHEMA, LoadOptions
from pgingest.errors import ConfigError

RUN_WIDE_OPTIONS = frozenset({"mode", "pk", "delete_missing", "strategy", "analyze"})
"""Options of a whole run: files of one table must share their key and how they are applied."""
_CONNECTION_KEYS = frozenset({"dsn", "home"})
_FILE_KEYS = frozenset({"paths", "folders", "sources"})


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """What a YAML config file (``--config``) holds."""

    options: Mapping[str, Any]
    """Load options (field names of :class:`LoadOptions`), ``folders`` and ``sources`` included."""
    dsn: str | None = None
    home: str | None = None
    paths: tuple[str, ...] = ()
    """What to load when the command line names nothing."""


def _key(name: object, where: str) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"{where}: option names must be strings, got {name!r}")
    return name.replace("-", "_")


def check_overrides(
    values: Mapping[str, Any], where: str, *, run_wide: bool = False
) -> dict[str, Any]:
    """Validate options of a config file: :class:`LoadOptions` fields, by name or alias.

    Args:
        values: option name -> value.
        where: the file (and folder or source) for messages.
        run_wide: the top of the file, where options of the whole run may be set.

    Raises:
        ConfigError: an unknown option, or one only the whole run can set.
    """
    known = {f.name for f in fields(LoadOptions)}
    out: dict[str, Any] = {}
    for raw, value in values.items():
        name = _key(raw, where)
        name = OPTION_ALIASES.get(name, name)
        if name not in known:
            raise ConfigError(f"{where}: unknown option {raw!r}")
        if name in ("folders", "sources"):
            raise ConfigError(f"{where}: {raw!r} is only allowed at the top of the file")
        if name in RUN_WIDE_OPTIONS and not run_wide and not (name == "mode" and value == "append"):
            raise ConfigError(
                f"{where}: {name} can only be set for the whole run (top of the file or the"
                " command line), not per folder or source"
            )
        if name == "schema" and str(value).strip().lower() == MANIFEST_SCHEMA:
            raise ConfigError(f"{where}: schema {value!r} holds pgingest's own bookkeeping")
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


OPTION_ALIASES = {"default_sheet": "sheet", "key": "pk"}
"""Config-file spellings of options: the seed design's ``default_sheet`` is ``sheet``; ``key``
(the README's word) is ``pk``."""


def _split_folders(
    body: Mapping[Any, Any], where: str, allowed: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a mapping into options and folders: a key that names an option (or ``allowed``)
    is one, any other key whose value is a mapping (or empty) is a folder of that name, and
    ``folders:`` lists folders too. An option's name always wins over a folder's.

    Raises:
        ConfigError: a key that is neither an option nor a folder (a scalar value).
    """
    known = {f.name for f in fields(LoadOptions)} | allowed
    options: dict[str, Any] = {}
    folders: dict[str, Any] = {}
    for raw, value in body.items():
        name = _key(raw, where)
        name = OPTION_ALIASES.get(name, name)
        if name == "folders" and value is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: 'folders' must map folder paths to options")
            folders.update(value)
        elif name in known or name == "folders":
            options[name] = value
        elif value is None or isinstance(value, Mapping):
            folders[str(raw)] = value
        else:
            raise ConfigError(f"{where}: unknown option {raw!r}")
    return options, folders


def _flatten_folders(tree: Any, prefix: str, out: dict[str, dict[str, Any]], where: str) -> None:
    if not isinstance(tree, Mapping):
        raise ConfigError(f"{where}: 'folders' must map folder paths to options")
    for raw_folder, body in tree.items():
        folder = str(raw_folder).strip("/")
        path = f"{prefix}/{folder}" if prefix else folder
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: folder {path!r} must map to options")
        options, nested = _split_folders(body, f"{where}: folder {path!r}")
        options.pop("folders", None)
        out[path] = check_overrides(options, f"{where}: folder {path!r}")
        if nested:
            _flatten_folders(nested, path, out, where)


def load_config(path: str | Path) -> ConfigFile:
    """Read a YAML config file: load options, per-folder overrides, sources, paths, DSN.

    The top level holds any :class:`LoadOptions` field (``schema``, ``sheet``,
    ``header_row``, ``table_from``...; dashes or underscores; ``default_sheet`` is
    ``sheet``), ``dsn``, ``paths`` (what to load when the command names nothing; like the
    sources' paths, relative to the file's folder), ``folders`` (folder below the load root
    -> options, nested with ``folders`` again) and ``sources`` (a list of ``{path: <file,
    folder or glob>, table: ..., <options>}``). Any other key whose value is a mapping is a
    folder too, at the top or inside a folder (the seed design's shape: ``folder_b: {nested:
    {sheet: S}}``); a key that names an option is always the option.

    Args:
        path: the file.

    Returns:
        The parsed file.

    Raises:
        ConfigError: the file is missing, not YAML, or names unknown options.
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the parser's complaint: the parser's own message quotes the
        # offending line, which may be a DSN with its password.
        raise ConfigError(f"{where}: not valid YAML{_yaml_problem(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: the config file must be a mapping of options")
    top, top_folders = _split_folders(data, where, _CONNECTION_KEYS | _FILE_KEYS)
    dsn = top.pop("dsn", None)
    home = top.pop("home", None)
    paths = top.pop("paths", None) or ()
    if isinstance(paths, str):
        paths = (paths,)
    folders: dict[str, dict[str, Any]] = {}
    if top_folders:
        _flatten_folders(top_folders, "", folders, where)
    top.pop("folders", None)
    sources: list[dict[str, Any]] = []
    for number, item in enumerate(top.pop("sources", None) or (), start=1):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, Mapping) or not item.get("path"):
            raise ConfigError(f"{where}: source {number} needs a 'path' (file, folder or glob)")
        rest = {k: v for k, v in item.items() if k != "path"}
        entry = check_overrides(rest, f"{where}: source {number}")
        entry["path"] = _beside(str(item["path"]), path)
        sources.append(entry)
    options = check_overrides(top, where, run_wide=True)
    if folders:
        options["folders"] = folders
    if sources:
        options["sources"] = tuple(sources)
    return ConfigFile(
        options,
        dsn=str(dsn) if dsn else None,
        home=str(home) if home else None,
        paths=tuple(_beside(str(p), path) for p in paths),
    )


def _yaml_problem(exc: Exception) -> str:
    """Where and what a YAML error is, without quoting the file's text."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def _beside(value: str, config: str | Path) -> str:
    """A relative path of the config file is relative to the file's folder (so that a job
    runs the same from any working directory); absolute paths and ``~`` stay as they are."""
    if value.startswith("~") or Path(value).is_absolute():
        return value
    return str(Path(config).expanduser().parent / value)

"""The library entry points: :func:`load` and its async twin :func:`load_async`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from pgingest.config import ConnectionSettings, LoadOptions, connection_from_env, options_with
from pgingest.model import LoadReport
from pgingest.observability.progress import Reporter


async def load_async(
    paths: str | Path | Sequence[str | Path],
    *,
    dsn: str | None = None,
    home: str | Path | None = None,
    options: LoadOptions | None = None,
    reporter: Reporter | None = None,
    environ: Mapping[str, str] | None = None,
    **option_values: Any,
) -> LoadReport:
    """Load files, folders or glob patterns into PostgreSQL.

    Args:
        paths: one path or many: files, folders (recursive) or glob patterns.
        dsn: the server; default ``PGINGEST_DSN`` or ``DATABASE_URL``, else the embedded server.
        home: data directory of the embedded server (default ``PGINGEST_HOME`` or a per-user dir).
        options: a complete :class:`~pgingest.config.LoadOptions`; ``option_values`` override it.
        reporter: receives progress events.
        environ: the environment to read instead of ``os.environ``.
        **option_values: any :class:`~pgingest.config.LoadOptions` field, e.g. ``table="sales"``.

    Returns:
        The report: one :class:`~pgingest.model.FileResult` per file. Failures are reported
        there (``report.ok`` is False), not raised, so one bad file never stops the others.

    Raises:
        ConfigError: invalid options or DSN, or a ``transform`` that cannot be imported
            (refused before anything is loaded).
        ConnectionLostError: the server cannot be reached.
        ConcurrentLoadError: ``mode="replace"`` of a table another run is replacing (the
            message names that run); nothing was loaded.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    settings: ConnectionSettings = connection_from_env(dsn, home, environ)
    if "types" in option_values and isinstance(option_values["types"], str):
        from pgingest.schema.infer import parse_type_overrides

        option_values["types"] = parse_type_overrides(option_values["types"])
    if "headers" in option_values and isinstance(option_values["headers"], str):
        option_values["headers"] = tuple(h.strip() for h in option_values["headers"].split(","))
    if "pk" in option_values and isinstance(option_values["pk"], str):
        option_values["pk"] = tuple(k.strip() for k in option_values["pk"].split(","))
    load_options = options_with(options or LoadOptions(), option_values)
    if isinstance(load_options.transform, str):
        # Refused before anything starts, not failed file by file.
        from pgingest.sources.adapt import resolve_transform

        resolve_transform(load_options.transform)
    # Plan the targets and start parsing a large first workbook before the loader (the driver,
    # the encoder) is imported: that parse is most of such a load, and overlaps the start-up.
    from pgingest.pipeline.readahead import start_read_ahead

    names = [str(p) for p in paths]
    if load_options.workers > 1 and not load_options.dry_run:
        from pgingest.pipeline import workers

        return await workers.load_async(names, settings, load_options, reporter)
    import asyncio  # (here, not at the top: `pgingest --help` needs no event loop)

    ahead = await asyncio.to_thread(start_read_ahead, names, load_options)
    # Imported here so that `import pgingest` (and `pgingest --help`) stays light.
    from pgingest.pipeline import run

    return await run.load_async(names, settings, load_options, reporter, read_ahead=ahead)


def load(
    paths: str | Path | Sequence[str | Path],
    *,
    dsn: str | None = None,
    home: str | Path | None = None,
    options: LoadOptions | None = None,
    reporter: Reporter | None = None,
    **option_values: Any,
) -> LoadReport:
    """Synchronous :func:`load_async` (runs its own event loop).

    Args:
        paths: files, folders or glob patterns.
        dsn: the server (default: environment, else the embedded server).
        home: data directory of the embedded server.
        options: complete load options; ``option_values`` override them.
        reporter: receives progress events.
        **option_values: any :class:`~pgingest.config.LoadOptions` field.

    Returns:
        The :class:`~pgingest.model.LoadReport`.
    """
    from pgingest.pg.loop import run as run_loop

    return run_loop(
        load_async(paths, dsn=dsn, home=home, options=options, reporter=reporter, **option_values)
    )


async def status_async(
    *,
    dsn: str | None = None,
    home: str | Path | None = None,
    table: str | None = None,
    limit: int = 10,
    files: bool = False,
) -> dict[str, Any]:
    """What the manifest knows, next to what the tables hold now: recent runs (interrupted
    ones told apart), files and rows per table, interrupted files, failures, schema changes,
    rejects.

    Args:
        dsn: the server (default: environment, else the embedded server).
        home: data directory of the embedded server.
        table: only this table (``name`` or ``schema.name``).
        limit: how many recent runs, failures and changes to list.
        files: also every loaded or interrupted file with its rows in its table now.

    Returns:
        JSON-ready data (see :func:`pgingest.manifest.status.status`).
    """
    from pgingest.manifest.status import status
    from pgingest.pg.connect import connection

    async with connection(connection_from_env(dsn, home)) as conn:
        await _upgrade_manifest(conn)
        return await status(conn, table=table, limit=limit, files=files)


async def run_report_async(
    run_id: int | None = None, *, dsn: str | None = None, home: str | Path | None = None
) -> dict[str, Any]:
    """What the manifest recorded of one run, for its report: the run, its files with their
    times, schema changes, rejected rows and retries.

    Args:
        run_id: the run; default the latest.
        dsn: the server (default: environment, else the embedded server).
        home: data directory of the embedded server.

    Returns:
        JSON-ready data (see :func:`pgingest.manifest.runreport.run_report`).

    Raises:
        ManifestError: no such run.
    """
    from pgingest.manifest.runreport import run_report
    from pgingest.pg.connect import connection

    async with connection(connection_from_env(dsn, home)) as conn:
        await _upgrade_manifest(conn)
        return await run_report(conn, run_id)


async def _upgrade_manifest(conn: Any) -> bool:
    """Bring an existing manifest up to this version (as a load would); False when this
    database has none."""
    from pgingest.manifest.schema import ensure_manifest, manifest_exists

    if not await manifest_exists(conn):
        return False
    await ensure_manifest(conn)
    return True


async def prune_async(
    older_than: str | timedelta,
    *,
    dsn: str | None = None,
    home: str | Path | None = None,
    dry_run: bool = False,
) -> Any:
    """Remove manifest records older than an age that nothing needs any more (old runs,
    batch records of finished files, rejects, records of attempts that left nothing); see
    :func:`pgingest.manifest.prune.prune`.

    Args:
        older_than: the age, e.g. ``"90d"`` (s, m, h, d, w) or a ``timedelta``.
        dsn: the server (default: environment, else the embedded server).
        home: data directory of the embedded server.
        dry_run: count what would go; change nothing.

    Returns:
        A ``PruneReport``.

    Raises:
        ConfigError: the age is not one.
        ManifestError: nothing was ever loaded into this database.
    """
    from pgingest.config import parse_age
    from pgingest.manifest.prune import prune
    from pgingest.pg.connect import connection

    age = parse_age(older_than) if isinstance(older_than, str) else older_than
    async with connection(connection_from_env(dsn, home)) as conn:
        if not await _upgrade_manifest(conn):
            from pgingest.errors import ManifestError

            raise ManifestError("nothing was ever loaded into this database")
        return await prune(conn, age, dry_run=dry_run)


async def rejects_async(
    file: str, *, dsn: str | None = None, home: str | Path | None = None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]], str | None]:
    """The rows of a file that ``on_error="skip"`` set aside.

    Args:
        file: the file's path (its latest load) or its manifest id.
        dsn: the server (default: environment, else the embedded server).
        home: data directory of the embedded server.

    Returns:
        ``(entry, rows, header)``: the manifest entry (``None`` when unknown), its rejects in
        line order (``line``, ``column_name``, ``raw``, ``reason``) and the file's header
        line when it still exists and has one (to write the rejects out as a CSV file).
    """
    import asyncio

    from pgingest.manifest.store import file_rejects
    from pgingest.pg.connect import connection

    path = file
    if not file.strip().isdigit():
        path = _manifest_path(file)
    async with connection(connection_from_env(dsn, home)) as conn:
        await _upgrade_manifest(conn)
        entry, rows = await file_rejects(conn, path)
    header = None
    if entry is not None:
        header = await asyncio.to_thread(_header_line, entry["path"])
    return entry, rows, header


def _header_line(path: str) -> str | None:
    """The first record of a CSV file as it is written, when it is a header; else ``None``."""
    from pgingest.errors import PgIngestError
    from pgingest.sources import detect

    try:
        info = detect(path)
    except (PgIngestError, OSError):
        return None
    if info.dialect is None or not info.dialect.has_header:
        return None
    from pgingest.sources.base import open_stream

    with open_stream(path, info.compression) as stream:
        head = stream.read(1 << 20)
    text = head.decode(info.dialect.encoding, errors="replace").lstrip("\ufeff")
    lines = text.splitlines()
    return lines[info.dialect.skip_lines] if len(lines) > info.dialect.skip_lines else None


async def revert_async(
    *,
    dsn: str | None = None,
    home: str | Path | None = None,
    path: str | None = None,
    sha256: str | None = None,
    run_id: int | None = None,
    schema_changes: bool = False,
    dry_run: bool = False,
) -> Any:
    """Take the rows of loaded files back out (one transaction); see
    :func:`pgingest.manifest.revert.revert` for the arguments.

    Returns:
        A ``RevertReport``.
    """
    from pgingest.manifest.revert import revert_safely
    from pgingest.pg.connect import connection

    if path is not None:
        path = _manifest_path(path)
    async with connection(connection_from_env(dsn, home)) as conn:
        if not await _upgrade_manifest(conn):
            from pgingest.errors import ManifestError

            raise ManifestError("nothing was ever loaded into this database")
        return await revert_safely(
            conn,
            path=path,
            sha256=sha256,
            run_id=run_id,
            schema_changes=schema_changes,
            dry_run=dry_run,
        )


async def resume_async(
    run_id: int | None = None,
    *,
    dsn: str | None = None,
    home: str | Path | None = None,
    reporter: Reporter | None = None,
) -> LoadReport:
    """Continue an interrupted or failed run with its own paths and options.

    Files it loaded are skipped by the manifest; a file it was loading resumes after its last
    committed batch.

    Args:
        run_id: the run; default the most recent one that did not succeed.
        dsn: the server (default: environment, else the embedded server).
        home: data directory of the embedded server.
        reporter: receives progress events.

    Returns:
        The new run's report.

    Raises:
        ManifestError: no such run, or nothing to resume.
    """
    import json

    from pgingest.errors import ManifestError
    from pgingest.manifest import store
    from pgingest.manifest.schema import manifest_exists
    from pgingest.pg.connect import connection

    settings = connection_from_env(dsn, home)
    async with connection(settings) as conn:
        if not await manifest_exists(conn):
            raise ManifestError("no run to resume: nothing was ever loaded into this database")
        await store.ensure_manifest(conn)  # refuses a newer manifest before reading it
        row = await store.run_to_resume(conn, run_id)
    if row is None:
        raise ManifestError("no run to resume" if run_id is None else f"there is no run {run_id}")
    paths = json.loads(row["paths"]) if isinstance(row["paths"], str) else row["paths"]
    stored = json.loads(row["options"]) if isinstance(row["options"], str) else row["options"]
    from dataclasses import fields

    known = {f.name for f in fields(LoadOptions)}
    values = {k: v for k, v in stored.items() if k in known}
    for key in ("headers", "null_strings", "pk"):
        if isinstance(values.get(key), list):
            values[key] = tuple(values[key])
    values["dry_run"] = False
    options = LoadOptions(**values)
    if options.workers > 1:
        from pgingest.pipeline import workers

        return await workers.load_async(paths, settings, options, reporter)
    from pgingest.pipeline import run

    return await run.load_async(paths, settings, options, reporter)


def _manifest_path(path: str) -> str:
    """A path given to status or revert as the manifest records it: a local file's absolute
    path; a URL without user info or query string (an archive member: its archive's, with the
    member's name)."""
    from pgingest.sources.inputs import absolute, is_virtual

    if is_virtual(path):
        return absolute(path)
    return str(Path(path).expanduser().absolute())

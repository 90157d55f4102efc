"""Run a load: files in parallel, batches of a file in parallel, one transaction per batch."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import gzip
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar, cast

from pgingest.config import ConnectionSettings, LoadOptions, redact_dsn
from pgingest.errors import (
    ConfigError,
    LeaseLostError,
    PgIngestError,
    RecordFormatError,
    RowError,
    SourceError,
)
from pgingest.manifest import store
from pgingest.manifest.model import fingerprint
from pgingest.model import (
    ARROW_FORMATS,
    WORKBOOK_FORMATS,
    ArrowChunk,
    ColumnSpec,
    CsvChunk,
    CsvDialect,
    FileResult,
    LoadReport,
    SourceInfo,
    TableSpec,
)
from pgingest.observability.progress import (
    BatchDone,
    DbError,
    FileStarted,
    NullReporter,
    Reporter,
    Retry,
)
from pgingest.pg import connect, copy, ddl, merge
from pgingest.pg.errors import is_driver_error, translate
from pgingest.pg.retry import RetryPolicy, classify, is_transient
from pgingest.pipeline.columns import (
    check_file,
    declared_table,
    existing_columns,
    infer_columns,
    options_for_contract,
    read_contract,
)
from pgingest.pipeline.evolve import evolve_table, policy_for
from pgingest.pipeline.memory import limit_resident_memory
from pgingest.pipeline.modes import Modes, apply_staged, fit_pool
from pgingest.pipeline.payload import Payload, encode_shaped
from pgingest.pipeline.plan import (
    Target,
    default_table_name,
    expand_sheets,
    options_for,
    plan_targets,
)
from pgingest.pipeline.readahead import ReadAhead, excel_options
from pgingest.pipeline.recover import Recovery, TooManyErrorsError
from pgingest.pipeline.route import routed_batches
from pgingest.pipeline.shape import align_batch, batch_to_csv, normalize_batch
from pgingest.schema.contract import Contract
from pgingest.schema.evolve import plan_evolution
from pgingest.schema.names import LINEAGE_COLUMNS, normalize_names
from pgingest.sources import CsvOptions, Source, detect, open_source
from pgingest.sources.adapt import AdaptedSource, resolve_transform

log = logging.getLogger("pgingest.run")
T = TypeVar("T")

# Raw CSV chunks of this size keep two COPY streams busy without holding much memory
# (4 MiB measured best for two streams on a 2-core machine; 16 MiB was 10% slower).
RAW_CHUNK_BYTES = 4 << 20
# Decoded Arrow batches (Parquet) of this size: what the Parquet reader and the allocators keep
# grows with the batch (2M-row benchmark file: 50,000-row batches of 6.5 MB peaked at 280-310
# MB, 20,000 rows at 230-240 MB), while the per-batch cost (a transaction, a manifest row)
# stays small at a few MB.
ARROW_BATCH_BYTES = 4 << 20
# Below this size a file is detected and hashed in the event loop's thread: a thread hop costs
# more than the work, and with thousands of small files the hops add up.
SMALL_FILE_BYTES = 1 << 20


@dataclass(slots=True)
class FilePlan:
    """What will happen to one file."""

    info: SourceInfo
    table: TableSpec
    create: bool
    columns: list[str]
    """The file's columns that are loaded, in file order."""
    target_types: list[str]
    """Their types in the table (updated when the table widens during the load)."""
    read_columns: list[str] | None = None
    """All the file's columns, when some are left out (``--on-new-column ignore``)."""
    fixed: frozenset[str] = frozenset()
    """Columns with declared types (never widened)."""
    changes: list[str] = field(default_factory=list)
    """Schema changes this file caused."""
    datestyle: str | None = None
    """``DateStyle`` the server reads the file's dates with (``ISO, DMY``), if not the default."""
    target: merge.Target | None = None
    """upsert/merge: where the staged batches go, and how."""
    routes: int = 1
    """upsert/merge: workers the rows are routed to by key."""
    seen: str | None = None
    """merge --delete-missing: the file's key table."""


def _csv_options(options: LoadOptions) -> CsvOptions:
    return CsvOptions(
        header=options.header,
        names=options.headers,
        null_strings=options.null_strings,
        delimiter=options.delimiter,
        encoding=options.encoding,
    )


def _payloads(
    source: Source,
    plan: FilePlan,
    options: LoadOptions,
    done: frozenset[int],
    parse: bool = False,
) -> Iterator[tuple[int, Payload | Callable[[], Payload]]]:
    """Read the file's batches, numbered, skipping those already committed (runs in a worker
    thread). Each comes with the function that encodes it, which the batch workers call in
    threads of their own: pgpq releases the GIL, so two workers encode on two cores."""
    for index, make in enumerate(_batches(source, plan, options, parse)):
        if index not in done:
            yield index, make


def _batches(
    source: Source, plan: FilePlan, options: LoadOptions, parse: bool = False
) -> Iterator[Payload | Callable[[], Payload]]:
    """The file's batches in order: ready payloads (raw CSV), or functions that encode them
    (skipped batches never are)."""
    info = source.info
    path = info.path
    if info.format in ARROW_FORMATS or isinstance(source, AdaptedSource):
        cache: list[copy.BinaryEncoder | None] = [None]
        header = dict(zip(source.column_names(), plan.read_columns or plan.columns, strict=False))
        batch_bytes = min(options.batch_bytes, ARROW_BATCH_BYTES)
        if info.format in WORKBOOK_FORMATS:
            # A sheet is read whole: smaller batches would save no memory, only add commits.
            batch_bytes = options.batch_bytes
        for chunk in source.chunks(batch_rows=options.batch_size, batch_bytes=batch_bytes):
            chunk = cast("ArrowChunk", chunk)  # the Parquet reader yields Arrow chunks

            def encode(chunk: ArrowChunk = chunk) -> Payload:
                batch = chunk.batch
                if plan.read_columns is not None:
                    batch = batch.rename_columns(plan.read_columns).select(plan.columns)
                shaped = normalize_batch(batch, plan.columns, path)
                # the reader's rejects, named by the table's column, not the header
                rejects = tuple(
                    replace(r, column=header.get(r.column, r.column) if r.column else None)
                    for r in chunk.rejects
                )
                try:
                    aligned = align_batch(shaped, plan.target_types, path, chunk.first_line)
                except RowError as exc:  # a value wider than its column: the table may widen
                    return Payload(
                        "arrow",
                        b"",
                        chunk.first_line,
                        batch=shaped.batch,
                        error=exc,
                        rejects=rejects,
                    )
                payload = encode_shaped(aligned, chunk.first_line, cache)
                return replace(payload, rejects=rejects) if rejects else payload

            yield encode
        return
    dialect = info.dialect or CsvDialect()
    raw = (
        not parse
        and plan.read_columns is None
        and dialect.escapechar is None
        and not options.null_strings
        and dialect.newline != "\r"
    )
    if raw:
        for chunk in source.chunks(
            batch_rows=options.batch_size,
            batch_bytes=min(options.batch_bytes, RAW_CHUNK_BYTES),
            raw=True,
        ):
            chunk = cast("CsvChunk", chunk)  # raw=True yields raw chunks
            yield Payload("csv", chunk.data, chunk.first_line, chunk.encoding, dialect)
        return
    for chunk in source.chunks(
        batch_rows=options.batch_size, batch_bytes=options.batch_bytes, raw=False
    ):
        chunk = cast("ArrowChunk", chunk)  # raw=False yields Arrow chunks

        def to_csv(chunk: ArrowChunk = chunk) -> Payload:
            batch = chunk.batch.rename_columns(plan.read_columns or plan.columns)
            if plan.read_columns is not None:
                batch = batch.select(plan.columns)
            return Payload("csv", batch_to_csv(batch), chunk.first_line, "UTF8", CsvDialect())

        yield to_csv


@dataclass(slots=True)
class FileJob:
    """One file's load in progress: its manifest id, what is done, what to replace."""

    path: str
    file_id: int | None = None
    done_batches: frozenset[int] = frozenset()
    done_rows: int = 0
    replaces: int | None = None
    parse: bool = False
    """Parse CSV records client-side instead of passing raw chunks to the server."""
    rejects: int = 0
    """Bad rows set aside (``--on-error skip``)."""


class Lease:
    """A worker's pooled connection, replaced by :meth:`renew` when a fault cut it.

    The file's own connection also holds the file's manifest lock: a new one takes the lock
    again, and when another process took the file meanwhile, :class:`LeaseLostError` stops
    this one (the batches it committed stay recorded; the other process skips them).
    """

    def __init__(
        self, pool: Any, conn: Any, *, holds_lock: bool = False, file_id: int | None = None
    ) -> None:
        self._pool = pool
        self.conn: Any = conn
        self.holds_lock = holds_lock
        self.file_id = file_id

    async def renew(self) -> None:
        """Close the current connection and take a fresh one, set up for the file."""
        await self.release(broken=True)
        conn = await self._pool.acquire()
        try:
            if self.file_id is not None:
                if self.holds_lock and not await store.relock_file(conn, self.file_id):
                    raise LeaseLostError(
                        f"file id {self.file_id}: another pgingest process took the file over"
                        " while this one reconnected"
                    )
                await store.set_file_id(conn, self.file_id)
        except BaseException:
            await _quietly(self._pool.release(conn))
            raise
        self.conn = conn

    async def release(self, broken: bool = False) -> None:
        """Give the connection back to the pool; a ``broken`` one is closed first (the pool
        opens a new one in its place)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if broken and not conn.is_closed():
            conn.terminate()
        await _quietly(asyncio.wait_for(self._pool.release(conn), 10))


SAME_CONNECTION_CLASSES = frozenset({"serialization_failure", "deadlock", "lock_not_available"})
"""Transient errors after which a batch is retried on the same connection."""

SKIP_VERSION = 170000
"""First PostgreSQL with ``COPY ... ON_ERROR ignore``: bad values are skipped server-side."""

FAILURE_RECORD_ATTEMPTS = 3
"""Connections tried to mark a file failed before leaving it to the next run."""


class Loader:
    """Loads files through one connection pool; see :func:`pgingest.load`."""

    def __init__(
        self,
        settings: ConnectionSettings,
        options: LoadOptions,
        reporter: Reporter | None = None,
        read_ahead: ReadAhead | None = None,
    ) -> None:
        self.settings = settings
        self._options = options
        self._read_ahead = read_ahead
        self.reporter: Reporter = reporter or NullReporter()
        self._pool: Any = None
        self._run_id: int | None = None
        self._stages: dict[str, float] = {}
        self._retries = 0
        self._policy = RetryPolicy(options.max_retries, options.retry_base, options.retry_max)
        self._tables: dict[tuple[str, str], list[ColumnSpec]] = {}
        self.modes = Modes(options)
        self._workers_cap: int | None = None
        """Batch workers per file when the server allows fewer connections than asked."""
        self._server_version = 0
        self._contract: Contract | None = None
        if options.contract:
            self._contract = read_contract(options.contract)

    @property
    def options(self) -> LoadOptions:
        """The options of the target being loaded (a folder's or a source's overrides applied),
        else the run's: set per target in its own task (a context variable)."""
        return _TARGET_OPTIONS.get() or self._options

    @property
    def workers_per_file(self) -> int:
        """Batches of one file in flight at once."""
        if self.options.txn == "file":
            return 1
        workers = max(1, self.options.internal_concurrency)
        return min(workers, self._workers_cap) if self._workers_cap else workers

    def _retrying(
        self,
        exc: BaseException,
        attempt: int,
        delay: float,
        path: str,
        table: str,
        batch: int | None,
    ) -> None:
        """Count, log and report a retry about to happen."""
        self._retries += 1
        error = _one_line(redact_dsn(str(exc))) or type(exc).__name__
        error_class = classify(exc)
        log.info(
            "retry %d/%d in %.1f s of %s%s after %s: %s",
            attempt,
            self._policy.max_retries,
            delay,
            path or "connecting",
            f" batch {batch}" if batch is not None else "",
            error_class,
            error,
            extra={"file": path or None, "table": table or None, "batch": batch},
        )
        self.reporter.retry(Retry(path, table, batch, attempt, delay, error_class, error))

    def _db_error(self, exc: BaseException, path: str | None) -> None:
        """Report a database error once, where it is first caught."""
        cause = exc.__cause__ if isinstance(exc, PgIngestError) and exc.__cause__ else exc
        if getattr(cause, "_pgingest_reported", False) or not is_driver_error(cause):
            return
        # An exception type without a __dict__ cannot be marked: it may count twice.
        with contextlib.suppress(AttributeError):
            cause._pgingest_reported = True  # type: ignore[attr-defined]
        self.reporter.db_error(DbError(classify(cause), path))

    async def _with_retries(self, step: Callable[[], Awaitable[T]], path: str = "") -> T:
        """Run ``step``, again after a transient database error (a fresh connection each time:
        ``step`` acquires its own)."""
        attempt = 0
        while True:
            try:
                return await step()
            except Exception as exc:
                self._db_error(exc, path or None)
                if not is_transient(exc) or attempt >= self._policy.max_retries:
                    raise
                attempt += 1
                delay = self._policy.delay(attempt)
                self._retrying(exc, attempt, delay, path, "", None)
                await asyncio.sleep(delay)

    def _stage(self, name: str, began: float) -> float:
        """Add the seconds since ``began`` to stage ``name``; return them."""
        seconds = time.perf_counter() - began
        self._stages[name] = self._stages.get(name, 0.0) + seconds
        return seconds

    async def run(self, paths: Sequence[str]) -> LoadReport:
        """Load every file behind ``paths``; return the report (failures are in it, not raised)."""
        started = time.perf_counter()
        limit_resident_memory()
        report = LoadReport(dry_run=self.options.dry_run)
        targets, missing = await asyncio.to_thread(self._targets, paths, report)
        for d in missing:
            result = FileResult(d.path, "", "failed", error=d.error)
            report.files.append(result)
            self.reporter.file_done(result)
        files = [t.path for t in targets]
        if not files:
            report.seconds = time.perf_counter() - started
            self.reporter.run_done(report)
            return report
        # Each file holds one connection per batch worker (the first also holds its lock).
        files_at_once = min(self.options.concurrency, len(files))
        size = files_at_once * self.workers_per_file + 2
        self._pool = await connect.create_pool(
            self.settings,
            size,
            self._policy,
            lambda attempt, delay, exc: self._retrying(exc, attempt, delay, "", "", None),
        )
        files_at_once = await self._fit_pool(size, files_at_once)
        try:
            if not self.options.dry_run:

                async def start() -> int:
                    async with self._pool.acquire() as conn:
                        self._server_version = await connect.server_version(conn)
                        await store.ensure_manifest(conn)
                        run_id: int = await store.start_run(
                            conn,
                            [os.path.abspath(p) for p in paths],  # noqa: ASYNC240 - no I/O
                            _options_record(self.options),
                            socket.gethostname(),
                            os.getpid(),
                        )
                        return run_id

                self._run_id = await self._with_retries(start)
                self.reporter.run_started(self._run_id)
            limit = asyncio.Semaphore(files_at_once)
            results: list[FileResult | None] = [None] * len(files)
            try:

                async def open_target(index: int) -> tuple[Source, LoadOptions]:
                    """A target's source, opened with its own options (folder overrides)."""
                    overrides = targets[index].overrides
                    token = (
                        _TARGET_OPTIONS.set(options_for(self._options, overrides))
                        if overrides
                        else None
                    )
                    try:
                        return await self._open(files[index]), self.options
                    finally:
                        if token is not None:
                            _TARGET_OPTIONS.reset(token)

                for target in targets:
                    own = options_for(self._options, target.overrides)
                    per_target = {
                        name
                        for name in ("mode", "pk", "delete_missing", "strategy")
                        if getattr(own, name) != getattr(self._options, name)
                    }
                    if per_target:
                        raise ConfigError(
                            f"{target.path}: {', '.join(sorted(per_target))} can only be set for"
                            " the whole run (top of the config file or the command line), not"
                            " per folder or source"
                        )
                refused = await self.modes.prepare(files, open_target, self._pool, self._run_id)
            except BaseException:
                if self._run_id is not None:  # e.g. merge on a server without MERGE
                    await asyncio.shield(self._finish_run("failed", report))
                raise
            for table_name, message in self.modes.schedule.strategies.items():
                report.strategies[table_name] = message
                if not message.startswith("parallel: one file"):
                    self.reporter.message(f"{table_name}: {message}")
            finished_files = [asyncio.Event() for _ in files]
            stopped_folders: dict[str, str] = {}
            finished = [0]
            pause_lock = asyncio.Lock()

            async def one(index: int, path: str) -> None:
                try:
                    if index in refused:
                        results[index] = refused[index]
                        self.reporter.file_done(refused[index])
                        return
                    # Wait outside the semaphore: a waiting file holds no slot.
                    for earlier in sorted(self.modes.waits_for(index)):
                        await finished_files[earlier].wait()
                    await one_file(index, path)
                finally:
                    finished_files[index].set()

            async def one_file(index: int, path: str) -> None:
                overrides = targets[index].overrides
                if overrides:
                    _TARGET_OPTIONS.set(options_for(self._options, overrides))
                async with limit:
                    folder = os.path.dirname(os.path.abspath(path))  # noqa: ASYNC240
                    if self.options.sectional_commit and folder in stopped_folders:
                        result = FileResult(path, "", "skipped")
                        result.message = f"not started: {stopped_folders[folder]} failed first"
                        results[index] = result
                        self.reporter.file_done(result)
                        return
                    result = await self._load_file(path, report)
                    results[index] = result
                    if result.status == "failed" and self.options.sectional_commit:
                        stopped_folders.setdefault(folder, path)
                    finished[0] += 1
                    every = self.options.pause_every
                    if every and finished[0] % every == 0 and finished[0] < len(files):
                        async with pause_lock:
                            self.reporter.message(
                                f"pausing {self.options.pause_seconds:g} s after "
                                f"{finished[0]} file(s)"
                            )
                            await asyncio.sleep(self.options.pause_seconds)

            status = "failed"
            try:
                async with asyncio.TaskGroup() as group:
                    for index, path in enumerate(files):
                        group.create_task(one(index, path))
                status = "success"
            except BaseException:
                status = "interrupted"
                raise
            finally:
                report.files.extend(r for r in results if r is not None)
                if self.modes.replacements:
                    await asyncio.shield(
                        self.modes.finish_run(self._pool, report, self._run_id, status)
                    )
                if status == "success" and report.failed:
                    status = "failed"
                if self._run_id is not None:
                    await asyncio.shield(self._finish_run(status, report))
        finally:
            await self._pool.close()
            report.seconds = time.perf_counter() - started
            report.run_id = self._run_id
            report.retries = self._retries
            report.stages = {k: round(v, 3) for k, v in sorted(self._stages.items())}
            self.reporter.run_done(report)
        return report

    def _targets(self, paths: Sequence[str], report: LoadReport) -> tuple[list[Target], list[Any]]:
        """The run's targets: discovered files with their options, one per sheet where a
        workbook's sheets each go to their own table (runs in a thread: it reads workbooks)."""
        if self._read_ahead is not None:
            targets, missing = self._read_ahead.targets, self._read_ahead.missing
        else:
            targets, missing = plan_targets(paths, self._options)
        out: list[Target] = []
        for target in targets:
            options = options_for(self._options, target.overrides)
            if options.sheet != "all" or options.sheet_column:
                out.append(target)
                continue
            try:
                info = detect(target.path, options.format, _csv_options(options))
                out.extend(expand_sheets(target, options, info.format in WORKBOOK_FORMATS))
            except PgIngestError as exc:
                result = FileResult(target.path, "", "failed", error=_one_line(str(exc)))
                report.files.append(result)
                self.reporter.file_done(result)
        return out, missing

    async def _fit_pool(self, size: int, files_at_once: int) -> int:
        """Cap the pool at what the server allows (``max_connections`` and the role's and the
        database's connection limits, minus what is in use), warning when it caps; fewer batch
        workers per file first, then fewer files at once. Returns the files at once."""
        async with self._pool.acquire() as conn:
            capacity = await connect.connection_capacity(conn)
        if capacity is None or capacity >= size:
            return files_at_once
        files_at_once, workers, new_size = fit_pool(
            capacity, size, files_at_once, self.workers_per_file
        )
        self._workers_cap = workers
        message = (
            f"the server allows {capacity} more connection(s), not the {size} asked"
            f" ({min(self.options.concurrency, files_at_once)} file(s) x"
            f" {self.options.internal_concurrency} batch worker(s) + 2): loading {files_at_once}"
            f" file(s) at once with {workers} worker(s) each"
        )
        log.warning(message)
        self.reporter.message(f"warning: {message}")
        await self._pool.close()
        self._pool = await connect.create_pool(self.settings, new_size, self._policy)
        return files_at_once

    async def _keyed_plan(self, plan: FilePlan, conn: Any, job: FileJob, routes: int) -> None:
        """upsert/merge: the file's staging target and routing (the key was checked before
        the run started); merge --delete-missing: its key table."""
        table = plan.table
        existing = self._tables.get((table.schema, table.name)) or []
        lineage = self.modes.has_lineage([c.name for c in existing])
        plan.target = self.modes.target(
            table.schema, table.name, plan.columns, plan.target_types, lineage
        )
        if plan.target is None:
            return
        merge.check_key_columns(job.path, plan.target.key, plan.columns, table.qualified)
        plan.routes = self.modes.routes(plan.target, routes)
        if self.options.delete_missing and job.file_id is not None:
            fresh = not job.done_batches
            plan.seen = await merge.prepare_seen(conn, plan.target, job.file_id, fresh)

    async def _finish_run(self, status: str, report: LoadReport) -> None:
        if self._run_id is None:
            return
        counts = {
            "loaded": sum(1 for f in report.files if f.status == "loaded"),
            "skipped": sum(1 for f in report.files if f.status == "skipped"),
            "failed": len(report.failed),
            "rows": report.rows,
        }
        run_id = self._run_id

        async def finish() -> None:
            async with self._pool.acquire() as conn:
                await store.finish_run(conn, run_id, status, counts)

        try:
            await self._with_retries(finish)
        except Exception as exc:  # the server may be gone: the run row stays 'running'
            log.warning("could not record the end of run %s: %s", self._run_id, exc)

    async def _load_file(self, path: str, report: LoadReport) -> FileResult:
        started = time.perf_counter()
        table_name = self.options.table or ""
        qualified = ""
        result: FileResult
        source: Source | None = None
        try:
            table_name = self.options.table or default_table_name(path)
            qualified = f"{self.options.schema}.{table_name}"
            if self.options.dry_run:
                source = await self._open(path)
                plan = await self._plan(source, self.modes.load_table(table_name))
                described = [self._describe(plan), *self.modes.describe(path, qualified)]
                report.plans.append("\n".join(described))
                result = FileResult(
                    path, plan.table.qualified, "skipped", format=source.info.format
                )
                result.message = "dry run"
            else:
                result = await self._load_with_retries(path, table_name, started)
        except LeaseLostError as exc:
            result = FileResult(path, qualified, "skipped", message=_one_line(str(exc)))
        except PgIngestError as exc:
            result = FileResult(path, qualified, "failed", error=_one_line(str(exc)))
        except Exception as exc:
            if is_driver_error(exc):
                error = translate(exc, path=path)
                result = FileResult(path, qualified, "failed", error=_one_line(str(error)))
            else:
                log.exception("unexpected error loading %s", path)
                result = FileResult(
                    path, qualified, "failed", error=f"{path}: {type(exc).__name__}: {exc}"
                )
        finally:
            if source is not None:
                source.close()
        result.seconds = time.perf_counter() - started
        self.reporter.file_done(result)
        return result

    async def _load_with_retries(self, path: str, table_name: str, started: float) -> FileResult:
        """Load one file; after a transient error outside a batch (claiming, planning,
        completing) or one its batches ran out of retries on, claim it again: the manifest
        resumes it after its committed batches."""
        attempt = 0
        parse = False
        while True:
            try:
                return await self._load_claimed(
                    path, table_name, FileJob(path, parse=parse), started
                )
            except RecordFormatError as exc:
                if parse:
                    raise
                # The server's CSV parser refused the records (a quote inside a field, a
                # blank line, a ragged row): nothing of the file was kept; parse it ourselves.
                log.info("%s: %s; loading it again, parsed client-side", path, exc)
                parse = True
            except Exception as exc:
                self._db_error(exc, path)
                transient = is_transient(exc) or is_transient_read_fault(exc)
                if not transient or attempt >= self._policy.max_retries:
                    raise
                attempt += 1
                delay = self._policy.delay(attempt)
                table = f"{self.options.schema}.{table_name}"
                self._retrying(exc, attempt, delay, path, table, None)
                await asyncio.sleep(delay)

    async def _open(self, path: str) -> Source:
        csv_options = _csv_options(self.options)
        if _size(path) <= SMALL_FILE_BYTES:
            info = detect(path, self.options.format, csv_options)
        else:
            info = await asyncio.to_thread(detect, path, self.options.format, csv_options)
        options = self.options
        excel = excel_options(options)
        began = time.perf_counter()
        ahead = self._read_ahead
        read_ahead = (
            await asyncio.to_thread(ahead.take, path, options)
            if ahead and ahead.wants(path, options)
            else None
        )  # opened while the loader started: waited for in a thread
        if read_ahead is not None:
            source = read_ahead
        elif info.format in WORKBOOK_FORMATS and not small_enough(info):
            # A workbook's sheet is parsed whole when it is opened: that is its read stage.
            source = await asyncio.to_thread(open_source, info, csv_options, excel)
        else:
            source = open_source(info, csv_options, excel)
        self._stage("read", began)
        if options.source_file_column or options.transform is not None:
            transform = resolve_transform(options.transform) if options.transform else None
            source_file = path if options.source_file_column else None
            source = AdaptedSource(source, source_file=source_file, transform=transform)
        return source

    async def _load_claimed(
        self, path: str, table_name: str, job: FileJob, started: float
    ) -> FileResult:
        """Claim in the manifest, read, load, record: the life of one file.

        The file's connection holds its manifest lock and also writes its first batch stream,
        so a small file costs one connection and a handful of round trips.
        """
        schema = self.options.schema
        qualified = f"{schema}.{table_name}"
        abspath = os.path.abspath(path)  # noqa: ASYNC240 - getcwd, no disk I/O
        stat = os.stat(path)
        small = stat.st_size <= SMALL_FILE_BYTES
        chunking: dict[str, int] = {
            "batch_size": self.options.batch_size,
            "batch_bytes": self.options.batch_bytes,
        }
        if self.modes.keyed:  # a resumed file must route its rows to the same workers
            chunking["routes"] = 1 if small else self.modes.workers(path, self.workers_per_file)
        # replace loads everything again into a new table; the old one is left alone until
        # the swap (no version's rows are removed from it meanwhile).
        replacing = self.options.mode == "replace"
        force = self.options.force or replacing
        # A new version of a file is upserted over the table as it is: deleting the old
        # version's rows first (append's --on-changed replace) would delete rows later files
        # updated, and re-insert the rest.
        keep_old_rows = replacing or self.modes.keyed or not self.options.lineage
        # Hashing a small file costs less than a second claim would.
        sha256: str | None = fingerprint(path).sha256 if small else None
        lease = Lease(self._pool, await self._pool.acquire(), holds_lock=True)
        try:
            conn = lease.conn

            async def claim_it(sha: str | None) -> store.Claim:
                return await store.claim_file(
                    conn,
                    path=abspath,
                    size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns,
                    sha256=sha,
                    schema=schema,
                    table=table_name,
                    fmt=None,
                    run_id=self._run_id or 0,
                    chunking=chunking,
                    force=force,
                    on_changed="append" if keep_old_rows else self.options.on_changed,
                    lineage=self.options.lineage,
                )

            claim = await claim_it(sha256)
            if claim.action == "hash":
                # The table holds a loaded file of the same size: it may be this content.
                sha256 = (await asyncio.to_thread(fingerprint, path)).sha256
                claim = await claim_it(sha256)
            if claim.action == "skip":
                result = FileResult(path, qualified, "skipped")
                result.message = claim.reason
                return result
            if claim.file_id is None:
                raise PgIngestError(f"{path}: the manifest returned no file id")
            job.file_id = claim.file_id
            lease.file_id = claim.file_id
            job.done_batches = frozenset(claim.done_batches)
            job.done_rows = claim.done_rows
            job.replaces = claim.replaces
            options = self.options
            if claim.chunking:
                options = replace(
                    options,
                    batch_size=int(claim.chunking.get("batch_size", options.batch_size)),
                    batch_bytes=int(claim.chunking.get("batch_bytes", options.batch_bytes)),
                )
            source: Source | None = None
            try:
                source = await self._open(path)
                plan = await self._plan(source, self.modes.load_table(table_name), job, conn)
                routes = int(claim.chunking.get("routes", chunking.get("routes", 1)))
                await self._keyed_plan(plan, conn, job, routes)
                self.reporter.file_started(
                    FileStarted(path, plan.table.qualified, source.info.format, stat.st_size)
                )
                workers = 1 if small else self.modes.workers(path, self.workers_per_file)
                if plan.target is not None:
                    # The routes are fixed for the file's life (a resumed file keeps its batch
                    # numbers); the workers serving them are what the pool allows now.
                    workers = max(1, min(plan.routes, workers if not small else plan.routes))
                if sha256 is None:
                    # Hash alongside the load: a new file does not wait for its checksum.
                    try:
                        async with asyncio.TaskGroup() as group:
                            hashing = group.create_task(asyncio.to_thread(fingerprint, path))
                            await self._write(source, plan, job, options, lease, workers)
                    except BaseExceptionGroup as group_error:
                        raise _first_error(group_error) from None
                    sha256 = hashing.result().sha256
                else:
                    await self._write(source, plan, job, options, lease, workers)
                if plan.target is not None and plan.seen is not None:
                    await merge.delete_missing(lease.conn, plan.target, job.file_id)
                done = await store.complete_file(
                    lease.conn,
                    job.file_id,
                    sha256,
                    fmt=source.info.format,
                    force=force,
                    lineage=self.options.lineage,
                )
            except LeaseLostError:
                raise  # another process loads the file now: its manifest row is not ours
            except BaseException as exc:
                # Bad data leaves nothing of the file; a fault (the database's, or the disk's
                # while reading) keeps its committed batches for the retry or re-run.
                discard = (
                    isinstance(exc, PgIngestError) and not exc.retryable and not is_read_fault(exc)
                )
                message = _one_line(str(exc)) or type(exc).__name__
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    message = "interrupted"
                await asyncio.shield(self._record_failure(lease.conn, job, message, discard))
                if lease.conn is not None:
                    await _quietly(store.release_file(lease.conn, job.file_id))
                raise
            finally:
                if source is not None:
                    source.close()
        finally:
            await lease.release()
        fmt = source.info.format
        if done.duplicate_of is not None:
            result = FileResult(path, plan.table.qualified, "skipped", format=fmt)
            result.message = f"same content loaded meanwhile from {done.duplicate_path}"
            return result
        result = FileResult(
            path,
            plan.table.qualified,
            "loaded",
            rows=done.rows,
            format=fmt,
            seconds=time.perf_counter() - started,
            rejects=job.rejects,
            schema_changes=plan.changes,
        )
        if claim.reason == "resume":
            result.message = f"resumed after {len(job.done_batches)} committed batch(es)"
        elif claim.replaces is not None:
            result.message = (
                "reloaded (--force): replaced the rows loaded before"
                if self.options.force
                else "changed: replaced the rows of its previous version"
            )
        return result

    async def _record_failure(self, conn: Any, job: FileJob, error: str, discard: bool) -> None:
        """Mark the file failed, on a fresh connection: the file's own one may be inside the
        interrupted batch's transaction (a nested transaction there would be a savepoint that
        is rolled back with it) or broken by the fault."""
        if job.file_id is None:
            return
        # A pooled connection may have been cut by the same fault without the driver knowing
        # yet: a few attempts get a live one.
        for attempt in range(1, FAILURE_RECORD_ATTEMPTS + 1):
            try:
                async with self._pool.acquire(timeout=30) as fresh:
                    await store.fail_file(
                        fresh, job.file_id, error, discard=discard, lineage=self.options.lineage
                    )
                break
            except Exception as exc:  # the server may be gone: the next run resumes the file
                if attempt == FAILURE_RECORD_ATTEMPTS:
                    log.warning("could not record the failure of %s: %s", job.path, exc)
                else:
                    await asyncio.sleep(0.2 * attempt)
        if conn is not None and not conn.is_closed() and conn.is_in_transaction():
            await _quietly(conn.execute("ROLLBACK"))

    async def _plan(
        self, source: Source, table_name: str, job: FileJob | None = None, conn: Any = None
    ) -> FilePlan:
        if conn is None:
            async with self._pool.acquire() as own:
                return await self._plan(source, table_name, job, own)
        names = normalize_names(source.column_names())
        schema = self.options.schema
        key = (schema, table_name)
        options = self.options
        contract = self._contract.for_table(schema, table_name) if self._contract else None
        if contract is not None:
            names = contract.rename(names)
            await asyncio.to_thread(check_file, contract, source, names, options)
            options = options_for_contract(contract, names, options)
        fixed = frozenset(options.types)
        file_id = job.file_id if job is not None else None
        dry = self.options.dry_run
        existing = self._tables.get(key)
        if existing is None:
            existing = await ddl.table_columns(conn, schema, table_name)
        if existing:
            if self.options.lineage and not dry:
                names_now = [c.name for c in existing]
                if await store.ensure_lineage(conn, schema, table_name, names_now):
                    existing = await ddl.table_columns(conn, schema, table_name) or []
            self._tables[key] = existing
            data = [c for c in existing if c.name not in LINEAGE_COLUMNS]
            have = {c.name: c for c in data}
            if source.info.size <= SMALL_FILE_BYTES:  # less work than a thread hop
                found = existing_columns(source, names, have, options)
            else:
                found = await asyncio.to_thread(existing_columns, source, names, have, options)
            create = False
        else:
            found = await asyncio.to_thread(infer_columns, source, names, options)
            create = True
            if contract is not None:
                found.columns, table_key = declared_table(contract, found.columns)
            else:
                table_key = ()
            if not dry:
                table = TableSpec(schema, table_name, tuple(found.columns), table_key)
                lineage = store.lineage_columns_sql() if self.options.lineage else ""
                extras = self.modes.create_extras(table_name)
                lineage = ",\n  ".join(x for x in (lineage, extras) if x)
                actual, created = await ddl.create_table(conn, table, lineage)
                if created and job is not None:
                    await store.record_schema_change(
                        conn,
                        schema=schema,
                        table=table_name,
                        change="create_table",
                        file_id=job.file_id,
                        run_id=self._run_id,
                    )
                self._tables[key] = actual
        incoming, text_ok = found.columns, found.text_ok
        for warning in found.warnings:
            log.warning("%s", warning, extra={"file": source.info.path})
            self.reporter.message(f"warning: {warning}")
        ignored: tuple[str, ...] = ()
        changes: list[str] = []
        known = None if create else [c for c in existing or () if c.name not in LINEAGE_COLUMNS]
        quick = None
        if known is not None:
            # Planned against the columns already known: no change needed means no DDL
            # transaction and no lock (with many small files, those round trips add up).
            quick = plan_evolution(
                known,
                incoming,
                policy_for(options, fixed),
                table=f"{schema}.{table_name}",
                text_ok=text_ok,
            )
        if create and dry:
            columns = list(incoming)
        elif quick is not None and quick.is_empty:
            columns, ignored = list(known or ()), quick.ignored
        else:
            evolution = await evolve_table(
                conn,
                schema,
                table_name,
                incoming,
                policy_for(options, fixed),
                text_ok=text_ok,
                file_id=file_id,
                run_id=self._run_id,
                dry_run=dry,
            )
            columns, ignored, changes = evolution.columns, evolution.plan.ignored, evolution.changes
        table = TableSpec(schema, table_name, tuple(columns))
        by_name = {c.name: c.pg_type for c in columns}
        loaded = [n for n in names if n not in ignored]
        return FilePlan(
            source.info,
            table,
            create,
            loaded,
            [by_name[n] for n in loaded],
            read_columns=names if ignored else None,
            fixed=fixed,
            changes=list(changes),
            datestyle=found.datestyle,
        )

    def _describe(self, plan: FilePlan) -> str:
        info = plan.info
        lines = [f"{info.path}: {info.format}, {info.size:,} bytes"]
        if info.compression != "none":
            lines[0] += f", {info.compression}"
        if info.dialect is not None:
            d = info.dialect
            lines.append(
                f"  dialect: delimiter {d.delimiter!r}, quote {d.quotechar!r}, "
                f"escape {'doubled quote' if d.escapechar is None else repr(d.escapechar)}, "
                f"header {'yes' if d.has_header else 'no'}, encoding {d.encoding}"
            )
        lines.append(f"  table {plan.table.qualified} ({'create' if plan.create else 'exists'})")
        for column in plan.table.columns:
            src = f"  <- {column.source_name!r}" if column.source_name else ""
            lines.append(f"    {column.name} {column.pg_type}{src}")
        if plan.create:
            lineage = store.lineage_columns_sql() if self.options.lineage else ""
            sql = ddl.create_table_sql(plan.table, lineage)
            lines.append("  DDL: " + sql.replace("\n", "\n  "))
        for change in plan.changes:
            lines.append(f"  would change: {change}")
        if plan.read_columns is not None:
            left_out = [n for n in plan.read_columns if n not in plan.columns]
            lines.append(f"  left out (--on-new-column ignore): {', '.join(left_out)}")
        if plan.datestyle is not None:
            lines.append(f"  dates read as {plan.datestyle}")
        return "\n".join(lines)

    async def _write(
        self,
        source: Source,
        plan: FilePlan,
        job: FileJob,
        options: LoadOptions,
        lease: Lease,
        workers: int,
    ) -> None:
        """COPY the file's batches: the first worker on the file's own connection ``lease``,
        the others on connections of their own. A batch cut by a transient error is retried
        (on a new connection when its own is gone), never applied twice: the manifest records
        each batch in its own transaction, and is asked before a retry."""
        if options.txn == "file":
            workers = 1
        keyed = plan.target is not None
        # Keyed loads: one queue per worker (its keys only); else one shared queue. Two batches
        # per routed queue keep every worker fed while the producer serves the others.
        queues: list[asyncio.Queue[tuple[int, Payload | Callable[[], Payload]] | None]] = [
            asyncio.Queue(maxsize=2 if keyed else 1) for _ in range(workers if keyed else 1)
        ]
        path = source.info.path
        schema, table = plan.table.schema, plan.table.name
        file_id = job.file_id
        if file_id is None:
            raise PgIngestError(f"{source.info.path}: writing before the file was claimed")
        replace_pending = [job.replaces]
        whole_file = options.txn == "file"
        qualified = plan.table.qualified
        fmt = source.info.format

        inline = source.info.size <= SMALL_FILE_BYTES
        recovery = Recovery(
            schema,
            table,
            plan,
            options,
            file_id,
            self._run_id,
            plan.fixed,
            source=source,
            pool=self._pool,
            server_skips=options.on_error == "skip" and self._server_version >= SKIP_VERSION,
            active=plan.target is None,
        )
        if options.on_error == "skip" and job.done_batches:
            recovery.committed_rejects = await store.count_rejects(lease.conn, file_id)

        async def produce() -> None:
            iterator: Iterator[Any]
            if plan.target is not None:
                target = plan.target
                # Each worker's share of a chunk is about one Arrow batch.
                routes = plan.routes
                iterator = (
                    # A route always goes to the same worker, so its batches stay in order.
                    (index, route % workers, make)
                    for index, route, make in routed_batches(
                        source,
                        plan.columns,
                        plan.target_types,
                        target.key,
                        routes,
                        batch_rows=options.batch_size * routes,
                        batch_bytes=min(options.batch_bytes, ARROW_BATCH_BYTES) * routes,
                        done=job.done_batches,
                    )
                )
            else:
                iterator = (
                    (index, 0, make)
                    for index, make in _payloads(source, plan, options, job.done_batches, job.parse)
                )
            sentinel = object()
            while True:
                began = time.perf_counter()
                if inline:  # reading a small file takes less than a thread hop
                    item = next(iterator, sentinel)
                else:
                    item = await asyncio.to_thread(next, iterator, sentinel)
                self._stage("read", began)
                if item is sentinel:
                    break
                index, worker, make = cast("tuple[int, int, Payload | Callable[[], Payload]]", item)
                if isinstance(make, Payload):  # after bad rows: check it while others load
                    make = await recovery.prepare(index, make)
                await queues[worker].put((index, make))
            for worker in range(workers):
                await queues[worker if keyed else 0].put(None)

        async def apply(conn: Any, index: int, payload: Payload) -> int:
            replaced = replace_pending[0]
            replace_pending[0] = None
            try:
                if replaced is not None:
                    await store.remove_replaced(conn, replaced, file_id)
                if plan.target is not None:
                    rows = await apply_staged(
                        conn, plan.target, payload, path, plan.seen, whole_file
                    )
                    rejects = payload.rejects
                elif payload.kind == "arrow":
                    encoder = cast("copy.BinaryEncoder", payload.encoder)
                    rows = await copy.copy_arrow(
                        conn, schema, table, plan.columns, payload.batch, encoder
                    )
                    rejects = payload.rejects
                else:
                    rows, rejects = await recovery.copy(conn, index, payload)
                if rejects:
                    await store.record_rejects(conn, file_id, rejects)
                await store.record_batch(conn, file_id, index, payload.first_line, rows)
            except BaseException as exc:
                if replaced is not None:  # rolled back: the next batch removes them
                    replace_pending[0] = replaced
                if isinstance(exc, Exception) and is_driver_error(exc) and not is_transient(exc):
                    raise translate(exc, path=path, first_line=payload.first_line) from exc
                raise
            return int(rows)

        async def encoded(item: Payload | Callable[[], Payload]) -> Payload:
            if isinstance(item, Payload):
                return item
            # Encode in a thread, before the transaction opens: transactions stay short.
            began = time.perf_counter()
            payload = await asyncio.to_thread(item)
            self._stage("encode", began)
            return payload

        async def next_item(worker: int) -> tuple[int, Payload | Callable[[], Payload]] | None:
            began = time.perf_counter()
            item = await queues[worker].get()
            self._stage("wait", began)
            return item

        def done(index: int, payload: Payload, rows: int, began: float) -> None:
            latency = self._stage("write", began)
            self.reporter.batch_done(
                BatchDone(
                    path, qualified, fmt, index, rows, payload.nbytes, latency, payload.first_line
                )
            )

        async def attempt_batch(lease: Lease, index: int, payload: Payload) -> None:
            attempt = 0
            fresh_connection = False
            payload = await recovery.prepare(index, payload)
            while True:
                began = time.perf_counter()
                try:
                    if attempt:
                        if fresh_connection or lease.conn is None or lease.conn.is_closed():
                            await lease.renew()
                        committed = await store.committed_batch_rows(lease.conn, file_id, index)
                        if committed is not None:  # it did commit: the reply was lost
                            done(index, payload, committed, began)
                            return
                    if payload.error is not None:
                        raise payload.error
                    async with lease.conn.transaction():
                        rows = await apply(lease.conn, index, payload)
                except Exception as exc:
                    self._db_error(exc, path)
                    if not is_transient(exc) or attempt >= self._policy.max_retries:
                        error = exc
                        if is_driver_error(exc):
                            error = translate(exc, path=path, first_line=payload.first_line)
                        if isinstance(error, RowError) and not isinstance(
                            error, TooManyErrorsError
                        ):
                            # A data error: widen the table, or set the bad rows aside.
                            if lease.conn is None or lease.conn.is_closed():
                                await lease.renew()
                            fixed = await recovery.recover(lease.conn, index, payload, error)
                            if fixed is not None:
                                payload = fixed
                                continue
                        if error is exc:
                            raise
                        raise error from exc
                    attempt += 1
                    # A server-side conflict (deadlock, serialization) leaves the connection
                    # usable; anything else may leave it open but in an unknown state.
                    fresh_connection = classify(exc) not in SAME_CONNECTION_CLASSES
                    delay = self._policy.delay(attempt)
                    self._retrying(exc, attempt, delay, path, qualified, index)
                    await asyncio.sleep(delay)
                    continue
                done(index, payload, rows, began)
                return

        async def consume(lease: Lease | None = None, worker: int = 0) -> None:
            if lease is None:
                # The file id stamped on every row (column default) lives in a session
                # setting, set once per connection and file (the claim set it on the file's
                # own connection).
                own = Lease(self._pool, None, file_id=file_id)
                try:
                    await self._with_retries(own.renew, path)
                    await consume(own, worker)
                finally:
                    await own.release()
                return
            if whole_file:  # one transaction: a fault retries the whole file, not a batch
                finished: list[tuple[int, Payload, int]] = []
                began = time.perf_counter()
                async with lease.conn.transaction():
                    while (item := await next_item(worker)) is not None:
                        payload = await encoded(item[1])
                        rows = await apply(lease.conn, item[0], payload)
                        finished.append((item[0], payload, rows))
                for index, payload, rows in finished:  # committed only now
                    done(index, payload, rows, began)
                return
            while (item := await next_item(worker)) is not None:
                await attempt_batch(lease, item[0], await encoded(item[1]))

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                group.create_task(consume(lease))
                for worker in range(1, workers):
                    group.create_task(consume(None, worker if keyed else 0))
        except BaseExceptionGroup as group_error:
            raise _first_error(group_error) from None
        job.rejects = recovery.rejects
        if job.rejects and options.max_errors is not None:
            rows = await store.file_rows(lease.conn, file_id)
            recovery.check_share(path, rows)


_TRANSIENT_READ_ERRNOS = frozenset(
    {
        errno.EIO,
        errno.EAGAIN,
        errno.ETIMEDOUT,
        errno.ESTALE,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.ECONNRESET,
        errno.EINTR,
    }
)


def is_read_fault(exc: BaseException) -> bool:
    """A file could not be read (the disk or the network share, not its content)."""
    cause = exc.__cause__
    return (
        isinstance(exc, SourceError)
        and not isinstance(exc, RowError)
        and isinstance(cause, OSError)
        and not isinstance(cause, gzip.BadGzipFile)
    )


def is_transient_read_fault(exc: BaseException) -> bool:
    """A read fault that another try may not meet (I/O error, a stale or slow network share):
    the file is tried again like after a database fault, resuming after its committed batches.
    A missing or unreadable file, or corrupt compressed data, fails at once."""
    return is_read_fault(exc) and getattr(exc.__cause__, "errno", None) in _TRANSIENT_READ_ERRNOS


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return SMALL_FILE_BYTES + 1  # let detection report the problem


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored: %s", exc)


def _options_record(options: LoadOptions) -> dict[str, Any]:
    transform = options.transform
    record = asdict(replace(options, transform=None))
    record["types"] = dict(options.types)
    if callable(transform):  # recorded by name, so that a resumed run can import it again
        transform = f"{transform.__module__}:{transform.__qualname__}"
    record["transform"] = transform
    record["folders"] = {k: dict(v) for k, v in options.folders.items()}
    record["sources"] = [dict(v) for v in options.sources]
    return record


_TARGET_OPTIONS: contextvars.ContextVar[LoadOptions | None] = contextvars.ContextVar(
    "pgingest_target_options", default=None
)


def small_enough(info: SourceInfo) -> bool:
    """Whether a file is read in the event loop's thread (a thread hop costs more)."""
    return info.size <= SMALL_FILE_BYTES


def _first_error(error: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def load_async(
    paths: Sequence[str],
    settings: ConnectionSettings,
    options: LoadOptions,
    reporter: Reporter | None = None,
    read_ahead: ReadAhead | None = None,
) -> LoadReport:
    """Load ``paths`` with ``options``; see :func:`pgingest.load`. ``read_ahead`` holds the
    targets planned (and the first workbook opening) before the loader was imported."""
    loader = Loader(settings, options, reporter, read_ahead)
    try:
        return await loader.run(paths)
    finally:
        if read_ahead is not None:
            read_ahead.close()

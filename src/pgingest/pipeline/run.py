"""Run a load: files in parallel, batches of a file in parallel, one transaction per batch."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, TypeVar

from pgingest.config import ConnectionSettings, LoadOptions, crash_point, redact_dsn
from pgingest.errors import (
    ConfigError,
    LeaseLostError,
    PgIngestError,
    RecordFormatError,
    TableChangedError,
)
from pgingest.manifest import replacement, store
from pgingest.manifest.hashing import BackgroundHash, fingerprint
from pgingest.model import (
    WORKBOOK_FORMATS,
    ColumnSpec,
    FileResult,
    LoadReport,
    SourceInfo,
)
from pgingest.observability.progress import (
    DbError,
    FileStarted,
    NullReporter,
    Reporter,
    Retry,
)
from pgingest.pg import connect, merge
from pgingest.pg.errors import is_driver_error, is_gone, translate
from pgingest.pg.retry import RetryPolicy, classify, is_transient
from pgingest.pipeline.batches import SMALL_FILE_BYTES, FilePlan, csv_options
from pgingest.pipeline.columns import (
    read_contract,
)
from pgingest.pipeline.job import (
    FileJob,
    Lease,
    RunLock,
    claim_after_holder,
    is_read_fault,
    is_transient_read_fault,
    one_line,
    quietly,
)
from pgingest.pipeline.memory import limit_resident_memory
from pgingest.pipeline.modes import Modes, fit_pool
from pgingest.pipeline.plan import (
    Target,
    default_table_name,
    expand_sheets,
    options_for,
    plan_targets,
)
from pgingest.pipeline.readahead import ReadAhead, excel_options
from pgingest.pipeline.table import describe_plan, plan_table
from pgingest.pipeline.write import write_file
from pgingest.schema.contract import Contract
from pgingest.sources import Source, detect, open_source
from pgingest.sources.adapt import AdaptedSource, resolve_transform

log = logging.getLogger("pgingest.run")
T = TypeVar("T")
AGAIN = "again: "
"""How a claim's reason starts when a file loaded before loads again (its rows were gone)."""


FAILURE_RECORD_ATTEMPTS = 3
"""Connections tried to mark a file failed before leaving it to the next run."""
TABLE_CHANGED_ATTEMPTS = 3
"""Loads of a file started again because its table changed under it, before it fails."""


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
        self.pool: Any = None
        """The run's connection pool (an ``asyncpg.Pool``), open while :meth:`run` lasts."""
        self.run_id: int | None = None
        """The manifest's id of this run (``None`` before it starts and for a dry run)."""
        self._stages: dict[str, float] = {}
        self._retries = 0
        self.policy = RetryPolicy(options.max_retries, options.retry_base, options.retry_max)
        """How transient database errors are retried."""
        self.tables: dict[tuple[str, str], list[ColumnSpec]] = {}
        """The target tables' columns as last read or made, by (schema, name)."""
        self.not_header_only: set[tuple[str, str]] = set()
        """Tables of text columns known not to be made by a header-only file (no retype)."""
        self.modes = Modes(options, self.reporter.message)
        self._workers_cap: int | None = None
        """Batch workers per file when the server allows fewer connections than asked."""
        self.server_version = 0
        """The server's ``server_version_num`` (read when the run starts)."""
        self.contract: Contract | None = None
        """The run's contract (``--contract``), if any."""
        self.run_lock: RunLock | None = None
        """The run's own connection, holding the run's lock while it lives."""
        if options.contract:
            self.contract = read_contract(options.contract)

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

    def retrying(
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
        error = one_line(redact_dsn(str(exc))) or type(exc).__name__
        error_class = classify(exc)
        log.info(
            "retry %d/%d in %.1f s of %s%s after %s: %s",
            attempt,
            self.policy.max_retries,
            delay,
            path or "connecting",
            f" batch {batch}" if batch is not None else "",
            error_class,
            error,
            extra={"file": path or None, "table": table or None, "batch": batch},
        )
        self.reporter.retry(Retry(path, table, batch, attempt, delay, error_class, error))

    def db_error(self, exc: BaseException, path: str | None) -> None:
        """Report a database error once, where it is first caught."""
        cause = exc.__cause__ if isinstance(exc, PgIngestError) and exc.__cause__ else exc
        if getattr(cause, "_pgingest_reported", False) or not is_driver_error(cause):
            return
        # An exception type without a __dict__ cannot be marked: it may count twice.
        with contextlib.suppress(AttributeError):
            cause._pgingest_reported = True  # type: ignore[attr-defined]
        self.reporter.db_error(DbError(classify(cause), path))

    async def with_retries(self, step: Callable[[], Awaitable[T]], path: str = "") -> T:
        """Run ``step``, again after a transient database error (a fresh connection each time:
        ``step`` acquires its own)."""
        attempt = 0
        while True:
            try:
                return await step()
            except Exception as exc:
                self.db_error(exc, path or None)
                if not is_transient(exc) or attempt >= self.policy.max_retries:
                    raise
                attempt += 1
                delay = self.policy.delay(attempt)
                self.retrying(exc, attempt, delay, path, "", None)
                await asyncio.sleep(delay)

    def stage(self, name: str, began: float) -> float:
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
        # Each file holds one connection per batch worker (the first also holds its lock);
        # of the two more, one is the run's own (holding the run's lock while it lives), one
        # is free for what a file needs besides its workers (DDL, recording a failure).
        # replace holds one more, with its tables' locks, for the whole run.
        files_at_once = min(self.options.concurrency, len(files))
        size = files_at_once * self.workers_per_file + 2 + (self.options.mode == "replace")
        self.pool = await connect.create_pool(
            self.settings,
            size,
            self.policy,
            lambda attempt, delay, exc: self.retrying(exc, attempt, delay, "", "", None),
        )
        files_at_once = await self._fit_pool(size, files_at_once)
        try:
            if not self.options.dry_run:

                async def start() -> int:
                    # The run's own connection: it holds the run's lock while the run lives.
                    conn = await self.pool.acquire()
                    try:
                        self.server_version = await connect.server_version(conn)
                        began = time.perf_counter()
                        await store.ensure_manifest(conn)
                        run_id: int = await store.start_run(
                            conn,
                            [os.path.abspath(p) for p in paths],  # noqa: ASYNC240 - no I/O
                            _options_record(self.options),
                            socket.gethostname(),
                            os.getpid(),
                        )
                        self.stage("manifest", began)
                    except BaseException:
                        await quietly(self.pool.release(conn))
                        raise
                    self.run_lock = RunLock(self.pool, conn, run_id)
                    return run_id

                self.run_id = await self.with_retries(start)
                crash_point("run-started")
                self.reporter.run_started(self.run_id)
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

                def table_of(index: int) -> str:
                    own = options_for(self._options, targets[index].overrides)
                    return own.table or default_table_name(files[index])

                refused = await self.modes.prepare(
                    files, open_target, self.pool, self.run_id, table_of
                )
            except BaseException:
                if self.run_id is not None:  # e.g. merge on a server without MERGE
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
                    blocked = self.modes.blocked(index)
                    if blocked is not None:
                        results[index] = blocked
                        self.reporter.file_done(blocked)
                        return
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
                if self.modes.replace.tables:
                    await asyncio.shield(self.modes.finish_run(report, self.run_id, status))
                if status == "success" and report.failed:
                    status = "failed"
                if self.run_id is not None:
                    await asyncio.shield(self._finish_run(status, report))
        finally:
            await asyncio.shield(self.modes.close())
            if self.run_lock is not None:
                await self.run_lock.release()
            await self.pool.close()
            report.seconds = time.perf_counter() - started
            report.run_id = self.run_id
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
                info = detect(target.path, options.format, csv_options(options))
                out.extend(expand_sheets(target, options, info.format in WORKBOOK_FORMATS))
            except PgIngestError as exc:
                result = FileResult(target.path, "", "failed", error=one_line(str(exc)))
                report.files.append(result)
                self.reporter.file_done(result)
        return out, missing

    async def _fit_pool(self, size: int, files_at_once: int) -> int:
        """Cap the pool at what the server allows (``max_connections`` and the role's and the
        database's connection limits, minus what is in use), warning when it caps; fewer batch
        workers per file first, then fewer files at once. Returns the files at once."""
        async with self.pool.acquire() as conn:
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
        await self.pool.close()
        self.pool = await connect.create_pool(self.settings, new_size, self.policy)
        return files_at_once

    async def _keyed_plan(self, plan: FilePlan, conn: Any, job: FileJob, routes: int) -> None:
        """upsert/merge: the file's staging target and routing (the key was checked before
        the run started); merge --delete-missing: its key table."""
        table = plan.table
        existing = self.tables.get((table.schema, table.name)) or []
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
        if self.run_id is None:
            return
        counts = {
            "loaded": sum(1 for f in report.files if f.status == "loaded"),
            "skipped": sum(1 for f in report.files if f.status == "skipped"),
            "failed": len(report.failed),
            "rows": report.rows,
        }
        run_id = self.run_id

        async def finish() -> None:
            async with self.pool.acquire() as conn:
                began = time.perf_counter()
                await store.finish_run(conn, run_id, status, counts)
                self.stage("manifest", began)

        try:
            await self.with_retries(finish)
        except Exception as exc:  # the server may be gone: the run row stays 'running'
            log.warning("could not record the end of run %s: %s", self.run_id, exc)

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
                plan = await plan_table(self, source, self.modes.load_table(table_name))
                described = [
                    describe_plan(plan, self.options.lineage),
                    *self.modes.describe(path, qualified),
                ]
                report.plans.append("\n".join(described))
                result = FileResult(
                    path, plan.table.qualified, "skipped", format=source.info.format
                )
                result.message = "dry run"
                result.warnings = [*plan.warnings, *reader_warnings(source)]
            else:
                result = await self._load_with_retries(path, table_name, started)
        except LeaseLostError as exc:
            result = FileResult(path, qualified, "skipped", message=one_line(str(exc)))
        except PgIngestError as exc:
            result = FileResult(path, qualified, "failed", error=one_line(str(exc)))
        except Exception as exc:
            if is_driver_error(exc):
                error = translate(exc, path=path)
                result = FileResult(path, qualified, "failed", error=one_line(str(error)))
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
        changed = 0
        parse = False
        while True:
            try:
                return await self._load_claimed(
                    path, table_name, FileJob(path, parse=parse), started
                )
            except TableChangedError as exc:
                # Its table was truncated or recreated under it: claimed again, it starts over.
                changed += 1
                if changed >= TABLE_CHANGED_ATTEMPTS:
                    raise
                log.warning("%s", exc)
                self.reporter.message(f"warning: {exc}")
            except RecordFormatError as exc:
                if parse:
                    raise
                # The server's CSV parser refused the records (a quote inside a field, a
                # blank line, a ragged row): nothing of the file was kept; parse it ourselves.
                log.info("%s: %s; loading it again, parsed client-side", path, exc)
                parse = True
            except Exception as exc:
                self.db_error(exc, path)
                transient = is_transient(exc) or is_transient_read_fault(exc)
                if not transient or attempt >= self.policy.max_retries:
                    raise
                attempt += 1
                delay = self.policy.delay(attempt)
                table = f"{self.options.schema}.{table_name}"
                self.retrying(exc, attempt, delay, path, table, None)
                await asyncio.sleep(delay)

    async def _open(self, path: str) -> Source:
        csv = csv_options(self.options)
        if _size(path) <= SMALL_FILE_BYTES:
            info = detect(path, self.options.format, csv)
        else:
            info = await asyncio.to_thread(detect, path, self.options.format, csv)
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
            source = await asyncio.to_thread(open_source, info, csv, excel)
        else:
            source = open_source(info, csv, excel)
        self.stage("read", began)
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
        # replace loads everything again into the run's new table, under whose name the
        # manifest records the files until the swap; the old table is left alone until then
        # (no version's rows are removed from it meanwhile).
        replacing = self.options.mode == "replace"
        load_table = self.modes.load_table(table_name)
        force = self.options.force or replacing
        # A new version of a file is upserted over the table as it is: deleting the old
        # version's rows first (append's --on-changed replace) would delete rows later files
        # updated, and re-insert the rest.
        keep_old_rows = replacing or self.modes.keyed or not self.options.lineage
        # A large file's hash is computed in the background: started before the loader was
        # (the read-ahead's, for the run's first file) or from its claim on, and waited for
        # only where the manifest needs it. Hashing a small file costs less than a second
        # claim would.
        hashing = self._read_ahead.take_hash(path, stat) if self._read_ahead else None
        sha256: str | None = None
        if hashing is not None:
            sha256 = hashing.ready()
        elif small:
            sha256 = fingerprint(path).sha256
        lease = Lease(self.pool, await self.pool.acquire(), holds_lock=True)
        try:
            conn = lease.conn

            async def claim_it(sha: str | None) -> store.Claim:
                began = time.perf_counter()
                claim = await store.claim_file(
                    conn,
                    path=abspath,
                    size=stat.st_size,
                    mtime_ns=stat.st_mtime_ns,
                    sha256=sha,
                    schema=schema,
                    table=load_table,
                    fmt=None,
                    run_id=self.run_id or 0,
                    chunking=chunking,
                    force=force,
                    on_changed="append" if keep_old_rows else self.options.on_changed,
                    lineage=self.options.lineage,
                )
                self.stage("manifest", began)
                return claim

            if self.run_lock is not None:
                await self.run_lock.keep(self.with_retries)

            async def claimed() -> store.Claim:
                nonlocal hashing, sha256
                claim = await claim_it(sha256)
                if claim.action == "hash":
                    # The table holds a loaded file of the same size: it may be this content.
                    hashing = hashing or BackgroundHash(path)
                    began = time.perf_counter()
                    sha256 = await hashing.sha256()
                    self.stage("manifest", began)
                    again = claim.reason  # the first claim found its rows gone: say so
                    claim = await claim_it(sha256)
                    if again and claim.action == "load" and claim.reason == "new":
                        claim.reason = again
                return claim

            claim = await claimed()
            if claim.held_elsewhere and self.modes.is_awaited(path):
                # Later files share keys with this one: they come after it, whichever process
                # loads it.
                began = time.perf_counter()
                after = await claim_after_holder(claimed, claim, conn, self.options.lock_wait)
                self.stage("wait", began)
                if after is None:
                    return self.modes.left_to_another(path, qualified)
                claim = after
            if claim.action == "skip":
                result = FileResult(path, qualified, "skipped")
                result.message = claim.reason
                if replacing and (
                    claim.reason == store.IN_REPLACEMENT
                    or claim.reason.startswith(store.SAME_CONTENT)
                ):
                    # Loaded before a crash, or its content is (being) loaded from another
                    # file of the run: the new table holds each content once, as an append
                    # of the run's files into an empty table would (a failure of that file
                    # fails the replace).
                    self.modes.replace.ready(qualified, path)
                return result
            if claim.file_id is None:
                raise PgIngestError(f"{path}: the manifest returned no file id")
            crash_point("claimed")
            job.file_id = claim.file_id
            lease.file_id = claim.file_id
            if sha256 is None and hashing is None:
                hashing = BackgroundHash(path)  # while the file is opened, planned, written
            job.done_batches = frozenset(claim.done_batches)
            job.done_rows = claim.done_rows
            job.replaces = claim.replaces
            job.sha256 = sha256
            job.hashing = hashing
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
                plan = await plan_table(self, source, self.modes.load_table(table_name), job, conn)
                routes = int(claim.chunking.get("routes", chunking.get("routes", 1)))
                await self._keyed_plan(plan, conn, job, routes)
                self.reporter.file_started(
                    FileStarted(path, qualified, source.info.format, stat.st_size)
                )
                workers = 1 if small else self.modes.workers(path, self.workers_per_file)
                if plan.target is not None:
                    # The routes are fixed for the file's life (a resumed file keeps its batch
                    # numbers); the workers serving them are what the pool allows now.
                    workers = max(1, min(plan.routes, workers if not small else plan.routes))
                await write_file(self, source, plan, job, options, lease, workers)
                if plan.target is not None and plan.seen is not None:
                    await merge.delete_missing(lease.conn, plan.target, job.file_id)
                crash_point("before-complete")
                began = time.perf_counter()
                if sha256 is None:  # (the hash was started above when there was none yet)
                    sha256 = await (hashing or BackgroundHash(path)).sha256()
                if replacing:  # loaded only by the swap, which marks it so
                    rows = await replacement.stage_file(
                        lease.conn, job.file_id, sha256, source.info.format
                    )
                    done = store.Completion(rows)
                    self.modes.replace.ready(qualified, path)
                else:
                    done = await store.complete_file(
                        lease.conn,
                        job.file_id,
                        sha256,
                        fmt=source.info.format,
                        force=force,
                        lineage=self.options.lineage,
                    )
                self.stage("manifest", began)
                if done.again is not None:  # its table changed under it: nothing of it stays
                    raise TableChangedError(f"{path}: {done.again}")
                crash_point("completed")
            except LeaseLostError:
                raise  # another process loads the file now: its manifest row is not ours
            except BaseException as exc:
                # Bad data leaves nothing of the file; a fault (the database's, or the disk's
                # while reading) keeps its committed batches for the retry or re-run.
                discard = (
                    isinstance(exc, PgIngestError) and not exc.retryable and not is_read_fault(exc)
                )
                message = one_line(str(exc)) or type(exc).__name__
                if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
                    message = "interrupted"
                await asyncio.shield(self._record_failure(lease.conn, job, message, discard))
                if lease.conn is not None:
                    await quietly(store.release_file(lease.conn, job.file_id))
                raise
            finally:
                if source is not None:
                    source.close()
        finally:
            await lease.release()
            if hashing is not None:
                hashing.abandon()  # skipped or failed: nobody waits for it (done: no effect)
        fmt = source.info.format
        if done.duplicate_of is not None:
            result = FileResult(path, qualified, "skipped", format=fmt)
            result.message = f"same content loaded meanwhile from {done.duplicate_path}"
            return result
        result = FileResult(
            path,
            qualified,
            "loaded",
            rows=done.rows,
            format=fmt,
            seconds=time.perf_counter() - started,
            rejects=job.rejects,
            schema_changes=plan.changes,
            warnings=[*plan.warnings, *reader_warnings(source)],
        )
        if claim.reason == "resume":
            result.message = f"resumed after {len(job.done_batches)} committed batch(es)"
        elif claim.reason.startswith(AGAIN):
            result.message = "reloaded: " + claim.reason.removeprefix(AGAIN)
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
                async with self.pool.acquire(timeout=30) as fresh:
                    await store.fail_file(fresh, job.file_id, error, discard=discard)
                break
            except Exception as exc:  # the server may be gone: the next run resumes the file
                if attempt == FAILURE_RECORD_ATTEMPTS:
                    log.warning("could not record the failure of %s: %s", job.path, exc)
                else:
                    await asyncio.sleep(0.2 * attempt)
        if conn is not None and not is_gone(conn) and conn.is_in_transaction():
            await quietly(conn.execute("ROLLBACK"))


def reader_warnings(source: Source) -> list[str]:
    """What the file's reader decided that the user should know (CSV: the encoding)."""
    return list(getattr(source, "warnings", ()))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return SMALL_FILE_BYTES + 1  # let detection report the problem


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

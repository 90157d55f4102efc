"""The life of one file's task, stage by stage: claimed (prepare), opened, its table fitted
(evolve), its keyed plan made (keyed), written (write), recorded complete or failed; the dry
run's account instead; and the retries of a file as a whole."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any, TypeVar

from pgingest.config import crash_point
from pgingest.errors import (
    LeaseLostError,
    PgIngestError,
    RecordFormatError,
    TableChangedError,
    WidenedError,
)
from pgingest.manifest import store
from pgingest.manifest.hashing import BackgroundHash
from pgingest.manifest.record import FileRecord
from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import FileStarted
from pgingest.pg import connect, merge
from pgingest.pg.errors import is_driver_error, is_gone, is_retryable, translate
from pgingest.pg.retry import RetryPolicy, retry
from pgingest.pipeline.context import FileTask, RunContext, workers_per_file
from pgingest.pipeline.discover import SMALL_FILE_BYTES
from pgingest.pipeline.evolve.table import describe_plan, fit_table
from pgingest.pipeline.job import (
    FileJob,
    Lease,
    is_read_fault,
    is_transient_read_fault,
    naming,
    one_line,
    quietly,
)
from pgingest.pipeline.keyed import route
from pgingest.pipeline.keyed.modes import Modes
from pgingest.pipeline.prepare.claim import AGAIN, claim_file, claimed_options
from pgingest.pipeline.prepare.plan import LivePlan
from pgingest.pipeline.prepare.source import open_file, reader_warnings
from pgingest.pipeline.restart import CLIENT_PARSE, TABLE_CHANGED, WIDENED, Restart, restarting
from pgingest.pipeline.write.file import write_file
from pgingest.sources import Source
from pgingest.sources.inputs import is_remote, release, stat_input, streamed_sha256

log = logging.getLogger("pgingest.run")

T = TypeVar("T")

FAILURE_RECORD_POLICY = RetryPolicy(max_retries=2, base=0.2, max_delay=0.4)
"""Connections tried to mark a file failed (any error: the one a fault cut may come first)
before leaving it to the next run, and the short waits between."""


async def run_task(ctx: RunContext, modes: Modes, task: FileTask, report: LoadReport) -> FileResult:
    """Load (or, in a dry run, plan) one file; its result, reported. Failures are in the
    result, not raised (but for an interruption)."""
    started = time.perf_counter()
    path, qualified = task.path, task.qualified
    result: FileResult
    try:
        if task.options.dry_run:
            result = await _bounded(path, None, _plan_only(ctx, modes, task, report))
        else:
            result = await _load_with_restarts(ctx, modes, task, started)
    except LeaseLostError as exc:
        result = FileResult(path, qualified, "skipped", message=one_line(str(exc)))
    except PgIngestError as exc:
        result = FileResult(path, qualified, "failed", error=naming(path, str(exc)))
    except Exception as exc:
        log.exception("unexpected error loading %s", path)
        result = FileResult(path, qualified, "failed", error=f"{path}: {type(exc).__name__}: {exc}")
    result.seconds = time.perf_counter() - started
    ctx.reporter.file_done(result)
    return result


async def _bounded(path: str, lease: Lease | None, step: Awaitable[T]) -> T:
    """The task's error boundary: what the driver raised while a file was claimed, planned,
    written or recorded becomes a pgingest error here (what a batch raised, the batch
    writer's own boundary has translated already), the file's connection ``lease`` asked
    whether it is closed before it goes back to the pool. Above it, retries, restarts and
    the result see only pgingest errors."""
    try:
        return await step
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        raise translate(exc, path=path, conn=lease.conn if lease else None) from exc


async def _plan_only(
    ctx: RunContext, modes: Modes, task: FileTask, report: LoadReport
) -> FileResult:
    """The dry run of a file: its plan, described in the report; nothing written."""
    path, options = task.path, task.options
    source = await open_file(ctx, path, options)
    try:
        table = modes.load_table(task.table_name)
        extras = modes.create_extras(table)
        plan = await fit_table(ctx, source, table, options, extras=extras)
        described = [describe_plan(plan, options.lineage), *modes.describe(path, task.qualified)]
        report.plans.append("\n".join(described))
        result = FileResult(path, plan.table.qualified, "skipped", format=source.info.format)
        result.message = "dry run"
        result.warnings = [*plan.warnings, *reader_warnings(source)]
        return result
    finally:
        source.close()


async def _load_with_restarts(
    ctx: RunContext, modes: Modes, task: FileTask, started: float
) -> FileResult:
    """Load one file (retried after transient errors); when it learns that it must start
    over (its table changed, or its records need parsing client-side), again from the start
    the :class:`~pgingest.pipeline.restart.Restart` says."""

    widened: list[str] = []  # what the restarts for a wider table changed in it

    async def decide(exc: Exception, parse: bool) -> Restart[bool] | None:
        restart = _restart_for(exc, parse, task.path)
        if restart is not None and isinstance(exc, WidenedError):
            widened.extend(c for c in exc.changes if c not in widened)
        return restart

    def say(restart: Restart[bool]) -> None:
        if restart.reason is TABLE_CHANGED:  # rows the user saw may be gone: a warning
            log.warning("%s", restart.note)
            ctx.reporter.message(f"warning: {restart.note}")
        elif restart.reason is WIDENED:  # the file's own change: said, as a plan's would be
            log.info("%s", restart.note)
            ctx.reporter.message(restart.note or "")
        else:
            log.info("%s", restart.note)

    result = await restarting(
        lambda parse: _load_retried(ctx, modes, task, started, parse),
        False,
        decide,
        on_restart=say,
    )
    if widened:  # the last plan, for the table as widened, has none of them
        result.schema_changes = [*widened, *(c for c in result.schema_changes if c not in widened)]
    return result


def _restart_for(exc: BaseException, parse: bool, path: str) -> Restart[bool] | None:
    """Whether ``exc`` starts the file over, and from which start (whether it parses its
    records client-side): ``None`` for an error that stands or is retried."""
    if isinstance(exc, WidenedError):
        # upsert/merge widened the table for its own value: planned for the wider table.
        return Restart(WIDENED, parse, note=str(exc))
    if isinstance(exc, TableChangedError):
        # Its table was truncated or recreated under it: claimed again, it starts over.
        return Restart(TABLE_CHANGED, parse, note=str(exc))
    if isinstance(exc, RecordFormatError):
        # The server's CSV parser refused the records (a quote inside a field, a blank
        # line, a ragged row): nothing of the file was kept; it parses them itself.
        note = f"{path}: {exc}; loading it again, parsed client-side"
        return Restart(CLIENT_PARSE, True, note=note)
    return None


async def _load_retried(
    ctx: RunContext, modes: Modes, task: FileTask, started: float, parse: bool
) -> FileResult:
    """Load one file, claimed again after a retryable error (the manifest resumes it after
    its committed batches)."""
    events, path = ctx.events, task.path
    return await retry(
        lambda: _load_claimed(ctx, modes, task, FileJob(path, parse=parse), started),
        events.policy,
        on_error=lambda exc: events.db_error(exc, path),
        # An error that starts the file over is not the connection's fault: the caller
        # restarts it.
        retryable=lambda exc: (
            _restart_for(exc, parse, path) is None
            and (is_retryable(exc) or is_transient_read_fault(exc))
        ),
        on_retry=lambda attempt, delay, exc: events.retrying(
            exc, attempt, delay, path, task.qualified, None
        ),
    )


async def _load_claimed(
    ctx: RunContext, modes: Modes, task: FileTask, job: FileJob, started: float
) -> FileResult:
    """One try at a file, inside the task's error boundary, on the file's own connection
    (given back after the boundary has asked it)."""
    lease = Lease(ctx.pool, None, holds_lock=True, owner=ctx.application_name)
    try:
        return await _bounded(task.path, lease, _load_leased(ctx, modes, task, job, started, lease))
    finally:
        await lease.release()


async def _load_leased(
    ctx: RunContext, modes: Modes, task: FileTask, job: FileJob, started: float, lease: Lease
) -> FileResult:
    """Claim in the manifest, read, load, record: the life of one file.

    The file's connection (``lease``) holds its manifest lock and also writes its first
    batch stream, so a small file costs one connection and a handful of round trips.
    """
    path, options, qualified = task.path, task.options, task.qualified
    stat = stat_input(path)  # a remote object: its size and ETag (sources.remote)
    remote = is_remote(path)
    small = stat.st_size <= SMALL_FILE_BYTES
    per_file = workers_per_file(options, ctx.workers_cap)
    chunking: dict[str, int] = {
        "batch_size": options.batch_size,
        "batch_bytes": options.batch_bytes,
    }
    if modes.keyed:  # a resumed file must route its rows to the same workers
        chunking["routes"] = 1 if small else modes.workers(path, per_file)
        if route.RAW_ROUTES:  # ... from chunks cut the same way (see FileJob)
            chunking["raw_routes"] = 1
    # replace loads everything again into the run's new table, under whose name the
    # manifest records the files until the swap; the old table is left alone until then
    # (no version's rows are removed from it meanwhile).
    replacing = options.mode == "replace"
    load_table = modes.load_table(task.table_name)
    force = options.force or replacing
    await lease.take()
    hashing: BackgroundHash | None = None
    try:
        # A new version of a file is upserted over the table as it is: deleting the old
        # version's rows first (append's --on-changed replace) would delete rows later
        # files updated, and re-insert the rest.
        claimed = await claim_file(
            ctx,
            task,
            lease.conn,
            stat,
            table=load_table,
            chunking=chunking,
            force=force,
            keep_old_rows=replacing or modes.keyed or not options.lineage,
            # upsert/merge --force: a file another process holds is waited for as well, then
            # loaded again after it: this run's earlier files, loaded again meanwhile, may
            # share keys with it, and its values must come after theirs (found by the model:
            # two forced upserts at once, the earlier file's older value of a key won).
            awaited=modes.is_awaited(path) or (modes.keyed and force),
        )
        claim, sha256, hashing = claimed.claim, claimed.sha256, claimed.hashing
        if claim is None:
            return modes.left_to_another(path, qualified)
        if claim.action == "skip":
            result = FileResult(path, qualified, "skipped")
            result.message = claim.reason
            if replacing and (
                claim.reason == store.IN_REPLACEMENT or claim.reason.startswith(store.SAME_CONTENT)
            ):
                # Loaded before a crash, or its content is (being) loaded from another file of
                # the run: the new table holds each content once, as an append of the run's
                # files into an empty table would (a failure of that file fails the replace).
                modes.replace.ready(qualified, path)
            return result
        if claim.file_id is None:
            raise PgIngestError(f"{path}: the manifest returned no file id")
        crash_point("claimed")
        job.file_id = lease.file_id = claim.file_id
        record = FileRecord(claim.file_id)
        if sha256 is None and hashing is None and not remote:
            # (A remote object is hashed by the stream that loads it: streamed_sha256.)
            hashing = BackgroundHash(path)  # while the file is opened, planned, written
        job.done_batches = frozenset(claim.done_batches)
        job.raw_routes = bool(claim.chunking.get("raw_routes"))
        job.done_rows = claim.done_rows
        job.replaces = claim.replaces
        job.sha256 = sha256
        job.hashing = hashing
        options = claimed_options(options, claim.chunking)
        source: Source | None = None
        try:
            source = await open_file(ctx, path, task.options)
            plan = await fit_table(
                ctx,
                source,
                load_table,
                task.options,
                job,
                lease.conn,
                modes.create_extras(load_table),
            )
            routes = int(claim.chunking.get("routes", chunking.get("routes", 1)))
            existing = ctx.tables.get((plan.table.schema, plan.table.name)) or []
            plan = await modes.keyed_plan(plan, lease.conn, job, routes, [c.name for c in existing])
            ctx.reporter.file_started(
                FileStarted(
                    path,
                    qualified,
                    source.info.format,
                    stat.st_size,
                    getattr(source, "total_rows", None),
                )
            )
            workers = 1 if small else modes.workers(path, per_file)
            if plan.target is not None:
                # The routes are fixed for the file's life (a resumed file keeps its batch
                # numbers); the workers serving them are what the pool allows now.
                workers = max(1, min(plan.routes, workers if not small else plan.routes))
            if options.txn == "file":
                workers = 1
            live = LivePlan(plan)
            batches = route.file_batches(source, live, options, job, workers)
            await write_file(ctx, source, live, job, options, lease, workers, batches)
            plan = live.current  # with what writing learned (wider columns)
            if plan.target is not None and plan.seen is not None:
                await merge.delete_missing(lease.conn, plan.target, job.file_id)
            crash_point("before-complete")
            began = time.perf_counter()
            if sha256 is None and remote:
                # Its stream's hash; unknown (None) when it was read by ranges (Parquet).
                sha256 = streamed_sha256(path)
            elif sha256 is None:  # (the hash was started above when there was none yet)
                sha256 = await (hashing or BackgroundHash(path)).sha256()
            async with ctx.stalls.guard(lease.conn, f"the completion of {path}"):
                if replacing:  # loaded only by the swap, which marks it so
                    done = await record.stage(lease.conn, sha256, source.info.format)
                    modes.replace.ready(qualified, path)
                else:
                    done = await record.complete(
                        lease.conn,
                        sha256,
                        fmt=source.info.format,
                        force=force,
                        lineage=options.lineage,
                    )
            ctx.events.stage("manifest", began)
            if done.again is not None:  # its table changed under it: nothing of it stays
                raise TableChangedError(f"{path}: {done.again}")
            if not replacing:
                # ``complete`` let go of the file's lock and id: nothing of it is left in the
                # session for the pool's reset to undo.
                connect.release_as_new(lease.conn)
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
            await asyncio.shield(_record_failure(ctx, lease.conn, job, message, discard))
            if lease.conn is not None:
                await quietly(record.release(lease.conn))
            raise
        finally:
            if source is not None:
                source.close()
            release(path)  # a remote or archived workbook's temporary copy
    finally:
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
        schema_changes=list(plan.changes),
        warnings=[*plan.warnings, *reader_warnings(source)],
    )
    if claim.reason == "resume":
        result.message = f"resumed after {len(job.done_batches)} committed batch(es)"
    elif claim.reason.startswith(AGAIN):
        result.message = "reloaded: " + claim.reason.removeprefix(AGAIN)
    elif claim.replaces is not None:
        result.message = (
            "reloaded (--force): replaced the rows loaded before"
            if options.force
            else "changed: replaced the rows of its previous version"
        )
    return result


async def _record_failure(
    ctx: RunContext, conn: Any, job: FileJob, error: str, discard: bool
) -> None:
    """Mark the file failed, on a fresh connection: the file's own one may be inside the
    interrupted batch's transaction (a nested transaction there would be a savepoint that
    is rolled back with it) or broken by the fault."""
    if job.file_id is None:
        return
    # A pooled connection may have been cut by the same fault without the driver knowing
    # yet: a few attempts get a live one.
    record = FileRecord(job.file_id)

    async def fail() -> None:
        async with ctx.pool.acquire(timeout=30) as fresh:
            await record.fail(fresh, error, discard=discard)

    try:
        await retry(fail, FAILURE_RECORD_POLICY, retryable=lambda exc: True)
    except Exception as exc:  # the server may be gone: the next run resumes the file
        log.warning("could not record the failure of %s: %s", job.path, exc)
    if conn is not None and not is_gone(conn) and conn.is_in_transaction():
        await quietly(connect.rollback(conn))

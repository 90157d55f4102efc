"""Run a load: discover the targets, open the pool, record the run, let the modes prepare
(keys, schedule, replaced tables), then one task per file, at most ``--concurrency`` at once
and in the order the schedule asks, ANALYZE the tables it changed much, and record the run's
end. Only orchestration: each stage lives in its own module (``docs/architecture.md``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from pgingest.config import ConnectionSettings, LoadOptions, crash_point
from pgingest.manifest import store
from pgingest.model import FileResult, LoadReport
from pgingest.observability.logs import bind_run
from pgingest.observability.progress import NullReporter, Reporter
from pgingest.pg import connect
from pgingest.pg.retry import RetryPolicy
from pgingest.pg.stall import StallMonitor
from pgingest.pipeline.analyze import analyze_tables
from pgingest.pipeline.context import FileTask, JoinedRun, RunContext, RunEvents
from pgingest.pipeline.discover import check_run_wide, options_for, plan_targets, sheet_targets
from pgingest.pipeline.dispatch import run_tasks
from pgingest.pipeline.job import RunLock, quietly
from pgingest.pipeline.keyed.modes import Modes
from pgingest.pipeline.memory import limit_resident_memory
from pgingest.pipeline.pool import open_pool
from pgingest.pipeline.prepare.columns import read_contract
from pgingest.pipeline.prepare.source import files_found, open_file
from pgingest.pipeline.readahead import ReadAhead
from pgingest.sources import Source
from pgingest.sources.inputs import absolute

log = logging.getLogger("pgingest.run")


async def load_async(
    paths: Sequence[str],
    settings: ConnectionSettings,
    options: LoadOptions,
    reporter: Reporter | None = None,
    read_ahead: ReadAhead | None = None,
    joined: JoinedRun | None = None,
) -> LoadReport:
    """Load ``paths`` with ``options``; see :func:`pgingest.load`. ``read_ahead`` holds the
    targets planned (and the first workbook opening) before the loader was imported;
    ``joined``: load as a worker of that run (which another process records, starts and
    ends) instead of recording a run of its own. Returns the report (failures are in it,
    not raised)."""
    try:
        return await _run(paths, settings, options, reporter or NullReporter(), read_ahead, joined)
    finally:
        if read_ahead is not None:
            read_ahead.close()


async def _run(
    paths: Sequence[str],
    settings: ConnectionSettings,
    options: LoadOptions,
    reporter: Reporter,
    read_ahead: ReadAhead | None,
    joined: JoinedRun | None,
) -> LoadReport:
    started = time.perf_counter()
    contract = read_contract(options.contract) if options.contract else None
    limit_resident_memory()
    report = LoadReport(dry_run=options.dry_run)
    tasks = await asyncio.to_thread(_tasks, paths, options, read_ahead, report, reporter)
    if not tasks:
        report.seconds = time.perf_counter() - started
        reporter.run_done(report)
        return report
    events = RunEvents(
        reporter, RetryPolicy(options.max_retries, options.retry_base, options.retry_max)
    )
    application_name = f"pgingest {os.getpid()} {secrets.token_hex(6)}"
    sessions = connect.session_settings(
        application_name, options.stall_timeout, (socket.gethostname(), os.getpid())
    )
    pool, files_at_once, workers_cap = await open_pool(
        settings, options, min(options.concurrency, len(tasks)), events, sessions
    )

    monitor_name = f"{application_name} monitor"[:63]
    monitor = partial(connect.open_connection, settings, application_name=monitor_name)
    stalls = StallMonitor(monitor, options.stall_timeout)
    modes = Modes(options, reporter.message)
    ctx: RunContext | None = None
    run_lock: RunLock | None = None
    try:
        run_id: int | None = None
        server_version = 0
        if joined is not None and not options.dry_run:
            run_id = joined.run_id
            server_version = await events.with_retries(lambda: _server_version(pool))
            bind_run(run_id)
        elif not options.dry_run:
            new_id, server_version, run_lock = await events.with_retries(
                lambda: _start_run(pool, paths, options, events)
            )
            run_id = new_id
            bind_run(new_id)
            crash_point("run-started")
            reporter.run_started(new_id)
        ctx = RunContext(
            options,
            pool,
            run_id,
            server_version,
            workers_cap,
            events,
            contract,
            run_lock,
            read_ahead,
            application_name,
            stalls,
        )
        try:
            check_run_wide([t for t, _ in tasks], options)

            async def open_target(index: int) -> tuple[Source, LoadOptions]:
                """A target's source, opened with its own options (folder overrides)."""
                task = tasks[index][1]
                return await open_file(ctx, task.path, task.options), task.options

            refused = await modes.prepare(
                [t.path for _, t in tasks],
                open_target,
                pool,
                run_id,
                lambda index: tasks[index][1].table_name,
            )
        except BaseException:
            if run_id is not None and joined is None:  # e.g. merge on a server without MERGE
                await asyncio.shield(_finish_run(ctx, "failed", report))
            raise
        for table_name, message in modes.schedule.strategies.items():
            report.strategies[table_name] = message
            if not message.startswith("parallel: one file"):
                reporter.message(f"{table_name}: {message}")
        reporter.files_found(files_found([t.path for _, t in tasks]))
        status = "failed"
        results: list[FileResult | None] = [None] * len(tasks)
        try:
            # A worker of a shared append starts at its own share of the files (the others
            # at theirs), so that workers claim different files instead of racing for each;
            # a keyed mode keeps the given order, as separate processes do.
            first, share = 0, None
            if joined is not None and options.mode == "append":
                first = len(tasks) * joined.index // joined.count
                share = len(tasks) * (joined.index + 1) // joined.count - first
            await run_tasks(
                ctx,
                modes,
                [t for _, t in tasks],
                refused,
                files_at_once,
                results,
                report,
                first,
                share,
            )
            status = "success"
        except BaseException:
            status = "interrupted"
            raise
        finally:
            report.files.extend(r for r in results if r is not None)
            if modes.replace.tables:
                await asyncio.shield(modes.finish_run(report, run_id, status))
            if status == "success" and report.failed:
                status = "failed"
            # (A worker of --workers leaves it to the run's process, once all are done.)
            if status != "interrupted" and run_id is not None and options.analyze and not joined:
                await analyze_tables(ctx, report)
            if run_id is not None and joined is None:
                await asyncio.shield(_finish_run(ctx, status, report))
    finally:
        await asyncio.shield(modes.close())
        await stalls.close()
        if run_lock is not None:
            await run_lock.release()
        await pool.close()
        report.seconds = time.perf_counter() - started
        report.run_id = ctx.run_id if ctx is not None else None
        report.retries = events.retries
        report.stages = {k: round(v, 3) for k, v in sorted(events.stages.items())}
        reporter.run_done(report)
    return report


def _tasks(
    paths: Sequence[str],
    options: LoadOptions,
    read_ahead: ReadAhead | None,
    report: LoadReport,
    reporter: Reporter,
) -> list[tuple[Any, FileTask]]:
    """The run's targets (as the read-ahead found them, if it did), each with its task; what
    names nothing loadable, or a workbook that cannot be read, fails here (runs in a thread:
    it reads workbooks)."""
    if read_ahead is not None:
        targets, missing = read_ahead.targets, read_ahead.missing
    else:
        targets, missing = plan_targets(paths, options)
    failed = [(d.path, d.error) for d in missing]
    targets, unreadable, charts = sheet_targets(targets, options)
    for path, error in [*unreadable, *failed]:
        result = FileResult(path, "", "failed", error=error)
        report.files.append(result)
        reporter.file_done(result)
    for path, why in charts:
        result = FileResult(path, "", "skipped", message=why)
        report.files.append(result)
        reporter.file_done(result)
    return [(t, FileTask(t.path, options_for(options, t.overrides))) for t in targets]


async def _start_run(
    pool: Any, paths: Sequence[str], options: LoadOptions, events: RunEvents
) -> tuple[int, int, RunLock]:
    """Record the run in the manifest, on the run's own connection, which then holds the
    run's lock while it lives. Returns the run's id, the server's version and that lock."""
    conn = await pool.acquire()
    try:
        server_version = await connect.server_version(conn)
        began = time.perf_counter()
        await store.ensure_manifest(conn)
        run_id: int = await store.start_run(
            conn,
            [absolute(p) for p in paths],  # (a URL without its query string)
            store.options_record(options),
            socket.gethostname(),
            os.getpid(),
        )
        events.stage("manifest", began)
    except BaseException:
        await quietly(pool.release(conn))
        raise
    return run_id, server_version, RunLock(pool, conn, run_id)


async def _server_version(pool: Any) -> int:
    async with pool.acquire() as conn:
        return int(await connect.server_version(conn))


async def _finish_run(ctx: RunContext | None, status: str, report: LoadReport) -> None:
    if ctx is None or ctx.run_id is None:
        return
    counts = {
        "loaded": sum(1 for f in report.files if f.status == "loaded"),
        "skipped": sum(1 for f in report.files if f.status == "skipped"),
        "failed": len(report.failed),
        "rows": report.rows,
    }
    run_id = ctx.run_id

    async def finish() -> None:
        async with ctx.pool.acquire() as conn:
            began = time.perf_counter()
            # The run's end with its retries, in one transaction; without any, one statement
            # (no BEGIN and COMMIT: two round trips fewer).
            retried = ctx.events.retried
            async with conn.transaction() if retried else contextlib.nullcontext():
                await store.finish_run(conn, run_id, status, counts)
                await store.record_retries(conn, run_id, retried)
            connect.release_as_new(conn)  # (committed: nothing of the session's changed)
            ctx.events.stage("manifest", began)

    try:
        await ctx.events.with_retries(finish)
    except Exception as exc:  # the server may be gone: the run row stays 'running'
        log.warning("could not record the end of run %s: %s", run_id, exc)

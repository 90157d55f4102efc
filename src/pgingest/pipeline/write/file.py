"""Write one file's batches: a producer reading them, batch workers COPYing each in its own
transaction, retried after a transient fault and never applied twice."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from pgingest.config import LoadOptions, crash_point
from pgingest.errors import (
    ColumnsChangedError,
    PgIngestError,
    RowError,
    TableChangedError,
    TooManyErrorsError,
    WidenedError,
)
from pgingest.manifest.record import FileRecord
from pgingest.model import WORKBOOK_FORMATS, CsvChunk, CsvDialect
from pgingest.observability.progress import BatchDone
from pgingest.pg import copy, ddl
from pgingest.pg.errors import (
    classify,
    copy_position,
    is_driver_error,
    is_gone,
    is_retryable,
    translate,
)
from pgingest.pg.retry import retry
from pgingest.pg.transaction import Transaction
from pgingest.pipeline.context import RunContext
from pgingest.pipeline.discover import SMALL_FILE_BYTES
from pgingest.pipeline.job import FileJob, Lease, first_error
from pgingest.pipeline.prepare.plan import LivePlan
from pgingest.pipeline.restart import BATCH_RECOVERED, Restart, restarting
from pgingest.pipeline.write.payload import Payload
from pgingest.pipeline.write.recover import Recovery
from pgingest.pipeline.write.refusal import file_line
from pgingest.pipeline.write.staged import apply_staged
from pgingest.sources import Source

SAME_CONNECTION_CLASSES = frozenset({"serialization_failure", "deadlock", "lock_not_available"})
"""Transient errors after which a batch is retried on the same connection."""

SKIP_VERSION = 170000
"""First PostgreSQL with ``COPY ... ON_ERROR ignore``: bad values are skipped server-side."""


Batches = Iterator[tuple[int, int, "Payload | Callable[[], Payload]"]]
"""A file's batches, numbered, each with the worker (route) it goes to, ready or with the
function that encodes it."""


async def write_file(
    ctx: RunContext,
    source: Source,
    live: LivePlan,
    job: FileJob,
    options: LoadOptions,
    lease: Lease,
    workers: int,
    batches: Batches,
) -> None:
    """COPY the file's ``batches`` (read in a worker thread): the first worker on the file's
    own connection ``lease``, the others on connections of their own. A batch cut by a
    transient error is retried (on a new connection when its own is gone), never applied
    twice: the manifest records each batch in its own transaction, and is asked before a
    retry."""
    if options.txn == "file":
        workers = 1
    plan = live.current  # what stays: the table, the columns, the target
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
    record = FileRecord(file_id)
    replace_pending = [job.replaces]
    whole_file = options.txn == "file"
    qualified = plan.table.qualified
    fmt = source.info.format

    inline = source.info.size <= SMALL_FILE_BYTES
    recovery = Recovery(
        schema,
        table,
        live,
        options,
        file_id,
        ctx.run_id,
        plan.fixed,
        source=source,
        pool=ctx.pool,
        # (A keyed batch is COPYed into its staging table and applied: checked client-side.)
        server_skips=not keyed
        and options.on_error == "skip"
        and ctx.server_version >= SKIP_VERSION,
        server_version=ctx.server_version or None,
        keyed=keyed,
    )
    if options.on_error == "skip" and job.done_batches:
        recovery.committed_rejects = await record.rejects(lease.conn)

    async def produce() -> None:
        iterator: Iterator[Any] = batches
        sentinel = object()
        while True:
            began = time.perf_counter()
            if inline:  # reading a small file takes less than a thread hop
                item = next(iterator, sentinel)
            else:
                item = await asyncio.to_thread(next, iterator, sentinel)
            ctx.events.stage("read", began)
            if item is sentinel:
                break
            index, worker, make = cast("tuple[int, int, Payload | Callable[[], Payload]]", item)
            if isinstance(make, Payload):  # after bad rows: check it while others load
                make = await recovery.prepare(index, make)
            await queues[worker].put((index, make))
        for worker in range(workers):
            await queues[worker if keyed else 0].put(None)

    sha_pending: list[str | None] = [None]

    async def apply(conn: Any, txn: Transaction, index: int, payload: Payload) -> int:
        replaced = replace_pending[0]
        replace_pending[0] = None
        try:
            sha = None
            if job.sha256 is None and job.hashing is not None:
                sha = job.hashing.ready()  # known now: recorded with this batch
            plain = plan.target is None and payload.kind != "arrow" and not recovery.server_skips
            if replaced is not None or sha is not None or not plain:
                await txn.begin()  # statements ahead of a plain COPY, which carries BEGIN
            await record.begin_batch(conn, replaced, sha)
            if sha is not None:
                sha_pending[0] = sha
            if plan.target is not None:
                rows = await apply_staged(conn, plan.target, payload, plan.seen, whole_file)
                rejects = payload.rejects
            elif payload.kind == "arrow":
                encoder = cast("copy.BinaryEncoder", payload.encoder)
                rows = await copy.copy_arrow(
                    conn, schema, table, plan.columns, payload.batch, encoder
                )
                rejects = payload.rejects
            elif recovery.server_skips:
                rows, rejects = await recovery.copy_skipping(conn, index, payload)
            else:
                rows = await copy.copy_csv(
                    conn,
                    schema,
                    table,
                    plan.columns,
                    CsvChunk(payload.data, payload.first_line, payload.encoding),
                    payload.dialect or CsvDialect(),
                    plan.datestyle,
                    opening=txn.opening(),
                )
                rejects = payload.rejects
            began = time.perf_counter()
            await record.record_batch(conn, txn, index, payload.first_line, rows, rejects)
            ctx.events.stage("manifest", began)
            crash_point("batch-copied")
        except BaseException:
            if replaced is not None:  # rolled back: the next batch removes them
                replace_pending[0] = replaced
            raise
        return int(rows)

    async def encoded(item: Payload | Callable[[], Payload]) -> Payload:
        if isinstance(item, Payload):
            return item
        # Encode in a thread, before the transaction opens: transactions stay short.
        began = time.perf_counter()
        payload = await asyncio.to_thread(item)
        ctx.events.stage("encode", began)
        return payload

    async def next_item(worker: int) -> tuple[int, Payload | Callable[[], Payload]] | None:
        began = time.perf_counter()
        item = await queues[worker].get()
        ctx.events.stage("wait", began)
        return item

    def done(index: int, payload: Payload, rows: int, began: float) -> None:
        if sha_pending[0] is not None:  # committed with a batch
            job.sha256 = sha_pending[0]
        latency = ctx.events.stage("write", began)
        ctx.reporter.batch_done(
            BatchDone(
                path, qualified, fmt, index, rows, payload.nbytes, latency, payload.first_line
            )
        )

    async def refused_binary(exc: Exception, payload: Payload, conn: Any) -> None:
        """A binary stream the server found malformed (08P01) is one encoded for types the
        table no longer has (another load widened a column after this file's plan): raise
        that, for the file to be planned again; else nothing (the error stands)."""
        if payload.kind != "arrow" or getattr(exc, "sqlstate", None) != "08P01":
            return
        if conn is None or is_gone(conn):
            return
        current = live.current
        changed = await ddl.changed_types(
            conn, schema, table, current.columns, current.target_types
        )
        if changed:
            ctx.tables.pop((schema, table), None)  # what the run knew of it: no longer true
            raise ColumnsChangedError(
                f"{path}: the columns of {qualified} changed while it loaded"
                f" ({', '.join(changed)}): planned again"
            ) from exc

    async def retried_batch(lease: Lease, index: int, payload: Payload) -> None:
        """COPY one batch in its own transaction; after a retryable error, again (on a fresh
        connection unless a conflict left it usable), unless the lost reply hid a commit."""
        tries = 0
        fresh_connection = False

        async def once() -> None:
            nonlocal tries
            began = time.perf_counter()
            tries += 1
            if tries > 1:
                if fresh_connection or lease.conn is None or is_gone(lease.conn):
                    await lease.renew()
                committed = await record.committed_rows(lease.conn, index)
                if committed is not None:  # it did commit: the reply was lost
                    done(index, payload, committed, began)
                    return
            if payload.error is not None:
                raise payload.error
            try:
                async with (
                    ctx.stalls.guard(lease.conn, f"the COPY of batch {index}"),
                    Transaction(lease.conn) as txn,
                ):
                    rows = await apply(lease.conn, txn, index, payload)
            except Exception as exc:
                await refused_binary(exc, payload, lease.conn)
                raise
            crash_point("batch-committed")
            done(index, payload, rows, began)

        def retrying(attempt: int, delay: float, exc: BaseException) -> None:
            nonlocal fresh_connection
            # A server-side conflict (deadlock, serialization) leaves the connection usable;
            # anything else may leave it open but in an unknown state.
            fresh_connection = classify(exc, lease.conn) not in SAME_CONNECTION_CLASSES
            ctx.events.retrying(exc, attempt, delay, path, qualified, index, lease.conn)

        await retry(
            once,
            ctx.events.policy,
            on_error=lambda exc: ctx.events.db_error(exc, path),
            on_retry=retrying,
            # A changed table is the file's to start over (planned anew), not the batch's.
            retryable=lambda exc: (
                not isinstance(exc, TableChangedError) and is_retryable(exc, lease.conn)
            ),
        )

    async def attempt_batch(lease: Lease, index: int, payload: Payload) -> None:
        async def decide(exc: Exception, payload: Payload) -> Restart[Payload] | None:
            error = batch_error(exc, payload, path, lease.conn, routed=keyed)
            if isinstance(error, RowError) and not isinstance(error, TooManyErrorsError):
                # A data error: widen the table, or set the bad rows aside.
                if lease.conn is None or is_gone(lease.conn):
                    await lease.renew()
                fixed = await recovery.recover(lease.conn, index, payload, error)
                if fixed is not None:
                    return Restart(BATCH_RECOVERED, fixed)
            if error is exc:
                return None
            raise error from exc

        start = await recovery.prepare(index, payload)
        await restarting(lambda payload: retried_batch(lease, index, payload), start, decide)

    async def consume(lease: Lease | None = None, worker: int = 0) -> None:
        if lease is None:
            # The file id stamped on every row (column default) lives in a session
            # setting, set once per connection and file (the claim set it on the file's
            # own connection).
            own = Lease(ctx.pool, None, file_id=file_id, owner=ctx.application_name)
            try:
                await ctx.events.with_retries(own.renew, path)
                await consume(own, worker)
            finally:
                await own.release()
            return
        if whole_file:  # one transaction: a fault retries the whole file, not a batch
            finished: list[tuple[int, Payload, int]] = []
            began = time.perf_counter()
            payload: Payload | None = None
            try:
                async with Transaction(lease.conn) as txn:
                    while (item := await next_item(worker)) is not None:
                        payload = await encoded(item[1])
                        async with ctx.stalls.guard(lease.conn, f"the COPY of batch {item[0]}"):
                            rows = await apply(lease.conn, txn, item[0], payload)
                        finished.append((item[0], payload, rows))
            except Exception as exc:
                error = (
                    exc
                    if payload is None
                    else batch_error(exc, payload, path, lease.conn, routed=keyed)
                )
                if error is exc:
                    raise
                raise error from exc
            crash_point("batch-committed")
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
        # Its own cause kept (``from None`` cleared it): a read fault's OSError says whether
        # the file's retry may succeed (a reset, an object replaced mid-stream).
        error = first_error(group_error)
        if isinstance(error, WidenedError):  # planned again: for the table as it is now
            ctx.tables.pop((schema, table), None)
        raise error from error.__cause__
    job.rejects = recovery.rejects
    if fmt in WORKBOOK_FORMATS:
        # Error cells are kept as rejects by the reader's batches: the count is the file's.
        job.rejects = await record.rejects(lease.conn)
    if job.rejects and options.max_errors is not None:
        rows = await record.rows(lease.conn)
        recovery.check_share(path, rows)


def batch_error(
    exc: BaseException, payload: Payload, path: str, conn: Any, *, routed: bool = False
) -> BaseException:
    """The batch writer's error boundary: what writing ``payload`` raised, a driver error
    made a pgingest error (a row error names the file's line), once the batch's transaction
    and its retries are over; anything else as it is.

    Args:
        exc: what the batch's try raised.
        payload: the batch it was writing.
        path: the file.
        conn: the connection it was raised on, asked whether it is closed.
        routed: a keyed batch (its records routed by key: not consecutive lines).
    """
    if not is_driver_error(exc):
        return exc
    return translate(exc, path=path, first_line=_first_line(exc, payload, routed), conn=conn)


def _first_line(exc: BaseException, payload: Payload, routed: bool) -> int:
    """The ``first_line`` that makes the server's "line N" of a batch the file's line."""
    position = copy_position(exc)
    if position is None:
        return payload.first_line
    if payload.kind == "csv":
        # COPY counts the lines inside a quoted value too: found record by record (named by
        # ``lines`` when the records are not the file's, as a routed or NDJSON batch's are).
        return file_line(payload, position.line) - position.line + 1
    if (routed or payload.numbered) and payload.lines is not None:
        # Binary COPY's "line N" is row N: the file's line of a routed row, an NDJSON row.
        line = int(payload.lines[min(position.line, len(payload.lines)) - 1])
        return line - position.line + 1
    return payload.first_line

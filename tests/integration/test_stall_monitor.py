"""The stall monitor judges a connection by its backend, not by a clock: a statement the server
is busy with is progress however long it takes; a backend waiting for a client that sends
nothing is a stall, terminated."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from pgingest.errors import ConnectionLostError
from pgingest.pg.stall import StallMonitor


def monitor(dsn: str, seconds: float) -> StallMonitor:
    return StallMonitor(lambda: asyncpg.connect(dsn), seconds)


def test_a_long_statement_is_progress(db):
    async def go() -> None:
        stalls = monitor(db.dsn, 1.0)
        conn = await asyncpg.connect(db.dsn)
        try:
            async with stalls.guard(conn, "a long statement"):
                await conn.execute("SELECT pg_sleep(3)")  # three times the bound
            assert not conn.is_closed()
        finally:
            await stalls.close()
            await conn.close()

    asyncio.run(go())


def test_a_backend_waiting_for_a_silent_client_is_terminated(db):
    async def go() -> None:
        stalls = monitor(db.dsn, 1.0)
        conn = await asyncpg.connect(db.dsn)
        pid = conn.get_server_pid()
        try:

            async def silent() -> None:
                async with stalls.guard(conn, "the COPY of batch 7"), conn.transaction():
                    await conn.execute("SELECT 1")
                    await asyncio.sleep(30)  # the client sends nothing: bounded by the monitor

            with pytest.raises(ConnectionLostError, match="during the COPY of batch 7"):
                await silent()
            assert conn.is_closed()
            other = await asyncpg.connect(db.dsn)
            try:
                for _ in range(50):
                    if not await other.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
                    ):
                        break
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("the stalled backend was not terminated")
            finally:
                await other.close()
        finally:
            await stalls.close()

    asyncio.run(asyncio.wait_for(go(), 60))


def test_a_moving_copy_is_progress(db):
    async def go() -> None:
        stalls = monitor(db.dsn, 1.0)
        conn = await asyncpg.connect(db.dsn)
        await conn.execute(f'CREATE TABLE "{db.schema}".slow (v text)')

        async def rows():  # a slow but steady client: a chunk every 0.3 s for 3 s
            for i in range(10):
                await asyncio.sleep(0.3)
                yield f"{i}\n".encode() * 1000

        try:
            async with stalls.guard(conn, "a slow COPY"):
                await conn.copy_to_table("slow", schema_name=db.schema, source=rows())
        finally:
            await stalls.close()
            await conn.close()

    asyncio.run(go())
    assert db.count("slow") == 10_000


def test_no_bound_when_switched_off(db):
    async def go() -> None:
        stalls = monitor(db.dsn, 0)
        conn = await asyncpg.connect(db.dsn)
        try:
            async with stalls.guard(conn, "anything"), conn.transaction():
                await asyncio.sleep(0.5)
        finally:
            await stalls.close()
            await conn.close()

    asyncio.run(go())


async def _stalled(dsn: str, batch: int, cancel: bool) -> asyncio.Task[None]:
    """A task guarding a body that waits, stalled by the test (the monitor itself never
    cuts) and, with ``cancel``, cancelled from outside before it runs again; returned once
    it ended."""
    stalls = monitor(dsn, 3600.0)
    conn = await asyncpg.connect(dsn)
    entered = asyncio.Event()

    async def body() -> None:
        async with stalls.guard(conn, f"the COPY of batch {batch}"):
            entered.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(body())
    try:
        await entered.wait()
        [watched] = stalls._watched.values()
        await stalls._cut(watched, False)  # the stall ...
        if cancel:
            task.cancel()  # ... and, before the task runs again, its group's cancellation
        await asyncio.wait([task])
        return task
    finally:
        await stalls.close()
        await conn.close()


def test_a_cancel_from_outside_at_the_moment_of_a_stall_is_kept(db):
    """Found by CI (a keyed load through a cutting proxy hung): a stall declared while the
    task was also cancelled from outside (its task group's sibling failed) raised a retried
    ConnectionLostError, the cancellation was lost, and the task waited for work forever."""
    task = asyncio.run(asyncio.wait_for(_stalled(db.dsn, 3, cancel=True), 60))
    assert task.cancelled()


def test_a_stall_alone_is_a_lost_connection(db):
    """The same stall without a cancellation from outside: the body ends, as ConnectionLostError."""
    task = asyncio.run(asyncio.wait_for(_stalled(db.dsn, 4, cancel=False), 60))
    with pytest.raises(ConnectionLostError, match="during the COPY of batch 4"):
        task.result()

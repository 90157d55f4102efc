"""Bound each unit of work on a connection by its progress, not by a fixed timeout.

A connection can stop moving without being closed: the network black-holes it, or its
client side is gone while the server's backend still waits in the middle of a COPY (holding
its locks). Neither raises anything on the client; a statement timeout would also kill a
long but legitimate statement (an ``ALTER COLUMN TYPE`` of a big table). So a
:class:`StallMonitor` watches the backends of the guarded connections from a connection of
its own, in ``pg_stat_activity`` and ``pg_stat_progress_copy``:

- a backend that is running (``active``, not waiting for its client) is making progress;
- a COPY whose bytes or tuples advance, or a backend whose state changes, is making progress;
- a backend waiting for its client (``ClientRead``/``ClientWrite``, ``idle in transaction``)
  whose state does not change, or a backend that is gone, is not; nor is a backend the
  monitor cannot observe (the server unreachable).

A guarded unit without progress for ``seconds`` is stalled: its backend is terminated
(``pg_terminate_backend``, which also frees its locks), its connection closed, and the unit
raises :class:`~pgingest.errors.ConnectionLostError`, which the retry helper retries on a
fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from pgingest.errors import ConnectionLostError

log = logging.getLogger("pgingest.stall")

_SAMPLE = """
SELECT a.pid, a.state, a.wait_event_type, a.state_change,
       p.bytes_processed, p.tuples_processed
FROM pg_stat_activity a LEFT JOIN pg_stat_progress_copy p ON p.pid = a.pid
WHERE a.pid = ANY($1::int[])
"""
# pg_stat_progress_copy exists from PostgreSQL 14 on; before, the backend's state alone tells.
_SAMPLE_OLD = """
SELECT a.pid, a.state, a.wait_event_type, a.state_change,
       NULL::bigint AS bytes_processed, NULL::bigint AS tuples_processed
FROM pg_stat_activity a WHERE a.pid = ANY($1::int[])
"""


_REFUSED: dict[int, tuple[Any, ...]] = {}
"""What :meth:`StallMonitor._sample` returns when the server refused to answer."""


@dataclass(slots=True)
class _Watched:
    """One guarded unit: its backend, what it does, when it last moved."""

    pid: int
    what: str
    conn: Any
    deadline: asyncio.Timeout
    moved_at: float
    last: tuple[Any, ...] | None = None
    stalled: str | None = None


@dataclass(slots=True)
class StallMonitor:
    """Watches guarded connections' backends from one connection of its own (opened on first
    use with ``connect``); see the module docstring."""

    connect: Callable[[], Awaitable[Any]]
    """Opens the monitor's own connection (bounded by the connect timeout)."""
    seconds: float
    """A guarded unit without progress for this long is stalled; 0 switches the monitor off."""
    _watched: dict[int, _Watched] = field(default_factory=dict)
    _conn: Any = None
    _task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        """Seconds between two looks: a quarter of the bound (within 0.2 to 5 s)."""
        return max(0.2, min(5.0, self.seconds / 4))

    @contextlib.asynccontextmanager
    async def guard(self, conn: Any, what: str) -> AsyncIterator[None]:
        """Run the body with ``conn``'s progress watched; a stall terminates the connection
        and raises :class:`ConnectionLostError` naming ``what`` (e.g. "the COPY of batch 2").
        """
        if self.seconds <= 0 or conn is None:
            yield
            return
        loop = asyncio.get_running_loop()
        try:
            pid = int(conn.get_server_pid())
        except asyncpg.InterfaceError:  # a pooled handle detached from a closed connection
            yield
            return
        watched: _Watched | None = None
        try:
            async with asyncio.timeout(None) as deadline:
                watched = _Watched(pid, what, conn, deadline, loop.time())
                self._watched[id(watched)] = watched
                self._start()
                yield
        except BaseException as exc:
            if watched is not None and watched.stalled is not None:
                task = asyncio.current_task()
                if isinstance(exc, asyncio.CancelledError) and task and task.cancelling():
                    # Cancelled from outside as well (a sibling failed, Ctrl-C): the deadline
                    # left that cancellation standing, and it must go on; as a retried
                    # ConnectionLostError it was lost, and the task waited for work forever.
                    raise
                # Whatever the body raised on its way out of the cut connection (a cancelled
                # COPY, a rollback refused on a closed connection) is this stall.
                raise ConnectionLostError(watched.stalled) from exc
            raise
        finally:
            if watched is not None:
                self._watched.pop(id(watched), None)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Stop watching and close the monitor's connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.terminate()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._watched:
            await asyncio.sleep(self.interval)
            rows = await self._sample([w.pid for w in self._watched.values()])
            now = loop.time()
            for watched in list(self._watched.values()):
                if watched.stalled is not None:
                    continue
                if rows is _REFUSED:  # the server answers, but not this question: no verdict
                    watched.moved_at = now
                    continue
                row = rows.get(watched.pid) if rows is not None else None
                if (row is not None and _busy(row)) or (row is not None and row != watched.last):
                    watched.moved_at = now
                if row is not None:
                    watched.last = row
                if now - watched.moved_at >= self.seconds:
                    await self._cut(watched, row is None and rows is not None)

    async def _sample(self, pids: list[int]) -> dict[int, tuple[Any, ...]] | None:
        """The watched backends' state, by pid; ``None`` when the server cannot be asked."""
        try:
            async with asyncio.timeout(max(self.interval * 2, 2.0)):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await self.connect()
                version = self._conn.get_server_version().major
                query = _SAMPLE if version >= 14 else _SAMPLE_OLD
                records = await self._conn.fetch(query, pids)
        except asyncpg.PostgresError as exc:  # e.g. too many connections: it is up
            log.debug("stall monitor refused: %s", exc)
            return _REFUSED
        except (TimeoutError, OSError, asyncpg.InterfaceError) as exc:
            # Silence from the server: counts as no progress of the connections to it.
            log.debug("stall monitor cannot look: %s", exc)
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            return None
        return {
            int(r["pid"]): (
                r["state"],
                r["wait_event_type"],
                r["state_change"],
                r["bytes_processed"],
                r["tuples_processed"],
            )
            for r in records
        }

    async def _cut(self, watched: _Watched, gone: bool) -> None:
        """Declare ``watched`` stalled: terminate its backend, close its connection, end its
        body."""
        why = "its server process is gone" if gone else "no progress"
        watched.stalled = (
            f"connection lost during {watched.what}: {why} for {self.seconds:g} s"
            " (--stall-timeout); its server process was terminated"
        )
        log.warning("%s", watched.stalled)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(self.interval * 2, 2.0)):
                    await self._conn.fetchval("SELECT pg_terminate_backend($1)", watched.pid)
        with contextlib.suppress(Exception):
            watched.conn.terminate()
        # A body blocked writing to the cut connection is not woken by the close: end it.
        watched.deadline.reschedule(asyncio.get_running_loop().time())


def _busy(row: tuple[Any, ...]) -> bool:
    """The backend is working (not waiting for its client): a long statement is progress."""
    state, wait_type = row[0], row[1]
    return bool(state == "active" and wait_type != "Client")


async def terminate_orphan(conn: Any, pid: int, application_name: str) -> bool:
    """Terminate backend ``pid`` if it is one of this run's (``application_name``) and not
    ``conn``'s own, waiting (at most 5 s) until it is gone; True when it was terminated."""
    terminated = await conn.fetchval(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid = $1 AND application_name = $2 AND pid <> pg_backend_pid()",
        pid,
        application_name,
    )
    if not terminated:
        return False  # not this run's (or gone already): a live other process's, kept
    for _ in range(50):  # 5 s at most
        if not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)"
            " OR EXISTS (SELECT 1 FROM pg_locks WHERE pid = $1)",
            pid,
        ):
            break
        await asyncio.sleep(0.1)
    return True

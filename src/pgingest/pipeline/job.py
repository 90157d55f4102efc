"""One file's load in progress: its job state, its connections (leases), and how faults that
stop it are told apart (a read fault of the disk, a driver fault, an exception group); and
the run's own connection, holding the run's lock."""

from __future__ import annotations

import asyncio
import errno
import gzip
import logging
from dataclasses import dataclass
from typing import Any

from pgingest.errors import LeaseLostError, RowError, SourceError
from pgingest.manifest import store
from pgingest.manifest.hashing import BackgroundHash
from pgingest.manifest.record import FileRecord
from pgingest.pg.errors import is_gone, server_pid
from pgingest.pg.stall import terminate_orphan

log = logging.getLogger("pgingest.run")


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
    raw_routes: bool = False
    """upsert, merge of CSV: route the raw chunks by key, the cut the file was first claimed
    with (``raw_routes`` in its chunking); else the reader's Arrow batches of text, as a file
    first claimed by an older loader is resumed."""
    rejects: int = 0
    """Bad rows set aside (``--on-error skip``)."""
    sha256: str | None = None
    """The file's content hash once it is recorded in the manifest."""
    hashing: BackgroundHash | None = None
    """The hash being computed, recorded with the first batch committed after it is done."""


class Lease:
    """A worker's pooled connection, replaced by :meth:`renew` when a fault cut it.

    The file's own connection also holds the file's manifest lock: a new one takes the lock
    again, and when another process took the file meanwhile, :class:`LeaseLostError` stops
    this one (the batches it committed stay recorded; the other process skips them).
    """

    def __init__(
        self,
        pool: Any,
        conn: Any,
        *,
        holds_lock: bool = False,
        file_id: int | None = None,
        owner: str | None = None,
    ) -> None:
        self._pool = pool
        self.conn: Any = conn
        self.pid = server_pid(conn)
        """The server process of ``conn``, kept: a handle its pool detached cannot tell."""
        self.holds_lock = holds_lock
        self.file_id = file_id
        self.owner = owner
        """The run's ``application_name``: a backend of it still holding the file's lock is
        the lost connection's (an orphan), terminated to take the lock again."""

    async def take(self) -> None:
        """Take a pooled connection (a lease made without one)."""
        self.conn = await self._pool.acquire()
        self.pid = server_pid(self.conn)

    async def renew(self) -> None:
        """Close the current connection and take a fresh one, set up for the file; the old
        one's server process, if the server still keeps it (a half-open connection), is
        terminated so that it holds no lock and no transaction."""
        abandoned = self.pid
        await self.release(broken=True)
        conn = await self._pool.acquire()
        try:
            if abandoned is not None and self.owner is not None:
                await terminate_orphan(conn, abandoned, self.owner)
            if self.file_id is not None:
                record = FileRecord(self.file_id)
                if self.holds_lock and not await record.relock(conn, self.owner):
                    raise LeaseLostError(
                        f"file id {self.file_id}: another pgingest process took the file over"
                        " while this one reconnected"
                    )
                await record.stamp(conn)
        except BaseException:
            await quietly(self._pool.release(conn))
            raise
        self.conn = conn
        self.pid = server_pid(conn)

    async def release(self, broken: bool = False) -> None:
        """Give the connection back to the pool; a ``broken`` one is closed first (the pool
        opens a new one in its place)."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if broken and not is_gone(conn):
            conn.terminate()
        await quietly(asyncio.wait_for(self._pool.release(conn), 10))


RUN_CONNECTION_MIN_POOL = 3
"""The run keeps a connection of its own (holding the run's lock while it lives) when the
pool has at least this many: a file's worker and a free one for its DDL come first."""


class RunLock:
    """The run's own connection, holding the run's session lock for as long as the run
    lives (taken with the run's manifest row, :func:`store.start_run`): ``pgingest status``
    shows a run whose lock is free as interrupted (its process died).

    A pool too small to spare it gets the connection back: the run then holds no lock.
    """

    def __init__(self, pool: Any, conn: Any, run_id: int) -> None:
        self._pool = pool
        self.run_id = run_id
        self.conn: Any = conn
        self.locked = True
        if pool.get_max_size() < RUN_CONNECTION_MIN_POOL:
            self.conn = None
            self._spare = conn
        else:
            self._spare = None

    async def keep(self, with_retries: Any) -> None:
        """Take the lock again on a new connection when the one holding it was lost (a fault
        cut it). Tried once per call (at each file), never waited for: the lost session may
        hold the lock until the server notices it is gone."""
        if self._spare is not None:  # the connection to give back (a pool too small)
            conn, self._spare = self._spare, None
            await quietly(asyncio.wait_for(self._pool.release(conn), 10))
        conn = self.conn
        if conn is None:
            return
        if is_gone(conn):
            self.conn = None
            self.locked = False
            await quietly(asyncio.wait_for(self._pool.release(conn), 10))
            conn = self.conn = await with_retries(self._pool.acquire)
        if not self.locked:
            self.locked = await store.relock_run(conn, self.run_id)
            if not self.locked:
                log.info("run %s: its lock is still held by its lost connection", self.run_id)

    async def release(self) -> None:
        """Give the connection back (the pool's reset releases the lock with it)."""
        for conn in (self.conn, self._spare):
            if conn is not None:
                await quietly(asyncio.wait_for(self._pool.release(conn), 10))
        self.conn = self._spare = None


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


async def quietly(awaitable: Any) -> None:
    """Await ``awaitable``, logging (at debug) instead of raising what it raises: for clean-up
    on a connection that a fault may already have closed."""
    try:
        await awaitable
    except Exception as exc:
        log.debug("ignored: %s", exc)


def first_error(error: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def one_line(text: str) -> str:
    """``text`` on one line (for messages, logs and the manifest)."""
    return " ".join(text.split())


def naming(path: str, message: str) -> str:
    """``message`` on one line, starting with the file it is about unless it names it."""
    text, shown = one_line(message), one_line(path)  # (a name may hold a tab or a line break)
    return text if shown in text else f"{shown}: {text}"

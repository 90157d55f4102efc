"""Connections: resolve the DSN (or start the embedded server), open the pool, set the session."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncpg

from pgingest.config import ConnectionSettings, redact_dsn
from pgingest.errors import ConfigError
from pgingest.pg import embedded
from pgingest.pg.errors import is_driver_error, translate
from pgingest.pg.retry import RetryPolicy, retry

log = logging.getLogger("pgingest.connect")
T = TypeVar("T")


async def resolve_dsn(settings: ConnectionSettings) -> str:
    """The DSN to connect to: the given one, or the embedded server's (started on demand)."""
    if settings.dsn is not None:
        return settings.dsn
    return await asyncio.to_thread(embedded.start, settings.data_dir)


KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "60000",
}
"""Server-side TCP keepalives of every session (asyncpg has no client-side ones): after 30 s
of silence the server probes every 10 s and gives up after 3 unanswered probes, or when data
it sent stays unacknowledged for 60 s, so a loader machine that died (or a network that
dropped its connections) no longer holds its backends, their locks and their transactions
open. Ignored on Unix sockets."""


_SESSION_DEFAULTS = {
    # COPY streams are large; a statement timeout set by the server's defaults would cut them.
    "statement_timeout": "0",
    # Upsert and merge stage each batch in a temporary table: local buffers of this size hold
    # a batch without spilling to disk (allocated only when a temporary table is used; it can
    # only be set before the session's first one).
    "temp_buffers": "64MB",
}
"""Sent when a pooled session connects, so that they are its defaults: set afterwards, the
pool's reset (``RESET ALL``) undid them at the first release, and a role's
``statement_timeout`` then cut the next long COPY."""


def session_settings(
    application_name: str | None = None,
    lock_timeout: float | None = None,
    loader: tuple[str, int] | None = None,
) -> dict[str, str]:
    """The settings every session of a run starts with (sent when it connects, so the pool's
    reset keeps them): the keepalives, the run's ``application_name`` (which tells its
    backends from anyone else's), the longest wait for any lock, in seconds (a wait cut
    by it is retried like a lost connection), and the loader's host and process id
    (``pgingest.host``, ``pgingest.pid``: the manifest's ``claim`` records them with each
    file it hands out)."""
    settings = {**KEEPALIVE_SETTINGS, **_SESSION_DEFAULTS}
    if application_name:
        settings["application_name"] = application_name[:63]
    if loader is not None:
        settings["pgingest.host"], settings["pgingest.pid"] = loader[0], str(loader[1])
    if lock_timeout is not None and lock_timeout > 0:
        settings["lock_timeout"] = f"{max(1, round(lock_timeout * 1000))}ms"
    return settings


async def open_connection(settings: ConnectionSettings, **server_settings: str) -> Any:
    """One connection outside any pool, with the keepalives (and ``server_settings``)."""
    dsn = await resolve_dsn(settings)
    return await asyncpg.connect(
        dsn,
        timeout=settings.connect_timeout,
        server_settings={**KEEPALIVE_SETTINGS, **server_settings},
    )


class _Connection(asyncpg.Connection):  # type: ignore[misc]
    """A pooled connection that can say its session is as a new one's, so that its release
    skips the reset's round trip (every small file's connection went through it)."""

    _pristine = False

    def release_as_new(self) -> None:
        """Declare the session as it was: no advisory lock held, no transaction, no setting
        changed since it connected. Its next release then sends no reset; any release after
        that resets again."""
        self._pristine = True


async def _reset(conn: Any) -> None:
    """The pool's reset: asyncpg's (locks released, settings reset), unless the connection was
    declared as new (:meth:`_Connection.release_as_new`)."""
    if getattr(conn, "_pristine", False):
        conn._pristine = False
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


def release_as_new(conn: Any) -> None:
    """Tell the pool that ``conn`` (pooled) holds nothing of the caller's any more, so that
    its release costs no round trip; a connection from elsewhere is left alone."""
    declare = getattr(conn, "release_as_new", None)
    if declare is not None:
        declare()


ACQUIRE_TIMEOUT = 300.0
"""Seconds a task waits for a pooled connection when it says nothing else. The pool is sized
for every worker, so a wait this long means connections leaked or the server stopped
answering: a bound, not a tuning knob."""


class BoundedPool:
    """An ``asyncpg.Pool`` whose :meth:`acquire` never waits without a bound; everything else
    is the pool's."""

    def __init__(self, pool: asyncpg.Pool, timeout: float = ACQUIRE_TIMEOUT) -> None:
        self._pool = pool
        self.timeout = timeout

    def acquire(self, *, timeout: float | None = None) -> Any:
        """A connection (``await`` it, or ``async with``), within ``timeout`` seconds
        (default :attr:`timeout`)."""
        return self._pool.acquire(timeout=self.timeout if timeout is None else timeout)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


async def create_pool(
    settings: ConnectionSettings,
    size: int,
    policy: RetryPolicy | None = None,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    server_settings: dict[str, str] | None = None,
) -> BoundedPool:
    """Open a pool of at most ``size`` connections, waiting for a server that refuses them.

    Args:
        settings: where to connect.
        size: the most connections the pool opens.
        policy: retries of a transient failure to connect (refused, starting up, too many
            connections); ``None``: no retry.
        on_retry: called with (attempt, delay, error) before each wait.
        server_settings: each session's settings (default: :func:`session_settings`).

    Returns:
        An open pool (an ``asyncpg.Pool`` whose acquire waits at most
        :data:`ACQUIRE_TIMEOUT` unless told otherwise).

    Raises:
        ConfigError: the DSN is malformed.
        ConnectionLostError: the server cannot be reached (after the retries).
    """
    dsn = await resolve_dsn(settings)

    async def attempt() -> BoundedPool:
        with _dsn_checked(dsn):
            pool = await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max(1, size),
                timeout=settings.connect_timeout,
                connection_class=_Connection,
                reset=_reset,
                server_settings=server_settings or session_settings(),
            )
        return BoundedPool(pool)

    return await _connect_retried(dsn, attempt, policy, on_retry)


async def open_connection_retried(
    settings: ConnectionSettings,
    policy: RetryPolicy,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    **server_settings: str,
) -> Any:
    """:func:`open_connection`, waiting for a server that refuses it as :func:`create_pool`
    does, its last failure said as :func:`create_pool` says it.

    Raises:
        ConfigError: the DSN is malformed.
        ConnectionLostError: the server cannot be reached (after the retries).
    """
    dsn = await resolve_dsn(settings)

    async def attempt() -> Any:
        with _dsn_checked(dsn):
            return await asyncpg.connect(
                dsn,
                timeout=settings.connect_timeout,
                server_settings={**KEEPALIVE_SETTINGS, **server_settings},
            )

    return await _connect_retried(dsn, attempt, policy, on_retry)


@contextlib.contextmanager
def _dsn_checked(dsn: str) -> Iterator[None]:
    """A malformed DSN as a :class:`ConfigError` (never retried)."""
    try:
        yield
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise ConfigError(f"invalid DSN {redact_dsn(dsn)!r}: {redact_dsn(str(exc))}") from exc


async def _connect_retried(
    dsn: str,
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy | None,
    on_retry: Callable[[int, float, BaseException], None] | None,
) -> T:
    """``attempt`` (a connect), again after a transient failure; the last failure translated
    and said as ``cannot connect to <dsn> (after N retries): <why>``."""
    retries = [0]

    def retrying(number: int, delay: float, exc: BaseException) -> None:
        retries[0] = number
        if on_retry is not None:
            on_retry(number, delay, exc)

    try:
        return await retry(attempt, policy or RetryPolicy(max_retries=0), on_retry=retrying)
    except Exception as exc:
        if not is_driver_error(exc):
            raise
        error = translate(exc)
        tries = f" (after {retries[0]} retries)" if retries[0] else ""
        raise type(error)(f"cannot connect to {redact_dsn(dsn)}{tries}: {error}") from exc


async def server_version(conn: Any) -> int:
    """The server's ``server_version_num`` (e.g. 180004): from the version it reported when
    the connection started (no round trip), else asked."""
    reported = conn.get_server_version()
    if reported.major >= _TWO_PART_VERSIONS:  # "18.4": 180004 (asyncpg reads it as 18.0.4)
        return int(reported.major * 10_000 + reported.micro)
    value = await conn.fetchval("SELECT current_setting('server_version_num')::int")
    return int(value)


_TWO_PART_VERSIONS = 10
"""From PostgreSQL 10 on, a version is major.minor."""


async def connection_capacity(conn: Any) -> int | None:
    """How many connections this role could hold at most now, this one included: the
    server's ``max_connections`` (less the slots reserved for superusers), the role's and the
    database's connection limits, each minus the connections already using it.

    ``None`` when the statistics are not readable.
    """
    try:
        value = await conn.fetchval(
            """
            WITH s AS (
                SELECT
                  (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')
                    AS clients,
                  (SELECT count(*) FROM pg_stat_activity WHERE usesysid = r.oid) AS mine,
                  (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())
                    AS in_db,
                  r.rolsuper, r.rolconnlimit, d.datconnlimit
                FROM pg_roles r, pg_database d
                WHERE r.rolname = current_user AND d.datname = current_database()
            )
            SELECT least(
                current_setting('max_connections')::int - clients
                  - CASE WHEN rolsuper THEN 0
                         ELSE current_setting('superuser_reserved_connections')::int END,
                CASE WHEN rolconnlimit >= 0 AND NOT rolsuper THEN rolconnlimit - mine END,
                CASE WHEN datconnlimit >= 0 AND NOT rolsuper THEN datconnlimit - in_db END
            ) + 1
            FROM s
            """
        )
    except asyncpg.PostgresError:
        return None
    return None if value is None else max(1, int(value))


class connection:  # noqa: N801  (used as a context manager, like a function)
    """``async with connection(settings) as conn``: one connection, closed afterwards."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        dsn = await resolve_dsn(self.settings)
        try:
            self._conn = await asyncpg.connect(
                dsn, timeout=self.settings.connect_timeout, server_settings=KEEPALIVE_SETTINGS
            )
        except (ValueError, asyncpg.ClientConfigurationError) as exc:
            raise ConfigError(f"invalid DSN {redact_dsn(dsn)!r}: {redact_dsn(str(exc))}") from exc
        except Exception as exc:
            if is_driver_error(exc):
                error = translate(exc)
                raise type(error)(f"cannot connect to {redact_dsn(dsn)}: {error}") from exc
            raise
        return self._conn

    async def __aexit__(self, *exc: object) -> None:
        if self._conn is not None:
            await self._conn.close()


async def rollback(conn: Any) -> None:
    """End the open transaction of ``conn`` (one its ``async with`` did not end: a batch cut
    by an interruption)."""
    await conn.execute("ROLLBACK")

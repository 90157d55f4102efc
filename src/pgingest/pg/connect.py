"""Connections: resolve the DSN (or start the embedded server), open the pool, set the session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from pgingest.config import ConnectionSettings, redact_dsn
from pgingest.errors import ConfigError
from pgingest.pg import embedded
from pgingest.pg.errors import is_driver_error, translate
from pgingest.pg.retry import RetryPolicy, is_transient

log = logging.getLogger("pgingest.connect")


async def resolve_dsn(settings: ConnectionSettings) -> str:
    """The DSN to connect to: the given one, or the embedded server's (started on demand)."""
    if settings.dsn is not None:
        return settings.dsn
    return await asyncio.to_thread(embedded.start, settings.home)


async def _init_connection(conn: Any) -> None:
    # COPY streams are large; a statement timeout set by the server's defaults would cut them.
    await conn.execute("SET statement_timeout = 0")
    # Upsert and merge stage each batch in a temporary table: local buffers of this size hold
    # a batch without spilling to disk (allocated only when a temporary table is used; it can
    # only be set before the session's first one).
    await conn.execute("SET temp_buffers = '64MB'")


async def create_pool(
    settings: ConnectionSettings,
    size: int,
    policy: RetryPolicy | None = None,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
) -> asyncpg.Pool:
    """Open a pool of at most ``size`` connections, waiting for a server that refuses them.

    Args:
        settings: where to connect.
        size: the most connections the pool opens.
        policy: retries of a transient failure to connect (refused, starting up, too many
            connections); ``None``: no retry.
        on_retry: called with (attempt, delay, error) before each wait.

    Returns:
        An open ``asyncpg.Pool``.

    Raises:
        ConfigError: the DSN is malformed.
        ConnectionLostError: the server cannot be reached (after the retries).
    """
    dsn = await resolve_dsn(settings)
    attempt = 0
    while True:
        try:
            return await asyncpg.create_pool(
                dsn,
                min_size=1,
                max_size=max(1, size),
                timeout=settings.connect_timeout,
                init=_init_connection,
            )
        except (ValueError, asyncpg.ClientConfigurationError) as exc:
            raise ConfigError(f"invalid DSN {redact_dsn(dsn)!r}: {redact_dsn(str(exc))}") from exc
        except Exception as exc:
            if not is_driver_error(exc):
                raise
            if policy is not None and is_transient(exc) and attempt < policy.max_retries:
                attempt += 1
                delay = policy.delay(attempt)
                if on_retry is not None:
                    on_retry(attempt, delay, exc)
                await asyncio.sleep(delay)
                continue
            error = translate(exc)
            tries = f" (after {attempt} retries)" if attempt else ""
            raise type(error)(f"cannot connect to {redact_dsn(dsn)}{tries}: {error}") from exc


async def server_version(conn: Any) -> int:
    """The server's ``server_version_num`` (e.g. 180004)."""
    value = await conn.fetchval("SELECT current_setting('server_version_num')::int")
    return int(value)


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
            self._conn = await asyncpg.connect(dsn, timeout=self.settings.connect_timeout)
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

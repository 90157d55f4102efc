"""ANALYZE a table after a load, when what the planner last counted in it says so, under a
short lock wait (a failure is the caller's warning, never a failed load)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal

from pgingest.errors import PgIngestError
from pgingest.pg.connect import release_as_new
from pgingest.pg.ddl import qualified_name
from pgingest.pg.errors import translate

__all__ = ["Acquire", "Outcome", "analyze_if"]

Acquire = Callable[[], AbstractAsyncContextManager[Any]]
"""A connection to use, as ``async with acquire() as conn`` (a pool's ``acquire``)."""


Outcome = Literal["analyzed", "not needed", "not allowed", "gone"]
"""What :func:`analyze_if` did: analyzed the table; left it (``wanted`` said no); left it
because this role may not (not its owner, nor granted MAINTAIN on PostgreSQL 17+, where the
server would only warn and skip it); or found no such table."""

# reltuples, and whether this role may ANALYZE the table: its owner's member (or a
# superuser) before PostgreSQL 17; from 17 on, MAINTAIN (owners have it, and pg_maintain).
_COUNTED = """
SELECT c.reltuples,
       CASE WHEN current_setting('server_version_num')::int >= 170000
            THEN has_table_privilege(c.oid, 'MAINTAIN')
            ELSE pg_has_role(c.relowner, 'USAGE') END
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
"""


async def analyze_if(
    acquire: Acquire, schema: str, table: str, wanted: Callable[[float], bool], lock_wait: float
) -> Outcome:
    """``ANALYZE schema.table`` on a connection of ``acquire`` when ``wanted`` says so of the rows
    the planner counted in it at its last ANALYZE or VACUUM (``pg_class.reltuples``: below
    zero when it never counted them, as in a new table) and this role may, waiting at most
    ``lock_wait`` seconds for its lock (another ANALYZE, a VACUUM or a schema change may hold
    it).

    Returns:
        What it did.

    Raises:
        PgIngestError: no connection, the lock wait ran out, the statement failed
            (translated).
    """
    try:
        async with acquire() as conn:
            row = await conn.fetchrow(_COUNTED, schema, table)
            if row is None:
                return "gone"
            if not wanted(float(row[0])):
                return "not needed"
            if not row[1]:
                return "not allowed"
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('lock_timeout', $1, true)",
                    f"{max(1, round(lock_wait * 1000))}ms",
                )
                await conn.execute(f"ANALYZE {qualified_name(schema, table)}")
            # Committed, and the lock timeout was the transaction's own: the session is as
            # it was, its release needs no reset's round trip.
            release_as_new(conn)
            return "analyzed"
    except PgIngestError:
        raise
    except Exception as exc:
        raise translate(exc) from exc

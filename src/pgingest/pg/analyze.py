"""ANALYZE a table after a load, when what the planner last counted in it says so, under a
short lock wait (a failure is the caller's warning, never a failed load)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pgingest.errors import PgIngestError
from pgingest.pg.ddl import qualified_name
from pgingest.pg.errors import translate

__all__ = ["analyze_if"]


async def analyze_if(
    pool: Any, schema: str, table: str, wanted: Callable[[float], bool], lock_wait: float
) -> bool:
    """``ANALYZE schema.table`` on a connection of ``pool`` when ``wanted`` says so of the rows
    the planner counted in it at its last ANALYZE or VACUUM (``pg_class.reltuples``: below
    zero when it never counted them, as in a new table), waiting at most ``lock_wait`` seconds
    for its lock (another ANALYZE, a VACUUM or a schema change may hold it).

    Returns:
        True when the table was analyzed (False: not wanted, or the table is gone).

    Raises:
        PgIngestError: no connection, the lock wait ran out, the statement failed
            (translated).
    """
    try:
        async with pool.acquire() as conn:
            counted = await conn.fetchval(
                "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                schema,
                table,
            )
            if counted is None or not wanted(float(counted)):
                return False
            async with conn.transaction():
                await conn.execute(
                    "SELECT set_config('lock_timeout', $1, true)",
                    f"{max(1, round(lock_wait * 1000))}ms",
                )
                await conn.execute(f"ANALYZE {qualified_name(schema, table)}")
            return True
    except PgIngestError:
        raise
    except Exception as exc:
        raise translate(exc) from exc

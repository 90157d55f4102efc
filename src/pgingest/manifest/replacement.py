"""The manifest's side of ``--mode replace``: which run replaces a table (a session lock, and a
row in ``pgingest.replacements`` naming its new table), the files loaded into that new table
(``staged``, recorded under the new table's name), and what the swap, or giving up, makes of
them.

A replace run holds the table's lock from its start to its swap, so a second replace of the
table is refused at once; a run that died held it on a connection that died with it, so the
next run takes the table over and continues its new table (or starts it over).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

REPLACE_LOCK = "pgingest.replace:"


def _lock_key(schema: str, table: str) -> str:
    return f"{REPLACE_LOCK}{schema}.{table}"


@dataclass(frozen=True, slots=True)
class Pending:
    """A replacement a run began and did not swap in (or abandon)."""

    schema: str
    table: str
    new: str
    """The new table its files load into."""
    run_id: int | None
    """The run that holds it, or held it last."""
    started_by: int | None
    status: str
    """``loading``, or ``complete``: every file is in the new table, the swap is next."""
    error: str | None


@dataclass(frozen=True, slots=True)
class RecordedFile:
    """A file the manifest records in a replacement's new table."""

    id: int
    path: str
    size: int
    mtime_ns: int | None
    status: str
    batches: int


async def lock_table(conn: Any, schema: str, table: str) -> bool:
    """Take the table's replace lock for the life of ``conn``'s session; False when another
    session holds it."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", _lock_key(schema, table)
        )
    )


async def unlock_table(conn: Any, schema: str, table: str) -> None:
    """Release the table's replace lock taken by :func:`lock_table`."""
    await conn.execute(
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))", _lock_key(schema, table)
    )


HOLDER_WAIT = 2.0
"""Seconds to wait for the holder of a table's lock to record itself (it takes the lock, then
commits its row: a few milliseconds apart), to name it."""


async def holder(conn: Any, schema: str, table: str) -> str:
    """Who holds the table's replace lock, for a message: ``run 12 (pid 345 on host, started
    ..., server process 678)``, found by the server process holding the lock."""
    key = _lock_key(schema, table)
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        row = await conn.fetchrow(
            "WITH k AS (SELECT hashtextextended($3, 0) AS key),"
            " locker AS (SELECT l.pid FROM pg_locks l, k WHERE l.locktype = 'advisory'"
            " AND l.granted AND l.objsubid = 1"
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = ((k.key >> 32) & 4294967295)::oid"
            " AND l.objid = (k.key & 4294967295)::oid)"
            " SELECT locker.pid AS backend, r.run_id, u.pid, u.host,"
            " to_char(u.started_at, 'YYYY-MM-DD HH24:MI:SS') AS at FROM locker"
            " LEFT JOIN pgingest.replacements r ON r.table_schema = $1 AND r.table_name = $2"
            " AND r.holder_pid = locker.pid LEFT JOIN pgingest.runs u ON u.id = r.run_id",
            schema,
            table,
            key,
        )
        if row is None:
            return "another pgingest run, which has just ended"
        backend = f"server process {row['backend']}"
        if row["run_id"] is not None:
            return (
                f"run {row['run_id']} (pid {row['pid']} on {row['host']}, started {row['at']},"
                f" {backend})"
            )
        if time.monotonic() > deadline:
            return f"another pgingest run ({backend})"
        await asyncio.sleep(0.05)


async def pending(conn: Any, schema: str, table: str) -> Pending | None:
    """The table's unfinished replacement, if a run left one."""
    row = await conn.fetchrow(
        "SELECT new_table, run_id, started_by, status, error FROM pgingest.replacements"
        " WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
    )
    if row is None:
        return None
    return Pending(
        schema,
        table,
        row["new_table"],
        row["run_id"],
        row["started_by"],
        row["status"],
        row["error"],
    )


async def files_in(conn: Any, schema: str, new: str) -> list[RecordedFile]:
    """The files recorded in a replacement's new table, with their committed batches."""
    rows = await conn.fetch(
        "SELECT f.id, f.path, f.size, f.mtime_ns, f.status,"
        " (SELECT count(*) FROM pgingest.file_batches b WHERE b.file_id = f.id) AS batches"
        " FROM pgingest.files f WHERE f.table_schema = $1 AND f.table_name = $2"
        " AND f.status <> 'reverted' ORDER BY f.id",
        schema,
        new,
    )
    return [
        RecordedFile(
            r["id"], r["path"], r["size"], r["mtime_ns"], r["status"], int(r["batches"] or 0)
        )
        for r in rows
    ]


async def begin(conn: Any, schema: str, table: str, new: str, run_id: int) -> None:
    """Record that ``run_id`` replaces the table through ``new`` (in the transaction that
    creates ``new``)."""
    await conn.execute(
        "INSERT INTO pgingest.replacements (table_schema, table_name, new_table, run_id,"
        " started_by, holder_pid) VALUES ($1, $2, $3, $4, $4, pg_backend_pid())",
        schema,
        table,
        new,
        run_id,
    )


async def take_over(conn: Any, schema: str, table: str, run_id: int) -> None:
    """``run_id`` continues the table's unfinished replacement (its holder died)."""
    await conn.execute(
        "UPDATE pgingest.replacements SET run_id = $3, holder_pid = pg_backend_pid(),"
        " error = NULL, updated_at = now()"
        " WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
        run_id,
    )


async def record(conn: Any, schema: str, table: str, *, complete: bool, error: str | None) -> None:
    """Note how the replacement stands: ``complete`` (every file is in the new table) and,
    when the run ends without the swap, why (for ``status`` and the next run)."""
    await conn.execute(
        "UPDATE pgingest.replacements SET status = CASE WHEN $3 THEN 'complete' ELSE status END,"
        " error = $4, updated_at = now() WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
        complete,
        error,
    )


async def stage_file(conn: Any, file_id: int, sha256: str | None, fmt: str | None) -> int:
    """Every batch of a file is in the replacement's new table: mark it ``staged`` (not
    ``success``: it is loaded only when the new table is swapped in) and release its lock.

    Returns:
        The file's rows.
    """
    rows = await conn.fetchval(
        "WITH staged AS (UPDATE pgingest.files SET status = 'staged', sha256 = $2,"
        " format = coalesce($3, format), finished_at = now(), error = NULL,"
        " rows = (SELECT coalesce(sum(b.rows), 0) FROM pgingest.file_batches b"
        " WHERE b.file_id = $1) WHERE id = $1 RETURNING rows)"
        " SELECT staged.rows FROM staged, pg_advisory_unlock(hashtextextended($4, 0))",
        file_id,
        sha256,
        fmt,
        f"pgingest.file:{file_id}",
    )
    return int(rows or 0)


async def owned(conn: Any, schema: str, table: str, run_id: int) -> bool:
    """Inside the swap's transaction: whether ``run_id`` still holds the replacement (its row
    locked until the commit)."""
    holder_run = await conn.fetchval(
        "SELECT run_id FROM pgingest.replacements WHERE table_schema = $1 AND table_name = $2"
        " FOR UPDATE",
        schema,
        table,
    )
    return holder_run is not None and int(holder_run) == run_id


async def busy_files(conn: Any, schema: str, table: str) -> list[str]:
    """Inside the swap's transaction: files another process is loading into the old table
    now (their lock is held), as ``path (run N)``. A file nobody holds is locked here until
    the commit, so none starts meanwhile."""
    rows = await conn.fetch(
        "WITH unfinished AS MATERIALIZED (SELECT id, path, run_id FROM pgingest.files"
        " WHERE table_schema = $1 AND table_name = $2 AND status IN ('running', 'pending'))"
        " SELECT path, run_id FROM unfinished"
        " WHERE NOT pg_try_advisory_xact_lock(hashtextextended('pgingest.file:' || id, 0))",
        schema,
        table,
    )
    return [f"{r['path']} (run {r['run_id']})" for r in rows]


async def swapped(conn: Any, schema: str, table: str, new: str, run_id: int) -> int:
    """Inside the swap's transaction, after the new table took the old one's place: the old
    table's files are ``reverted`` (their rows went with it; the batches of an unfinished one
    are forgotten, so that nothing resumes after rows that are gone), the replacement's files
    ``success`` in the table, its schema changes the table's, its row gone.

    Returns:
        The files marked loaded.
    """
    reason = f"replaced by run {run_id}"
    await conn.execute(
        "UPDATE pgingest.files SET status = 'reverted', finished_at = now(), error = $3"
        " WHERE table_schema = $1 AND table_name = $2 AND status = 'success'",
        schema,
        table,
        reason,
    )
    await conn.execute(
        "WITH gone AS MATERIALIZED (SELECT f.id FROM pgingest.files f"
        " WHERE f.table_schema = $1 AND f.table_name = $2"
        " AND f.status IN ('running', 'pending', 'failed')"
        " AND EXISTS (SELECT 1 FROM pgingest.file_batches b WHERE b.file_id = f.id)),"
        " forgotten AS (DELETE FROM pgingest.file_batches WHERE file_id IN (SELECT id FROM gone))"
        " UPDATE pgingest.files SET status = 'reverted', rows = 0, finished_at = now(),"
        " error = 'its committed rows went with the table, ' || $3"
        " WHERE id IN (SELECT id FROM gone)",
        schema,
        table,
        reason,
    )
    status = await conn.execute(
        "UPDATE pgingest.files SET table_name = $2,"
        " status = CASE WHEN status = 'staged' THEN 'success' ELSE status END"
        " WHERE table_schema = $1 AND table_name = $3",
        schema,
        table,
        new,
    )
    await conn.execute(
        "UPDATE pgingest.schema_changes SET table_name = $2"
        " WHERE table_schema = $1 AND table_name = $3",
        schema,
        table,
        new,
    )
    await conn.execute(
        "DELETE FROM pgingest.replacements WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
    )
    return int(status.split()[-1])


async def forget(conn: Any, schema: str, table: str, new: str, *, status: str, error: str) -> None:
    """The replacement is given up (its new table dropped in the same transaction): its files
    go back to the table's name with no rows and no batches, ``status`` (``failed``: a file of
    the run failed, the others with it; ``reverted``: a later run started the replacement
    over), a failed file keeping its own error; the row goes."""
    await conn.execute(
        "DELETE FROM pgingest.file_batches WHERE file_id IN (SELECT id FROM pgingest.files"
        " WHERE table_schema = $1 AND table_name = $2)",
        schema,
        new,
    )
    await conn.execute(
        "UPDATE pgingest.files SET table_name = $3, rows = 0,"
        " finished_at = coalesce(finished_at, now()),"
        " error = CASE WHEN $4 = 'failed' AND status = 'failed' THEN error ELSE $5 END,"
        " status = $4 WHERE table_schema = $1 AND table_name = $2 AND status <> 'reverted'",
        schema,
        new,
        table,
        status,
        error,
    )
    await conn.execute(
        "UPDATE pgingest.schema_changes SET reverted = true"
        " WHERE table_schema = $1 AND table_name = $2",
        schema,
        new,
    )
    await conn.execute(
        "DELETE FROM pgingest.replacements WHERE table_schema = $1 AND table_name = $2",
        schema,
        table,
    )

"""Read the manifest back, next to what the tables hold now: recent runs (a run whose process
died shown as interrupted), files and rows per table (rows the manifest recorded as loaded,
and rows in the table now), interrupted files, failures, schema changes, rejects."""

from __future__ import annotations

import json
from typing import Any

from pgingest.manifest.model import LINEAGE_FILE
from pgingest.manifest.store import table_identity
from pgingest.pg.ddl import qualified_name, quote_ident

HELD = "SELECT pgingest.held_locks() AS k"
"""The advisory locks held now (one snapshot of the lock table per query)."""


_LOADER = "f.host, f.pid,"
"""The loader (host, process id) that claimed a file last (manifest version 8)."""


def _key(kind: str, id_sql: str) -> str:
    """The SQL of a session lock's key (see ``store.lock_key``) of the id in ``id_sql``."""
    return f"hashtextextended('pgingest.{kind}:' || {id_sql}, 0)"


def _plain(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


async def status(
    conn: Any, *, table: str | None = None, limit: int = 10, files: bool = False
) -> dict[str, Any]:
    """Everything ``pgingest status`` shows, as plain JSON-ready data.

    Rows are told apart by where they were counted: ``rows`` is what the manifest recorded
    as loaded (for upsert and merge, rows written, which may update the same row many times),
    ``rows_in_table`` an exact count of the table now (``None`` when it is gone: then
    ``table_exists`` is false). A run or a file marked ``running`` whose process died (its
    lock is free) is shown as ``interrupted`` (``recorded_status`` keeps the manifest's word).

    Args:
        conn: an open connection.
        table: only this table (``name`` or ``schema.name``).
        limit: how many recent runs, failures and schema changes to list.
        files: also list every loaded or interrupted file with its rows in the table now,
            counted by lineage (one scan per table).

    Returns:
        ``{"runs": [...], "tables": [...], "failed": [...], "schema_changes": [...],
        "rejects": [...], "interrupted": [...], "replacements": [...], "running": [...],
        "loaders": [...]}`` (``replacements``: ``--mode replace`` runs not swapped in yet;
        ``running``: files a live loader holds now, with its ``host`` and ``pid``;
        ``loaders``: per loader process (``host``, ``pid``) the files and rows it loaded and
        its runs) and, with ``files``, ``"files": [...]`` (each with its loader's ``host``
        and ``pid``); empty lists when pgingest never ran on this database.
    """
    empty: dict[str, Any] = {
        "runs": [],
        "tables": [],
        "failed": [],
        "schema_changes": [],
        "rejects": [],
        "interrupted": [],
        "replacements": [],
        "running": [],
        "loaders": [],
    }
    if files:
        empty["files"] = []
    if not await conn.fetchval("SELECT to_regclass('pgingest.files') IS NOT NULL"):
        return empty
    schema_filter, table_filter = None, None
    if table:
        schema_filter, _, table_filter = table.rpartition(".")
        schema_filter = schema_filter or None
    cond = "($1::text IS NULL OR table_schema = $1) AND ($2::text IS NULL OR table_name = $2)"
    args = (schema_filter, table_filter)
    # A live run holds its lock on its own connection; a live file load holds the file's.
    runs = await conn.fetch(
        f"WITH held AS MATERIALIZED ({HELD}) SELECT id, started_at, finished_at,"
        " CASE WHEN status = 'running' AND NOT"
        f" {_key('run', 'id')} IN (SELECT k FROM held)"
        " THEN 'interrupted' ELSE status END AS status, status AS recorded_status,"
        " host, pid, files_loaded, files_skipped, files_failed, rows, paths FROM pgingest.runs"
        " WHERE ($1::text IS NULL AND $2::text IS NULL) OR id IN (SELECT run_id FROM"
        f" pgingest.files WHERE {cond}) ORDER BY id DESC LIMIT $3",
        *args,
        limit,
    )
    tables = await conn.fetch(
        f"WITH held AS MATERIALIZED ({HELD}),"
        " f AS (SELECT *, CASE WHEN status IN ('running', 'pending')"
        f" THEN NOT {_key('file', 'id')} IN (SELECT k FROM held) ELSE false END AS dead"
        f" FROM pgingest.files WHERE {cond})"
        " SELECT table_schema, table_name,"
        " count(*) FILTER (WHERE status = 'success') AS files_loaded,"
        " count(*) FILTER (WHERE status = 'failed') AS files_failed,"
        " count(*) FILTER (WHERE status = 'reverted') AS files_reverted,"
        " count(*) FILTER (WHERE status IN ('running', 'pending', 'staged') AND NOT dead)"
        " AS files_in_progress,"
        " count(*) FILTER (WHERE dead) AS files_interrupted,"
        " coalesce(sum(rows) FILTER (WHERE status = 'success'), 0)::bigint AS rows,"
        " max(finished_at) FILTER (WHERE status = 'success') AS last_load,"
        " (array_agg(ARRAY[table_oid::bigint, table_node] ORDER BY id DESC)"
        " FILTER (WHERE status = 'success'))[1:1] AS recorded"
        " FROM f GROUP BY 1, 2 ORDER BY 1, 2",
        *args,
    )
    interrupted = await conn.fetch(
        f"WITH held AS MATERIALIZED ({HELD})"
        " SELECT f.id, f.path, f.table_schema, f.table_name, f.run_id, f.status,"
        f" f.started_at, {_LOADER} count(b.batch) AS committed_batches,"
        " coalesce(sum(b.rows), 0)::bigint AS committed_rows"
        " FROM pgingest.files f LEFT JOIN pgingest.file_batches b ON b.file_id = f.id"
        " WHERE f.status IN ('running', 'pending')"
        f" AND NOT {_key('file', 'f.id')} IN (SELECT k FROM held)"
        " AND ($1::text IS NULL OR f.table_schema = $1) AND ($2::text IS NULL OR"
        " f.table_name = $2) GROUP BY f.id ORDER BY f.id DESC LIMIT $3",
        *args,
        limit,
    )
    # The files whose loader holds their lock now, and who loaded what (host, process).
    running = await conn.fetch(
        f"WITH held AS MATERIALIZED ({HELD})"
        " SELECT f.id, f.path, f.table_schema, f.table_name, f.run_id, f.started_at,"
        f" {_LOADER} count(b.batch) AS committed_batches,"
        " coalesce(sum(b.rows), 0)::bigint AS committed_rows"
        " FROM pgingest.files f LEFT JOIN pgingest.file_batches b ON b.file_id = f.id"
        " WHERE f.status IN ('running', 'pending')"
        f" AND {_key('file', 'f.id')} IN (SELECT k FROM held)"
        " AND ($1::text IS NULL OR f.table_schema = $1) AND ($2::text IS NULL OR"
        " f.table_name = $2) GROUP BY f.id ORDER BY f.id",
        *args,
    )
    # Files recorded before version 8 (and rowless names of a loaded content) have no loader.
    loaders = await conn.fetch(
        f"SELECT {_LOADER} count(*) FILTER (WHERE status = 'success') AS files_loaded,"
        " coalesce(sum(rows) FILTER (WHERE status = 'success'), 0)::bigint AS rows,"
        " count(*) FILTER (WHERE status = 'failed') AS files_failed,"
        " array_agg(DISTINCT run_id ORDER BY run_id) AS runs, max(finished_at) AS last_finished"
        f" FROM pgingest.files f WHERE {cond} AND host IS NOT NULL"
        " AND status IN ('success', 'failed')"
        " GROUP BY f.host, f.pid ORDER BY max(f.id) DESC LIMIT $3",
        *args,
        limit,
    )
    failed = await conn.fetch(
        "SELECT id, path, table_schema, table_name, run_id, finished_at, error, rows"
        f" FROM pgingest.files WHERE status = 'failed' AND {cond} ORDER BY id DESC LIMIT $3",
        *args,
        limit,
    )
    changes = await conn.fetch(
        "SELECT c.id, c.at, c.table_schema, c.table_name, c.column_name, c.change, c.old_type,"
        " c.new_type, c.file_id, f.path, c.reverted FROM pgingest.schema_changes c"
        " LEFT JOIN pgingest.files f ON f.id = c.file_id"
        " WHERE ($1::text IS NULL OR c.table_schema = $1) AND ($2::text IS NULL OR"
        " c.table_name = $2) ORDER BY c.id DESC LIMIT $3",
        *args,
        limit,
    )
    rejects = await conn.fetch(
        "SELECT f.id AS file_id, f.path, f.table_schema, f.table_name, count(*) AS rejects"
        " FROM pgingest.rejects r JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE ($1::text IS NULL OR f.table_schema = $1) AND ($2::text IS NULL OR"
        " f.table_name = $2) GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC",
        *args,
    )
    replacements = []
    if await conn.fetchval("SELECT to_regclass('pgingest.replacements') IS NOT NULL"):
        replacements = await conn.fetch(
            "SELECT table_schema, table_name, new_table, run_id, started_by, status, started_at,"
            f" updated_at, error FROM pgingest.replacements WHERE {cond} ORDER BY 1, 2",
            *args,
        )
    result = {
        "runs": [_plain(r) for r in runs],
        "tables": [await _table_now(conn, r) for r in tables],
        "failed": [_plain(r) for r in failed],
        "schema_changes": [_plain(r) for r in changes],
        "rejects": [_plain(r) for r in rejects],
        "interrupted": [_plain(r) for r in interrupted],
        "replacements": [_plain(r) for r in replacements],
        "running": [_plain(r) for r in running],
        "loaders": [_plain(r) for r in loaders],
    }
    for run in result["runs"]:
        if isinstance(run.get("paths"), str):
            run["paths"] = json.loads(run["paths"])
    if files:
        result["files"] = await _files_now(conn, args, result["tables"])
    return result


async def _table_now(conn: Any, row: Any) -> dict[str, Any]:
    """A table's manifest figures, and what the table holds now."""
    out = _plain(row)
    recorded = out.pop("recorded")
    schema, name = out["table_schema"], out["table_name"]
    identity = await table_identity(conn, schema, name)
    out["table_exists"] = identity.exists
    out["rows_in_table"] = None
    out["identity_changed"] = False
    if identity.exists:
        out["rows_in_table"] = int(
            await conn.fetchval(f"SELECT count(*) FROM {qualified_name(schema, name)}")
        )
        if recorded:
            oid, node = recorded[0]
            out["identity_changed"] = (oid, node) != (identity.oid, identity.node)
    return out


async def _files_now(
    conn: Any, args: tuple[str | None, str | None], tables: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every loaded or interrupted file of the tables, with its rows in its table now."""
    rows = await conn.fetch(
        "SELECT f.id, f.path, f.table_schema, f.table_name, f.status, f.rows, f.run_id,"
        f" {_LOADER} (SELECT coalesce(sum(b.rows), 0) FROM pgingest.file_batches b"
        "  WHERE b.file_id = f.id)::bigint AS committed_rows"
        " FROM pgingest.files f WHERE (f.status = 'success' OR (f.status IN ('running',"
        " 'pending', 'failed') AND EXISTS (SELECT 1 FROM pgingest.file_batches b"
        " WHERE b.file_id = f.id))) AND ($1::text IS NULL OR f.table_schema = $1)"
        " AND ($2::text IS NULL OR f.table_name = $2) ORDER BY f.table_schema, f.table_name, f.id",
        *args,
    )
    counts: dict[tuple[str, str], dict[int, int] | None] = {}
    for t in tables:
        key = (t["table_schema"], t["table_name"])
        identity = await table_identity(conn, *key)
        if not identity.lineage:
            counts[key] = None  # gone, or no lineage column: rows cannot be told apart
            continue
        lineage = quote_ident(LINEAGE_FILE)
        counted = await conn.fetch(
            f"SELECT {lineage} AS id, count(*) AS n FROM {qualified_name(*key)}"
            f" WHERE {lineage} IS NOT NULL GROUP BY 1"
        )
        counts[key] = {int(r["id"]): int(r["n"]) for r in counted}
    out = []
    for r in rows:
        item = _plain(r)
        if item["status"] != "success":
            item["rows"] = item["committed_rows"]  # what it committed before it stopped
        per_file = counts.get((item["table_schema"], item["table_name"]))
        item["rows_in_table"] = None if per_file is None else per_file.get(item["id"], 0)
        out.append(item)
    return out

"""Read the manifest back: recent runs, files per table, failures, schema changes, rejects."""

from __future__ import annotations

from typing import Any


def _plain(row: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in dict(row).items():
        out[key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


async def status(conn: Any, *, table: str | None = None, limit: int = 10) -> dict[str, Any]:
    """Everything ``pgingest status`` shows, as plain JSON-ready data.

    Args:
        conn: an open connection.
        table: only this table (``name`` or ``schema.name``).
        limit: how many recent runs, failures and schema changes to list.

    Returns:
        ``{"runs": [...], "tables": [...], "failed": [...], "schema_changes": [...],
        "rejects": [...], "replacements": [...]}`` (``replacements``: ``--mode replace``
        runs not swapped in yet); empty lists when pgingest never ran on this database.
    """
    empty: dict[str, Any] = {
        "runs": [],
        "tables": [],
        "failed": [],
        "schema_changes": [],
        "rejects": [],
        "replacements": [],
    }
    if not await conn.fetchval("SELECT to_regclass('pgingest.files') IS NOT NULL"):
        return empty
    schema_filter, table_filter = None, None
    if table:
        schema_filter, _, table_filter = table.rpartition(".")
        schema_filter = schema_filter or None
    cond = "($1::text IS NULL OR table_schema = $1) AND ($2::text IS NULL OR table_name = $2)"
    args = (schema_filter, table_filter)
    runs = await conn.fetch(
        "SELECT id, started_at, finished_at, status, host, files_loaded, files_skipped,"
        " files_failed, rows, paths FROM pgingest.runs"
        " WHERE ($1::text IS NULL AND $2::text IS NULL) OR id IN (SELECT run_id FROM"
        f" pgingest.files WHERE {cond}) ORDER BY id DESC LIMIT $3",
        *args,
        limit,
    )
    tables = await conn.fetch(
        "SELECT table_schema, table_name,"
        " count(*) FILTER (WHERE status = 'success') AS files_loaded,"
        " count(*) FILTER (WHERE status = 'failed') AS files_failed,"
        " count(*) FILTER (WHERE status = 'reverted') AS files_reverted,"
        " count(*) FILTER (WHERE status IN ('running', 'pending', 'staged')) AS files_in_progress,"
        " coalesce(sum(rows) FILTER (WHERE status = 'success'), 0)::bigint AS rows,"
        " max(finished_at) FILTER (WHERE status = 'success') AS last_load"
        f" FROM pgingest.files WHERE {cond} GROUP BY 1, 2 ORDER BY 1, 2",
        *args,
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
        "tables": [_plain(r) for r in tables],
        "failed": [_plain(r) for r in failed],
        "schema_changes": [_plain(r) for r in changes],
        "rejects": [_plain(r) for r in rejects],
        "replacements": [_plain(r) for r in replacements],
    }
    for run in result["runs"]:
        if isinstance(run.get("paths"), str):
            import json

            run["paths"] = json.loads(run["paths"])
    return result

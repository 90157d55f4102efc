"""Read back what the manifest recorded of one run, for its report: the run, its files with
their times, the schema changes it made, the rows it set aside (with their lines) and the
transient errors it retried."""

from __future__ import annotations

import json
from typing import Any

from pgingest.errors import ManifestError
from pgingest.manifest.status import HELD, _key, _plain

MAX_REJECTS = 500
"""Rejected rows listed in a report (the page stays readable; ``pgingest rejects`` has all)."""


async def run_report(conn: Any, run_id: int | None = None) -> dict[str, Any]:
    """Everything ``pgingest report`` shows of a run, as JSON-ready data.

    Args:
        conn: an open connection.
        run_id: the run; default the latest.

    Returns:
        ``{"run": {...}, "files": [...], "schema_changes": [...], "rejects": [...],
        "rejects_total": n, "retries": [...]}``. A run marked running whose process died is
        ``interrupted``, and so are its files left running. ``last_batch_at``: a file's
        last committed batch (where an unfinished file got to).

    Raises:
        ManifestError: no such run (or no run at all).
    """
    if not await conn.fetchval("SELECT to_regclass('pgingest.runs') IS NOT NULL"):
        raise ManifestError("no run to report: nothing was ever loaded into this database")
    run = await conn.fetchrow(
        f"WITH held AS MATERIALIZED ({HELD}) SELECT id, started_at, finished_at,"
        " CASE WHEN status = 'running' AND NOT"
        f" {_key('run', 'id')} IN (SELECT k FROM held)"
        " THEN 'interrupted' ELSE status END AS status, host, pid, paths, options,"
        " files_loaded, files_skipped, files_failed, rows FROM pgingest.runs"
        " WHERE id = coalesce($1, (SELECT max(id) FROM pgingest.runs))",
        run_id,
    )
    if run is None:
        raise ManifestError(
            f"no run {run_id} in the manifest" if run_id is not None else "no run recorded yet"
        )
    files = await conn.fetch(
        "SELECT f.id, f.path, f.table_schema, f.table_name, f.format, f.status, f.size,"
        " CASE WHEN f.status = 'success' THEN f.rows ELSE (SELECT coalesce(sum(b.rows), 0)"
        " FROM pgingest.file_batches b WHERE b.file_id = f.id) END::bigint AS rows,"
        " f.started_at, f.finished_at, f.error, (SELECT max(b.committed_at)"
        " FROM pgingest.file_batches b WHERE b.file_id = f.id) AS last_batch_at,"
        " (SELECT count(*) FROM pgingest.rejects r WHERE r.file_id = f.id) AS rejects"
        " FROM pgingest.files f WHERE f.run_id = $1 ORDER BY f.started_at, f.id",
        run["id"],
    )
    changes = await conn.fetch(
        "SELECT c.at, c.table_schema, c.table_name, c.column_name, c.change, c.old_type,"
        " c.new_type, f.path, c.reverted FROM pgingest.schema_changes c"
        " LEFT JOIN pgingest.files f ON f.id = c.file_id WHERE c.run_id = $1 ORDER BY c.id",
        run["id"],
    )
    rejects = await conn.fetch(
        "SELECT f.path, r.line, r.column_name, r.reason, r.raw FROM pgingest.rejects r"
        " JOIN pgingest.files f ON f.id = r.file_id WHERE f.run_id = $1"
        " ORDER BY f.id, r.line NULLS LAST, r.id LIMIT $2",
        run["id"],
        MAX_REJECTS,
    )
    rejects_total = await conn.fetchval(
        "SELECT count(*) FROM pgingest.rejects r JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.run_id = $1",
        run["id"],
    )
    retries = []
    if await conn.fetchval("SELECT to_regclass('pgingest.retries') IS NOT NULL"):
        retries = await conn.fetch(
            "SELECT at, path, table_name, batch, attempt, delay, error_class, error"
            " FROM pgingest.retries WHERE run_id = $1 ORDER BY at, id",
            run["id"],
        )
    out = _plain(run)
    for key in ("paths", "options"):
        if isinstance(out.get(key), str):
            out[key] = json.loads(out[key])
    listed = [_plain(r) for r in files]
    if out["status"] == "interrupted":  # its files left running died with it
        for f in listed:
            if f["status"] in ("running", "pending"):
                f["status"] = "interrupted"
    return {
        "run": out,
        "files": listed,
        "schema_changes": [_plain(r) for r in changes],
        "rejects": [_plain(r) for r in rejects],
        "rejects_total": int(rejects_total),
        "retries": [_plain(r) for r in retries],
    }

"""Keep the manifest from growing without end: remove what is older than an age and no longer
needed (runs, batch records, rejects, the records of attempts that left nothing behind).

What ``revert`` and the skip of unchanged files need stays, whatever its age: every file
whose rows are in a table (``success``, with its sha256, size, mtime and table identity; an
interrupted file with committed batches, and those batches, so that it can resume or be
reverted) and the runs those files name. Rejects go with their age: they hold raw values of
the files, possibly personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pgingest.config import crash_point

# Files whose record nothing needs any more: taken out (reverted) or failed, leaving no
# committed batch behind (an interrupted attempt's batches are its resume point and its rows
# in the table), and not being loaded now (its session lock held).
_OLD_FILES = """
    WITH held AS MATERIALIZED (SELECT pgingest.held_locks() AS k)
    SELECT f.id FROM pgingest.files f
    WHERE coalesce(f.finished_at, f.started_at) < $1
      AND (f.status = 'reverted'
           OR (f.status IN ('failed', 'running', 'pending')
               AND NOT EXISTS (SELECT 1 FROM pgingest.file_batches b WHERE b.file_id = f.id)
               AND NOT hashtextextended('pgingest.file:' || f.id, 0) IN (SELECT k FROM held)))
"""
# Batch records of files that finished (loaded, or taken out): only a file still to resume
# needs its batches.
_OLD_BATCHES = """
    SELECT b.file_id, b.batch FROM pgingest.file_batches b JOIN pgingest.files f
      ON f.id = b.file_id
    WHERE f.status IN ('success', 'reverted') AND coalesce(f.finished_at, f.started_at) < $1
"""
_OLD_REJECTS = "SELECT j.id FROM pgingest.rejects j WHERE j.at < $1"
# Runs that ended (or whose process died) before the cutoff and that no file kept names.
_OLD_RUNS = """
    WITH held AS MATERIALIZED (SELECT pgingest.held_locks() AS k)
    SELECT r.id FROM pgingest.runs r
    WHERE r.started_at < $1
      AND (r.status <> 'running'
           OR NOT hashtextextended('pgingest.run:' || r.id, 0) IN (SELECT k FROM held))
      AND NOT EXISTS (SELECT 1 FROM pgingest.files f WHERE f.run_id = r.id
                      AND f.id NOT IN (SELECT id FROM doomed_files))
"""


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What :func:`prune` removed (or would, in a dry run)."""

    cutoff: datetime
    runs: int
    files: int
    batches: int
    rejects: int
    dry_run: bool = False


async def prune(conn: Any, older_than: timedelta, *, dry_run: bool = False) -> PruneReport:
    """Remove manifest records older than ``older_than``, in one transaction.

    Removed: runs that ended before the cutoff and that no kept file names; the records of
    files reverted, or failed without committed batches; the batch records of files that
    finished (loaded or reverted); rejected rows (their raw values) recorded before the cutoff.
    Kept: every loaded file (the skip of unchanged files and ``revert`` need it), every
    interrupted file with its batches, whatever is in use by a live run.

    Args:
        conn: an open connection to a database with a manifest.
        older_than: the age past which records go (e.g. 90 days).
        dry_run: count what would go; change nothing.

    Returns:
        The counts, and the cutoff time.
    """
    async with conn.transaction():
        cutoff = await conn.fetchval("SELECT now() - $1::interval", older_than)
        # One snapshot: the files to drop, then everything that hangs on them.
        await conn.execute(f"CREATE TEMP TABLE doomed_files ON COMMIT DROP AS {_OLD_FILES}", cutoff)
        await conn.execute(f"CREATE TEMP TABLE doomed_runs ON COMMIT DROP AS {_OLD_RUNS}", cutoff)
        files = int(await conn.fetchval("SELECT count(*) FROM doomed_files"))
        runs = int(await conn.fetchval("SELECT count(*) FROM doomed_runs"))
        # (A dropped file's batches and rejects are old too: counted here.)
        batches = int(await conn.fetchval(f"SELECT count(*) FROM ({_OLD_BATCHES}) b", cutoff))
        rejects = int(
            await conn.fetchval(
                "SELECT count(*) FROM pgingest.rejects j WHERE j.at < $1"
                " OR j.file_id IN (SELECT id FROM doomed_files)",
                cutoff,
            )
        )
        if not dry_run:
            await conn.execute(f"DELETE FROM pgingest.rejects WHERE id IN ({_OLD_REJECTS})", cutoff)
            await conn.execute(
                f"DELETE FROM pgingest.file_batches WHERE (file_id, batch) IN ({_OLD_BATCHES})",
                cutoff,
            )
            # What points at the files and runs that go: the audit of schema changes keeps
            # the change, without its file or run; a newer version forgets what it replaced.
            await conn.execute(
                "UPDATE pgingest.schema_changes SET file_id = NULL"
                " WHERE file_id IN (SELECT id FROM doomed_files)"
            )
            await conn.execute(
                "UPDATE pgingest.schema_changes SET run_id = NULL"
                " WHERE run_id IN (SELECT id FROM doomed_runs)"
            )
            await conn.execute(
                "UPDATE pgingest.files SET replaces = NULL"
                " WHERE replaces IN (SELECT id FROM doomed_files)"
            )
            # Their batches and rejects go with them (ON DELETE CASCADE).
            await conn.execute(
                "DELETE FROM pgingest.files WHERE id IN (SELECT id FROM doomed_files)"
            )
            await conn.execute("DELETE FROM pgingest.runs WHERE id IN (SELECT id FROM doomed_runs)")
            crash_point("prune-deleted")
    return PruneReport(cutoff, runs, files, batches, rejects, dry_run)

"""Crash points: the process kills itself (SIGKILL) at each named step of the load protocol
(``PGINGEST_CRASH_AT``, see :data:`pgingest.config.CRASH_POINTS`), then the same command runs
again. The table must hold every row exactly once, the manifest must say the file loaded with
that many rows, and nothing of the tool's own (staging tables) may be left behind."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from pgingest.config import CRASH_POINTS
from processes import pgingest

ROWS = 5_000
BATCH = 1_000


def write_csv(path: Path, rows: int = ROWS) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(rows)))
    return path


def run_load(db, *args: str, crash: str | None = None) -> subprocess.CompletedProcess[str]:
    return pgingest("load", "--dsn", db.dsn, "--schema", db.schema, *args, crash=crash)


def leftovers(db) -> list[str]:
    """Tables of the tool's own (staging, replacement) left in the test's schema."""
    return [
        r[0]
        for r in db.fetch(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND relname LIKE '%pgingest%'",
            db.schema,
        )
    ]


KILLED_ELSEWHERE = {
    "evolved": "test_widening_killed_before_its_commit_then_run_again (below)",
    "revert-deleted": "test_revert_status.py: test_killed_revert_leaves_the_file_whole_...",
    "prune-deleted": "test_prune.py::test_a_killed_prune_removes_nothing_then_runs_again",
    "replace-loaded": "test_replace_protocol.py::test_replace_killed_then_resumed_or_run_...",
    "swap-before-commit": "test_replace_protocol.py::test_replace_killed_then_resumed_or_...",
    "swap-committed": "test_replace_protocol.py::test_replace_killed_then_resumed_or_run_...",
}
"""Points a plain append does not reach, and the test that kills the process at each."""
APPEND_POINTS = sorted(set(CRASH_POINTS) - set(KILLED_ELSEWHERE))


def test_every_crash_point_is_run_by_a_test():
    assert set(KILLED_ELSEWHERE) <= set(CRASH_POINTS)
    assert set(APPEND_POINTS) | set(KILLED_ELSEWHERE) == set(CRASH_POINTS)


@pytest.mark.parametrize("point", APPEND_POINTS)
@pytest.mark.parametrize("nth", [1, 3])
def test_append_killed_at_each_point_then_run_again(tmp_path, db, point, nth):
    src = write_csv(tmp_path / "f.csv")
    args = (str(src), "--table", "t", "--batch-size", str(BATCH), "--internal-concurrency", "1")
    crashed = run_load(db, *args, crash=f"{point}:{nth}")
    reached = crashed.returncode == -signal.SIGKILL
    if not reached:  # a point reached fewer than nth times (one file: one claim, one complete)
        assert crashed.returncode == 0, crashed.stderr
        assert nth > 1
    again = run_load(db, *args)
    assert again.returncode == 0, again.stderr
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == ROWS
    statuses = db.fetch(
        "SELECT status, rows FROM pgingest.files WHERE path = $1 AND status <> 'reverted'",
        str(src),
    )
    assert [(r["status"], r["rows"]) for r in statuses] == [("success", ROWS)]
    assert leftovers(db) == []


def test_widening_killed_before_its_commit_then_run_again(tmp_path, db):
    # The second file widens the column (a rewrite of the table, the manifest's record of
    # its identity changed in the same transaction): killed before that commits.
    narrow = write_csv(tmp_path / "a.csv", 1_000)
    wide = tmp_path / "b.csv"
    wide.write_text(
        "id,name\n" + "".join(f"{i},n{i}\n" for i in range(1_000, 1_999)) + "6000000000,x\n"
    )
    assert run_load(db, str(narrow), "--table", "t").returncode == 0
    crashed = run_load(db, str(narrow), str(wide), "--table", "t", crash="evolved")
    assert crashed.returncode == -signal.SIGKILL
    assert db.types("t")["id"] == "integer"  # the ALTER rolled back with the process
    again = run_load(db, str(narrow), str(wide), "--table", "t")
    assert again.returncode == 0, again.stderr
    assert db.types("t")["id"] == "bigint"
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == 2_000
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 2_000
    recorded = db.val(
        "SELECT bool_and(f.table_oid = i.table_oid AND f.table_node = i.table_node)"
        " FROM pgingest.files f, pgingest.table_identity($1, 't') i"
        " WHERE f.table_schema = $1 AND f.table_name = 't' AND f.status = 'success'",
        db.schema,
    )
    assert recorded
    assert leftovers(db) == []


def test_append_killed_then_replaced_then_appended_again(tmp_path, db):
    """An append killed with batches committed, then a ``--mode replace`` of the same file
    (its new table does not resume the append's attempt: it loads the file whole), then the
    append again: the file's rows once, and the last run skips it as loaded."""
    src = write_csv(tmp_path / "f.csv")
    args = (str(src), "--table", "t", "--batch-size", str(BATCH), "--internal-concurrency", "1")
    crashed = run_load(db, *args, crash="batch-committed:2")
    assert crashed.returncode == -signal.SIGKILL
    assert 0 < db.val(f'SELECT count(*) FROM "{db.schema}".t') < ROWS
    replaced = run_load(db, *args, "--mode", "replace")
    assert replaced.returncode == 0, replaced.stderr
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == ROWS
    again = run_load(db, *args)
    assert again.returncode == 0, again.stderr
    assert "already loaded" in again.stdout + again.stderr
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == ROWS
    loaded = db.fetch(
        "SELECT status, rows FROM pgingest.files WHERE path = $1 AND status = 'success'",
        str(src),
    )
    assert [(r["status"], r["rows"]) for r in loaded] == [("success", ROWS)]
    [attempt] = db.fetch(
        "SELECT status, error FROM pgingest.files WHERE path = $1 AND status <> 'success'", str(src)
    )
    assert attempt["status"] == "reverted"  # the killed append's: its rows went with the table
    assert "went with the table" in attempt["error"]
    assert leftovers(db) == []

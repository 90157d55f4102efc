"""Issue 12, cases 5 and 7: revert never lies, and status tells what the tables hold.

A file whose table is gone is marked reverted and revert says so; an interrupted file's
committed rows can be reverted by path, sha256 or run, also when its source is deleted; a
killed revert leaves the file fully loaded or fully reverted. Status puts the rows the
manifest recorded next to the rows in each table now, shows a dropped table gone, and tells a
run (or a file) whose process died from a live one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal

import asyncpg
import pytest

from integrity import csv_of, run, start, wait_for

ROWS = 5_000
BATCH = 1_000


def load_args(path) -> tuple[str, ...]:
    return (str(path), "--table", "t", "--batch-size", str(BATCH), "--internal-concurrency", "1")


def interrupted_file(tmp_path, db, rows: int = ROWS, point: str = "batch-committed:3"):
    """A file killed after some committed batches: (path, rows in the table)."""
    src = csv_of(tmp_path / "f.csv", range(rows))
    crashed = run(db.dsn, "load", *load_args(src), schema=db.schema, crash=point)
    assert crashed.returncode == -signal.SIGKILL
    committed = db.count("t")
    assert 0 < committed < rows
    return src, committed


def entry(db, path) -> asyncpg.Record:
    return db.fetch("SELECT * FROM pgingest.files WHERE path = $1 ORDER BY id DESC", str(path))[0]


def status_json(cli, db, *args: str) -> dict:
    code, out, err = cli("status", "--json", "--table", f"{db.schema}.t", *args, "--dsn", db.dsn)
    assert code == 0, err
    return json.loads(out)


def test_revert_of_a_file_whose_table_is_gone_says_so(tmp_path, load, db, cli):
    src = csv_of(tmp_path / "a.csv", range(10))
    assert load(src, table="t").ok
    db.execute(f'DROP TABLE "{db.schema}".t')
    code, out, err = cli("revert", "--file", str(src), "--dsn", db.dsn)
    assert code == 0, err
    assert f"table {db.schema}.t is gone" in out
    assert "marked it reverted" in out
    assert "removed 0 rows" not in out.splitlines()[0]
    row = entry(db, src)
    assert row["status"] == "reverted"
    assert "was gone when it was reverted" in row["error"]


@pytest.mark.parametrize("selector", ["--file", "--sha256", "--run"])
def test_interrupted_file_is_reverted_by_path_sha_or_run_its_source_deleted(
    tmp_path, db, cli, selector
):
    src, committed = interrupted_file(tmp_path, db)
    row = entry(db, src)
    assert row["status"] == "running"
    value = {
        "--file": str(src),
        "--sha256": hashlib.sha256(src.read_bytes()).hexdigest()[:12],
        "--run": str(row["run_id"]),
    }[selector]
    os.remove(src)
    code, out, err = cli("revert", selector, value, "--dsn", db.dsn)
    assert code == 0, err
    assert f"removed {committed:,} rows of {src}" in out
    assert "interrupted" in out
    assert db.count("t") == 0
    assert entry(db, src)["status"] == "reverted"
    assert status_json(cli, db)["interrupted"] == []  # nothing of it left to resume


def test_large_interrupted_file_is_found_by_its_hash(tmp_path, db, cli):
    # Over 1 MiB: hashed in the background while it loads; the hash is recorded with the
    # first batch committed after it is known, so the interrupted file has it.
    src = csv_of(tmp_path / "big.csv", range(150_000))
    assert src.stat().st_size > 1 << 20
    args = (str(src), "--table", "t", "--batch-size", "10000", "--internal-concurrency", "1")
    crashed = run(db.dsn, "load", *args, schema=db.schema, crash="batch-committed:6")
    assert crashed.returncode == -signal.SIGKILL
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    assert entry(db, src)["sha256"] == digest
    committed = db.count("t")
    code, out, err = cli("revert", "--sha256", digest[:10], "--dsn", db.dsn)
    assert code == 0, err
    assert f"removed {committed:,} rows" in out
    assert db.count("t") == 0


def test_reverted_interrupted_file_loads_again_from_its_start(tmp_path, db, cli):
    src, _ = interrupted_file(tmp_path, db)
    code, _, err = cli("revert", "--file", str(src), "--dsn", db.dsn)
    assert code == 0, err
    again = run(db.dsn, "load", *load_args(src), schema=db.schema)
    assert again.returncode == 0, again.stderr
    assert "reloaded: it was reverted" in again.stdout
    assert db.count("t") == ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == ROWS


@pytest.mark.parametrize("interrupted", [False, True], ids=["loaded", "interrupted"])
def test_killed_revert_leaves_the_file_whole_then_reverts(tmp_path, load, db, interrupted):
    if interrupted:
        src, rows = interrupted_file(tmp_path, db)
    else:
        src = csv_of(tmp_path / "f.csv", range(ROWS))
        assert load(src, table="t", batch_size=BATCH).ok
        rows = ROWS
    status = entry(db, src)["status"]
    killed = run(db.dsn, "revert", "--file", str(src), crash="revert-deleted")
    assert killed.returncode == -signal.SIGKILL
    assert db.count("t") == rows  # its transaction died with it: all rows still in
    assert entry(db, src)["status"] == status  # and the manifest says so
    again = run(db.dsn, "revert", "--file", str(src))
    assert again.returncode == 0, again.stderr
    assert f"removed {rows:,} rows" in again.stdout
    assert db.count("t") == 0
    assert entry(db, src)["status"] == "reverted"


def test_revert_refuses_a_file_being_loaded_now(tmp_path, db, cli):
    src, committed = interrupted_file(tmp_path, db)
    file_id = entry(db, src)["id"]

    async def revert_while_locked() -> tuple[int, str]:
        loader = await asyncpg.connect(db.dsn)  # as a live loader holds it
        try:
            await loader.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"pgingest.file:{file_id}"
            )
            result = await asyncio.to_thread(run, db.dsn, "revert", "--file", str(src))
            return result.returncode, result.stderr
        finally:
            await loader.close()

    code, err = asyncio.run(revert_while_locked())
    assert code == 1
    assert "loading it right now" in err
    assert db.count("t") == committed


def test_status_shows_an_interrupted_file_and_its_dead_run(tmp_path, db, cli):
    src, committed = interrupted_file(tmp_path, db)
    row = entry(db, src)
    data = status_json(cli, db)
    runs = {r["id"]: r for r in data["runs"]}
    assert runs[row["run_id"]]["status"] == "interrupted"
    assert runs[row["run_id"]]["recorded_status"] == "running"
    [gone] = [f for f in data["interrupted"] if f["id"] == row["id"]]
    assert gone["committed_rows"] == committed
    assert gone["path"] == str(src)
    [table] = data["tables"]
    assert table["files_interrupted"] == 1
    assert table["files_in_progress"] == 0
    assert table["rows_in_table"] == committed
    code, out, _ = cli("status", "--table", f"{db.schema}.t", "--dsn", db.dsn)
    assert code == 0
    assert f"run {row['run_id']}  interrupted" in out
    assert f"{committed:,} rows in {db.schema}.t" in out


def test_status_tells_a_live_run_from_a_dead_one(tmp_path, db, cli):
    folder = tmp_path / "in"
    folder.mkdir()
    first, second = csv_of(folder / "a.csv", range(10)), csv_of(folder / "b.csv", range(10, 20))
    process = start(
        db.dsn,
        "load",
        str(first),
        str(second),
        "--table",
        "t",
        "-j",
        "1",
        "--pause-every",
        "1",
        "--pause-seconds",
        "120",
        schema=db.schema,
    )
    try:

        def paused() -> bool:
            if db.val("SELECT to_regclass('pgingest.files')") is None:
                return False
            return bool(
                db.val(
                    "SELECT count(*) FROM pgingest.files WHERE table_schema = $1"
                    " AND status = 'success'",
                    db.schema,
                )
            )

        wait_for(paused, what="the first file loaded")
        [live] = status_json(cli, db)["runs"]
        assert live["status"] == "running"
    finally:
        process.kill()
        process.communicate(timeout=30)
    # The killed process's connections close; the server ends their sessions and locks.
    wait_for(
        lambda: status_json(cli, db)["runs"][0]["status"] == "interrupted",
        timeout=30,
        what="the run shown interrupted",
    )


def test_status_rows_loaded_versus_rows_in_the_table(tmp_path, load, db, cli):
    files = [csv_of(tmp_path / f"u{n}.csv", range(1_000), tag=f"v{n}") for n in range(4)]
    assert load(files, table="t", mode="upsert", pk="id").ok
    [table] = status_json(cli, db)["tables"]
    assert table["rows"] == 4_000  # written by the files, the same keys over and over
    assert table["rows_in_table"] == 1_000
    assert table["table_exists"] is True
    code, out, _ = cli("status", "--table", f"{db.schema}.t", "--dsn", db.dsn)
    assert code == 0
    assert "4,000 rows loaded (manifest), 1,000 rows in the table now" in out


def test_status_shows_a_dropped_table_gone(tmp_path, load, db, cli):
    assert load(csv_of(tmp_path / "a.csv", range(100)), table="t").ok
    db.execute(f'DROP TABLE "{db.schema}".t')
    [table] = status_json(cli, db)["tables"]
    assert table["table_exists"] is False
    assert table["rows_in_table"] is None
    assert table["rows"] == 100
    code, out, _ = cli("status", "--table", f"{db.schema}.t", "--dsn", db.dsn)
    assert code == 0
    assert "100 rows loaded (manifest), the table is GONE" in out


def test_status_counts_each_files_rows_on_request(tmp_path, load, db, cli):
    a, b = csv_of(tmp_path / "a.csv", range(30)), csv_of(tmp_path / "b.csv", range(30, 50))
    assert load([a, b], table="t").ok
    db.execute(f'DELETE FROM "{db.schema}".t WHERE id < 10')
    assert "files" not in status_json(cli, db)
    files = {f["path"]: f for f in status_json(cli, db, "--files")["files"]}
    assert (files[str(a)]["rows"], files[str(a)]["rows_in_table"]) == (30, 20)
    assert (files[str(b)]["rows"], files[str(b)]["rows_in_table"]) == (20, 20)
    code, out, _ = cli("status", "--files", "--table", f"{db.schema}.t", "--dsn", db.dsn)
    assert code == 0
    assert f"{a} (file {files[str(a)]['id']}): 30 / 20" in out

"""``pgingest prune``: old runs, batch records, rejects and the records of attempts that left
nothing go; what skip, resume and revert need stays. In a database of its own: the manifest
is database-wide."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import pytest

import pgingest
from integrity import csv_of, fresh_database, run

AGE = "100 days"


@pytest.fixture
def aged(tmp_path, pg_dsn, db_class):
    """A manifest 100 days old holding each kind of record, and a load of today."""
    with fresh_database(pg_dsn) as dsn:
        db = db_class(dsn, "public")

        def load(path, **options):
            return pgingest.load(path, dsn=dsn, table="t", **options)

        files = {
            "kept": csv_of(tmp_path / "kept.csv", range(10)),
            "rejects": tmp_path / "rejects.csv",
            "failed": tmp_path / "failed.csv",
            "reverted": tmp_path / "reverted.csv",
            "interrupted": csv_of(tmp_path / "interrupted.csv", range(1_000, 6_000)),
        }
        assert load(files["kept"]).ok
        files["rejects"].write_text("id,name\n20,a\nbad,b\n21,c\n")
        assert load(files["rejects"], on_error="skip").ok
        files["failed"].write_text("id,name\nnot a number,x\n")
        assert not load(files["failed"], on_type_change="fail").ok
        files["reverted"].write_text("id,name,extra\n30,a,x\n")  # adds a column
        assert load(files["reverted"]).ok
        asyncio.run(
            pgingest.api.revert_async(dsn=dsn, path=str(files["reverted"]), schema_changes=True)
        )
        crashed = run(
            dsn,
            "load",
            str(files["interrupted"]),
            "--table",
            "t",
            "--batch-size",
            "1000",
            "--internal-concurrency",
            "1",
            crash="batch-committed:2",
        )
        assert crashed.returncode == -signal.SIGKILL
        db.execute(
            f"UPDATE pgingest.runs SET started_at = started_at - interval '{AGE}',"
            f" finished_at = finished_at - interval '{AGE}'"
        )
        db.execute(
            f"UPDATE pgingest.files SET started_at = started_at - interval '{AGE}',"
            f" finished_at = finished_at - interval '{AGE}'"
        )
        db.execute(f"UPDATE pgingest.rejects SET at = at - interval '{AGE}'")
        files["today"] = csv_of(tmp_path / "today.csv", range(100, 110))
        assert load(files["today"]).ok
        yield db, files


def counts(db) -> dict[str, int]:
    return {
        t: db.val(f"SELECT count(*) FROM pgingest.{t}")
        for t in ("runs", "files", "file_batches", "rejects", "schema_changes")
    }


def status_of(db, path) -> list[str]:
    return [
        r[0]
        for r in db.fetch(
            "SELECT status FROM pgingest.files WHERE path = $1 ORDER BY id", str(path)
        )
    ]


def test_prune_removes_what_nothing_needs_and_keeps_the_rest(aged, cli):
    db, files = aged
    before = counts(db)
    code, out, err = cli("prune", "--older-than", "90d", "--dry-run", "--dsn", db.dsn)
    assert code == 0, err
    assert out.startswith("would remove ")
    assert counts(db) == before
    code, out, err = cli("prune", "--older-than", "90d", "--dsn", db.dsn)
    assert code == 0, err
    assert out.startswith("removed ")
    after = counts(db)
    # The failed and the reverted files' records and runs go; the rejects go (raw values);
    # the finished files' batch records go; the interrupted file keeps its batches.
    assert status_of(db, files["failed"]) == []
    assert status_of(db, files["reverted"]) == []
    assert status_of(db, files["kept"]) == ["success"]
    assert status_of(db, files["rejects"]) == ["success"]
    assert status_of(db, files["interrupted"]) == ["running"]
    assert after["rejects"] == 0
    assert after["runs"] == before["runs"] - 2
    batches = {
        r["path"].rsplit("/", 1)[-1]: r["n"]
        for r in db.fetch(
            "SELECT f.path, count(*) AS n FROM pgingest.file_batches b"
            " JOIN pgingest.files f ON f.id = b.file_id GROUP BY 1"
        )
    }
    assert batches == {"interrupted.csv": 2, "today.csv": 1}
    # The audit of schema changes stays, without the file it came from.
    assert after["schema_changes"] == before["schema_changes"]
    assert db.val("SELECT count(*) FROM pgingest.schema_changes WHERE file_id IS NULL") == 1
    # The counts said so.
    assert f"{before['runs'] - after['runs']} run(s), 2 file record(s)" in out
    # What stays still works: the skip, the resume, the revert.
    again = pgingest.load(files["kept"], dsn=db.dsn, table="t")
    assert again.files[0].message == "already loaded"
    resumed = pgingest.load(
        files["interrupted"], dsn=db.dsn, table="t", batch_size=1000, internal_concurrency=1
    )
    assert resumed.files[0].message == "resumed after 2 committed batch(es)"
    assert db.val("SELECT count(*) FROM t WHERE id >= 1000") == 5_000
    reverted = asyncio.run(pgingest.api.revert_async(dsn=db.dsn, path=str(files["rejects"])))
    assert reverted.rows == 2


def test_a_killed_prune_removes_nothing_then_runs_again(aged):
    db, _files = aged
    before = counts(db)
    killed = run(db.dsn, "prune", "--older-than", "90d", crash="prune-deleted")
    assert killed.returncode == -signal.SIGKILL
    assert counts(db) == before
    again = run(db.dsn, "prune", "--older-than", "90d")
    assert again.returncode == 0, again.stderr
    assert counts(db)["rejects"] == 0


def test_prune_keeps_a_live_run_and_recent_records(aged, cli):
    db, files = aged
    old_run = db.val(
        f"INSERT INTO pgingest.runs (started_at) VALUES (now() - interval '{AGE}') RETURNING id"
    )

    async def prune_while_alive() -> tuple[int, str]:
        conn = await asyncpg.connect(db.dsn)  # as the live run's own connection holds it
        try:
            await conn.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"pgingest.run:{old_run}"
            )
            result = await asyncio.to_thread(run, db.dsn, "prune", "--older-than", "90d")
            return result.returncode, result.stderr
        finally:
            await conn.close()

    assert asyncio.run(prune_while_alive()) == (0, "")
    assert db.val("SELECT count(*) FROM pgingest.runs WHERE id = $1", old_run) == 1
    assert status_of(db, files["today"]) == ["success"]
    code, _, err = cli("prune", "--older-than", "90d", "--dsn", db.dsn)
    assert code == 0, err
    assert db.val("SELECT count(*) FROM pgingest.runs WHERE id = $1", old_run) == 0
    code, _, err = cli("prune", "--older-than", "ninety days", "--dsn", db.dsn)
    assert code == 2
    assert "is not an age" in err

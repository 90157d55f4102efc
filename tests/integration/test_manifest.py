"""The manifest: idempotent loads, changed files, revert, status, resume bookkeeping."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq

from pgingest.manifest import store


def csv(path, rows, header="id,name"):
    path.write_text(header + "\n" + "".join(f"{i},name{i}\n" for i in rows))
    return path


def manifest(db, table):
    return db.fetch(
        "SELECT id, path, status, rows, error FROM pgingest.files"
        " WHERE table_schema = $1 AND table_name = $2 ORDER BY id",
        db.schema,
        table,
    )


def test_load_again_skips_and_renamed_copy_is_a_duplicate(tmp_path, load, db):
    src = csv(tmp_path / "a.csv", range(10))
    first = load(src, table="t")
    assert first.ok
    assert first.rows == 10
    again = load(src, table="t")
    assert [f.status for f in again.files] == ["skipped"]
    assert again.files[0].message == "already loaded"
    renamed = tmp_path / "renamed.csv"
    shutil.copy(src, renamed)
    dup = load(renamed, table="t")
    assert dup.files[0].status == "skipped"
    assert "same content already loaded" in dup.files[0].message
    assert db.count("t") == 10
    forced = load(src, table="t", force=True)
    assert forced.ok
    assert forced.rows == 10
    assert db.count("t") == 10  # the forced reload replaced its earlier copy


def test_large_files_are_hashed_in_the_background_and_recorded_right(tmp_path, load, db):
    # The run's first large file is hashed ahead of the loader, the next one from its claim
    # on: both hashes are the files' own, and a copy of either is a duplicate.
    first = csv(tmp_path / "first.csv", range(150_000))
    second = csv(tmp_path / "second.csv", range(150_000, 300_000))
    assert min(first.stat().st_size, second.stat().st_size) > 1 << 20
    report = load([first, second], table="big", concurrency=1)
    assert report.ok
    assert report.rows == 300_000
    assert 0 < report.stages["manifest"] < report.seconds  # its statements, timed apart
    recorded = db.fetch(
        "SELECT path, sha256 FROM pgingest.files WHERE table_schema = $1 AND table_name = 'big'",
        db.schema,
    )
    assert {r["path"]: r["sha256"] for r in recorded} == {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second)
    }
    copies = [shutil.copy(p, tmp_path / f"copy-{p.name}") for p in (first, second)]
    again = load(copies, table="big")
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert all("same content already loaded" in f.message for f in again.files)
    assert db.count("big") == 300_000


def test_older_bookkeeping_schema_is_brought_up_to_date(tmp_path, load, db):
    assert load(csv(tmp_path / "a.csv", range(3)), table="up").ok
    claim = "SELECT pg_get_functiondef('pgingest.claim'::regproc)"
    assert "NOT p_force" in db.val(claim)
    db.execute(db.val(claim).replace("AND NOT p_force THEN", "THEN"))  # as version 1 had it
    db.execute(f"DELETE FROM pgingest.version WHERE version >= {store.SCHEMA_VERSION}")
    assert load(csv(tmp_path / "b.csv", range(5)), table="up").ok
    assert "NOT p_force" in db.val(claim)
    assert db.val("SELECT max(version) FROM pgingest.version") == store.SCHEMA_VERSION
    assert db.count("up") == 8


def test_forced_reload_does_not_wait_for_the_content_hash(tmp_path, load, db):
    # Without lineage a reload keeps the old rows (nothing is replaced), so only the hash
    # could tell a duplicate: with --force a duplicate is loaded anyway, and nothing waits.
    src = csv(tmp_path / "a.csv", range(10))
    first = load(src, table="f", lineage=False)
    assert first.ok
    copy = shutil.copy(src, tmp_path / "copy.csv")

    async def claim(path, force, stat):
        conn = await asyncpg.connect(db.dsn)
        try:
            # A later run's claim (the run that loaded a file skips it even with --force).
            run_id = await store.start_run(conn, [str(path)], {}, "test", 0)
            return await store.claim_file(
                conn,
                path=str(path),
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                sha256=None,
                schema=db.schema,
                table="f",
                fmt=None,
                run_id=run_id,
                chunking={},
                force=force,
                on_changed="append",
                lineage=False,
            )
        finally:
            await conn.close()

    assert asyncio.run(claim(copy, False, os.stat(copy))).action == "hash"  # a duplicate?
    assert asyncio.run(claim(copy, True, os.stat(copy))).action == "load"
    assert asyncio.run(claim(src, True, os.stat(src))).action == "load"


def test_changed_file_replaces_its_old_version(tmp_path, load, db):
    src = csv(tmp_path / "daily.csv", range(5))
    assert load(src, table="d").ok
    csv(src, range(100, 103))
    report = load(src, table="d")
    assert report.ok
    assert report.rows == 3
    assert sorted(r[0] for r in db.rows("d")) == [100, 101, 102]
    statuses = [r["status"] for r in manifest(db, "d")]
    assert statuses == ["reverted", "success"]
    csv(src, range(200, 202))
    assert load(src, table="d", on_changed="append").ok
    assert db.count("d") == 5


def test_lineage_columns_and_file_ids(tmp_path, load, db):
    a = csv(tmp_path / "a.csv", range(3))
    b = csv(tmp_path / "b.csv", range(3, 5))
    assert load([a, b], table="l").ok
    cols = [c for c, _ in db.columns("l")]
    assert cols == ["id", "name", "_pgingest_file_id", "_pgingest_loaded_at"]
    ids = {r["path"]: r["id"] for r in manifest(db, "l")}
    per_file = {
        r[0]: r[1] for r in db.fetch("SELECT _pgingest_file_id, count(*) FROM l GROUP BY 1")
    }
    assert per_file == {ids[str(a)]: 3, ids[str(b)]: 2}
    assert db.val("SELECT count(*) FROM l WHERE _pgingest_loaded_at IS NULL") == 0


def test_file_id_is_right_when_connections_are_reused_across_files(tmp_path, load, db):
    # The lineage default is evaluated once per COPY: one connection loading many files in
    # turn (concurrency 1, a batch each) must stamp each file's rows with its own id.
    files = [csv(tmp_path / f"f{n}.csv", range(n * 10, n * 10 + 4)) for n in range(6)]
    for options in ({"concurrency": 1, "internal_concurrency": 1}, {"concurrency": 3}):
        db.execute("DROP TABLE IF EXISTS reuse")
        assert load(files, table="reuse", force=True, **options).ok
        ids = {r["path"]: r["id"] for r in manifest(db, "reuse") if r["status"] == "success"}
        got = {
            (r["_pgingest_file_id"], r["id"] // 10)
            for r in db.fetch("SELECT _pgingest_file_id, id FROM reuse")
        }
        assert got == {(ids[str(f)], n) for n, f in enumerate(files)}


def test_revert_file_run_and_dry_run(tmp_path, load, db, cli):
    a = csv(tmp_path / "a.csv", range(3))
    b = csv(tmp_path / "b.csv", range(3, 5))
    c = csv(tmp_path / "c.csv", range(5, 9))
    assert load([a, b], table="r").ok
    run_c = load(c, table="r")
    assert run_c.ok
    code, out, _ = cli("revert", "--file", str(a), "--dry-run", "--dsn", db.dsn)
    assert code == 0
    assert "would remove 3 rows" in out
    assert db.count("r") == 9
    code, out, _ = cli("revert", "--file", str(a), "--dsn", db.dsn)
    assert code == 0
    assert "removed 3 rows" in out
    assert sorted(x[0] for x in db.rows("r")) == list(range(3, 9))
    run_id = db.val(
        "SELECT run_id FROM pgingest.files WHERE path = $1 AND status = 'success'", str(c)
    )
    code, out, _ = cli("revert", "--run", str(run_id), "--dsn", db.dsn)
    assert code == 0
    assert "removed 4 rows" in out
    assert sorted(x[0] for x in db.rows("r")) == [3, 4]
    statuses = {r["path"]: r["status"] for r in manifest(db, "r")}
    assert statuses == {str(a): "reverted", str(b): "success", str(c): "reverted"}
    # a reverted file loads again
    assert load(a, table="r").rows == 3


def test_revert_with_schema_changes_drops_the_table_it_created(tmp_path, load, db, cli):
    src = csv(tmp_path / "new.csv", range(4))
    assert load(src, table="created").ok
    code, out, _ = cli(
        "revert", "--file", str(src), "--schema-changes", "--dry-run", "--dsn", db.dsn
    )
    assert "would undo: drop table" in out
    assert db.val("SELECT to_regclass($1)", f'"{db.schema}".created') is not None
    code, out, _ = cli("revert", "--file", str(src), "--schema-changes", "--dsn", db.dsn)
    assert code == 0, out
    assert db.val("SELECT to_regclass($1)", f'"{db.schema}".created') is None


def test_revert_without_lineage_says_why(tmp_path, load, db, cli):
    src = csv(tmp_path / "nolin.csv", range(2))
    assert load(src, table="nolin", lineage=False).ok
    assert [c for c, _ in db.columns("nolin")] == ["id", "name"]
    code, _out, err = cli("revert", "--file", str(src), "--dsn", db.dsn)
    assert code == 1
    assert "no _pgingest_file_id column" in err


def test_failed_file_leaves_nothing_and_is_retried(tmp_path, load, db):
    db.execute(f'CREATE TABLE "{db.schema}".f (id integer, name text)')
    good = "id,name\n" + "".join(f"{i},n\n" for i in range(1000))
    bad = tmp_path / "bad.csv"
    bad.write_text(good + "notanumber,n\n")
    report = load(bad, table="f", batch_size=100, internal_concurrency=2)
    assert not report.ok
    assert "line 1002" in report.failed[0].error
    assert db.count("f") == 0  # committed batches of the failed file were removed
    row = manifest(db, "f")[-1]
    assert row["status"] == "failed"
    assert "notanumber" in row["error"]
    bad.write_text(good)
    fixed = load(bad, table="f")
    assert fixed.ok
    assert db.count("f") == 1000


def test_txn_file_and_parquet_manifest(tmp_path, load, db):
    pq.write_table(pa.table({"k": list(range(50))}), tmp_path / "p.parquet", row_group_size=10)
    report = load(tmp_path / "p.parquet", table="p", txn="file", batch_size=10)
    assert report.ok
    assert db.count("p") == 50
    assert manifest(db, "p")[0]["rows"] == 50
    assert (
        db.val(
            "SELECT count(*) FROM pgingest.file_batches WHERE file_id = $1",
            manifest(db, "p")[0]["id"],
        )
        == 5
    )


def test_status_json_matches_tables(tmp_path, load, db, cli):
    a = csv(tmp_path / "s1.csv", range(7))
    bad = tmp_path / "s2.csv"
    bad.write_text("id,name\n1,x\n")
    db.execute(f'CREATE TABLE "{db.schema}".st2 (id date, name text)')
    load(a, table="st")
    load(bad, table="st2")
    code, out, _ = cli("status", "--json", "--table", f"{db.schema}.st", "--dsn", db.dsn)
    assert code == 0
    data = json.loads(out)
    tables = {(t["table_schema"], t["table_name"]): t for t in data["tables"]}
    assert tables[(db.schema, "st")]["rows"] == db.count("st") == 7
    assert tables[(db.schema, "st")]["files_loaded"] == 1
    assert any(c["change"] == "create_table" for c in data["schema_changes"])
    code, out, _ = cli("status", "--json", "--table", f"{db.schema}.st2", "--dsn", db.dsn)
    failed = json.loads(out)["failed"]
    assert failed
    assert failed[0]["path"] == str(bad)
    code, out, _ = cli("status", "--dsn", db.dsn)
    assert code == 0
    assert "Recent runs:" in out


def test_pause_and_sectional_commit(tmp_path, load, db):
    folder = tmp_path / "section"
    folder.mkdir()
    db.execute(f'CREATE TABLE "{db.schema}".sec (id integer, name text)')
    csv(folder / "1.csv", range(2))
    (folder / "2.csv").write_text("id,name\nbad,x\n")
    csv(folder / "3.csv", range(2, 4))
    report = load(folder, table="sec", concurrency=1, sectional_commit=True, on_type_change="fail")
    statuses = [f.status for f in report.files]
    assert statuses == ["loaded", "failed", "skipped"]
    assert "not started" in report.files[2].message
    paused = load(
        [csv(tmp_path / "p1.csv", range(1)), csv(tmp_path / "p2.csv", range(1, 2))],
        table="paused",
        concurrency=1,
        pause_every=1,
        pause_seconds=0.2,
    )
    assert paused.ok
    assert paused.seconds >= 0.2


def test_a_claim_is_one_statement_on_a_new_connection(tmp_path, load, db):
    # Issue 15: the claim's reply once held an integer[] column, which had the driver look its
    # type up in the catalog on each new connection (two more statements, ~10 ms a load).
    # A resumed file's committed batches still come back, as a set of batch numbers.
    assert load(csv(tmp_path / "first.csv", range(3)), table="c").ok  # the manifest exists
    src = csv(tmp_path / "a.csv", range(10))
    stat = os.stat(src)

    async def claim() -> tuple[store.Claim, list[str]]:
        conn = await asyncpg.connect(db.dsn)
        queries: list[str] = []
        try:
            run_id = await store.start_run(conn, [str(src)], {}, "test", 0)
            conn.add_query_logger(lambda record: queries.append(record.query))
            claimed = await store.claim_file(
                conn,
                path=str(src),
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                sha256=None,
                schema=db.schema,
                table="c",
                fmt="csv",
                run_id=run_id,
                chunking={},
                force=False,
                on_changed="append",
            )
            return claimed, queries
        finally:
            await conn.close()  # the file's lock goes with the session: it may resume

    first, queries = asyncio.run(claim())
    assert first.action == "load"
    assert first.done_batches == set()
    assert len(queries) == 1, queries
    db.fetch(
        "INSERT INTO pgingest.file_batches (file_id, batch, first_line, rows)"
        " VALUES ($1, 0, 2, 4), ($1, 2, 10, 2)",
        first.file_id,
    )
    again, queries = asyncio.run(claim())
    assert (again.action, again.reason) == ("load", "resume")
    assert again.file_id == first.file_id
    assert again.done_batches == {0, 2}
    assert again.done_rows == 6
    assert len(queries) == 1, queries

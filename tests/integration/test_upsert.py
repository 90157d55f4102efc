"""Upsert and merge against a real PostgreSQL: keys, last-occurrence-wins, routing across
workers and files, scheduling, NULL and missing keys, revert refusal, dry run."""

from __future__ import annotations

import asyncio
import csv
import random
from pathlib import Path

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pgingest

# Large enough (> 1 MiB) that a file gets several batch workers, small enough to stay fast.
BIG_ROWS = 40_000


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def overlapping_rows(seed: int, start: int, count: int) -> list[list[object]]:
    """``count`` rows with ids drawn from ``start .. start + count`` (so keys repeat inside
    the file) and random values."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    return [
        [start + rng.randrange(count), rng.randrange(10**6), f"v{seed}-{rng.random():.12f}"]
        for _ in range(count)
    ]


def content(db, table: str) -> list[tuple[object, ...]]:
    return db.rows(table, order_by="id")


def kill_after_batches(db, command: list[str], table: str, batches: int) -> None:
    """Run ``command`` (a load of one file with three routes) and SIGKILL it once ``batches``
    of its batches into ``table`` are committed (within 60 s); fail if it finished first."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(
        [*command, "--internal-concurrency", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def committed() -> int:
        return int(
            db.val(
                "SELECT count(*) FROM pgingest.file_batches b JOIN pgingest.files f"
                " ON f.id = b.file_id WHERE f.table_schema = $1 AND f.table_name = $2",
                db.schema,
                table,
            )
            or 0
        )

    deadline = time.monotonic() + 60
    try:
        while committed() < batches and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.fail("the load finished before it could be killed")


def test_upsert_twice_gives_the_same_table_and_rewrites_nothing(tmp_path, load, db):
    src = write_csv(tmp_path / "a.csv", ["id", "name"], [[i, f"n{i}"] for i in range(1, 501)])
    first = load(src, table="t", mode="upsert", pk="id")
    assert first.ok, first.files
    before = db.fetch(f'SELECT id, name, xmin::text AS x FROM "{db.schema}".t ORDER BY id')
    again = load(src, table="t", mode="upsert", force=True)  # the key now from the catalog
    assert again.ok, again.files
    after = db.fetch(f'SELECT id, name, xmin::text AS x FROM "{db.schema}".t ORDER BY id')
    assert [tuple(r) for r in after] == [tuple(r) for r in before]  # same rows, not rewritten
    # Not even locked: a lock would write the row's page and WAL.
    assert db.val(f"SELECT count(*) FROM \"{db.schema}\".t WHERE xmax::text <> '0'") == 0
    assert db.val(
        "SELECT n_tup_upd FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 't'",
        db.schema,
    ) in (0, None)


def test_duplicate_keys_in_one_batch_last_one_wins(tmp_path, load, db):
    rows = [[1, "a"], [2, "b"], [1, "c"], [3, "d"], [2, "e"], [1, "f"]]
    src = write_csv(tmp_path / "dups.csv", ["id", "name"], rows)
    report = load(src, table="t", mode="upsert", pk="id")
    assert report.ok, report.files
    assert content(db, "t") == [(1, "f"), (2, "e"), (3, "d")]


@pytest.mark.parametrize("txn", ["batch", "file"])
def test_duplicate_keys_across_batches_of_a_file_last_one_wins(tmp_path, load, db, txn):
    rows = [[i % 7, f"v{i}"] for i in range(100)]
    src = write_csv(tmp_path / "dups.csv", ["id", "name"], rows)
    report = load(src, table="t", mode="upsert", pk="id", batch_size=9, txn=txn)
    assert report.ok, report.files
    assert content(db, "t") == [
        (k, f"v{max(i for i in range(100) if i % 7 == k)}") for k in range(7)
    ]


def test_composite_key_and_updates_across_files(tmp_path, load, db):
    a = write_csv(tmp_path / "a.csv", ["a", "b", "v"], [[1, "x", 1], [1, "y", 2], [2, "x", 3]])
    b = write_csv(tmp_path / "b.csv", ["a", "b", "v"], [[1, "y", 20], [2, "y", 4], [1, "y", 21]])
    report = load([a, b], table="t", mode="upsert", pk="a,b")
    assert report.ok, report.files
    assert db.rows("t", order_by="a, b") == [(1, "x", 1), (1, "y", 21), (2, "x", 3), (2, "y", 4)]
    pk = db.val(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = $1::regclass"
        " AND contype = 'p'",
        f'"{db.schema}".t',
    )
    assert pk == "PRIMARY KEY (a, b)"


def test_null_key_is_a_bad_row_naming_file_line_and_column(tmp_path, load, db):
    src = tmp_path / "nullkey.csv"
    src.write_text("id,name\n1,a\n2,b\n,c\n4,d\n")
    report = load(src, table="t", mode="upsert", pk="id")
    assert not report.ok
    error = report.files[0].error or ""
    assert "nullkey.csv: line 4, column id: NULL in key column" in error
    assert db.count("t") == 0  # nothing of the file stays


@pytest.mark.parametrize("mode", ["upsert", "merge"])
@pytest.mark.parametrize("bad", ["3,c,abc", "3,c,1,extra"], ids=["bad value", "malformed"])
def test_keyed_modes_skip_a_bad_value_and_a_malformed_record(tmp_path, load, db, mode, bad):
    """README's Bad rows: under --on-error skip, upsert and merge set aside a value its column
    cannot read and a malformed record, as append does (before, they failed the file)."""
    src = tmp_path / "keyed.csv"
    src.write_text(f"id,name,n\n1,a,5\n{bad}\n4,d,9\n")
    report = load(src, table="t", mode=mode, pk="id", on_error="skip", types={"n": "integer"})
    assert report.ok, report.failed
    assert report.files[0].rejects == 1
    assert content(db, "t") == [(1, "a", 5), (4, "d", 9)]
    kept = db.fetch(
        "SELECT r.line, r.raw FROM pgingest.rejects r JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.path = $1",
        str(src.resolve()),
    )
    assert [(r["line"], r["raw"]) for r in kept] == [(3, bad)]


def test_missing_key_column_fails_before_any_write(tmp_path, load, db):
    db.execute(f'CREATE TABLE "{db.schema}".t (id int PRIMARY KEY, name text)')
    db.execute(f"INSERT INTO \"{db.schema}\".t VALUES (1, 'keep')")
    src = write_csv(tmp_path / "nokey.csv", ["name"], [["a"], ["b"]])
    report = load(src, table="t", mode="upsert", tolerant=True)
    assert not report.ok
    assert "key column(s) id" in (report.files[0].error or "")
    assert content(db, "t") == [(1, "keep")]
    claimed = db.val("SELECT count(*) FROM pgingest.files WHERE path = $1", str(src.resolve()))
    assert claimed == 0  # not even claimed in the manifest


def test_no_key_anywhere_is_a_clear_error(tmp_path, load, db):
    db.execute(f'CREATE TABLE "{db.schema}".t (id int, name text)')
    src = write_csv(tmp_path / "a.csv", ["id", "name"], [[1, "a"]])
    report = load(src, table="t", mode="upsert")
    assert "no primary key or unique constraint; give --pk" in (report.files[0].error or "")
    report = load(src, table="t", mode="upsert", pk="id")
    assert "needs a primary key, unique constraint or unique index" in (report.files[0].error or "")
    report = load(src, table="new_t", mode="upsert")
    assert "needs its key: give --pk" in (report.files[0].error or "")


def test_unique_constraint_is_the_key_when_there_is_no_primary_key(tmp_path, load, db):
    db.execute(f'CREATE TABLE "{db.schema}".t (code text UNIQUE, n int)')
    src = write_csv(tmp_path / "a.csv", ["code", "n"], [["a", 1], ["b", 2], ["a", 3]])
    assert load(src, table="t", mode="upsert").ok
    assert db.rows("t", order_by="code") == [("a", 3), ("b", 2)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_overlapping_files_in_parallel_equal_a_sequential_load(tmp_path, load, db, fmt):
    files = []
    # Three big files: 1 and 2 overlap (ids 0..60k), 3 is disjoint from both.
    for n, start in enumerate((0, 20_000, 500_000)):
        rows = overlapping_rows(n, start, BIG_ROWS)
        path = write_csv(tmp_path / f"part{n}.csv", ["id", "k", "v"], rows)
        if fmt == "parquet":
            table = pa.table(
                {
                    "id": pa.array([r[0] for r in rows], pa.int64()),
                    "k": pa.array([r[1] for r in rows], pa.int32()),
                    "v": pa.array([r[2] for r in rows]),
                }
            )
            path = tmp_path / f"part{n}.parquet"
            pq.write_table(table, path, row_group_size=10_000)
        files.append(path)
    parallel = load(
        files,
        table="par",
        mode="upsert",
        pk="id",
        concurrency=3,
        internal_concurrency=3,
        batch_size=3_000,
    )
    assert parallel.ok, parallel.files
    strategy = parallel.strategies[f"{db.schema}.par"]
    assert strategy.startswith("ordered where keys overlap: 1 of 3 files wait"), strategy
    sequential = load(files, table="seq", mode="upsert", pk="id", strategy="sequential")
    assert sequential.ok, sequential.files
    assert sequential.strategies[f"{db.schema}.seq"].startswith("sequential")
    assert db.count("par") == db.count("seq") > 2 * BIG_ROWS * 0.6
    assert content(db, "par") == content(db, "seq")
    # Each file's rows: its batches were routed over three workers.
    batches = db.val(
        "SELECT count(*) FROM pgingest.file_batches b JOIN pgingest.files f ON f.id = b.file_id"
        " WHERE f.table_schema = $1 AND f.table_name = 'par'",
        db.schema,
    )
    assert batches >= 3 * 3


def test_disjoint_files_load_in_parallel_and_say_so(tmp_path, load, db):
    a = write_csv(tmp_path / "a.csv", ["id", "v"], [[i, i] for i in range(100)])
    b = write_csv(tmp_path / "b.csv", ["id", "v"], [[i, i] for i in range(100, 200)])
    c = write_csv(tmp_path / "c.csv", ["id", "v"], [[i, -i] for i in range(50, 60)])
    report = load([a, b], table="t", mode="upsert", pk="id")
    assert report.strategies[f"{db.schema}.t"] == "parallel: 2 files, their keys are disjoint"
    report = load([c, a], table="t", mode="upsert", force=True)
    assert report.strategies[f"{db.schema}.t"].startswith("ordered where keys overlap")
    assert db.val(f'SELECT v FROM "{db.schema}".t WHERE id = 55') == 55  # a was last


def test_merge_with_delete_missing_prunes_the_files_key_range(tmp_path, load, db, pg_dsn):
    version = asyncio.run(_server_version(pg_dsn))
    rows = [[i, f"old{i}"] for i in range(1, 101)]
    base = write_csv(tmp_path / "base.csv", ["id", "name"], rows)
    assert load(base, table="t", mode="upsert", pk="id").ok
    snapshot = [[i, f"new{i}"] for i in range(20, 61) if i != 30] + [[25, "last"]]
    snap = write_csv(tmp_path / "snap.csv", ["id", "name"], snapshot)
    if version < 150000:
        with pytest.raises(pgingest.ConfigError, match="--mode merge needs PostgreSQL 15"):
            load(snap, table="t", mode="merge", delete_missing=True)
        return
    report = load(snap, table="t", mode="merge", delete_missing=True)
    assert report.ok, report.files
    got = dict(content(db, "t"))
    assert 30 not in got  # in the range [20, 60], not in the file: deleted
    assert got[25] == "last"
    assert got[20] == "new20"
    assert got[60] == "new60"
    assert got[19] == "old19"
    assert got[61] == "old61"
    assert len(got) == 99
    assert (
        db.val(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'pgingest'"
            " AND tablename LIKE 'merge_keys_%'"
        )
        == 0
    )


async def _server_version(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("SHOW server_version_num"))
    finally:
        await conn.close()


def test_merge_without_delete_missing_updates_and_inserts(tmp_path, load, db):
    a = write_csv(tmp_path / "a.csv", ["id", "name"], [[1, "a"], [2, "b"]])
    b = write_csv(tmp_path / "b.csv", ["id", "name"], [[2, "B"], [3, "c"], [3, "C"]])
    assert load(a, table="t", mode="upsert", pk="id").ok
    if asyncio.run(_server_version(db.dsn)) < 150000:
        with pytest.raises(pgingest.ConfigError, match="PostgreSQL 15 or newer"):
            load(b, table="t", mode="merge")
        return
    report = load(b, table="t", mode="merge")
    assert report.ok, report.files
    assert content(db, "t") == [(1, "a"), (2, "B"), (3, "C")]


def test_revert_refuses_an_upserted_file(tmp_path, load, db, cli):
    src = write_csv(tmp_path / "a.csv", ["id", "name"], [[1, "a"]])
    assert load(src, table="t", mode="upsert", pk="id").ok
    code, _out, err = cli("revert", "--dsn", db.dsn, "--file", str(src))
    assert code == 1
    assert "loaded with --mode upsert" in err
    assert db.count("t") == 1


def test_dry_run_shows_mode_key_strategy_and_rows(tmp_path, db, cli):
    src = write_csv(tmp_path / "a.csv", ["id", "name"], [[i, "x"] for i in range(1000)])
    code, out, _err = cli(
        "load", str(src), "--table", "t", "--mode", "upsert", "--pk", "id", "--dry-run"
    )
    assert code == 0, out
    assert "mode: upsert, key (id)" in out
    assert "strategy: parallel" in out
    assert "rows: ~1,000 (estimated)" in out
    assert db.val("SELECT to_regclass($1)", f'"{db.schema}".t') is None


def test_cli_modes_and_env(tmp_path, db, cli, monkeypatch):
    src = write_csv(tmp_path / "a.csv", ["id", "name"], [[1, "a"], [1, "b"]])
    monkeypatch.setenv("PGINGEST_MODE", "upsert")
    monkeypatch.setenv("PGINGEST_PK", "id")
    code, out, err = cli("load", str(src), "--table", "t")
    assert code == 0, out + err
    assert content(db, "t") == [(1, "b")]
    code, _out, err = cli("load", str(src), "--table", "t", "--delete-missing")
    assert code == 2
    assert "--delete-missing needs --mode merge" in err


def test_library_rejects_unknown_mode():
    with pytest.raises(pgingest.ConfigError, match="unknown mode"):
        pgingest.LoadOptions(mode="overwrite")  # type: ignore[arg-type]


def test_killed_upsert_resumed_with_fewer_workers_equals_a_sequential_load(tmp_path, load, db):
    import subprocess
    import sys

    rows = overlapping_rows(7, 0, 60_000)  # keys repeat across the whole file
    src = write_csv(tmp_path / "big.csv", ["id", "k", "v"], rows)
    reference = load(src, table="ref", mode="upsert", pk="id", strategy="sequential")
    assert reference.ok, reference.files
    args = ["--dsn", db.dsn, "--schema", db.schema, str(src), "--table", "t", "--mode", "upsert"]
    args += ["--pk", "id", "--batch-size", "500"]
    kill_after_batches(db, [sys.executable, "-m", "pgingest", "load", *args], "t", 12)
    assert db.count("t") > 0
    # The routes (3) are the file's for life; one worker now serves all of them, in order.
    again = subprocess.run(
        [sys.executable, "-m", "pgingest", "load", *args, "--internal-concurrency", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    manifest = db.fetch(
        "SELECT status, rows FROM pgingest.files WHERE table_schema = $1 AND table_name = 't'",
        db.schema,
    )
    assert [tuple(r) for r in manifest] == [("success", 60_000)]  # resumed, not started over
    assert content(db, "t") == content(db, "ref")


def test_merge_on_a_key_without_a_unique_index(tmp_path, load, db, pg_dsn):
    old_server = asyncio.run(_server_version(pg_dsn)) < 150000
    db.execute(f'CREATE TABLE "{db.schema}".t (code text, n int)')
    db.execute(f"INSERT INTO \"{db.schema}\".t VALUES ('a', 1)")
    src = write_csv(tmp_path / "a.csv", ["code", "n"], [["a", 2], ["b", 3]])
    if old_server:
        with pytest.raises(pgingest.ConfigError, match="PostgreSQL 15 or newer"):
            load(src, table="t", mode="merge", pk="code")
        return
    report = load(src, table="t", mode="merge", pk="code")
    assert report.ok, report.files
    assert db.rows("t", order_by="code") == [("a", 2), ("b", 3)]


def test_keys_written_differently_are_one_key_for_the_scheduler(tmp_path, load, db):
    a = write_csv(tmp_path / "a.csv", ["id", "v"], [[i, "a"] for i in range(1, 51)])
    b = tmp_path / "b.csv"
    b.write_text("id,v\n007,b\n" + "".join(f"{i},b\n" for i in range(100, 150)))
    report = load([a, b], table="t", mode="upsert", pk="id")
    assert report.ok, report.files
    assert report.strategies[f"{db.schema}.t"].startswith("ordered where keys overlap")
    assert db.val(f'SELECT v FROM "{db.schema}".t WHERE id = 7') == "b"

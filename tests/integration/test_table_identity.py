"""Issue 12, case 4: the manifest knows the table each file loaded into.

A table dropped, recreated or truncated since its files loaded gets them again, and the load
says why; a table rewritten or restored with its rows (VACUUM FULL, CLUSTER, a dump and
restore: new storage, new oid, the same rows) does not get them twice. pgingest's own
rewrites record the new identity in their own transaction.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import asyncpg
import pytest

from integrity import csv_of, fresh_database, run, script, start, together, wait_for
from pgingest.manifest.schema import SCHEMA_VERSION


def two_files(folder: Path) -> list[Path]:
    folder.mkdir(exist_ok=True)
    return [csv_of(folder / "a.csv", range(30)), csv_of(folder / "b.csv", range(30, 50))]


def statuses(db, table: str = "t") -> list[tuple[str, str, str | None]]:
    return [
        (Path(r["path"]).name, r["status"], r["error"])
        for r in db.fetch(
            "SELECT path, status, error FROM pgingest.files WHERE table_schema = $1"
            " AND table_name = $2 ORDER BY id",
            db.schema,
            table,
        )
    ]


def identity_is_recorded(db, table: str = "t") -> bool:
    """Every loaded file of the table records the table as it is now."""
    return bool(
        db.val(
            "SELECT bool_and(f.table_oid = i.table_oid AND f.table_node = i.table_node)"
            " FROM pgingest.files f, pgingest.table_identity($1, $2) i"
            " WHERE f.table_schema = $1 AND f.table_name = $2 AND f.status = 'success'",
            db.schema,
            table,
        )
    )


def ids(db, table: str = "t") -> list[int]:
    return [r[0] for r in db.fetch(f'SELECT id FROM "{db.schema}".{table} ORDER BY id')]


@pytest.mark.parametrize("change", ["DROP TABLE {t}", "TRUNCATE {t}", "recreate"])
def test_table_dropped_truncated_or_recreated_gets_its_files_again(tmp_path, load, db, change):
    files = two_files(tmp_path / "in")
    assert load(tmp_path / "in", table="t").ok
    name = f'"{db.schema}".t'
    if change == "recreate":
        db.execute(f"DROP TABLE {name}")
        db.execute(f"CREATE TABLE {name} (id integer, name text)")
    else:
        db.execute(change.format(t=name))
    again = load(tmp_path / "in", table="t")
    assert [f.status for f in again.files] == ["loaded", "loaded"]
    why = "is gone" if change.startswith("DROP") else "truncated or recreated"
    assert all(f.message.startswith("reloaded: ") and why in f.message for f in again.files), [
        f.message for f in again.files
    ]
    assert ids(db) == list(range(50))
    assert [s for _, s, _ in statuses(db)] == ["reverted"] * 2 + ["success"] * 2
    assert all(why in (e or "") for _, s, e in statuses(db) if s == "reverted")
    assert identity_is_recorded(db)
    # and then it is the table again: nothing more
    third = load(tmp_path / "in", table="t")
    assert [f.status for f in third.files] == ["skipped", "skipped"]
    assert len(ids(db)) == 50
    assert files  # the same two files all along


def test_the_command_line_says_why_a_file_loads_again(tmp_path, load, db, cli):
    two_files(tmp_path / "in")
    assert load(tmp_path / "in", table="t").ok
    db.execute(f'TRUNCATE "{db.schema}".t')
    code, out, _ = cli("load", str(tmp_path / "in"), "--table", "t")
    assert code == 0
    assert out.count("  reloaded: its rows are gone from") == 2
    assert "2 reloaded file(s)" in out


@pytest.mark.parametrize(
    "rewrite",
    [
        "VACUUM FULL {t}",
        "CLUSTER {t} USING t_id",
        # A dump and restore: another table (new oid and storage) with the same rows.
        "CREATE TABLE {t}_copy (LIKE {t} INCLUDING ALL); INSERT INTO {t}_copy SELECT * FROM {t};"
        " DROP TABLE {t}; ALTER TABLE {t}_copy RENAME TO t",
    ],
    ids=["vacuum-full", "cluster", "restore"],
)
def test_table_rewritten_or_restored_with_its_rows_is_not_loaded_twice(tmp_path, load, db, rewrite):
    two_files(tmp_path / "in")
    assert load(tmp_path / "in", table="t").ok
    name = f'"{db.schema}".t'
    db.execute(f"CREATE INDEX t_id ON {name} (id)")
    before = db.val("SELECT table_node FROM pgingest.table_identity($1, 't')", db.schema)
    script(db.dsn, rewrite.format(t=name))
    assert db.val("SELECT table_node FROM pgingest.table_identity($1, 't')", db.schema) != before
    again = load(tmp_path / "in", table="t")
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert ids(db) == list(range(50))
    assert [s for _, s, _ in statuses(db)] == ["success", "success"]
    assert identity_is_recorded(db)  # checked once, recorded: the next claim does no check


def test_keyed_table_restored_keeps_overwritten_files_loaded(tmp_path, load, db):
    # b.csv overwrites every key a.csv wrote: a.csv has no rows left by lineage. After a
    # restore it must not be applied again over b.csv's newer values.
    a = csv_of(tmp_path / "a.csv", range(10), tag="old")
    b = csv_of(tmp_path / "b.csv", range(10), tag="new")
    assert load([a, b], table="k", mode="upsert", pk="id", strategy="ordered").ok
    name = f'"{db.schema}".k'
    script(
        db.dsn,
        f"CREATE TABLE {name}_copy (LIKE {name} INCLUDING ALL);"
        f" INSERT INTO {name}_copy SELECT * FROM {name}; DROP TABLE {name};"
        f" ALTER TABLE {name}_copy RENAME TO k",
    )
    again = load([a, b], table="k", mode="upsert", pk="id", strategy="ordered")
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert db.rows("k") == [(i, f"new{i}") for i in range(10)]
    assert identity_is_recorded(db, "k")


def test_keyed_table_truncated_gets_its_files_again_in_order(tmp_path, load, db):
    a = csv_of(tmp_path / "a.csv", range(10), tag="old")
    b = csv_of(tmp_path / "b.csv", range(5, 10), tag="new")
    assert load([a, b], table="k", mode="upsert", pk="id").ok
    db.execute(f'TRUNCATE "{db.schema}".k')
    again = load([a, b], table="k", mode="upsert", pk="id")
    assert [f.status for f in again.files] == ["loaded", "loaded"]
    expected = [(i, f"old{i}") for i in range(5)] + [(i, f"new{i}") for i in range(5, 10)]
    assert db.rows("k") == expected


def test_widening_records_the_new_identity_in_its_own_transaction(tmp_path, load, db):
    first = csv_of(tmp_path / "a.csv", range(5))
    assert load(first, table="w").ok
    node = db.val("SELECT table_node FROM pgingest.table_identity($1, 'w')", db.schema)
    wide = tmp_path / "b.csv"
    wide.write_text("id,name\n5,x\n6000000000,y\n")  # integer -> bigint: a rewrite
    report = load(wide, table="w")
    assert report.ok
    assert report.files[0].schema_changes == ["column id integer -> bigint"]
    assert db.val("SELECT table_node FROM pgingest.table_identity($1, 'w')", db.schema) != node
    assert identity_is_recorded(db, "w")  # both files: the first was restamped by the ALTER
    again = load([first, wide], table="w")
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert db.count("w") == 7


def test_without_lineage_an_emptied_or_dropped_table_is_detected(tmp_path, load, db):
    two_files(tmp_path / "in")
    assert load(tmp_path / "in", table="t", lineage=False).ok
    name = f'"{db.schema}".t'
    db.execute(f"TRUNCATE {name}")
    again = load(tmp_path / "in", table="t", lineage=False)
    assert [f.status for f in again.files] == ["loaded", "loaded"]
    assert ids(db) == list(range(50))
    db.execute(f"DROP TABLE {name}")
    third = load(tmp_path / "in", table="t", lineage=False)
    assert [f.status for f in third.files] == ["loaded", "loaded"]
    assert ids(db) == list(range(50))


def test_without_lineage_a_refilled_table_cannot_be_told_apart(tmp_path, load, db):
    # The documented limit: rows of unknown origin in a table whose storage changed. Nothing
    # tells whether they are the files' (a restore) or others': the files stay loaded.
    two_files(tmp_path / "in")
    assert load(tmp_path / "in", table="t", lineage=False).ok
    name = f'"{db.schema}".t'
    db.execute(f"TRUNCATE {name}")
    db.execute(f"INSERT INTO {name} VALUES (1000, 'someone else')")
    again = load(tmp_path / "in", table="t", lineage=False)
    assert [f.status for f in again.files] == ["skipped", "skipped"]
    assert ids(db) == [1000]


def test_partitioned_table_truncated_gets_its_files_again(tmp_path, load, db):
    two_files(tmp_path / "in")
    name = f'"{db.schema}".p'
    db.execute(f"CREATE TABLE {name} (id integer, name text) PARTITION BY RANGE (id)")
    db.execute(f'CREATE TABLE "{db.schema}".p_low PARTITION OF {name} FOR VALUES FROM (0) TO (40)')
    db.execute(
        f'CREATE TABLE "{db.schema}".p_high PARTITION OF {name} FOR VALUES FROM (40) TO (99)'
    )
    assert load(tmp_path / "in", table="p").ok
    assert load(tmp_path / "in", table="p").files[0].status == "skipped"
    db.execute(f"TRUNCATE {name}")
    again = load(tmp_path / "in", table="p")
    assert [f.status for f in again.files] == ["loaded", "loaded"]
    assert ids(db, "p") == list(range(50))


def test_two_processes_after_a_truncate_load_each_file_once(tmp_path, db):
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(6):
        csv_of(folder / f"f{n}.csv", range(n * 100, n * 100 + 100))
    assert run(db.dsn, "load", str(folder), "--table", "t", schema=db.schema).returncode == 0
    db.execute(f'TRUNCATE "{db.schema}".t')
    results = together(db.dsn, 2, "load", str(folder), "--table", "t", schema=db.schema)
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert ids(db) == list(range(600))


def test_interrupted_file_whose_table_was_truncated_starts_over(tmp_path, db):
    src = csv_of(tmp_path / "f.csv", range(5_000))
    args = (str(src), "--table", "t", "--batch-size", "1000", "--internal-concurrency", "1")
    crashed = run(db.dsn, "load", *args, schema=db.schema, crash="batch-committed:3")
    assert crashed.returncode == -signal.SIGKILL
    assert 0 < db.count("t") < 5_000
    db.execute(f'TRUNCATE "{db.schema}".t')
    again = run(db.dsn, "load", *args, schema=db.schema)
    assert again.returncode == 0, again.stderr
    assert ids(db) == list(range(5_000))
    rows = db.fetch(
        "SELECT status, rows FROM pgingest.files WHERE path = $1 AND status <> 'reverted'",
        str(src),
    )
    assert [(r["status"], r["rows"]) for r in rows] == [("success", 5_000)]


def test_table_truncated_while_a_file_loads_gets_it_again(tmp_path, db):
    src = csv_of(tmp_path / "f.csv", range(100_000))
    args = (str(src), "--table", "t", "--batch-size", "1000", "--internal-concurrency", "1")
    process = start(db.dsn, "load", *args, schema=db.schema)

    def committed() -> int:
        if db.val("SELECT to_regclass($1)", f'"{db.schema}".t') is None:
            return 0
        return db.count("t")

    wait_for(lambda: committed() >= 10_000, what="some committed batches")
    # A TRUNCATE between two of its batches, while the file is still loading.
    status = asyncio.run(_truncate_while_running(db.dsn, db.schema, str(src)))
    assert status == "running"
    _out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    assert "changed while it loaded" in err
    assert ids(db)[:3] == [0, 1, 2]
    assert db.count("t") == 100_000
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 100_000


async def _truncate_while_running(dsn: str, schema: str, path: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(f'LOCK TABLE "{schema}".t IN ACCESS EXCLUSIVE MODE')
            status = await conn.fetchval(
                "SELECT status FROM pgingest.files WHERE path = $1 ORDER BY id DESC LIMIT 1", path
            )
            await conn.execute(f'TRUNCATE "{schema}".t')
        return str(status)
    finally:
        await conn.close()


def test_version_2_manifest_is_upgraded_with_the_identities_it_can_know(tmp_path, pg_dsn, db_class):
    # A manifest as version 2 left it: the file of table `kept` is there, the table of
    # `dropped` is gone. The upgrade records the first's identity and the next load finds
    # the second's table gone.
    v2 = (Path(__file__).parent.parent / "data" / "manifest_v2.sql").read_text()
    kept = csv_of(tmp_path / "kept.csv", range(3))
    dropped = csv_of(tmp_path / "dropped.csv", range(3, 5))
    with fresh_database(pg_dsn) as dsn:
        db = db_class(dsn, "public")
        script(dsn, v2)
        script(
            dsn,
            "CREATE TABLE public.kept (id integer, name text, _pgingest_file_id bigint,"
            " _pgingest_loaded_at timestamptz DEFAULT now());"
            " INSERT INTO public.kept VALUES (0, 'n0', 1), (1, 'n1', 1), (2, 'n2', 1)",
        )
        db.execute("INSERT INTO pgingest.runs (id, status, options) VALUES (1, 'success', '{}')")
        for file_id, path, table, rows in ((1, kept, "kept", 3), (2, dropped, "dropped", 2)):
            stat = path.stat()
            db.fetch(
                "INSERT INTO pgingest.files (id, run_id, path, sha256, size, mtime_ns,"
                " table_schema, table_name, status, rows) VALUES"
                " ($1, 1, $2, $3, $4, $5, 'public', $6, 'success', $7)",
                file_id,
                str(path),
                uuid.uuid4().hex,
                stat.st_size,
                stat.st_mtime_ns,
                table,
                rows,
            )
        script(
            dsn,
            "SELECT setval('pgingest.files_id_seq', 2); SELECT setval('pgingest.runs_id_seq', 1)",
        )
        result = run(dsn, "load", str(kept), "--table", "kept")
        assert result.returncode == 0, result.stderr
        assert "skipped: already loaded" in result.stdout
        assert db.val("SELECT max(version) FROM pgingest.version") == SCHEMA_VERSION
        assert db.val(
            "SELECT f.table_oid = i.table_oid AND f.table_node = i.table_node AND f.lineage"
            " FROM pgingest.files f, pgingest.table_identity('public', 'kept') i WHERE f.id = 1"
        )
        result = run(dsn, "load", str(dropped), "--table", "dropped")
        assert result.returncode == 0, result.stderr
        assert "reloaded: its table public.dropped is gone" in result.stdout
        assert db.count("dropped") == 2
        assert db.val("SELECT status FROM pgingest.files WHERE id = 2") == "reverted"


def test_the_common_path_reads_no_rows_of_the_table(tmp_path, load, db):
    # Skipping loaded files and appending new ones checks no row of the table: its scan
    # counter does not move. After a TRUNCATE the check reads the table once (the control).
    a, b = two_files(tmp_path / "in")
    assert load(a, table="t").ok

    def scans() -> int:
        # A backend reports its statistics as it exits, before it leaves pg_stat_activity:
        # once the loads' connections are gone, their scans are counted.
        wait_for(
            lambda: (
                not db.val(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                    " AND application_name NOT LIKE 'psql%'"
                )
            ),
            timeout=30,
            what="the loads' connections closed",
        )
        return int(
            db.val(
                "SELECT seq_scan + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                " WHERE schemaname = $1 AND relname = 't'",
                db.schema,
            )
        )

    before = scans()
    report = load([a, b], table="t")
    assert [f.status for f in report.files] == ["skipped", "loaded"]
    assert scans() == before
    db.execute(f'TRUNCATE "{db.schema}".t')
    truncated = scans()
    assert [f.status for f in load([a, b], table="t").files] == ["loaded", "loaded"]
    assert scans() > truncated  # the check after the TRUNCATE read the table

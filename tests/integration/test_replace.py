"""``--mode replace``: the new content is loaded into a new table and swapped in atomically;
readers see the old table or the new one, never a half-loaded one."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import asyncpg

import pgingest


def write_csv(path: Path, start: int, count: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "v"])
        writer.writerows([i, i % 7] for i in range(start, start + count))
    return path


def test_replace_while_a_reader_loops_never_shows_a_partial_table(tmp_path, load, db):
    name = f'"{db.schema}".t'
    first = write_csv(tmp_path / "old.csv", 0, 5_000)
    assert load(first, table="t").ok
    db.execute(f"ALTER TABLE {name} ADD PRIMARY KEY (id)")
    db.execute(f"ALTER TABLE {name} ADD CONSTRAINT v_small CHECK (v < 100)")
    db.execute(f"CREATE INDEX t_v ON {name} (v)")
    db.execute(f"GRANT SELECT ON {name} TO PUBLIC")
    # Two files (one big enough for two workers, batches small): many commits into the new table.
    files = [
        write_csv(tmp_path / "new1.csv", 0, 60_000),
        write_csv(tmp_path / "new2.csv", 60_000, 2_000),
    ]

    async def main() -> tuple[pgingest.LoadReport, set[int]]:
        seen: set[int] = set()
        done = asyncio.Event()

        async def reader() -> None:
            conn = await asyncpg.connect(db.dsn)
            try:
                while not done.is_set():
                    seen.add(await conn.fetchval(f"SELECT count(*) FROM {name}"))
                    await asyncio.sleep(0)
                seen.add(await conn.fetchval(f"SELECT count(*) FROM {name}"))
            finally:
                await conn.close()

        task = asyncio.create_task(reader())
        try:
            report = await pgingest.load_async(
                files, dsn=db.dsn, schema=db.schema, table="t", mode="replace", batch_size=5_000
            )
        finally:
            done.set()
            await task
        return report, seen

    report, seen = asyncio.run(main())
    assert report.ok, report.files
    assert seen <= {5_000, 62_000}, seen  # the old table or the new one, nothing between
    assert 62_000 in seen
    assert db.count("t") == 62_000
    assert report.strategies[f"{db.schema}.t"].startswith("replaced atomically by 2 file(s)")
    indexes = {
        r[0]
        for r in db.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 't'", db.schema
        )
    }
    assert indexes == {"t_pkey", "t_v"}
    checks = db.val(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND conname = 'v_small'",
        name,
    )
    assert checks == 1
    assert db.val("SELECT has_table_privilege('public', $1, 'SELECT')", name)
    statuses = [
        tuple(r)
        for r in db.fetch(
            "SELECT path, status FROM pgingest.files WHERE table_schema = $1 ORDER BY id", db.schema
        )
    ]
    assert statuses[0] == (str(first.resolve()), "reverted")
    assert [s for _, s in statuses[1:]] == ["success", "success"]
    leftovers = db.val(
        "SELECT count(*) FROM pg_tables WHERE schemaname = $1 AND tablename LIKE '%pgingest_new%'",
        db.schema,
    )
    assert leftovers == 0


def test_replace_keeps_the_old_table_when_a_file_fails(tmp_path, load, db):
    first = write_csv(tmp_path / "old.csv", 0, 100)
    assert load(first, table="t").ok
    good = write_csv(tmp_path / "good.csv", 0, 10)
    bad = tmp_path / "bad.csv"
    # a stray word among numbers: a bad row (one word in two would make the column text)
    bad.write_text("id,v\n1,2\n2,2\n3,2\nnot-a-number,3\n")
    report = load([good, bad], table="t", mode="replace")
    assert not report.ok
    assert db.count("t") == 100
    assert "abandoned" in report.strategies[f"{db.schema}.t"]
    assert db.val("SELECT count(*) FROM pg_tables WHERE schemaname = $1", db.schema) == 1
    again = load([good], table="t", mode="replace")  # a re-run loads the file again
    assert again.ok, again.files
    assert db.count("t") == 10


def test_replace_of_a_missing_table_creates_it(tmp_path, load, db):
    report = load(write_csv(tmp_path / "a.csv", 0, 10), table="fresh", mode="replace")
    assert report.ok, report.files
    assert db.count("fresh") == 10


def test_replace_refuses_a_table_a_view_depends_on(tmp_path, load, db):
    assert load(write_csv(tmp_path / "old.csv", 0, 10), table="t").ok
    db.execute(f'CREATE VIEW "{db.schema}".v AS SELECT id FROM "{db.schema}".t')
    report = load(write_csv(tmp_path / "new.csv", 0, 20), table="t", mode="replace")
    assert not report.ok
    assert "depend(s) on it" in (report.files[0].error or "")
    assert db.count("t") == 10

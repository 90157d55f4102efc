"""Several ``pgingest`` processes given the same path list at once (issue 12's concurrency
matrix): 2 and 3 processes x append / upsert / merge / replace x three kinds of files, each
kind a folder loaded into its own table (``--table-from folder``):

- ``same``: distinct files, disjoint keys;
- ``overlap``: keys shared across files (a large first file, two small later ones inside its
  key range): for upsert and merge the last file wins, so a later file must wait for the
  earlier ones it overlaps, whichever process loads them;
- ``samesize``: files of one byte size, over 1 MiB (their content hash is known only while
  they load).

Every table must equal what one sequential load of the same path list makes, each file's rows
exactly once; of several replaces, one runs and the others are refused.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
from pathlib import Path

import asyncpg
import pytest

import pgingest
from processes import race

TABLES = ("overlap", "same", "samesize")
SAME_SIZE = ("a", "b", "c", "d")
BATCH = 1_000


def write(path: Path, rows: range, tag: str, width: int = 0, pad: int = 0) -> None:
    """``id,v,src`` rows; ``width`` pads the numbers so that files have one byte size, ``pad``
    makes each row that much longer (a large file of few rows)."""
    src = tag + "." * pad
    lines = [f"{i:0{width}d},{(i * 7) % 1000:0{width}d},{src}\n" for i in rows]
    path.write_text("id,v,src\n" + "".join(lines))


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """The folder the processes load, and a folder of the tables' earlier content."""
    root, old = tmp_path / "data", tmp_path / "old"
    for folder in (*[root / t for t in TABLES], *[old / t for t in TABLES]):
        folder.mkdir(parents=True)
    write(root / "same" / "a.csv", range(1_000), "a")
    write(root / "same" / "b.csv", range(1_000, 2_000), "b")
    write(root / "same" / "c.csv", range(2_000, 3_000), "c")
    # b and c update keys of a's last batches: loaded before a finishes, a would undo them.
    write(root / "overlap" / "a.csv", range(10_000), "a")
    write(root / "overlap" / "b.csv", range(7_000, 7_200), "b")
    write(root / "overlap" / "c.csv", range(9_000, 13_000), "c")
    # b has many short rows (it loads for a while), the others few long ones; all one size.
    first = 0
    for name in SAME_SIZE:
        rows, pad = (10_000, 100) if name == "b" else (1_100, 1_000)
        write(root / "samesize" / f"{name}.csv", range(first, first + rows), name, 7, pad)
        first += rows
    same = [root / "samesize" / f"{name}.csv" for name in SAME_SIZE]
    size = max(p.stat().st_size for p in same)
    for path in same:  # the last row's src longer, to the same size
        text = path.read_text()
        path.write_text(text[:-1] + "." * (size - len(text.encode())) + "\n")
    sizes = {p.stat().st_size for p in (root / "samesize").iterdir()}
    assert len(sizes) == 1
    assert sizes.pop() > 1 << 20
    for table in TABLES:  # the tables' content before the race
        write(old / table / "old.csv", range(900_000, 900_050), "old")
    return root, old


def options(mode: str) -> dict[str, object]:
    keyed = {"pk": ("id",)} if mode in ("upsert", "merge") else {}
    return {"table_from": "folder", "batch_size": BATCH, "mode": mode, **keyed}


def command(db, schema: str, root: Path, mode: str) -> list[str]:
    args = ["load", str(root), "--dsn", db.dsn, "--schema", schema, "--table-from", "folder"]
    # Two files at once: a same-size file is claimed while one loads and another is loaded.
    args += ["--mode", mode, "--batch-size", str(BATCH), "-j", "2"]
    if mode in ("upsert", "merge"):
        args += ["--pk", "id"]
    if mode == "replace":  # the winner holds its tables a while: the others meet it
        args += ["--pause-every", "5", "--pause-seconds", "1"]
    return args


def table_rows(db, schema: str, table: str) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in db.fetch(f'SELECT id, v, src FROM "{schema}"."{table}" ORDER BY id, v, src')
    ]


async def _create_schema(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
def reference(db):
    """A second schema, for the sequential load the processes' result must equal."""
    schema = f"{db.schema}_ref"
    asyncio.run(_create_schema(db.dsn, f'CREATE SCHEMA "{schema}"'))
    yield schema
    asyncio.run(_create_schema(db.dsn, f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.mark.parametrize("mode", ["append", "upsert", "merge", "replace"])
@pytest.mark.parametrize("processes", [2, 3])
def test_processes_at_once_load_as_one_sequential_load(
    tree, db, reference, tmp_path, mode, processes
):
    root, old = tree
    for schema in (db.schema, reference):
        before = pgingest.load([str(old)], dsn=db.dsn, schema=schema, **options(mode))
        assert before.ok, before.files
    expected = pgingest.load(
        [str(root)],
        dsn=db.dsn,
        schema=reference,
        strategy="sequential",
        concurrency=1,
        **options(mode),
    )
    assert expected.ok, expected.files

    runs = race([command(db, db.schema, root, mode)] * processes, tmp_path)

    for code, out, err in runs:
        assert code in (0, 1), out + err
    succeeded = [r for r in runs if r[0] == 0]
    if mode == "replace":
        # A replace refuses a table another replace holds, naming that run. (A process the
        # machine started too late to meet the others may replace after them: never during.)
        done = db.fetch(
            "SELECT id, started_at, finished_at FROM pgingest.runs WHERE options->>'schema' = $1"
            " AND status = 'success' AND options->>'mode' = 'replace' AND paths->>0 = $2"
            " ORDER BY started_at",
            db.schema,
            str(root),
        )
        assert len(done) == len(succeeded) >= 1
        for earlier, later in itertools.pairwise(done):
            assert earlier["finished_at"] <= later["started_at"], done
        refused = [err for code, _, err in runs if code == 1]
        assert refused, runs
        winners = "|".join(str(r["id"]) for r in done)
        for err in refused:
            assert re.search(rf"is being replaced by run ({winners}) \(pid \d+", err), err
    else:
        assert len(succeeded) == processes, runs
    for table in TABLES:
        assert table_rows(db, db.schema, table) == table_rows(db, reference, table), table
    # Each file once in the manifest, loaded; nothing left of the tool's own.
    loaded = db.fetch(
        "SELECT table_name, path, count(*) AS n FROM pgingest.files"
        " WHERE table_schema = $1 AND status = 'success' GROUP BY 1, 2",
        db.schema,
    )
    names = {"overlap": "abc", "same": "abc", "samesize": "".join(SAME_SIZE)}
    assert sorted((r["table_name"], Path(r["path"]).name, r["n"]) for r in loaded) == sorted(
        [(t, f"{n}.csv", 1) for t in TABLES for n in names[t]]
        + ([] if mode == "replace" else [(t, "old.csv", 1) for t in TABLES])
    )
    left = db.val(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND relname LIKE '%pgingest%'",
        db.schema,
    )
    assert left == 0


def test_lock_wait_bounds_the_wait_for_another_process(tree, db, tmp_path):
    """A process that cannot see an earlier shared-key file finished within --lock-wait fails
    it and the files after it, and loads none of them."""
    root = tree[0] / "overlap"
    schema_table = f'"{db.schema}".overlap'
    # Another session holds the first file's lock, as a process loading it would.
    assert pgingest.load(
        [str(root / "b.csv")],
        dsn=db.dsn,
        schema=db.schema,
        table="overlap",
        mode="upsert",
        pk=("id",),
    ).ok
    first = os.path.abspath(root / "a.csv")

    async def main() -> pgingest.LoadReport:
        holder = await asyncpg.connect(db.dsn)
        try:
            await holder.execute(
                "INSERT INTO pgingest.files (path, size, mtime_ns, table_schema, table_name,"
                " status) VALUES ($1, $2, $3, $4, 'overlap', 'running')",
                first,
                (root / "a.csv").stat().st_size,
                (root / "a.csv").stat().st_mtime_ns,
                db.schema,
            )
            file_id = await holder.fetchval(
                "SELECT max(id) FROM pgingest.files WHERE path = $1", first
            )
            await holder.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"pgingest.file:{file_id}"
            )
            return await pgingest.load_async(
                [str(root / n) for n in ("a.csv", "b.csv", "c.csv")],
                dsn=db.dsn,
                schema=db.schema,
                table="overlap",
                mode="upsert",
                pk=("id",),
                lock_wait=1,
                force=True,
            )
        finally:
            await holder.close()

    report = asyncio.run(main())
    assert [f.status for f in report.files] == ["failed", "failed", "failed"], report.files
    assert "--lock-wait" in (report.files[0].error or "")
    assert "shares keys with" in (report.files[1].error or "")
    assert db.val(f"SELECT count(*) FROM {schema_table}") == 200  # b.csv's, from before

"""upsert and merge of CSV, routed by key from the raw chunks of an append: each chunk parsed
into its column types where that parse is exact (binary COPY into the staging table), else
read as text and written again. Properties against the text reading and against the cut of a
file first claimed by an older loader (the reader's Arrow batches), on a real PostgreSQL: the
same outcome, the same table, value by value, whatever the spellings and repeated keys; a
file claimed with the old cut is resumed with it; a malformed record is named by its line."""

from __future__ import annotations

import csv
import io
import itertools
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_csv_binary import SPELLINGS, binary_copies, rejects
from test_upsert import content, kill_after_batches, overlapping_rows, write_csv

from pgingest.pipeline.keyed import route

COUNTER = itertools.count()

ROUTES = {
    "typed": {"TYPED_ROUTES": True, "RAW_ROUTES": True},
    "text": {"TYPED_ROUTES": False, "RAW_ROUTES": True},
    "old cut": {"TYPED_ROUTES": True, "RAW_ROUTES": False},
}
"""How a keyed CSV file is routed: its raw chunks parsed exactly where possible (the default),
read as text, or (a file an older loader claimed) the reader's Arrow batches of text."""


@st.composite
def keyed_files(draw: st.DrawFn) -> bytes:
    """A CSV file keyed by ``rn`` (keys repeat: the last occurrence wins) with typed-looking
    columns of odd spellings."""
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    kinds = draw(st.lists(st.sampled_from(sorted(SPELLINGS)), min_size=1, max_size=4))
    out = io.StringIO(newline="")
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    writer = csv.writer(out, lineterminator=newline, quoting=quoting)
    writer.writerow(["rn", *(f"{kind}_{i}" for i, kind in enumerate(kinds))])
    keys = draw(st.integers(1, 12))
    for _ in range(draw(st.integers(1, 16))):
        row = [str(draw(st.integers(0, keys)))]
        for kind in kinds:
            row.append(draw(st.none() | SPELLINGS[kind]) or "")
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def table_as_text(db, table: str) -> tuple[dict[str, str], list[tuple[str | None, ...]]]:
    """The table's column types, and its rows with every value as PostgreSQL prints it (the
    lineage columns left out: they differ by load)."""
    types = {c: t for c, t in db.types(table).items() if not c.startswith("_pgingest")}
    columns = ", ".join(f'"{c}"::text' for c in types)
    rows = db.fetch(f'SELECT {columns} FROM "{db.schema}"."{table}" ORDER BY "rn"::bigint')
    return types, [tuple(r) for r in rows]


def upsert_each_way(tmp_path, load, db, monkeypatch, name: str, data: bytes, **options):
    """Upsert or merge ``data`` (``mode``) into a table of its own per route (twice: into a
    new table, then over it again with ``--force``); each route's outcome, and the routes
    that sent binary COPY (into the staging table)."""
    sent_binary = binary_copies(monkeypatch)
    outcome = {}
    binary: set[str] = set()
    for way, switches in ROUTES.items():
        for switch, value in switches.items():
            monkeypatch.setattr(route, switch, value)
        table = f"{name}_{way.replace(' ', '_')}"
        path = tmp_path / f"{table}.csv"
        path.write_bytes(data)
        sent_binary.clear()
        first = load(path, table=table, pk="rn", **options)
        again = load(path, table=table, pk="rn", force=True, **options)
        loaded = table_as_text(db, table) if first.ok else None
        outcome[way] = (first.ok, again.ok, loaded, rejects(db, path), first.files[0].rows)
        if sent_binary:
            assert all(name.startswith("pgingest_stage_") for name in sent_binary)
            binary.add(way)
    return outcome, binary


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    data=keyed_files(),
    on_error=st.sampled_from(["stop", "skip"]),
    mode=st.sampled_from(["upsert", "merge"]),
)
def test_every_route_upserts_the_same_table(tmp_path, load, db, monkeypatch, data, on_error, mode):
    n = next(COUNTER)
    outcome, binary = upsert_each_way(
        tmp_path, load, db, monkeypatch, f"u{n}", data, on_error=on_error, mode=mode
    )
    event("sent as binary" if binary else "sent as text")
    assert outcome["typed"] == outcome["text"]
    typed_ok, again_ok, table, _rejects, rows = outcome["typed"]
    old_ok, old_again, old_table, _old_rejects, old_rows = outcome["old cut"]
    # (the old cut names a bad row by its row, not its line: only the outcome and the table)
    assert (typed_ok, again_ok, table, rows) == (old_ok, old_again, old_table, old_rows)


def test_a_typed_file_is_upserted_by_binary_copy_and_reads_back_as_text(
    tmp_path, load, db, monkeypatch
):
    """The property is not vacuous: a file of exact types, keys repeated across its lines,
    goes as binary COPY into the staging table, and the table is the text reading's."""
    data = (
        b"rn,i,b,f,d,ts,tz,flag,s\n"
        b"1,42,9000000000,1.5,2026-01-02,2026-01-02 03:04:05.5,"
        b'2026-01-02 03:04:05+01,true,"a,""b"""\n'
        b'2,,,-inf,,2026-01-02T03:04,,f,""\n'
        b'1,-7,-1,NaN,0001-01-01,2026-01-02,2026-01-02 03:04:05Z,yes,"line\nbreak"\n'
    )
    outcome, binary = upsert_each_way(tmp_path, load, db, monkeypatch, "typed", data, mode="upsert")
    assert binary == {"typed"}
    assert outcome["typed"] == outcome["text"]
    ok, _again, (_types, rows), _rejects, _rows = outcome["typed"]
    assert ok
    assert rows == [
        ("1", "-7", "-1", "NaN", "0001-01-01", "2026-01-02 00:00:00", "2026-01-02 03:04:05+00",
         "true", "line\nbreak"),
        ("2", None, None, "-Infinity", None, "2026-01-02 03:04:00", None, "false", ""),
    ]  # fmt: skip


def test_a_malformed_record_is_named_by_its_line(tmp_path, cli):
    path = tmp_path / "ragged.csv"
    rows = "".join(f"{i},v{i}\n" for i in range(3, 200_000))  # past the sample's reading
    path.write_text(f'id,v\n1,a\n2,"two\nlines"\n{rows}200000,b,extra\n200001,c\n')
    args = ["--table", "t", "--mode", "upsert", "--pk", "id", "--sample-rows", "10"]
    code, _out, err = cli("load", str(path), *args)
    assert code != 0
    assert f"{path}: line 200002: 3 fields, expected 2" in err


OLD_CUT = (
    "import sys; from pgingest.pipeline.keyed import route; route.RAW_ROUTES = False;"
    " from pgingest.cli.app import run; sys.argv[0] = 'pgingest'; run()"
)
"""The command line as a loader that claims keyed CSV files with the reader's Arrow batches."""


@pytest.mark.parametrize("first", ["old cut", "raw"])
def test_a_killed_upsert_is_resumed_with_the_cut_it_was_claimed_with(
    tmp_path, load, db, monkeypatch, first
):
    """A file claimed with one cut and killed after some batches committed is resumed with
    that cut (the batches' numbers are the cut's), by a loader that would claim it otherwise:
    its batches are those of that cut loaded whole, the table that of a sequential load, the
    file loaded once. (The rows grow longer along the file: the raw chunks, cut by bytes as
    estimated from the first rows, then hold fewer rows than the reader's batches.)"""
    # keys repeat across the whole file
    rows = [
        [i, k, f"{v}{'x' * (n // 500)}"]
        for n, (i, k, v) in enumerate(overlapping_rows(11, 0, 60_000))
    ]
    src = write_csv(tmp_path / "big.csv", ["id", "k", "v"], rows)
    reference = load(src, table="ref", mode="upsert", pk="id", strategy="sequential")
    assert reference.ok, reference.files

    def cut(table: str) -> list[tuple[int, int, int]]:
        found = db.fetch(
            "SELECT b.batch, b.first_line, b.rows FROM pgingest.file_batches b"
            " JOIN pgingest.files f ON f.id = b.file_id"
            " WHERE f.table_schema = $1 AND f.table_name = $2 ORDER BY b.batch",
            db.schema,
            table,
        )
        return [tuple(r) for r in found]

    monkeypatch.setattr(route, "RAW_ROUTES", first == "raw")
    whole = load(src, table="whole", mode="upsert", pk="id", batch_size=500, internal_concurrency=3)
    assert whole.ok, whole.files
    monkeypatch.setattr(route, "RAW_ROUTES", True)
    args = ["load", "--dsn", db.dsn, "--schema", db.schema, str(src), "--table", "t"]
    args += ["--mode", "upsert", "--pk", "id", "--batch-size", "500"]
    start = ["-c", OLD_CUT] if first == "old cut" else ["-m", "pgingest"]
    kill_after_batches(db, [sys.executable, *start, *args], "t", 12)
    chunking = db.val(
        "SELECT chunking::text FROM pgingest.files WHERE table_schema = $1 AND table_name = 't'",
        db.schema,
    )
    assert ("raw_routes" in chunking) == (first == "raw"), chunking

    def batches() -> set[tuple[int, int, object]]:
        return {
            (r["batch"], r["first_line"], r["committed_at"])
            for r in db.fetch(
                "SELECT b.batch, b.first_line, b.committed_at FROM pgingest.file_batches b"
                " JOIN pgingest.files f ON f.id = b.file_id"
                " WHERE f.table_schema = $1 AND f.table_name = 't'",
                db.schema,
            )
        }

    before = batches()
    assert before
    # Resumed by this loader (which claims new files for raw routes), with fewer workers.
    again = subprocess.run(
        [sys.executable, "-m", "pgingest", *args, "--internal-concurrency", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert before <= batches()  # resumed: the batches committed before were kept, not redone
    manifest = db.fetch(
        "SELECT status, rows FROM pgingest.files WHERE table_schema = $1 AND table_name = 't'",
        db.schema,
    )
    assert [tuple(r) for r in manifest] == [("success", 60_000)]
    assert cut("t") == cut("whole")
    assert content(db, "t") == content(db, "ref")


@pytest.mark.parametrize("odd", [False, True])
def test_after_a_chunk_in_doubt_the_rest_of_the_file_is_read_as_text(
    tmp_path, load, db, monkeypatch, odd
):
    """A file's first chunk holds a value the exact parse doubts (three decimals for a
    numeric(12,2), which the server rounds): that chunk and every later one go as text,
    parsed once each, instead of each being parsed twice; without it they go as binary."""
    first = "1.234" if odd else "1.25"
    rows = [f"1,{first}"] + [f"{i},{i}.25" for i in range(2, 12_000)]
    path = tmp_path / "f.csv"
    path.write_text("rn,v\n" + "\n".join(rows) + "\n")
    db.execute(f'CREATE TABLE "{db.schema}".t (rn integer PRIMARY KEY, v numeric(12,2))')
    sent = binary_copies(monkeypatch)
    report = load(path, table="t", mode="upsert", batch_size=500)
    assert report.ok, report.files
    assert db.count("t") == 11_999
    assert db.val(f'SELECT v::text FROM "{db.schema}".t WHERE rn = 1') == first[:4]
    assert db.val(f'SELECT v::text FROM "{db.schema}".t WHERE rn = 11999') == "11999.25"
    assert (len(sent) == 0) == odd, sent

"""Bad rows: by default the file stops naming the line and nothing of it stays; with
``--on-error skip`` the good rows load and each bad one is kept in pgingest.rejects."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

GOOD = 2000
"""Good rows around the bad ones: several batches of 250, so rows far into a file count."""

BAD_ROWS = {
    "field_count": (b"500,extra,field,2026-01-01", None),
    "abc_integer": (b"abc,x,2026-01-01", "n"),
    "bad_date": (b"7,x,2026-02-30", "d"),
    "invalid_utf8": (b"8,caf\xe9,2026-01-01", None),
}


def make(path: Path, bad: dict[int, bytes]) -> Path:
    """``n,s,d`` rows 0..GOOD-1, the given rows replaced (index -> raw line)."""
    lines = [f"{i},name {i},2026-01-{1 + i % 28:02d}".encode() for i in range(GOOD)]
    for index, raw in bad.items():
        lines[index] = raw
    path.write_bytes(b"n,s,d\n" + b"\n".join(lines) + b"\n")
    return path


OPTIONS = {"types": {"n": "integer", "d": "date"}, "encoding": "utf-8", "batch_size": 250}


def rejects(db, path: Path) -> list[tuple[int, str | None, str, str]]:
    return [
        (r["line"], r["column_name"], r["raw"], r["reason"])
        for r in db.fetch(
            "SELECT r.line, r.column_name, r.raw, r.reason FROM pgingest.rejects r"
            " JOIN pgingest.files f ON f.id = r.file_id WHERE f.path = $1 ORDER BY r.line",
            str(path),
        )
    ]


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_default_stops_at_the_exact_line_and_keeps_nothing(tmp_path, load, db, kind):
    raw, column = BAD_ROWS[kind]
    src = make(tmp_path / f"{kind}.csv", {1200: raw})
    report = load(src, table="t", **OPTIONS)
    assert not report.ok
    error = report.failed[0].error
    assert str(src) in error
    assert "line 1202" in error  # header is line 1, row index 0 is line 2
    if column:
        assert f"column {column}" in error
    # (The test's own schema's t: a plain 't' found public.t through the search path.)
    if db.val("SELECT to_regclass($1)", f'"{db.schema}".t') is not None:  # a bad sample row
        assert db.count("t") == 0
    assert rejects(db, src) == []


def test_skip_keeps_every_bad_row_and_loads_the_rest(tmp_path, load, db):
    bad = {
        10: BAD_ROWS["abc_integer"][0],
        700: BAD_ROWS["bad_date"][0],
        701: BAD_ROWS["field_count"][0],
        1500: BAD_ROWS["invalid_utf8"][0],
        1998: b'1998,"never closed,2026-01-01',
    }
    src = make(tmp_path / "mixed.csv", bad)
    report = load(src, table="t", on_error="skip", **OPTIONS)
    assert report.ok, report.failed
    assert report.files[0].rejects == 5
    assert report.files[0].rows == GOOD - 5
    assert db.count("t") == GOOD - 5
    expected = {i for i in range(GOOD) if i not in bad}
    assert {r[0] for r in db.fetch("SELECT n FROM t")} == expected
    assert db.val("SELECT s FROM t WHERE n = 1999") == "name 1999"  # after the broken quote
    kept = rejects(db, src)
    assert [r[0] for r in kept] == [12, 702, 703, 1502, 2000]
    by_line = {r[0]: r for r in kept}
    assert by_line[12][1] == "n"
    assert "abc" in by_line[12][3]
    assert by_line[12][2] == "abc,x,2026-01-01"
    assert by_line[702][1] == "d"
    assert "2026-02-30" in by_line[702][3]
    assert "4 fields, expected 3" in by_line[703][3]
    assert "UTF8" in by_line[1502][3]
    assert by_line[1502][2] == "8,caf\\xe9,2026-01-01"
    assert "unterminated" in by_line[2000][3]
    assert db.val("SELECT d FROM t WHERE n = 1") == dt.date(2026, 1, 2)


def test_max_errors_count_and_share(tmp_path, load, db):
    bad = {i: f"x{i},y,2026-01-01".encode() for i in range(100, 2000, 100)}  # 19 bad rows
    src = make(tmp_path / "many.csv", bad)
    over = load(src, table="t", on_error="skip", max_errors=10, **OPTIONS)
    assert not over.ok
    assert "--max-errors 10" in over.failed[0].error
    assert db.count("t") == 0
    assert rejects(db, src) == []
    share = load(src, table="t", on_error="skip", max_errors="0.5%", **OPTIONS)
    assert not share.ok
    assert "--max-errors 0.5%" in share.failed[0].error
    fine = load(src, table="t", on_error="skip", max_errors="1%", **OPTIONS)
    assert fine.ok, fine.failed
    assert db.count("t") == GOOD - 19
    assert len(rejects(db, src)) == 19


def test_rejects_command_prints_and_writes_them(tmp_path, cli, db):
    src = make(tmp_path / "cmd.csv", {5: b"bad,x,2026-01-01", 9: b"9,x,2026-13-01"})
    code, out, _err = cli(
        "load", str(src), "--table", "t", "--types", "n=integer,d=date", "--on-error", "skip"
    )
    assert code == 0
    assert "2 rejected" in out
    code, out, _err = cli("status", "--dsn", db.dsn)
    assert code == 0
    assert f"{src}: 2 row(s)" in out
    code, out, _err = cli("rejects", str(src), "--dsn", db.dsn)
    assert code == 0
    assert "line 7, column n" in out
    assert "bad,x,2026-01-01" in out
    assert "line 11, column d" in out
    fixed = tmp_path / "fix.csv"
    code, out, _err = cli("rejects", str(src), "--dsn", db.dsn, "--csv", str(fixed))
    assert code == 0
    assert fixed.read_text() == "n,s,d\nbad,x,2026-01-01\n9,x,2026-13-01\n"


def test_skip_still_widens_a_column_after_bad_rows(tmp_path, load, db):
    bad = {5: b"x5,5,2026-01-01", 1500: b"1500,late,2026-01-01"}
    lines = [f"{i},{i},2026-01-01".encode() for i in range(GOOD)]
    lines[1700] = b"1700,1.5,2026-01-01"
    for index, raw in bad.items():
        lines[index] = raw
    src = tmp_path / "widen.csv"
    src.write_bytes(b"n,v,d\n" + b"\n".join(lines) + b"\n")
    report = load(
        src, table="w", on_error="skip", batch_size=250, sample_rows=100, types={"n": "integer"}
    )
    assert report.ok, report.failed
    assert report.files[0].rejects == 2  # x5 (declared integer) and "late" in v
    assert db.types("w") == {"n": "integer", "v": "double precision", "d": "date"}
    assert db.val("SELECT v FROM w WHERE n = 1700") == 1.5
    assert [r[0] for r in rejects(db, src)] == [7, 1502]


def test_parquet_values_that_fit_no_declared_type_are_rejects_under_skip(tmp_path, load, db):
    import pyarrow as pa
    import pyarrow.parquet as pq

    db.execute(f'CREATE TABLE "{db.schema}".pq (id integer, s text)')
    pq.write_table(
        pa.table({"id": pa.array([1, 2**40, 3], pa.int64()), "s": ["a", "b", "c"]}),
        tmp_path / "p.parquet",
    )
    stop = load(tmp_path / "p.parquet", table="pq", types={"id": "integer"})
    assert not stop.ok
    assert "column id" in stop.failed[0].error
    skip = load(tmp_path / "p.parquet", table="pq", types={"id": "integer"}, on_error="skip")
    assert skip.ok, skip.failed
    assert db.rows("pq", "id") == [(1, "a"), (3, "c")]
    assert [(r[0], r[1], r[2]) for r in rejects(db, tmp_path / "p.parquet")] == [
        (2, "id", '"1099511627776","b"')  # Parquet counts rows from 1
    ]


@pytest.mark.parametrize(
    ("how", "kind"),
    [
        (how, kind)
        for how in ("txn_file", "upsert", "upsert_txn_file")
        for kind in ("abc_integer", "bad_date")
    ],
)
def test_every_writer_names_the_file_line_of_a_bad_value(tmp_path, load, db, how, kind):
    """The batch writer's one error boundary: a whole-file transaction and an upsert's routed
    batches (records not consecutive lines) name the file's line as a plain append does."""
    raw, column = BAD_ROWS[kind]
    src = make(tmp_path / f"{how}-{kind}.csv", {1200: raw})
    options = dict(OPTIONS)
    if how != "upsert":
        options["txn"] = "file"
    if how.startswith("upsert"):
        options.update(mode="upsert", pk=["s"])
    report = load(src, table="t", **options)
    assert not report.ok
    error = report.failed[0].error
    assert error.startswith(f"{src}: line 1202, column {column}: "), error
    if db.val("SELECT to_regclass($1)", f'"{db.schema}".t') is not None:
        assert db.count("t") == 0


LITERALS = 160000
"""PostgreSQL reads ``0x1F`` and ``1_000`` as integers from 16 on; 15 refuses them."""

ARROW_ONLY = {
    # batch (of 250 rows) -> (raw line, column, refused by the server before PostgreSQL 16 only)
    10: (b"0x1F,1.5,2026-01-02 03:04,2026-01-02", "n", True),
    300: (b"1_000,1.5,2026-01-02 03:04,2026-01-02", "n", True),
    600: (b"600,1e400,2026-01-02 03:04,2026-01-02", "f", False),
    900: (b"900,1e-400,2026-01-02 03:04,2026-01-02", "f", False),
    1200: (b"1200,-1.8e308,2026-01-02 03:04,2026-01-02", "f", False),
    1500: (b"1500,1.5,2026-01-02 03,2026-01-02", "t", False),
    1800: (b"1800,1.5,2026-01-02T03,2026-01-02", "t", False),
    1990: (b"1990,1.5,2026-01-02 03:04,0000-01-01", "d", False),
}


def test_skip_sets_aside_what_only_arrow_reads_each_alone_in_its_batch(tmp_path, load, db):
    """Values Arrow parses and the server refuses (hex, out of range, an hour without
    minutes, year 0), each the only bad value of its batch: under ``--on-error skip`` the
    client-side check must find it (PostgreSQL 15/16) or the server skip it (17+), never
    the batch's error stand and fail the file."""
    lines = [f"{i},{i}.5,2026-01-02 03:04,2026-01-02".encode() for i in range(GOOD)]
    for index, (raw, _column, _old_only) in ARROW_ONLY.items():
        lines[index] = raw
    src = tmp_path / "arrow-only.csv"
    src.write_bytes(b"n,f,t,d\n" + b"\n".join(lines) + b"\n")
    old = int(db.val("SHOW server_version_num")) < LITERALS
    refused = {i: v for i, v in ARROW_ONLY.items() if old or not v[2]}
    types = {"n": "integer", "f": "double precision", "t": "timestamp", "d": "date"}
    report = load(src, table="a", on_error="skip", types=types, batch_size=250)
    assert report.ok, report.failed
    assert report.files[0].rejects == len(refused)
    assert db.count("a") == GOOD - len(refused)
    kept = rejects(db, src)
    assert [(r[0], r[1], r[2]) for r in kept] == [
        (i + 2, column, raw.decode()) for i, (raw, column, _old) in sorted(refused.items())
    ]
    loaded = {r[0] for r in db.fetch("SELECT n FROM a")}
    if not old:
        assert {31, 1000} <= loaded  # 0x1F and 1_000: the server reads them
    assert {599, 601, 1499, 1501, 1989, 1991} <= loaded

"""Schema evolution against a real server: columns grow, shrink, reorder and widen across files
and inside one, with every change logged with the file that caused it."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

D = decimal.Decimal


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def changes(db, table: str) -> list[tuple[str, str | None, str | None, str | None, str]]:
    rows = db.fetch(
        "SELECT c.change, c.column_name, c.old_type, c.new_type, f.path"
        " FROM pgingest.schema_changes c JOIN pgingest.files f ON f.id = c.file_id"
        " WHERE c.table_schema = $1 AND c.table_name = $2 ORDER BY c.id",
        db.schema,
        table,
    )
    return [(r[0], r[1], r[2], r[3], Path(r[4]).name) for r in rows]


def test_files_that_grow_shrink_reorder_and_widen(tmp_path, load, db):
    files = [
        write(tmp_path / "f1.csv", "id,n,day\n1,10,2026-01-01\n2,20,2026-01-02\n"),
        write(tmp_path / "f2.csv", "id,n,day,extra\n3,30,2026-01-03,x\n"),  # grows
        write(tmp_path / "f3.csv", "day,id\n2026-01-04,4\n"),  # shrinks, reordered
        write(tmp_path / "f4.csv", "id,n,day\n5,3.5,2026-01-05 10:30:00\n"),  # widens two
        write(tmp_path / "f5.csv", "id,n,day\n9000000000,6,2026-01-06\n"),
        write(tmp_path / "f6.csv", "n,id\n7.25,12345678901234567890\n"),
    ]
    for f in files:  # one by one: the log order is the load order
        report = load(f, table="grow", tolerant=True)
        assert report.ok, report.failed
    assert db.types("grow") == {
        "id": "numeric",
        "n": "double precision",
        "day": "timestamp without time zone",
        "extra": "text",
    }
    assert db.rows("grow", "id") == [
        (D(1), 10.0, dt.datetime(2026, 1, 1), None),
        (D(2), 20.0, dt.datetime(2026, 1, 2), None),
        (D(3), 30.0, dt.datetime(2026, 1, 3), "x"),
        (D(4), None, dt.datetime(2026, 1, 4), None),
        (D(5), 3.5, dt.datetime(2026, 1, 5, 10, 30), None),
        (D(9000000000), 6.0, dt.datetime(2026, 1, 6), None),
        (D("12345678901234567890"), 7.25, None, None),
    ]
    assert changes(db, "grow") == [
        ("create_table", None, None, None, "f1.csv"),
        ("add_column", "extra", None, "text", "f2.csv"),
        ("alter_type", "day", "date", "timestamp", "f4.csv"),  # before its COPY: sampled
        ("alter_type", "n", "integer", "double precision", "f4.csv"),  # when COPY refused 3.5
        ("alter_type", "id", "integer", "bigint", "f5.csv"),
        ("alter_type", "id", "bigint", "numeric", "f6.csv"),
    ]


@pytest.mark.parametrize(
    ("first", "values"),
    [
        # a time and an offset in one file: inference calls the mix text, and the date
        # column kept its type, the server dropping the times and the offset without a word
        ("2024-01-01", ["2024-01-06 10:30", "2024-01-07 23:59:59+02"]),
        ("2024-01-01", ["2024-01-06", "2024-01-07T23:59:59Z"]),
        ("2024-01-01 08:00", ["2024-01-06 10:30", "2024-01-07 23:59:59+02"]),
    ],
)
def test_times_and_offsets_mixed_in_one_file_widen_a_date_column(tmp_path, load, db, first, values):
    base = write(tmp_path / "base.csv", f"id,d\n1,{first}\n")
    lines = "".join(f"{i},{v}\n" for i, v in enumerate(values, start=2))
    more = write(tmp_path / "more.csv", "id,d\n" + lines)
    assert load(base, table="ap").ok
    report = load(more, table="ap")
    assert report.ok, report.failed
    assert db.types("ap")["d"] == "timestamp with time zone"
    for i, value in enumerate(values, start=2):  # each reads back as written: nothing dropped
        same = db.val(
            f'SELECT d = $1::text::timestamptz FROM "{db.schema}".ap WHERE id = $2', value, i
        )
        assert same, value


def test_widening_after_the_first_batch_of_a_file(tmp_path, load, db):
    lines = [f"{i},{i}" for i in range(3000)]
    lines[2500] = "2500,3.5"
    src = write(tmp_path / "late.csv", "id,v\n" + "\n".join(lines) + "\n")
    report = load(src, batch_size=300, sample_rows=100)
    assert report.ok, report.failed
    assert db.types("late")["v"] == "double precision"
    assert db.count("late") == 3000
    assert db.val("SELECT v FROM late WHERE id = 2500") == 3.5
    assert db.val("SELECT sum(v) FROM late") == sum(range(3000)) - 2500 + 3.5
    assert ("alter_type", "v", "integer", "double precision", "late.csv") in changes(db, "late")
    assert report.files[0].schema_changes == ["column v integer -> double precision"]


def test_two_workers_widen_the_same_table(tmp_path, load, db):
    paths = []
    for k in range(2):
        lines = [f"{k}{i:05d},{i}" for i in range(4000)]
        lines[3000 + k * 300] = f"{k}99999,1.25"
        lines[3500] = f"{k}88888,{2**40}"
        paths.append(write(tmp_path / f"w{k}.csv", "id,v\n" + "\n".join(lines) + "\n"))
    report = load(paths, table="pair", batch_size=200, sample_rows=50, internal_concurrency=2)
    assert report.ok, report.failed
    assert db.count("pair") == 8000
    assert db.types("pair")["v"] == "double precision"
    assert db.val("SELECT count(*) FROM pair WHERE v = 1.25") == 2
    assert db.val("SELECT count(*) FROM pair WHERE v = $1", 2**40) == 2
    logged = [c for c in changes(db, "pair") if c[0] == "alter_type"]
    # each widening is made once, by whichever worker needed it first
    assert len({(c[2], c[3]) for c in logged}) == len(logged)


def test_policies_fail_ignore_and_tolerant(tmp_path, load, db):
    write(tmp_path / "p1.csv", "id,v\n1,2\n")
    assert load(tmp_path / "p1.csv", table="pol").ok
    extra = write(tmp_path / "p2.csv", "id,v,new\n2,3,x\n")
    failed = load(extra, table="pol", on_new_column="fail")
    assert not failed.ok
    assert "new column(s) new" in failed.failed[0].error
    ignored = load(extra, table="pol", on_new_column="ignore")
    assert ignored.ok, ignored.failed
    assert db.data_columns("pol") == ["id", "v"]
    assert db.rows("pol", "id") == [(1, 2), (2, 3)]
    wider = write(tmp_path / "p3.csv", "id,v\n3,2.5\n")
    refused = load(wider, table="pol", on_type_change="fail")
    assert not refused.ok
    assert "v integer -> double precision" in refused.failed[0].error
    assert db.types("pol")["v"] == "integer"
    assert db.count("pol") == 2
    short = write(tmp_path / "p4.csv", "id\n4\n")
    missing = load(short, table="pol")
    assert not missing.ok
    assert "lacks column(s) v" in missing.failed[0].error
    assert load(short, table="pol", tolerant=True).ok
    assert db.rows("pol", "id")[-1] == (4, None)


def test_words_turn_a_column_to_text_but_a_stray_one_is_a_bad_row(tmp_path, load, db):
    write(tmp_path / "c1.csv", "id,code\n1,100\n2,200\n")
    assert load(tmp_path / "c1.csv", table="codes").ok
    write(tmp_path / "c2.csv", "id,code\n3,A12\n4,B34\n")
    assert load(tmp_path / "c2.csv", table="codes").ok
    assert db.types("codes")["code"] == "text"
    assert db.rows("codes", "id") == [(1, "100"), (2, "200"), (3, "A12"), (4, "B34")]
    write(tmp_path / "n1.csv", "id,n\n1,1\n")
    assert load(tmp_path / "n1.csv", table="nums").ok
    body = "".join(f"{i},{i}\n" for i in range(2, 100)) + "100,oops\n"
    stray = load(write(tmp_path / "n2.csv", "id,n\n" + body), table="nums")
    assert not stray.ok
    assert "line 100, column n" in stray.failed[0].error
    assert "oops" in stray.failed[0].error
    assert db.types("nums")["n"] == "integer"
    assert db.count("nums") == 1


def test_parquet_files_widen_and_add_columns(tmp_path, load, db):
    pq.write_table(pa.table({"id": pa.array([1, 2], pa.int32())}), tmp_path / "a.parquet")
    pq.write_table(
        pa.table({"id": pa.array([2**40], pa.int64()), "f": pa.array([0.5])}),
        tmp_path / "b.parquet",
    )
    pq.write_table(pa.table({"id": pa.array(["x"]), "f": pa.array([1.5])}), tmp_path / "c.parquet")
    for name in ("a", "b", "c"):
        report = load(tmp_path / f"{name}.parquet", table="pqw", tolerant=True)
        assert report.ok, report.failed
    assert db.types("pqw") == {"id": "text", "f": "double precision"}
    assert sorted(db.rows("pqw", "id")) == [
        ("1", None),
        ("1099511627776", 0.5),
        ("2", None),
        ("x", 1.5),
    ]
    assert [c[:4] for c in changes(db, "pqw")] == [
        ("create_table", None, None, None),
        ("add_column", "f", None, "double precision"),
        ("alter_type", "id", "integer", "bigint"),
        ("alter_type", "id", "bigint", "text"),
    ]


def test_dry_run_shows_the_changes_and_makes_none(tmp_path, cli, db):
    write(tmp_path / "d1.csv", "id,v\n1,2\n")
    assert cli("load", str(tmp_path / "d1.csv"), "--table", "dry")[0] == 0
    write(tmp_path / "d2.csv", "id,v,w\n2,2026-01-01,x\n")
    code, out, _err = cli("load", str(tmp_path / "d2.csv"), "--table", "dry", "--dry-run")
    assert code == 0
    assert "would change: add column w text" in out
    assert db.data_columns("dry") == ["id", "v"]


def test_text_flag_for_parquet_and_csv(tmp_path, load, db):
    pq.write_table(
        pa.table({"n": [1, 2], "d": pa.array([dt.date(2026, 1, 2), None], pa.date32())}),
        tmp_path / "t.parquet",
    )
    write(tmp_path / "t.csv", "n,d\n1,2026-01-02\n")
    assert load([tmp_path / "t.parquet", tmp_path / "t.csv"], text=True).ok
    assert db.types("t") == {"n": "text", "d": "text"}
    assert sorted(db.rows("t", "n")) == [("1", "2026-01-02"), ("1", "2026-01-02"), ("2", None)]


def test_status_lists_changes_and_env_sets_the_policy(tmp_path, cli, db, monkeypatch):
    write(tmp_path / "s1.csv", "id\n1\n")
    write(tmp_path / "s2.csv", "id,extra\n2,x\n")
    assert cli("load", str(tmp_path / "s1.csv"), "--table", "st")[0] == 0
    monkeypatch.setenv("PGINGEST_ON_NEW_COLUMN", "fail")
    code, _out, err = cli("load", str(tmp_path / "s2.csv"), "--table", "st")
    assert code == 1
    assert "--on-new-column fail" in err
    monkeypatch.delenv("PGINGEST_ON_NEW_COLUMN")
    code, out, _err = cli("load", str(tmp_path / "s2.csv"), "--table", "st")
    assert code == 0
    assert "schema: " in out
    assert "add column extra text" in out
    code, out, _err = cli("status", "--dsn", db.dsn, "--table", f"{db.schema}.st")
    assert code == 0
    assert f"add_column {db.schema}.st.extra  -> text  by {tmp_path / 's2.csv'}" in out


def test_a_time_past_the_first_mebibyte_but_inside_the_sample_widens_a_date_column(
    tmp_path, load, db
):
    # wide rows: 3,000 of them (inside the 5,000-row sample) fill more than the first MiB,
    # which alone was looked at for a ':' before sampling
    pad = "x" * 500
    base = write(tmp_path / "base.csv", f"id,d,pad\n1,2024-01-01,{pad}\n")
    rows = [f"{i},2024-01-02,{pad}" for i in range(2, 3000)] + [f"3000,2024-01-06 10:30,{pad}"]
    more = write(tmp_path / "more.csv", "id,d,pad\n" + "\n".join(rows) + "\n")
    assert more.stat().st_size > 1 << 20
    assert load(base, table="wide").ok
    report = load(more, table="wide")
    assert report.ok, report.failed
    assert db.types("wide")["d"] == "timestamp without time zone"
    assert (
        db.val(f'SELECT d::text FROM "{db.schema}".wide WHERE id = 3000') == "2024-01-06 10:30:00"
    )

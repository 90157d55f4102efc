"""Dates: ISO, DD/MM/YYYY and MM/DD/YYYY told apart by the data or --date-format, never
guessed silently, and read by the server in the same order."""

from __future__ import annotations

import datetime as dt


def test_day_first_and_month_first_are_told_by_the_data(tmp_path, load, db):
    (tmp_path / "eu.csv").write_text(
        "id,d,at\n1,31/12/2026,31/12/2026 10:20\n2,01/02/2026,1/2/2026 00:00\n"
    )
    (tmp_path / "us.csv").write_text("id,d\n1,12/31/2026\n2,01/02/2026\n")
    report = load([tmp_path / "eu.csv", tmp_path / "us.csv"])
    assert report.ok, report.failed
    assert db.types("eu") == {"id": "integer", "d": "date", "at": "timestamp without time zone"}
    assert db.rows("eu", "id") == [
        (1, dt.date(2026, 12, 31), dt.datetime(2026, 12, 31, 10, 20)),
        (2, dt.date(2026, 2, 1), dt.datetime(2026, 2, 1)),
    ]
    assert db.rows("us", "id") == [(1, dt.date(2026, 12, 31)), (2, dt.date(2026, 1, 2))]


def test_ambiguous_dates_stay_text_with_a_warning_unless_the_flag_decides(tmp_path, cli, db):
    src = tmp_path / "amb.csv"
    src.write_text("id,d\n1,01/02/2026\n2,03/04/2026\n")
    code, _out, err = cli("load", str(src))
    assert code == 0
    assert "--date-format" in err
    assert db.types("amb")["d"] == "text"
    code, _out, _err = cli("load", str(src), "--table", "amb_dmy", "--date-format", "dmy")
    assert code == 0
    assert db.types("amb_dmy")["d"] == "date"
    assert db.rows("amb_dmy", "id") == [(1, dt.date(2026, 2, 1)), (2, dt.date(2026, 4, 3))]


def test_offsets_are_timestamptz_and_slash_dates_load_into_an_existing_table(tmp_path, load, db):
    (tmp_path / "tz.csv").write_text("id,at\n1,2026-01-31T10:20:30+02:00\n2,2026-01-31 10:20:30Z\n")
    assert load(tmp_path / "tz.csv").ok
    assert db.types("tz")["at"] == "timestamp with time zone"
    assert db.rows("tz", "id")[0][1] == dt.datetime(2026, 1, 31, 8, 20, 30, tzinfo=dt.UTC)
    db.execute(f'CREATE TABLE "{db.schema}".days (id integer, d date)')
    (tmp_path / "later.csv").write_text("id,d\n1,25/03/2026\n2,04/05/2026\n")
    assert load(tmp_path / "later.csv", table="days").ok
    assert db.rows("days", "id") == [(1, dt.date(2026, 3, 25)), (2, dt.date(2026, 5, 4))]


def test_parquet_dates_at_postgresqls_limits_load_and_one_day_beyond_fails_by_row(
    tmp_path, load, db
):
    import pyarrow as pa
    import pyarrow.parquet as pq

    first, last = -2_440_588, 2_147_483_493 - 2_440_588  # Julian day 0, day before DATE_END_JULIAN
    pq.write_table(
        pa.table({"d": pa.array([first, 0, last], pa.date32())}), tmp_path / "ends.parquet"
    )
    report = load(tmp_path / "ends.parquet")
    assert report.ok, report.failed
    shown = [r["s"] for r in db.fetch("SELECT d::text AS s FROM ends ORDER BY ends.d")]
    assert shown == ["4714-11-24 BC", "1970-01-01", "5874897-12-31"]
    for name, days in (("after", [0, last + 1]), ("before", [0, first - 1])):
        pq.write_table(pa.table({"d": pa.array(days, pa.date32())}), tmp_path / f"{name}.parquet")
        report = load(tmp_path / f"{name}.parquet")
        assert not report.ok
        # pgingest's own check names the row; the server's "date out of range" does not
        assert "line 2, column d: date" in (report.files[0].error or "")
        assert "outside PostgreSQL's range" in (report.files[0].error or "")
        assert db.count(name) == 0


def test_parquet_timestamps_up_to_the_last_microsecond_binary_copy_carries_load(tmp_path, load, db):
    """Found by the text route's property test: a millisecond timestamp in the last second
    before int64 microseconds run out (294247-01-10 04:00:54.001) was refused as outside
    PostgreSQL's range, which goes on to 294276 AD; one past that last microsecond is."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    last_ms, last_s = (2**63 - 1) // 1_000, (2**63 - 1) // 1_000_000
    table = pa.table(
        {
            "ms": pa.array([9_223_372_036_854_001, last_ms], pa.timestamp("ms")),
            "s": pa.array([last_s, 0], pa.timestamp("s")),
        }
    )
    pq.write_table(table, tmp_path / "late.parquet")
    report = load(tmp_path / "late.parquet")
    assert report.ok, report.failed
    shown = [r["s"] for r in db.fetch("SELECT ms::text AS s FROM late ORDER BY ms")]
    assert shown == ["294247-01-10 04:00:54.001", "294247-01-10 04:00:54.775"]
    pq.write_table(
        pa.table({"ms": pa.array([0, last_ms + 1], pa.timestamp("ms"))}), tmp_path / "past.parquet"
    )
    report = load(tmp_path / "past.parquet")
    assert not report.ok
    assert "line 2, column ms: timestamp" in (report.files[0].error or "")

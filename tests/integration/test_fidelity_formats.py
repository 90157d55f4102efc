"""Issue 13 (fidelity) for workbooks, Parquet and NDJSON: what a file holds arrives exactly,
or the load says why. One test per case of the issue, each comparing values."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def _openpyxl_book(path: Path, header: list[Any], rows: list[list[Any]]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def _rejects(db: Any, table: str) -> list[tuple[Any, ...]]:
    rows = db.fetch(
        "SELECT r.line, r.column_name, r.raw, r.reason FROM pgingest.rejects r"
        " JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.table_schema = $1 AND f.table_name = $2 ORDER BY r.line",
        db.schema,
        table,
    )
    return [tuple(r) for r in rows]


# Case 3: a text cell in a number column is text, not an error cell.


def test_case3_text_cells_among_numbers_make_the_column_text(
    load: Any, db: Any, tmp_path: Path
) -> None:
    path = _openpyxl_book(
        tmp_path / "c3.xlsx",
        ["id", "amount", "score"],
        [[1, 10, 1.5], [2, "N/A", "#DIV/0!"], [3, "NA", 2.5], [4, "null", 3.0], [5, "None", 4.0],
         [6, "-", 5.0], [7, 2.25, 6.0]],
    )  # fmt: skip
    report = load(path)
    assert report.ok, report.failed
    result = report.files[0]
    assert db.types("c3") == {"id": "integer", "amount": "text", "score": "double precision"}
    assert db.rows("c3") == [
        (1, "10", 1.5), (2, "N/A", None), (3, "NA", 2.5), (4, "null", 3.0), (5, "None", 4.0),
        (6, "-", 5.0), (7, "2.25", 6.0),
    ]  # fmt: skip
    assert [w for w in result.warnings if "amount" in w] == [
        "column amount: its cells are of several kinds (numbers, text): read as text, each"
        " cell as it reads"
    ]
    # Only the true error cell is a reject, and the output counts it.
    assert _rejects(db, "c3") == [
        (3, "score", "#DIV/0!", "error cell #DIV/0! in the workbook: loaded as NULL")
    ]
    assert result.rejects == 1


def test_case3_a_name_error_cell_no_longer_fails_the_sheet(
    load: Any, db: Any, tmp_path: Path
) -> None:
    # fastexcel's type guess raised on #NAME? (and #GETTING_DATA): the whole sheet failed.
    path = _openpyxl_book(tmp_path / "name.xlsx", ["a", "b"], [[1, 1], ["#NAME?", 2], [3, 3]])
    report = load(path)
    assert report.ok, report.failed
    assert db.rows("name", order_by="ctid") == [(1, 1), (None, 2), (3, 3)]
    assert [r[:3] for r in _rejects(db, "name")] == [(3, "a", "#NAME?")]


# Case 4: dates mixed with durations (or numbers with durations) are text, not a failure.


def _case4(tmp_path: Path) -> Path:
    return _openpyxl_book(
        tmp_path / "c4.xlsx",
        ["when", "took", "flag"],
        [
            [dt.datetime(2024, 1, 2), 1.5, True],
            [dt.timedelta(hours=1, minutes=2), dt.timedelta(seconds=3), 2],
            [dt.datetime(2024, 1, 3, 4, 5, 6), 2, False],
            [dt.timedelta(days=2, seconds=5), 0.25, 0.5],
        ],
    )


def test_case4_dates_and_durations_mixed_load_as_text(load: Any, db: Any, tmp_path: Path) -> None:
    report = load(_case4(tmp_path))
    assert report.ok, report.failed
    assert db.types("c4") == {"when": "text", "took": "text", "flag": "text"}
    assert db.rows("c4", order_by="ctid") == [
        ("2024-01-02", "1.5", "TRUE"),
        ("1:02:00", "0:00:03", "2"),
        ("2024-01-03 04:05:06", "2", "FALSE"),
        ("48:00:05", "0.25", "0.5"),
    ]
    warnings = report.files[0].warnings
    assert len(warnings) == 3
    assert "column when: its cells are of several kinds (dates, durations)" in warnings[0]
    # Every duration's text reads back as the interval it is.
    assert db.val("SELECT '48:00:05'::interval = interval '2 days 5 seconds'") is True


def test_case4_types_text_and_text_win_for_workbooks(load: Any, db: Any, tmp_path: Path) -> None:
    path = _case4(tmp_path)
    report = load(path, table="typed", types={"flag": "text"})
    assert report.ok, report.failed
    assert db.types("typed")["flag"] == "text"
    report = load(path, table="all_text", text=True, force=True)
    assert report.ok, report.failed
    assert db.rows("all_text", order_by="ctid")[1] == ("1:02:00", "0:00:03", "2")


def test_text_keeps_a_workbooks_typed_cells_as_they_read(
    load: Any, db: Any, tmp_path: Path
) -> None:
    path = _openpyxl_book(
        tmp_path / "typed.xlsx",
        ["n", "f", "d", "ts", "ok", "dur"],
        [
            [1, 0.1, dt.date(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5, 250000), True,
             dt.timedelta(hours=30)],
            [20, 1e20, dt.date(1999, 12, 31), dt.datetime(2024, 1, 2, 0, 0, 1), False,
             dt.timedelta(seconds=1)],
        ],
    )  # fmt: skip
    report = load(path, text=True)
    assert report.ok, report.failed
    assert db.rows("typed", order_by="ctid") == [
        ("1", "0.1", "2024-01-02", "2024-01-02 03:04:05.25", "TRUE", "30:00:00"),
        ("20", "1e+20", "1999-12-31", "2024-01-02 00:00:01", "FALSE", "0:00:01"),
    ]


# Case 5: Parquet nanoseconds.

_NS = 1_704_067_200_123_456_789  # 2024-01-01 00:00:00.123456789 UTC


def _nanos(path: Path) -> Path:
    table = pa.table(
        {
            "t": pa.array([_NS, -1, None], pa.timestamp("ns")),
            "tz": pa.array([_NS, _NS + 1, None], pa.timestamp("ns", tz="UTC")),
            "tod": pa.array([3_723_000_000_001, 0, None], pa.time64("ns")),
            "took": pa.array([1_500, 2_000, None], pa.duration("ns")),
            "whole": pa.array([_NS - 789, 0, None], pa.timestamp("ns")),  # microseconds only
        }
    )
    pq.write_table(table, path)
    return path


def test_case5_nanoseconds_are_cut_to_microseconds_with_one_warning_per_column(
    load: Any, db: Any, tmp_path: Path
) -> None:
    path = _nanos(tmp_path / "ns.parquet")
    report = load(path, batch_size=1)  # three batches: still one warning per column
    assert report.ok, report.failed
    assert db.types("ns") == {
        "t": "timestamp without time zone",
        "tz": "timestamp with time zone",
        "tod": "time without time zone",
        "took": "interval",
        "whole": "timestamp without time zone",
    }
    utc = dt.UTC
    assert db.rows("ns", order_by="ctid") == [
        (dt.datetime(2024, 1, 1, 0, 0, 0, 123456), dt.datetime(2024, 1, 1, 0, 0, 0, 123456, utc),
         dt.time(1, 2, 3), dt.timedelta(microseconds=1), dt.datetime(2024, 1, 1, 0, 0, 0, 123456)),
        # towards the past: 1969-12-31 23:59:59.999999999 keeps its day
        (dt.datetime(1969, 12, 31, 23, 59, 59, 999999),
         dt.datetime(2024, 1, 1, 0, 0, 0, 123456, utc), dt.time(0), dt.timedelta(microseconds=2),
         dt.datetime(1970, 1, 1)),
        (None, None, None, None, None),
    ]  # fmt: skip
    warnings = report.files[0].warnings
    assert sorted(w.split(":")[0] for w in warnings) == [
        "column t",
        "column tod",
        "column took",
        "column tz",
    ]  # not "whole": nothing of it was cut
    assert all("cut to microseconds" in w for w in warnings)


def test_case5_nanoseconds_exact_under_text_and_types_text(
    load: Any, db: Any, tmp_path: Path
) -> None:
    path = _nanos(tmp_path / "ns.parquet")
    report = load(path, table="as_text", text=True)
    assert report.ok, report.failed
    assert report.files[0].warnings == []
    assert db.rows("as_text", order_by="ctid")[0] == (
        "2024-01-01 00:00:00.123456789",
        "2024-01-01 00:00:00.123456789Z",
        "01:02:03.000000001",
        "0:00:00.0000015",
        "2024-01-01 00:00:00.123456000",
    )
    report = load(path, table="one_text", types={"t": "text"}, force=True)
    assert report.ok, report.failed
    assert db.types("one_text")["t"] == "text"
    assert db.rows("one_text", order_by="ctid")[1][0] == "1969-12-31 23:59:59.999999999"


def test_case5_a_timestamp_outside_postgresqls_range_names_column_and_row(
    load: Any, db: Any, tmp_path: Path, cli: Any
) -> None:
    seconds = [0, 86_400, -300_000_000_000]  # the third: about 7537 BC
    pq.write_table(
        pa.table({"id": [1, 2, 3], "at": pa.array(seconds, pa.timestamp("s"))}),
        tmp_path / "old.parquet",
    )
    report = load(tmp_path / "old.parquet")
    assert not report.ok
    error = report.files[0].error or ""
    assert "line 3, column at: timestamp" in error
    assert "outside PostgreSQL's range" in error
    assert db.val(f"SELECT to_regclass('{db.schema}.old') IS NULL OR NOT EXISTS "
                  f'(SELECT FROM "{db.schema}".old)')  # fmt: skip
    code, _, err = cli("load", str(tmp_path / "old.parquet"))
    assert code == 1
    assert "line 3, column at" in err
    # Milliseconds past what microseconds hold: main said "cannot convert", without a row.
    pq.write_table(
        pa.table({"id": [1, 2], "at": pa.array([0, 2**62], pa.timestamp("ms"))}),
        tmp_path / "far.parquet",
    )
    report = load(tmp_path / "far.parquet")
    assert "line 2, column at: timestamp 4611686018427387904 milliseconds since 1970-01-01" in (
        report.files[0].error or ""
    )


def test_ndjson_types_text_keeps_values(load: Any, db: Any, tmp_path: Path) -> None:
    path = tmp_path / "events.ndjson"
    path.write_text(
        '{"id": 1, "v": 2.5, "ok": true, "at": "2024-01-02 03:04:05"}\n'
        '{"id": 2, "v": 1e20, "ok": false, "at": "2024-01-02 03:04:06"}\n'
    )
    report = load(path, text=True)
    assert report.ok, report.failed
    assert db.rows("events") == [
        ("1", "2.5", "true", "2024-01-02 03:04:05"),
        ("2", "1e+20", "false", "2024-01-02 03:04:06"),
    ]


def test_csv_types_text_keeps_values(load: Any, db: Any, tmp_path: Path) -> None:
    path = tmp_path / "zips.csv"
    path.write_bytes(b"zip,n\n00123,1\n04567,2\n")
    report = load(path, types={"n": "text"})
    assert report.ok, report.failed
    assert db.rows("zips") == [("00123", "1"), ("04567", "2")]


# Case 6: a text file named like a workbook.


def test_case6_text_named_like_a_workbook_is_an_error(
    load: Any, db: Any, tmp_path: Path, cli: Any
) -> None:
    page = tmp_path / "report.xls"
    page.write_text(
        "<!DOCTYPE html>\n<html><body><h1>500 Internal Server Error</h1></body></html>\n"
    )
    data = tmp_path / "export.xlsx"
    data.write_text("id,name\n1,alpha\n2,beta\n")
    report = load([page, data])
    assert [f.status for f in report.files] == ["failed", "failed"]
    assert "report.xls: named like a workbook but holds an HTML page" in (
        report.files[0].error or ""
    )
    assert "holds plain text (CSV or TSV?)" in (report.files[1].error or "")
    assert "--format csv" in (report.files[1].error or "")
    code, _, _ = cli("load", str(data))
    assert code == 1
    report = load(data, format="csv")
    assert report.ok, report.failed
    assert db.rows("export") == [(1, "alpha"), (2, "beta")]


# Case 9: every column up to the header's last name is kept.


def test_case9_unnamed_columns_inside_the_header_are_kept(
    load: Any, db: Any, tmp_path: Path
) -> None:
    import xlsxwriter

    path = tmp_path / "cols.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    # A: a, B: blank header + empty, C: whitespace header + empty, D: blank header + values,
    # E: b, F: nothing, G: values without a header (right of the header), H: formatted blank
    sheet.write_row(0, 0, ["a", None, " ", None, "b"])
    for row, values in enumerate([[1, None, None, "x", 10, None, "r1"], [2, None, None, "y", 20]]):
        for col, value in enumerate(values):
            if value is not None:
                sheet.write(row + 1, col, value)
        sheet.write_blank(row + 1, 7, None, book.add_format({"bold": True}))
    book.close()
    report = load(path)
    assert report.ok, report.failed
    assert db.data_columns("cols") == ["a", "col_2", "col_3", "col_4", "b", "col_6"]
    assert db.rows("cols") == [
        (1, None, None, "x", 10, "r1"),
        (2, None, None, "y", 20, None),
    ]


# Case 11: a header renamed to keep clear of the lineage columns is said.


def test_case11_a_header_renamed_for_the_lineage_columns_is_said(
    load: Any, db: Any, tmp_path: Path, cli: Any
) -> None:
    path = tmp_path / "lineage.csv"
    path.write_text("_pgingest_file_id,v\n7,a\n")
    report = load(path)
    assert report.ok, report.failed
    assert db.data_columns("lineage") == ["pgingest_file_id", "v"]
    assert report.files[0].warnings == [
        "header '_pgingest_file_id' is loaded as column pgingest_file_id: _pgingest_file_id"
        " is the name of pgingest's lineage column"
    ]
    code, _, err = cli("load", str(path), "--force")
    assert code == 0
    assert "warning:" in err
    assert "lineage column" in err


def test_a_mixed_column_meeting_an_existing_number_column(
    load: Any, db: Any, tmp_path: Path
) -> None:
    # The table holds numbers from yesterday's workbook; today's has N/A and a word in that
    # column. The cells are text: to the table they are stray values, as in a CSV number
    # column (one rule for every format): a missing-value marker is NULL and said so, a word
    # is a bad row per --on-error (the column turns text only when half or more of a batch's
    # values are words), never a silent NULL.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = _openpyxl_book(tmp_path / "a" / "day.xlsx", ["id", "amount"], [[1, 1.5], [2, 2.5]])
    rows: list[list[Any]] = [[i, i + 0.5] for i in range(3, 12)]
    rows.insert(4, [99, "N/A"])  # sheet row 6
    rows.insert(7, [98, "pending"])  # sheet row 9
    second = _openpyxl_book(tmp_path / "b" / "day.xlsx", ["id", "amount"], rows)
    assert load(first, table="daily").ok
    report = load(second, table="daily")
    assert not report.ok
    assert "line 9, column amount" in (report.files[0].error or "")
    assert db.count("daily") == 2  # nothing of the failed file
    report = load(second, table="daily", on_error="skip")
    assert report.ok, report.failed
    assert any("N/A read as NULL" in w for w in report.files[0].warnings)
    assert db.types("daily")["amount"] == "double precision"
    assert db.count("daily") == 12
    assert db.val(f'SELECT amount FROM "{db.schema}".daily WHERE id = 99') is None
    assert [r[:2] for r in _rejects(db, "daily")] == [(9, "amount")]

"""Workbook cell values that must load exactly, and workbooks the reader fails on."""

from __future__ import annotations

import datetime as dt
import struct
from pathlib import Path
from typing import Any

import pytest

from workbooks import simple_xlsx, typed_ods


def _xls_with_truncated_formula(path: Path) -> Path:
    """An xls whose formula token PtgExp lacks its 4-byte operand: calamine panics on it
    while opening the workbook (as on tafia/calamine tests/ptgexp-truncated-operand.xls)."""
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("s")
    sheet.write(0, 0, "a")
    sheet.write(1, 0, xlwt.Formula("1+2"))
    book.save(str(path))
    data = bytearray(path.read_bytes())
    rgce = bytes([0x1E, 1, 0, 0x1E, 2, 0, 0x03])  # ptgInt 1, ptgInt 2, ptgAdd
    at = data.find(rgce)
    assert at > 0
    struct.pack_into("<H", data, at - 2, 3)  # cce: 3 bytes of formula
    data[at : at + 3] = bytes([0x01, 0, 0])  # PtgExp with 2 of its 4 operand bytes
    path.write_bytes(bytes(data))
    return path


def test_a_workbook_the_reader_panics_on_fails_alone(tmp_path: Path, cli: Any, db: Any) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    simple_xlsx(folder / "good.xlsx")
    _xls_with_truncated_formula(folder / "broken.xls")
    code, out, err = cli("load", str(folder))
    assert code == 1, (out, err)
    assert db.count("good") == 3
    failed = [line for line in err.splitlines() if line.startswith("✗")]
    assert len(failed) == 1, err
    assert "broken.xls: the workbook reader failed: range start index 4" in failed[0]
    assert "Traceback" not in err
    assert "PanicException" not in out + err


def _times_1904_xlsx(path: Path, *, date_1904: bool = True) -> Path:
    """Times of day, a column of dates with one time, and one of text with times."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"date_1904": date_1904})
    clock = book.add_format({"num_format": "hh:mm:ss"})
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["start", "n", "when", "note"])
    for i in range(1, 4):
        sheet.write_datetime(i, 0, dt.time(9 + i, 30), clock)
        sheet.write_number(i, 1, i)
        if i < 3:
            sheet.write_datetime(i, 2, dt.datetime(2024, 1, i), day)
        else:
            sheet.write_datetime(i, 2, dt.time(8, 15), clock)
    sheet.write_string(1, 3, "late")
    sheet.write_datetime(2, 3, dt.time(7, 5, 30), clock)
    sheet.write_datetime(3, 3, dt.datetime(2024, 5, 6), day)
    book.close()
    return path


def _times_1904_xls(path: Path) -> Path:
    import xlwt

    book = xlwt.Workbook()
    book.set_dates_1904(True)
    sheet = book.add_sheet("s")
    clock = xlwt.easyxf(num_format_str="hh:mm:ss")
    day = xlwt.easyxf(num_format_str="yyyy-mm-dd")
    for col, name in enumerate(["start", "n", "when", "note"]):
        sheet.write(0, col, name)
    for i in range(1, 4):
        sheet.write(i, 0, dt.time(9 + i, 30), clock)
        sheet.write(i, 1, i)
        if i < 3:
            sheet.write(i, 2, dt.datetime(2024, 1, i), day)
        else:
            sheet.write(i, 2, dt.time(8, 15), clock)
    sheet.write(1, 3, "late")
    sheet.write(2, 3, dt.time(7, 5, 30), clock)
    sheet.write(3, 3, dt.datetime(2024, 5, 6), day)
    book.save(str(path))
    return path


@pytest.mark.parametrize(
    ("make", "suffix"), [(_times_1904_xlsx, "xlsx"), (_times_1904_xls, "xls")], ids=["xlsx", "xls"]
)
def test_times_of_day_in_a_1904_workbook_are_times(
    make: Any, suffix: str, load: Any, db: Any, tmp_path: Path
) -> None:
    report = load(make(tmp_path / f"clock.{suffix}"))
    assert report.ok, report.failed
    types = db.types("clock")
    assert (types["start"], types["when"], types["note"]) == (
        "time without time zone",
        "text",
        "text",
    )
    assert db.rows("clock", order_by="n") == [
        (dt.time(10, 30), 1, "2024-01-01", "late"),
        (dt.time(11, 30), 2, "2024-01-02", "07:05:30"),
        (dt.time(12, 30), 3, "08:15:00", "2024-05-06"),
    ]


def test_a_datetime_on_1904_01_01_in_a_1900_workbook_stays(
    load: Any, db: Any, tmp_path: Path
) -> None:
    import xlsxwriter

    path = tmp_path / "stamps.xlsx"
    book = xlsxwriter.Workbook(str(path))
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["at", "n"])
    sheet.write_datetime(1, 0, dt.datetime(1904, 1, 1, 10, 30), stamp)
    sheet.write_number(1, 1, 1)
    book.close()
    report = load(path)
    assert report.ok, report.failed
    assert db.rows("stamps") == [(dt.datetime(1904, 1, 1, 10, 30), 1)]


def test_ods_durations_past_a_day_are_intervals(load: Any, db: Any, tmp_path: Path) -> None:
    path = typed_ods(
        tmp_path / "hours.ods",
        [
            [("string", "who"), ("string", "hours")],
            [("string", "ann"), ("time", "PT07H30M00S")],
            [("string", "bob"), ("time", "PT36H00M00S")],
            [("string", "cy"), ("time", "P2DT01H00M00.5S")],
        ],
    )
    report = load(path)
    assert report.ok, report.failed
    assert report.files[0].rejects == 0
    assert db.types("hours")["hours"] == "interval"
    assert db.rows("hours") == [
        ("ann", dt.timedelta(hours=7, minutes=30)),
        ("bob", dt.timedelta(hours=36)),
        ("cy", dt.timedelta(days=2, hours=1, seconds=0.5)),
    ]


def _xlsb_with_chart_sheet(path: Path) -> Path:
    """An xlsb of a sheet ``Data`` and a chart sheet ``Chart`` (its part a chartsheet's
    bare begin and end records, on which the reader fails as on a real one)."""
    import zipfile

    import pyxlsbwriter

    plain = path.with_suffix(".plain.xlsb")
    with pyxlsbwriter.XlsbWriter(str(plain)) as book:
        book.add_sheet("Data")
        book.write_sheet([["id", "name"], [1, "x"], [2, "y"]])
        book.add_sheet("Chart")
        book.write_sheet([["a"]])
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as out:
        for name in source.namelist():
            data = source.read(name)
            if name == "xl/_rels/workbook.bin.rels":
                data = data.replace(
                    b'relationships/worksheet" Target="worksheets/sheet2.bin"',
                    b'relationships/chartsheet" Target="chartsheets/sheet1.bin"',
                )
            if name == "xl/worksheets/sheet2.bin":  # BrtBeginSheet, BrtEndSheet
                out.writestr("xl/chartsheets/sheet1.bin", bytes.fromhex("810100820100"))
                continue
            out.writestr(name, data)
    plain.unlink()
    return path


def test_sheet_all_skips_a_chart_sheet_and_says_so(tmp_path: Path, cli: Any, db: Any) -> None:
    path = _xlsb_with_chart_sheet(tmp_path / "book.xlsb")
    code, out, err = cli("load", str(path), "--sheet", "all")
    assert code == 0, (out, err)
    assert db.rows("book_data") == [(1, "x"), (2, "y")]
    assert "sheet 'Chart' is a chart sheet" in out
    code, out, err = cli("load", str(path), "--sheet", "all", "--sheet-column", "--table", "one")
    assert code == 0, (out, err)
    assert db.rows("one", order_by="2") == [("Data", 1, "x"), ("Data", 2, "y")]
    assert "sheet 'Chart' is a chart sheet (a chart, no cells): not loaded" in out + err


_DEEP = 200
"""Empty rows above the table: more than the header search reads at first."""


def _deep_xls(path: Path) -> Path:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("s")
    for col, name in enumerate(["id", "name"]):
        sheet.write(_DEEP, col, name)
    for i in (1, 2):
        sheet.write(_DEEP + i, 0, i)
        sheet.write(_DEEP + i, 1, f"n{i}")
    book.save(str(path))
    return path


def _deep_ods(path: Path) -> Path:
    rows = [[("string", "id"), ("string", "name")], [("float", 1), ("string", "n1")]]
    return typed_ods(path, [*rows, [("float", 2), ("string", "n2")]], empty_rows=_DEEP)


def _deep_xlsb(path: Path) -> Path:
    import pyxlsbwriter

    with pyxlsbwriter.XlsbWriter(str(path)) as book:
        book.add_sheet("s")
        book.write_sheet([[None, None]] * _DEEP + [["id", "name"], [1, "n1"], [2, "n2"]])
    return path


@pytest.mark.parametrize(
    ("make", "suffix"),
    [(_deep_xls, "xls"), (_deep_ods, "ods"), (_deep_xlsb, "xlsb")],
    ids=["xls", "ods", "xlsb"],
)
def test_a_table_far_below_the_top_of_its_sheet_is_found(
    make: Any, suffix: str, load: Any, db: Any, tmp_path: Path
) -> None:
    report = load(make(tmp_path / f"deep.{suffix}"))
    assert report.ok, report.failed
    assert db.rows("deep") == [(1, "n1"), (2, "n2")]


def test_ods_tabs_and_line_breaks_the_reader_drops_are_a_warning(
    load: Any, db: Any, tmp_path: Path
) -> None:
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import LineBreak, P, Tab

    def sheet(path: Path, with_breaks: bool) -> Path:
        doc = OpenDocumentSpreadsheet()
        table = Table(name="s")
        for texts in (["id", "note"], ["1", "xyz"]):
            tr = TableRow()
            for text in texts:
                cell = TableCell(valuetype="string")
                paragraph = P(text=text[0])
                if with_breaks and text == "xyz":
                    paragraph.addElement(Tab())
                    paragraph.addText("y")
                    paragraph.addElement(LineBreak())
                    paragraph.addText("z")
                else:
                    paragraph = P(text=text)
                cell.addElement(paragraph)
                tr.addElement(cell)
            table.addElement(tr)
        doc.spreadsheet.addElement(table)
        doc.save(str(path))
        return path

    report = load(sheet(tmp_path / "tabs.ods", with_breaks=True))
    assert report.ok, report.failed
    assert db.rows("tabs") == [("1", "xyz")]  # x<tab>y<line-break>z: the reader's text
    assert any("tabs or line breaks" in w for w in report.files[0].warnings)
    report = load(sheet(tmp_path / "plain.ods", with_breaks=False))
    assert db.rows("plain") == [("1", "xyz")]
    assert not any("tabs or line breaks" in w for w in report.files[0].warnings)

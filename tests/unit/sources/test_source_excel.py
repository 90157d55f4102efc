"""The workbook reader, without a database: detection, header search, types, error cells."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pyarrow as pa
import pytest

from pgingest.errors import ConfigError, SourceError
from pgingest.model import ArrowChunk
from pgingest.sources import detect, open_source
from pgingest.sources.base import ExcelOptions
from pgingest.sources.excel import ExcelSource
from pgingest.sources.workbook import find_header, sheet_names
from workbooks import rich_xlsx, simple_ods, simple_xls, simple_xlsb, simple_xlsx, typed_ods


@pytest.fixture(scope="module")
def rich(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return rich_xlsx(tmp_path_factory.mktemp("rich") / "report.xlsx")


def _open(path: Path, **options: object) -> ExcelSource:
    source = open_source(detect(str(path)), excel=ExcelOptions(**options))  # type: ignore[arg-type]
    assert isinstance(source, ExcelSource)
    return source


def test_detects_each_workbook_kind_by_content(tmp_path: Path) -> None:
    files = {
        "xlsx": simple_xlsx(tmp_path / "a.xlsx"),
        "xls": simple_xls(tmp_path / "b.xls"),
        "ods": simple_ods(tmp_path / "c.ods"),
        "xlsb": simple_xlsb(tmp_path / "d.xlsb"),
    }
    for kind, path in files.items():
        renamed = path.with_suffix(".data")  # the suffix does not decide
        path.rename(renamed)
        assert detect(str(renamed)).format == kind
        # ... nor how it is read (header search, types).
        assert open_source(detect(str(renamed))).column_names() == ["name", "n", "when", "ok"]


def test_every_format_reads_the_same_table(tmp_path: Path) -> None:
    writers = [simple_xlsx, simple_xls, simple_ods, simple_xlsb]
    suffixes = [".xlsx", ".xls", ".ods", ".xlsb"]
    for write, suffix in zip(writers, suffixes, strict=True):
        source = _open(write(tmp_path / f"t{suffix}"))
        table = source.sample()
        assert source.column_names() == ["name", "n", "when", "ok"], suffix
        assert table.column("name").to_pylist() == ["alpha", "beta", "gamma"], suffix
        assert table.column("n").type in (pa.int32(), pa.int64()), suffix
        assert table.column("n").to_pylist() == [1, 2, 3], suffix
        assert table.column("when").type == pa.date32(), suffix
        assert table.column("when").to_pylist()[0] == dt.date(2024, 1, 2), suffix
        assert table.column("ok").to_pylist() == [True, False, True], suffix


def test_title_row_merged_header_empty_rows_and_columns(rich: Path) -> None:
    source = _open(rich)
    # The merged "Customer" spans A:B; E is unnamed and empty but inside the header's span
    # (issue 13 case 9: kept, as col_5); formatted blanks on the right are no columns.
    assert source.column_names() == [
        "Customer",
        "Customer_2",
        "Amount",
        "Day",
        "",
        "Stamp",
        "At",
        "Paid",
        "Half",
        "Count",
    ]
    table = source.sample()
    assert table.num_rows == 3  # the empty row inside the data is gone
    assert table.column("Customer").to_pylist() == ["Alice", "Bob", "Carol"]
    assert table.column("Customer_2").to_pylist() == ["A-1", "B-2", "C-3"]


def test_types_dates_times_booleans_formulas(rich: Path) -> None:
    table = _open(rich).sample()
    types = {f.name: f.type for f in table.schema}
    assert types["Amount"] == pa.float64()  # 10.5 is not integral
    assert types["Count"] == pa.int32()  # all integral (the error cell is NULL)
    assert types["Day"] == pa.date32()
    assert pa.types.is_timestamp(types["Stamp"])
    assert types["At"] == pa.time64("us")
    assert types["Paid"] == pa.bool_()
    assert table.column("Day").to_pylist() == [
        dt.date(2024, 1, 2),
        dt.date(2024, 2, 3),
        dt.date(2024, 3, 4),
    ]
    assert table.column("At").to_pylist() == [
        dt.time(12, 30),
        dt.time(1, 2, 3),
        dt.time(23, 59, 59),
    ]
    assert table.column("Stamp").to_pylist()[0] == dt.datetime(2024, 1, 2, 3, 4, 5)
    # Formulas: their cached values; the #DIV/0! one is NULL.
    assert table.column("Half").to_pylist() == [5.25, None, 15.0]
    assert table.column("Count").to_pylist() == [1, 2, None]


def test_error_cells_are_rejects_with_their_sheet_row(rich: Path) -> None:
    source = _open(rich)
    chunks = list(source.chunks())
    assert len(chunks) == 1
    chunk = chunks[0]
    assert isinstance(chunk, ArrowChunk)
    assert chunk.first_line == 4  # row 4 of the sheet holds the first data row
    found = sorted((r.line, r.column, r.raw) for r in chunk.rejects)
    assert found == [(6, "Half", "#DIV/0!"), (7, "Count", "#N/A")]


def test_rejects_follow_their_chunk(rich: Path) -> None:
    chunks = list(_open(rich).chunks(batch_rows=1))
    assert [c.first_line for c in chunks] == [4, 6, 7]
    assert [[r.raw for r in c.rejects] for c in chunks] == [[], ["#DIV/0!"], ["#N/A"]]


def test_sheet_by_name_index_and_unicode(rich: Path) -> None:
    assert _open(rich, sheet="日本語").column_names() == ["コード", "値"]
    assert _open(rich, sheet="2").column_names() == ["コード", "値"]
    assert _open(rich, sheet=2).sample().column("値").to_pylist() == [1.25, 2.5]
    with pytest.raises(SourceError, match=r"no sheet 'Nope'.*'日本語'"):
        _open(rich, sheet="Nope")
    with pytest.raises(SourceError, match="sheet is empty"):
        _open(rich, sheet="Empty")


def test_sheet_names_skip_empty_sheets(rich: Path) -> None:
    assert sheet_names(str(rich)) == ["Données €", "日本語"]
    assert sheet_names(str(rich), skip_empty=False) == ["Données €", "日本語", "Empty"]


def test_all_sheets_in_one_table_with_a_sheet_column(rich: Path) -> None:
    source = _open(rich, all_sheets=True)
    names = source.column_names()
    assert names[0] == "sheet"
    assert "コード" in names
    assert "Customer" in names
    table = source.sample()
    assert table.column("sheet").to_pylist() == ["Données €"] * 3 + ["日本語"] * 2
    rejects = [r for c in source.chunks() for r in c.rejects]  # type: ignore[union-attr]
    assert sorted(r.raw or "" for r in rejects) == ["#DIV/0!", "#N/A"]


def test_header_row_option(rich: Path) -> None:
    source = _open(rich, header_row=1)  # the title row taken as the header
    assert source.column_names()[0] == "Quarterly report 2024"
    with pytest.raises(ConfigError):
        _open(rich, header_row=0)


def test_find_header_skips_title_rows() -> None:
    assert find_header([1, 0, 8, 8, 8]) == 2
    assert find_header([2, 9, 9]) == 1  # a two-cell title above a wide table
    assert find_header([2, 0, 3, 3]) == 2  # ... or above a three-column one
    assert find_header([2, 2, 2]) == 0  # a two-column table
    assert find_header([0, 0, 3, 3]) == 2
    assert find_header([1, 1, 1]) == 0  # a one-column sheet
    assert find_header([]) is None


def test_password_protected_workbook_is_a_clear_error(tmp_path: Path) -> None:
    import msoffcrypto.format.ooxml

    plain = simple_xlsx(tmp_path / "plain.xlsx")
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as src, locked.open("wb") as out:
        msoffcrypto.format.ooxml.OOXMLFile(src).encrypt("secret", out)
    with pytest.raises(SourceError, match=r"locked\.xlsx: the workbook is password-protected"):
        detect(str(locked))


def test_corrupt_workbooks_are_clear_errors(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.xlsx"
    truncated.write_bytes(simple_xlsx(tmp_path / "ok.xlsx").read_bytes()[:2000])
    with pytest.raises(SourceError, match=r"cut\.xlsx: corrupt workbook"):
        detect(str(truncated))
    hollow = tmp_path / "hollow.xlsx"
    with zipfile.ZipFile(hollow, "w") as archive:
        archive.writestr("xl/workbook.xml", "<not a workbook")
    with pytest.raises(SourceError, match=r"hollow\.xlsx: cannot read the workbook"):
        open_source(detect(str(hollow)))
    ole = tmp_path / "junk.xls"
    ole.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600)
    with pytest.raises(SourceError, match=r"junk\.xls: cannot read the workbook"):
        open_source(detect(str(ole)))


def test_zip_that_is_no_workbook(tmp_path: Path) -> None:
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.txt", "x")
    with pytest.raises(SourceError, match="zip archive, not a workbook"):
        detect(str(path))


def test_a_time_column_with_an_empty_cell_stays_times(tmp_path: Path) -> None:
    # Found by the workbook property test: an empty cell made the column a timestamp
    # (1899-12-31 00:00:01), and was taken for a date beside the times.
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "at"])
    for i, value in enumerate([dt.time(0, 0, 1), None, dt.time(10, 30)], start=1):
        sheet.append([i, value])
    book.save(tmp_path / "t.xlsx")
    source = _open(tmp_path / "t.xlsx")
    assert source.warnings == []
    table = source.sample()
    assert table.column("at").type == pa.time64("us")
    assert table.column("at").to_pylist() == [dt.time(0, 0, 1), None, dt.time(10, 30)]


def test_times_beside_dates_are_text(tmp_path: Path) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "at"])
    for i, value in enumerate([dt.time(10, 30), dt.datetime(2024, 1, 2, 3, 4, 5)], start=1):
        sheet.append([i, value])
    book.save(tmp_path / "t.xlsx")
    source = _open(tmp_path / "t.xlsx")
    assert source.sample().column("at").to_pylist() == ["10:30:00", "2024-01-02 03:04:05"]
    assert source.warnings == [
        "column at: its cells are of several kinds (dates, times of day): read as text,"
        " each cell as it reads"
    ]


def test_each_workbook_format_reads_a_mixed_column_as_text(tmp_path: Path) -> None:
    # xls (xlwt) and ods (odfpy) hold the rule too; xlsx is the property test's.
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("s")
    for r, values in enumerate([["id", "v"], [1, 2.5], [2, "N/A"], [3, True], [4, "abc"]]):
        for c, value in enumerate(values):
            sheet.write(r, c, value)
    book.save(str(tmp_path / "m.xls"))
    source = _open(tmp_path / "m.xls")
    assert source.sample().column("v").to_pylist() == ["2.5", "N/A", "TRUE", "abc"]
    assert (
        "column v: its cells are of several kinds (booleans, numbers, text)" in (source.warnings[0])
    )

    cells = [["id", "v"], [1, 2.5], [2, "N/A"], [3, True], [4, "abc"]]

    def kind(value: object) -> str:
        if isinstance(value, bool):
            return "boolean"
        return "float" if isinstance(value, int | float) else "string"

    typed_ods(tmp_path / "m.ods", [[(kind(v), v) for v in row] for row in cells])
    source = _open(tmp_path / "m.ods")
    assert source.sample().column("v").to_pylist() == ["2.5", "N/A", "TRUE", "abc"]


def test_xlsb_reads_a_mixed_column_as_text(tmp_path: Path) -> None:
    import pyxlsbwriter

    with pyxlsbwriter.XlsbWriter(str(tmp_path / "m.xlsb")) as book:
        book.add_sheet("s")
        book.write_sheet(
            [["id", "v", "w"], [1, 2.5, dt.datetime(2024, 1, 2)],
             [2, "N/A", dt.datetime(2024, 1, 3, 4, 5, 6)], [3, True, "x"], [4, "abc", None]]
        )  # fmt: skip
    source = _open(tmp_path / "m.xlsb")
    table = source.sample()
    assert table.column("v").to_pylist() == ["2.5", "N/A", "TRUE", "abc"]
    assert table.column("w").to_pylist() == ["2024-01-02", "2024-01-03 04:05:06", "x", None]
    assert len(source.warnings) == 2


def test_a_mixed_column_of_a_table_not_starting_at_column_a(tmp_path: Path) -> None:
    # fastexcel counts use_columns from column A, its errors from the table's first column:
    # the cell-by-cell reading picks its columns by name (this failed before).
    import xlsxwriter

    book = xlsxwriter.Workbook(str(tmp_path / "off.xlsx"))
    sheet = book.add_worksheet()
    sheet.write_row(2, 2, ["id", "v", "w"])
    for r, row in enumerate([[1, 2.5, "a"], [2, True, "b"], [3, "x", "c"]], start=3):
        sheet.write_row(r, 2, row)
    book.close()
    source = _open(tmp_path / "off.xlsx")
    assert source.sample().to_pydict() == {
        "id": [1, 2, 3],
        "v": ["2.5", "TRUE", "x"],
        "w": ["a", "b", "c"],
    }


def test_ods_dates_and_durations_in_a_mixed_column_keep_their_iso_text(tmp_path: Path) -> None:
    # OpenDocument stores them as ISO 8601 text; a duration was lost (NULL) before.
    rows = [
        [("string", "id"), ("string", "v")],
        [("float", 1), ("date", "2024-01-02T10:30:00")],
        [("float", 2), ("string", "x")],
        [("float", 3), ("time", "PT01H02M03S")],
    ]
    typed_ods(tmp_path / "dt.ods", rows)
    source = _open(tmp_path / "dt.ods")
    assert source.sample().column("v").to_pylist() == ["2024-01-02T10:30:00", "x", "PT01H02M03S"]

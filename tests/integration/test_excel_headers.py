"""Workbooks' header rows and names: which row is the header, what its columns are called,
and what table each sheet goes to."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_OFFICE = "application/vnd.openxmlformats-officedocument.spreadsheetml"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels"'
    ' ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    f'<Override PartName="/xl/workbook.xml" ContentType="{_OFFICE}.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml"'
    f' ContentType="{_OFFICE}.worksheet+xml"/>'
    f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_OFFICE}.sharedStrings+xml"/>'
    "</Types>"
)
_RELS = '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
_ROOT_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?>{_RELS}'
    f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
    "</Relationships>"
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="{_REL}">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    f'<?xml version="1.0" encoding="UTF-8"?>{_RELS}'
    f'<Relationship Id="rId1" Type="{_REL}/worksheet" Target="worksheets/sheet1.xml"/>'
    f'<Relationship Id="rId2" Type="{_REL}/sharedStrings" Target="sharedStrings.xml"/>'
    "</Relationships>"
)
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def _hand_xlsx(path: Path, rows: Sequence[str], strings: Sequence[str] = ()) -> Path:
    """An xlsx written byte by byte: ``rows`` are the ``<row>`` elements of its one sheet,
    ``strings`` its shared strings (what writer libraries would not write)."""
    shared = "".join(f"<si><t>{s}</t></si>" for s in strings)
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("[Content_Types].xml", _CONTENT_TYPES)
        book.writestr("_rels/.rels", _ROOT_RELS)
        book.writestr("xl/workbook.xml", _WORKBOOK)
        book.writestr("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS)
        book.writestr(
            "xl/worksheets/sheet1.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><worksheet xmlns="{_MAIN}">'
            f"<sheetData>{''.join(rows)}</sheetData></worksheet>",
        )
        book.writestr(
            "xl/sharedStrings.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{_MAIN}"'
            f' count="{len(strings)}" uniqueCount="{len(strings)}">{shared}</sst>',
        )
    return path


def test_a_row_of_empty_formula_results_is_not_the_header(
    load: Any, db: Any, tmp_path: Path
) -> None:
    import xlsxwriter

    path = tmp_path / "report.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    sheet.write(0, 0, "Sales report")
    for col in range(4):
        sheet.write_formula(1, col, '=IF(1,"","")', None, "")  # cached value: ""
    sheet.write_row(2, 0, ["id", "name", "amount", "when"])
    sheet.write_row(3, 0, [1, "n1", 1.5, "w1"])
    sheet.write_row(4, 0, [2, "n2", 3, "w2"])
    book.close()
    report = load(path, table="report")
    assert report.ok, report.failed
    assert db.types("report") == {
        "id": "integer",
        "name": "text",
        "amount": "double precision",
        "when": "text",
    }
    assert db.rows("report") == [(1, "n1", 1.5, "w1"), (2, "n2", 3.0, "w2")]


def test_a_row_of_empty_shared_strings_is_not_the_header(
    load: Any, db: Any, tmp_path: Path
) -> None:
    strings = ["", "id", "name", "amount", "x"]
    rows = [
        '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>0</v></c>'
        '<c r="C1" t="s"><v>0</v></c></row>',
        '<row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2" t="s"><v>2</v></c>'
        '<c r="C2" t="s"><v>3</v></c></row>',
        '<row r="3"><c r="A3"><v>7</v></c><c r="B3" t="s"><v>4</v></c><c r="C3"><v>2.5</v></c>'
        "</row>",
    ]
    path = _hand_xlsx(tmp_path / "blank.xlsx", rows, strings)
    report = load(path, table="blank")
    assert report.ok, report.failed
    assert db.types("blank") == {"id": "integer", "name": "text", "amount": "double precision"}
    assert db.rows("blank") == [(7, "x", 2.5)]


def test_xlsx_without_row_and_cell_references_loads(load: Any, db: Any, tmp_path: Path) -> None:
    def cell(value: str | int) -> str:
        if isinstance(value, int):
            return f"<c><v>{value}</v></c>"
        return f'<c t="inlineStr"><is><t>{value}</t></is></c>'

    table = [["id", "name"], [1, "a"], [2, "b"]]
    rows = ["<row>" + "".join(cell(v) for v in row) + "</row>" for row in table]
    path = _hand_xlsx(tmp_path / "norefs.xlsx", rows)
    report = load(path, table="norefs")
    assert report.ok, report.failed
    assert db.rows("norefs") == [(1, "a"), (2, "b")]


def test_xlsb_row_of_empty_strings_is_an_empty_row(load: Any, db: Any, tmp_path: Path) -> None:
    import pyxlsbwriter

    path = tmp_path / "gaps.xlsb"
    with pyxlsbwriter.XlsbWriter(str(path)) as book:
        book.add_sheet("S")
        book.write_sheet([["id", "name", "n"], [1, "a", 2], ["", "", ""], [2, "b", 3]])
    report = load(path, table="gaps")
    assert report.ok, report.failed
    assert db.rows("gaps") == [(1, "a", 2), (2, "b", 3)]


def test_repeated_xlsx_header_names_keep_the_names_the_header_has(
    load: Any, db: Any, tmp_path: Path
) -> None:
    import openpyxl

    path = tmp_path / "dups.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["a", "a", "a_1", "b", "b", "b_2"])
    sheet.append(["first a", "second a", "titled a_1", "first b", "second b", "titled b_2"])
    book.save(path)
    report = load(path, table="dups")
    assert report.ok, report.failed
    assert list(db.types("dups")) == ["a", "a_2", "a_1", "b", "b_3", "b_2"]
    assert db.rows("dups") == [
        ("first a", "second a", "titled a_1", "first b", "second b", "titled b_2")
    ]


def test_csv_header_names_blank_and_repeated(load: Any, db: Any, tmp_path: Path) -> None:
    path = tmp_path / "dups.csv"
    path.write_text(",col_1,a,a,a_1\n1,2,3,4,5\n")
    report = load(path, table="dups")
    assert report.ok, report.failed
    assert list(db.types("dups")) == ["col_1_2", "col_1", "a", "a_2", "a_1"]
    assert db.rows("dups") == [(1, 2, 3, 4, 5)]


def test_date_and_boolean_header_cells_are_named_by_their_text(
    load: Any, db: Any, tmp_path: Path
) -> None:
    import datetime as dt

    import xlsxwriter

    path = tmp_path / "typed.xlsx"
    book = xlsxwriter.Workbook(str(path))
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet = book.add_worksheet()
    sheet.write(0, 0, "id")
    sheet.write_datetime(0, 1, dt.datetime(2024, 3, 1), day)
    sheet.write_boolean(0, 2, True)
    sheet.write_number(0, 3, 2024)
    sheet.write_row(1, 0, [1, 2, 3, 4])
    book.close()
    report = load(path, table="typed")
    assert report.ok, report.failed
    assert list(db.types("typed")) == ["id", "_2024_03_01", "true", "_2024"]
    assert db.rows("typed") == [(1, 2, 3, 4)]


def test_sheets_whose_names_normalize_alike_each_get_a_table(
    load: Any, db: Any, tmp_path: Path
) -> None:
    import openpyxl

    path = tmp_path / "book.xlsx"
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "日本語"  # named by its position: book_sheet1, which Sheet1 really has
    first.append(["id", "v"])
    first.append([0, "from 日本語"])
    for number, title in enumerate(["Data 1", "data-1", "Données", "Donnees", "Sheet1"], 1):
        sheet = book.create_sheet(title)
        sheet.append(["id", "v"])
        sheet.append([number, f"from {title}"])
    book.save(path)
    for mode in ("replace", "append"):
        report = load(path, sheet="all", mode=mode)
        assert report.ok, report.failed
    tables = {
        "book_sheet1_2": "日本語",
        "book_data_1": "Data 1",
        "book_data_1_2": "data-1",
        "book_donnees": "Données",
        "book_donnees_2": "Donnees",
        "book_sheet1": "Sheet1",
    }
    assert sorted(f.table.split(".", 1)[1] for f in report.files) == sorted(tables)
    assert [f.status for f in report.files] == ["skipped"] * len(tables)
    for table, title in tables.items():
        assert [row[1] for row in db.rows(table)] == [f"from {title}"]

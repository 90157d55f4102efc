"""Build test workbooks with writer libraries: xlsx (xlsxwriter: it stores formulas' cached
values and error cells, which openpyxl cannot), xls (xlwt), ods (odfpy), xlsb (pyxlsbwriter)."""

from __future__ import annotations

import atexit
import datetime as dt
import functools
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Row = Sequence[Any]

SIMPLE_HEADER = ["name", "n", "when", "ok"]
SIMPLE_ROWS = [
    ["alpha", 1, dt.datetime(2024, 1, 2), True],
    ["beta", 2, dt.datetime(2024, 1, 3), False],
    ["gamma", 3, dt.datetime(2024, 1, 4), True],
]
"""The table every format writes: a title row, an empty row, then this header and rows."""


def rich_xlsx(path: Path) -> Path:
    """A workbook with what real spreadsheets hold, sheet by sheet:

    ``Données €``: a title row, an empty row, a header with a merged cell (``Customer`` over
    A:B), an empty column (E) between data columns, dates, datetimes, times of day, booleans,
    integral and fractional numbers, formulas with cached values, ``#DIV/0!`` and ``#N/A``
    error cells, a fully empty row inside the data, and formatted but empty trailing columns.
    ``日本語``: a small table. ``Empty``: nothing.
    """
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    clock = book.add_format({"num_format": "hh:mm:ss"})
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("Données €")
    sheet.write(0, 0, "Quarterly report 2024", bold)
    sheet.merge_range(2, 0, 2, 1, "Customer", bold)
    for col, name in enumerate(["Amount", "Day", None, "Stamp", "At", "Paid", "Half", "Count"], 2):
        if name is not None:
            sheet.write(2, col, name, bold)
    data = [
        (
            "Alice",
            "A-1",
            10.5,
            dt.date(2024, 1, 2),
            dt.datetime(2024, 1, 2, 3, 4, 5),
            dt.time(12, 30),
            True,
            1,
        ),
        None,
        (
            "Bob",
            "B-2",
            20,
            dt.date(2024, 2, 3),
            dt.datetime(2024, 2, 3, 4, 5, 6),
            dt.time(1, 2, 3),
            False,
            2,
        ),
        (
            "Carol",
            "C-3",
            30,
            dt.date(2024, 3, 4),
            dt.datetime(2024, 3, 4, 5, 6, 7),
            dt.time(23, 59, 59),
            True,
            3,
        ),
    ]
    row = 3
    for values in data:
        if values is None:
            row += 1
            continue
        name, code, amount, day, stamp_value, at, paid, count = values
        sheet.write_string(row, 0, name)
        sheet.write_string(row, 1, code)
        sheet.write_number(row, 2, amount)
        sheet.write_datetime(row, 3, dt.datetime.combine(day, dt.time()), date)
        sheet.write_datetime(row, 5, stamp_value, stamp)
        sheet.write_datetime(row, 6, at, clock)
        sheet.write_boolean(row, 7, paid)
        if name == "Bob":  # a formula whose cached value is an error
            sheet.write_formula(row, 8, "=C6/0", None, "#DIV/0!")
        else:
            sheet.write_formula(row, 8, f"=C{row + 1}/2", None, amount / 2)
        if name == "Carol":
            sheet.write_formula(row, 9, "=NA()", None, "#N/A")
        else:
            sheet.write_number(row, 9, count)
        # Formatted cells without a value right of the table: not columns.
        sheet.write_blank(row, 10, None, bold)
        sheet.write_blank(row, 11, None, bold)
        row += 1
    other = book.add_worksheet("日本語")
    other.write_row(0, 0, ["コード", "値"])
    other.write_row(1, 0, ["x", 1.25])
    other.write_row(2, 0, ["y", 2.5])
    book.add_worksheet("Empty")
    book.close()
    return path


def simple_xlsx(
    path: Path, rows: Sequence[Row] = SIMPLE_ROWS, header: Row = SIMPLE_HEADER, sheet: str = "Data"
) -> Path:
    """One sheet: a title row, an empty row, ``header``, ``rows``."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    ws = book.add_worksheet(sheet)
    ws.write(0, 0, "Report")
    ws.write_row(2, 0, header)
    for r, values in enumerate(rows, start=3):
        for c, value in enumerate(values):
            if isinstance(value, dt.datetime):
                ws.write_datetime(r, c, value, stamp)
            elif value is not None:
                ws.write(r, c, value)
    book.close()
    return path


def simple_xls(path: Path) -> Path:
    """The simple table as a BIFF8 .xls workbook (xlwt)."""
    import xlwt

    book = xlwt.Workbook()
    ws = book.add_sheet("Données")
    stamp = xlwt.easyxf(num_format_str="YYYY-MM-DD HH:MM:SS")
    ws.write(0, 0, "Report")
    for c, name in enumerate(SIMPLE_HEADER):
        ws.write(2, c, name)
    for r, values in enumerate(SIMPLE_ROWS, start=3):
        for c, value in enumerate(values):
            if isinstance(value, dt.datetime):
                ws.write(r, c, value, stamp)
            else:
                ws.write(r, c, value)
    book.save(str(path))
    return path


def simple_ods(path: Path) -> Path:
    """The simple table as an OpenDocument spreadsheet (odfpy)."""
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="Données")
    rows: list[Row] = [["Report"], [], SIMPLE_HEADER, *SIMPLE_ROWS]
    for values in rows:
        tr = TableRow()
        for value in values:
            if isinstance(value, bool):
                cell = TableCell(valuetype="boolean", booleanvalue=str(value).lower())
            elif isinstance(value, int | float):
                cell = TableCell(valuetype="float", value=value)
            elif isinstance(value, dt.datetime):
                cell = TableCell(valuetype="date", datevalue=value.isoformat())
            else:
                cell = TableCell(valuetype="string")
            cell.addElement(P(text=str(value)))
            tr.addElement(cell)
        if not values:
            tr.addElement(TableCell())
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def typed_ods(path: Path, rows: list[list[tuple[str, Any]]], *, empty_rows: int = 0) -> Path:
    """An OpenDocument sheet ``s`` of ``(value type, value)`` cells: ``float``, ``boolean``,
    ``date`` (ISO text), ``time`` (an ISO duration), else a string; below ``empty_rows`` empty
    rows (one repeated row element)."""
    from odf.opendocument import OpenDocumentSpreadsheet
    from odf.table import Table, TableCell, TableRow
    from odf.text import P

    doc = OpenDocumentSpreadsheet()
    table = Table(name="s")
    if empty_rows:
        empty = TableRow(numberrowsrepeated=empty_rows)
        empty.addElement(TableCell())
        table.addElement(empty)
    for row in rows:
        tr = TableRow()
        for kind, value in row:
            if kind == "float":
                cell = TableCell(valuetype="float", value=value)
            elif kind == "boolean":
                cell = TableCell(valuetype="boolean", booleanvalue=str(value).lower())
            elif kind == "date":
                cell = TableCell(valuetype="date", datevalue=value)
            elif kind == "time":
                cell = TableCell(valuetype="time", timevalue=value)
            else:
                cell = TableCell(valuetype="string")
            cell.addElement(P(text=str(value)))
            tr.addElement(cell)
        table.addElement(tr)
    doc.spreadsheet.addElement(table)
    doc.save(str(path))
    return path


def simple_xlsb(path: Path) -> Path:
    """The simple table as a binary .xlsb workbook (pyxlsbwriter)."""
    import pyxlsbwriter

    with pyxlsbwriter.XlsbWriter(str(path)) as book:
        book.add_sheet("Données")
        # Its writer wants rectangular rows.
        book.write_sheet(
            [["Report", None, None, None], [None] * 4, SIMPLE_HEADER, *map(list, SIMPLE_ROWS)]
        )
    return path


def big_xlsx(path: Path, rows: int) -> Path:
    """``rows`` rows of 4 typed columns (id, amount, day, label), header in row 1."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    date = book.add_format({"num_format": "yyyy-mm-dd"})
    ws = book.add_worksheet("big")
    ws.write_row(0, 0, ["id", "amount", "day", "label"])
    start = dt.datetime(2020, 1, 1)
    number, text, when = ws.write_number, ws.write_string, ws.write_datetime
    for r in range(1, rows + 1):
        number(r, 0, r)
        number(r, 1, r / 4)
        when(r, 2, start + dt.timedelta(days=r % 1000), date)
        text(r, 3, f"label {r % 97}")
    book.close()
    return path


BIG_ROWS = 100_000


@functools.cache
def shared_big_xlsx() -> Path:
    """The 100,000-row workbook (~3.4 MB), written once per test session (~2 s) and shared by
    the tests that need a large sheet."""
    folder = Path(tempfile.mkdtemp(prefix="pgingest-big-xlsx-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return big_xlsx(folder / "big.xlsx", BIG_ROWS)

"""Property: a workbook's cells arrive as the workbook holds them (issue 13, cases 3 and 4).

Hypothesis writes workbooks with openpyxl and with xlsxwriter whose columns mix kinds of cells
(numbers, integers stored as floats, text, booleans, dates, datetimes, times of day,
durations, blanks, error cells), loads each into PostgreSQL in-process, and compares every
cell with what openpyxl reads back from the same file, under the rule:

- a column whose non-empty cells are of one kind keeps a type (integers when every number is
  integral, dates when every datetime is at midnight, times of day, intervals, booleans);
- a column whose cells mix kinds is text, each cell's text the shortest form that reads back
  to its value (``7`` not ``7.0``, ISO dates and times, ``H:MM:SS`` durations, ``TRUE``);
- an error cell is NULL, and a reject naming it; an empty cell is NULL.

The reference below is written from openpyxl's values only, apart from the loader's code.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_ERRORS = ["#DIV/0!", "#N/A", "#VALUE!", "#REF!", "#NUM!", "#NAME?", "#NULL!"]
_TEXTS = ["N/A", "NA", "null", "None", "-", "true", "12", "2024-01-02", "x y", "Zürich", "#N/A"]

numbers = st.one_of(
    st.integers(-(10**9), 10**9).map(float),  # integers as Excel stores them
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False, width=64),
)
datetimes = st.datetimes(dt.datetime(1900, 3, 1), dt.datetime(2100, 1, 1)).map(
    lambda d: d.replace(microsecond=0)
)
times = st.times(dt.time(0, 0, 1)).map(lambda t: t.replace(microsecond=0))
durations = st.integers(1, 3_000_000).map(lambda s: dt.timedelta(seconds=s))
texts = st.one_of(
    st.sampled_from(_TEXTS),
    st.text(st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]), min_size=1)
    .map(str.strip)
    .filter(lambda t: t and not t.startswith(("=", "#")) and not t.isspace()),
)
KINDS: dict[str, st.SearchStrategy[Any]] = {
    "number": numbers,
    "text": texts,
    "boolean": st.booleans(),
    "date": datetimes.map(lambda d: d.replace(hour=0, minute=0, second=0)),
    "datetime": datetimes,
    "time": times,
    "duration": durations,
}


@st.composite
def columns(draw: st.DrawFn) -> list[Any]:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=3, unique=True))
    cell = st.one_of(
        *(KINDS[k] for k in kinds),
        st.none(),
        st.sampled_from(_ERRORS).map(lambda e: ("error", e)),
    )
    return draw(st.lists(cell, min_size=_ROWS, max_size=_ROWS))


_ROWS = 6


def _write_openpyxl(path: Path, data: list[list[Any]]) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", *(f"c{i}" for i in range(len(data)))])
    for row in range(_ROWS):
        values = [float(row + 1)]
        for column in data:
            value = column[row]
            values.append(value[1] if isinstance(value, tuple) else value)  # an error code
        sheet.append(values)
    book.save(path)


def _write_xlsxwriter(path: Path, data: list[list[Any]], top: int = 0, left: int = 0) -> None:
    """The table with its header at row ``top``, column ``left`` (0-based)."""
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet()
    formats = {
        "date": book.add_format({"num_format": "yyyy-mm-dd"}),
        "datetime": book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"}),
        "time": book.add_format({"num_format": "hh:mm:ss"}),
        "duration": book.add_format({"num_format": "[h]:mm:ss"}),
    }
    sheet.write_row(top, left, ["id", *(f"c{i}" for i in range(len(data)))])
    for row in range(_ROWS):
        at = top + row + 1
        sheet.write_number(at, left, row + 1)
        for col, value in enumerate(data, start=left + 1):
            value = value[row]
            if value is None:
                continue
            if isinstance(value, tuple):
                sheet.write_formula(at, col, "=1/0", None, value[1])
            elif isinstance(value, bool):
                sheet.write_boolean(at, col, value)
            elif isinstance(value, float):
                sheet.write_number(at, col, value)
            elif isinstance(value, str):
                sheet.write_string(at, col, value)
            elif isinstance(value, dt.timedelta):
                sheet.write_datetime(at, col, value, formats["duration"])
            elif isinstance(value, dt.time):
                sheet.write_datetime(at, col, value, formats["time"])
            else:
                midnight = value.time() == dt.time(0)
                sheet.write_datetime(at, col, value, formats["date" if midnight else "datetime"])
    book.close()


def _read_back(path: Path) -> tuple[list[str], list[list[tuple[str, Any]]]]:
    """What openpyxl reads from the file: the header, and per column (kind, value) cells."""
    import openpyxl

    book = openpyxl.load_workbook(path, data_only=True)
    sheet = book.active
    rows = list(sheet.iter_rows(min_row=sheet.min_row, min_col=sheet.min_column))
    header = [str(c.value) for c in rows[0]]
    cells: list[list[tuple[str, Any]]] = [[] for _ in header]
    for row in rows[1:]:
        for i, cell in enumerate(row):
            cells[i].append(_kind(cell))
    return header, cells


def _kind(cell: Any) -> tuple[str, Any]:
    value = cell.value
    if value is None:
        return "empty", None
    if cell.data_type == "e":
        return "error", value
    if isinstance(value, bool):
        return "boolean", value
    if isinstance(value, int | float):
        return "number", float(value)
    if isinstance(value, dt.timedelta):
        return "duration", value
    if isinstance(value, dt.time):
        return "time", value
    if isinstance(value, dt.datetime):
        return ("date", value.date()) if value.time() == dt.time(0) else ("datetime", value)
    if isinstance(value, str):
        return ("text", value) if value.strip() else ("empty", None)
    raise AssertionError(f"unexpected cell {value!r}")


def _text(kind: str, value: Any) -> str:
    """The rule's text of one cell."""
    if kind == "number":
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)  # compared as a number: see _same_text
    if kind == "boolean":
        return "TRUE" if value else "FALSE"
    if kind == "duration":
        seconds = int(value.total_seconds())
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if kind in ("date", "time"):
        return value.isoformat()
    if kind == "datetime":
        return value.isoformat(sep=" ")
    return str(value)


def _same_text(kind: str, expected: str, got: str) -> bool:
    if kind == "number" and not expected.lstrip("-").isdigit():
        # The shortest form that reads back to the value (Python writes 1e-07, Arrow 1e-7):
        # the same number, and no longer than Python's shortest repr.
        return float(got) == float(expected) and len(got) <= len(expected)
    return got == expected


def _expected(cells: list[tuple[str, Any]]) -> tuple[bool, list[Any]]:
    """(is the column text, the expected value of each row)."""
    kinds = {k for k, _ in cells} - {"empty", "error"}
    if {"date", "datetime"} == kinds:
        kinds = {"datetime"}  # a date is a datetime at midnight: one kind to a spreadsheet
    if len(kinds) > 1:
        return True, [None if k in ("empty", "error") else _text(k, v) for k, v in cells]
    out: list[Any] = []
    for k, v in cells:
        if k in ("empty", "error"):
            out.append(None)
        elif k == "date" and kinds == {"datetime"}:
            out.append(dt.datetime.combine(v, dt.time(0)))
        elif k == "number" and all(x.is_integer() for kk, x in cells if kk == "number"):
            out.append(int(v))
        else:
            out.append(v)
    return False, out


def _check(path: Path, load: Any, db: Any, table: str, top: int = 0) -> None:
    """Load ``path`` and compare it with openpyxl's reading; the header is at sheet row
    ``top + 1`` (rejects name the sheet's row numbers)."""
    header, cells = _read_back(path)
    report = load(path, table=table)
    assert report.ok, report.failed
    got = db.rows(table, order_by="id")
    assert [r[0] for r in got] == list(range(1, _ROWS + 1))
    types = db.types(table)
    rejects = db.fetch(
        "SELECT r.line, r.column_name, r.raw FROM pgingest.rejects r"
        " JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.table_schema = $1 AND f.table_name = $2",
        db.schema,
        table,
    )
    expected_rejects = set()
    for i, name in enumerate(header[1:], start=1):
        is_text, values = _expected(cells[i])
        column = [r[i] for r in got]
        for row, (kind_value, want, have) in enumerate(zip(cells[i], values, column, strict=True)):
            kind = kind_value[0]
            line = top + row + 2
            where = f"{path.name} {name} row {line}: {kind_value!r}"
            if kind == "error":
                expected_rejects.add((line, name, kind_value[1]))
            if want is None or not is_text:
                assert have == want, where
            else:
                assert isinstance(have, str), where
                assert _same_text(kind, want, have), f"{where}: {have!r} != {want!r}"
        if is_text:
            assert types[name] == "text", name
            assert any(name in w for w in report.files[0].warnings), name
    assert {tuple(r) for r in rejects} == expected_rejects
    assert report.files[0].rejects == len(expected_rejects)


_counter = itertools.count()

_SETTINGS = settings(
    max_examples=int(os.environ.get("PGINGEST_WORKBOOK_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(data=st.lists(columns(), min_size=1, max_size=4))
def test_openpyxl_workbooks_arrive_cell_for_cell(
    data: list[list[Any]], load: Any, db: Any, tmp_path: Path
) -> None:
    path = tmp_path / f"o{next(_counter)}.xlsx"
    _write_openpyxl(path, data)
    _check(path, load, db, path.stem)


@_SETTINGS
@given(
    data=st.lists(columns(), min_size=1, max_size=4),
    top=st.integers(0, 2),
    left=st.integers(0, 2),
)
def test_xlsxwriter_workbooks_arrive_cell_for_cell(
    data: list[list[Any]], top: int, left: int, load: Any, db: Any, tmp_path: Path
) -> None:
    path = tmp_path / f"x{next(_counter)}.xlsx"
    _write_xlsxwriter(path, data, top, left)
    _check(path, load, db, path.stem, top)

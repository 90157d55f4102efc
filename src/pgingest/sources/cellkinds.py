"""What kind each cell of a workbook column is, for the columns whose cells mix kinds.

fastexcel types a column, not a cell; it says a cell's kind only when a conversion fails
(``CellError.detail`` holds the cell as calamine sees it: ``String("N/A")``,
``DateTime(ExcelDateTime { .. datetime_type: TimeDelta .. })``, ``Error(Div0)``). So a mixed
column is read again as booleans, which only booleans and numbers convert to: every other
cell's kind is in its conversion error, a datetime's or duration's value too (its serial
number). Booleans and numbers are then told apart by their text (``true``/``false``), and
numbers read as floats. This costs two or three more parses of the sheet, and only for
sheets with such columns.

A cell's kind is one of ``number``, ``boolean``, ``datetime``, ``duration``, ``text`` (empty
text counts as an empty cell) or ``error`` (``#N/A``, ``#DIV/0!``: NULL, and a reject).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pgingest.errors import SourceError
from pgingest.sources.base import one_line
from pgingest.sources.celltext import to_text
from pgingest.sources.workbook import reader_panics

__all__ = ["KIND_NAMES", "MixedColumn", "is_1904_datetime", "read_mixed", "text_cell"]

EMPTY, NUMBER, BOOLEAN, DATETIME, DURATION, TEXT, ERROR = range(7)
KIND_NAMES = {
    NUMBER: "numbers",
    BOOLEAN: "booleans",
    DATETIME: "dates",
    DURATION: "durations",
    TEXT: "text",
}
"""How a warning names each kind of cell."""

_TEXT_CELL = re.compile(r"'String\(\"(.*)\"\)'?$", re.DOTALL)
_DATETIME_CELL = re.compile(
    r"DateTime\(ExcelDateTime \{ value: ([-+0-9.eE]+), datetime_type: (\w+), is_1904: (\w+)"
)
_ISO_CELL = re.compile(r"(Duration|DateTime)Iso\(\"([^\"]*)\"\)")
_ISO_DURATION = re.compile(
    r"(-)?P(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?"
)
"""An ISO 8601 duration of days, hours, minutes and seconds, as OpenDocument writes one."""
_MS_PER_DAY = 86_400_000
_EPOCH_1900_MS = 25_569 * _MS_PER_DAY
"""From 1899-12-30 (the day before Excel's day zero, 1900-01-00) to 1970-01-01, in ms."""
_DAYS_1904 = 1_462
"""From 1899-12-30 to 1904-01-01, the first day of a workbook saved in the 1904 date system."""
_NULL_LIKE = frozenset(
    {"#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
"""The texts fastexcel's type guess takes for empty cells (so a number column may hold them as
conversion errors). Plain ASCII: their ``String(..)`` form is the text itself."""


def text_cell(detail: str) -> str | None:
    """The text of a text cell named in a conversion error, when it is one of the texts a
    typed column can hold (``N/A``, ``NULL``, ...); ``None`` otherwise."""
    found = _TEXT_CELL.search(detail)
    if found is None or found.group(1) not in _NULL_LIKE:
        return None
    return found.group(1)


def is_text_detail(detail: str) -> bool:
    """Whether a conversion error names a text cell."""
    return _TEXT_CELL.search(detail) is not None


@dataclass(frozen=True, slots=True)
class MixedColumn:
    """A column read cell by cell: its values (typed when its cells share one kind, else
    text) and the kinds found."""

    values: pa.Array
    kinds: frozenset[int]


def read_mixed(
    path: str,
    reader: Any,
    index: int,
    header: int,
    names: Sequence[str],
    columns: Sequence[int],
    rows: int,
) -> dict[int, MixedColumn]:
    """Read ``columns`` (0-based, as in the sheet's batch, whose fastexcel names are
    ``names``) of sheet ``index`` cell by cell.

    Returns:
        Per column: a typed array when all its non-empty cells are of one kind, else the text
        of each cell (:func:`~pgingest.sources.celltext.to_text` of its value; error cells
        NULL).

    Raises:
        SourceError: the sheet cannot be read again.
    """
    columns = sorted(columns)
    probe, details = _pass(path, reader, index, header, names, columns, "boolean")
    kinds = {c: np.full(rows, EMPTY, dtype=np.int8) for c in columns}
    # A datetime's or duration's value is in its conversion error (reading the column as
    # datetime instead makes fastexcel panic on a number that is no date, like 1e12).
    stamps: dict[int, dict[int, int]] = {c: {} for c in columns}
    durations: dict[int, dict[int, int]] = {c: {} for c in columns}
    isos: dict[int, dict[int, str]] = {c: {} for c in columns}
    for column in columns:
        values = probe[column]
        kind = kinds[column]
        kind[np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))] = NUMBER
    kind_detail: dict[tuple[int, int], str] = {}
    for (row, column), detail in details.items():
        if column not in kinds or row >= rows:
            continue
        kind_detail[row, column] = detail.split(" but got ", 1)[-1]
        if "Error(" in detail and not is_text_detail(detail):
            kinds[column][row] = ERROR
        elif is_text_detail(detail):
            kinds[column][row] = TEXT
        elif iso := _ISO_CELL.search(detail):  # OpenDocument keeps these as ISO 8601 text
            kinds[column][row] = DURATION if iso.group(1) == "Duration" else DATETIME
            isos[column][row] = iso.group(2)
            if iso.group(1) == "Duration" and (ms := _iso_duration_ms(iso.group(2))) is not None:
                durations[column][row] = ms
        else:
            stamp = _DATETIME_CELL.search(detail)
            if stamp is None:  # a cell calamine describes otherwise: its text
                kinds[column][row] = TEXT
                continue
            serial, excel_type, is_1904 = float(stamp.group(1)), stamp.group(2), stamp.group(3)
            if excel_type == "TimeDelta":
                kinds[column][row] = DURATION
                durations[column][row] = round(serial * _MS_PER_DAY)
            else:
                kinds[column][row] = DATETIME
                stamps[column][row] = _unix_ms(serial, is_1904 == "true")
    texts, _ = _pass(path, reader, index, header, names, columns, "string")
    for column in columns:
        kind = kinds[column]
        text = texts[column].to_numpy(zero_copy_only=False)
        numbers = kind == NUMBER
        booleans = numbers & np.isin(text, ["true", "false"])
        kind[booleans] = BOOLEAN
        # Text that is empty or only spaces is no kind of its own (a formula saved without
        # its value, a cleared cell): an empty cell.
        blank = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(texts[column]), ""), True)
        kind[(kind == TEXT) & blank.to_numpy(zero_copy_only=False)] = EMPTY
    present = {c: frozenset(int(k) for k in np.unique(kinds[c])) - {EMPTY, ERROR} for c in columns}
    numbers = [c for c in columns if NUMBER in present[c]]
    floats = _pass(path, reader, index, header, names, numbers, "float")[0] if numbers else {}
    out: dict[int, MixedColumn] = {}
    for column in columns:
        kind = kinds[column]
        found = present[column]
        typed = {
            NUMBER: floats.get(column),
            BOOLEAN: probe[column],
            DATETIME: _array(stamps[column], rows, pa.timestamp("ms")),
            DURATION: _array(durations[column], rows, pa.duration("ms")),
        }
        only = next(iter(found)) if len(found) == 1 else TEXT
        values = typed.get(only)
        keep = kind == only
        # One kind: typed, unless some cell's value is only known as text (an ISO form).
        if values is not None and values.is_valid().to_numpy(zero_copy_only=False)[keep].all():
            out[column] = MixedColumn(_where(pa.array(keep), values), found)
            continue
        text = texts[column].to_numpy(zero_copy_only=False)
        cells = np.full(rows, None, dtype=object)
        for k in found:
            mask = kind == k
            if k == TEXT:
                cells[mask] = text[mask]
                continue
            values = to_text(typed[k], workbook=True).to_numpy(zero_copy_only=False)
            cells[mask] = values[mask]
        # A cell its kind's type could not read (an unusual ISO form): the reader's text.
        lost = (cells == None) & (text != None) & (kind != ERROR) & (kind != EMPTY)  # noqa: E711
        cells[lost] = text[lost]
        for row, iso_text in isos[column].items():  # PostgreSQL reads ISO 8601 as it is
            cells[row] = iso_text
        unread = np.flatnonzero((cells == None) & (kind != ERROR) & (kind != EMPTY))  # noqa: E711
        if len(unread):
            row = int(unread[0])
            raise SourceError(
                f"{path}: sheet {reader.sheet_names[index]!r}: row {header + 2 + row}, column"
                f" {names[column]}: the reader gives no value for this cell (calamine reads"
                f" it as {kind_detail.get((row, column), 'an unknown kind')}): not loaded",
                path=path,
            )
        out[column] = MixedColumn(pa.array(cells, pa.string()), found)
    return out


def _iso_duration_ms(text: str) -> int | None:
    """An ISO 8601 duration of days, hours, minutes and seconds (``PT36H00M00S``,
    ``-P1DT2H``) in ms; ``None`` for any other form (years and months have no fixed length)."""
    found = _ISO_DURATION.fullmatch(text)
    if found is None or not any(found.group(2, 3, 4, 5)):
        return None
    sign, days, hours, minutes, seconds = found.groups()
    total = (
        Decimal(days or 0) * 86_400
        + Decimal(hours or 0) * 3_600
        + Decimal(minutes or 0) * 60
        + Decimal(seconds or 0)
    )
    ms = total * 1_000
    if ms != ms.to_integral_value():
        return None  # finer than the millisecond a duration column holds: keep the text
    return int(-ms if sign else ms)


def is_1904_datetime(path: str, reader: Any, index: int, header: int, name: str, row: int) -> bool:
    """Whether the datetime cell in row ``row`` (0-based, below the header) of the column
    fastexcel names ``name`` counts from 1904-01-01 (the workbook's 1904 date system): read
    as a boolean, the cell's conversion error says (reads the sheet up to that row).

    Raises:
        SourceError: the sheet cannot be read again.
    """
    import fastexcel

    try:
        with reader_panics(path, reader.sheet_names[index]):
            sheet = reader.load_sheet(
                index, header_row=header, use_columns=[name], dtypes="boolean", n_rows=row + 1
            )
            _, errors = sheet.to_arrow_with_errors()
    except fastexcel.FastExcelError as exc:
        raise SourceError(f"{path}: cannot read the workbook: {one_line(exc)}", path=path) from exc
    for error in errors.errors if errors is not None else []:
        if error.offset_position[0] == row:
            stamp = _DATETIME_CELL.search(error.detail)
            return stamp is not None and stamp.group(3) == "true"
    return False


def _unix_ms(serial: float, is_1904: bool) -> int:
    """A datetime cell's serial number as ms since 1970, as calamine reads it (a serial
    below 60 counts Excel's 1900-02-29, which never was, so day zero is 1899-12-31). A time
    of day in a 1904-system workbook (0 < serial < 1) gets the 1900 system's day zero, as it
    would read there."""
    if is_1904 and 0 < serial < 1:
        is_1904 = False
    days = serial + _DAYS_1904 if is_1904 else serial
    if days < 60:
        days += 1
    return round(days * _MS_PER_DAY) - _EPOCH_1900_MS


def _array(values: dict[int, int], rows: int, t: pa.DataType) -> pa.Array:
    cells: list[int | None] = [None] * rows
    for row, value in values.items():
        cells[row] = value
    return pa.array(cells, pa.int64()).cast(t)


def _where(mask: pa.Array, values: pa.Array) -> pa.Array:
    out: pa.Array = pc.if_else(mask, values, pa.nulls(len(values), values.type))
    return out


def _pass(
    path: str,
    reader: Any,
    index: int,
    header: int,
    names: Sequence[str],
    columns: Sequence[int],
    dtype: str,
) -> tuple[dict[int, pa.Array], dict[tuple[int, int], str]]:
    """The columns read as ``dtype``, and the conversion errors by (row, column). Columns are
    chosen by name: fastexcel's column numbers count from the sheet's column A, its errors'
    from the table's first column."""
    import fastexcel

    try:
        with reader_panics(path, reader.sheet_names[index]):
            sheet = reader.load_sheet(
                index, header_row=header, use_columns=[names[c] for c in columns], dtypes=dtype
            )
            batch, errors = sheet.to_arrow_with_errors()
    except fastexcel.FastExcelError as exc:
        raise SourceError(f"{path}: cannot read the workbook: {one_line(exc)}", path=path) from exc
    arrays = dict(zip(columns, batch.columns, strict=True))
    details = {
        (e.offset_position[0], e.offset_position[1]): e.detail
        for e in (errors.errors if errors is not None else [])
    }
    return arrays, details

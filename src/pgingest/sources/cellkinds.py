"""What kind each cell of a workbook column is, for the columns whose cells mix kinds.

fastexcel types a column, not a cell; it says a cell's kind only when a conversion fails
(``CellError.detail`` holds the cell as calamine sees it: ``String("N/A")``,
``DateTime(ExcelDateTime { .. datetime_type: TimeDelta .. })``, ``Error(Div0)``). So a mixed
column is read again as booleans, which only booleans and numbers convert to: every other
cell's kind is in its conversion error. Booleans and numbers are then told apart by their
text (``true``/``false``), and each kind's values are read with their own type. This costs a
parse of the sheet per kind present (three or four), and only for sheets with such columns.

A cell's kind is one of ``number``, ``boolean``, ``datetime``, ``duration``, ``text`` (empty
text counts as an empty cell) or ``error`` (``#N/A``, ``#DIV/0!``: NULL, and a reject).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pgingest.errors import SourceError
from pgingest.sources.base import one_line
from pgingest.sources.celltext import to_text

__all__ = ["KIND_NAMES", "MixedColumn", "read_mixed", "text_cell"]

EMPTY, NUMBER, BOOLEAN, DATETIME, DURATION, TEXT, ERROR = range(7)
KIND_NAMES = {
    NUMBER: "numbers",
    BOOLEAN: "booleans",
    DATETIME: "dates",
    DURATION: "durations",
    TEXT: "text",
}
"""How a warning names each kind of cell."""
_DTYPE = {NUMBER: "float", BOOLEAN: "boolean", DATETIME: "datetime", DURATION: "duration"}

_TEXT_CELL = re.compile(r"'String\(\"(.*)\"\)'?$", re.DOTALL)
_DATETIME_CELL = re.compile(r"datetime_type: (\w+)")
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
    path: str, reader: Any, index: int, header: int, columns: Sequence[int], rows: int
) -> dict[int, MixedColumn]:
    """Read ``columns`` (0-based, as in the sheet's batch) of sheet ``index`` cell by cell.

    Returns:
        Per column: a typed array when all its non-empty cells are of one kind, else the text
        of each cell (:func:`~pgingest.sources.celltext.to_text` of its value; error cells
        NULL).

    Raises:
        SourceError: the sheet cannot be read again.
    """
    columns = sorted(columns)
    probe, details = _pass(path, reader, index, header, columns, "boolean")
    kinds = {c: np.full(rows, EMPTY, dtype=np.int8) for c in columns}
    for column in columns:
        values = probe[column]
        kind = kinds[column]
        kind[np.flatnonzero(values.is_valid().to_numpy(zero_copy_only=False))] = NUMBER
    for (row, column), detail in details.items():
        if column not in kinds or row >= rows:
            continue
        if "Error(" in detail and not is_text_detail(detail):
            kinds[column][row] = ERROR
        elif is_text_detail(detail):
            kinds[column][row] = TEXT
        elif "DurationIso(" in detail:  # OpenDocument keeps these as ISO text
            kinds[column][row] = DURATION
        elif "DateTimeIso(" in detail:
            kinds[column][row] = DATETIME
        else:
            stamp = _DATETIME_CELL.search(detail)
            if stamp is None:  # a cell calamine describes otherwise: its text
                kinds[column][row] = TEXT
            else:
                kinds[column][row] = DURATION if stamp.group(1) == "TimeDelta" else DATETIME
    texts, _ = _pass(path, reader, index, header, columns, "string")
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
    wanted = {k for c in columns for k in present[c] if k in _DTYPE}
    typed = {k: _pass(path, reader, index, header, columns, _DTYPE[k])[0] for k in wanted}
    out: dict[int, MixedColumn] = {}
    for column in columns:
        kind = kinds[column]
        found = present[column]
        if len(found) == 1 and next(iter(found)) in typed:
            only = next(iter(found))
            values = typed[only][column]
            keep = pa.array(kind == only)
            out[column] = MixedColumn(_where(keep, values), found)
            continue
        text = texts[column].to_numpy(zero_copy_only=False)
        cells = np.full(rows, None, dtype=object)
        for k in found:
            mask = kind == k
            if k == TEXT:
                cells[mask] = text[mask]
                continue
            values = to_text(typed[k][column], workbook=True).to_numpy(zero_copy_only=False)
            cells[mask] = values[mask]
        # A cell its kind's type could not read (an unusual ISO form): the reader's text.
        lost = (cells == None) & (text != None) & (kind != ERROR) & (kind != EMPTY)  # noqa: E711
        cells[lost] = text[lost]
        out[column] = MixedColumn(pa.array(cells, pa.string()), found)
    return out


def _where(mask: pa.Array, values: pa.Array) -> pa.Array:
    out: pa.Array = pc.if_else(mask, values, pa.nulls(len(values), values.type))
    return out


def _pass(
    path: str, reader: Any, index: int, header: int, columns: Sequence[int], dtype: str
) -> tuple[dict[int, pa.Array], dict[tuple[int, int], str]]:
    """The columns read as ``dtype``, and the conversion errors by (row, column)."""
    import fastexcel

    try:
        sheet = reader.load_sheet(index, header_row=header, use_columns=list(columns), dtypes=dtype)
        batch, errors = sheet.to_arrow_with_errors()
    except fastexcel.FastExcelError as exc:
        raise SourceError(f"{path}: cannot read the workbook: {one_line(exc)}", path=path) from exc
    arrays = dict(zip(columns, batch.columns, strict=True))
    details = {
        (e.offset_position[0], e.offset_position[1]): e.detail
        for e in (errors.errors if errors is not None else [])
    }
    return arrays, details

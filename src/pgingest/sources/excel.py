"""Read spreadsheet workbooks (xlsx/xlsm, xls, xlsb, ods) into typed Arrow batches.

The sheet is chosen, its header row found (the first row as wide as the table, so title rows
above it are skipped) and its cells parsed by fastexcel (Rust, calamine) in
:mod:`pgingest.sources.workbook`, then turned into Arrow: no Python loop over cells. Here,
column-wise with pyarrow: fully empty rows and the empty columns right of the header's last
name are dropped, numbers that are all integral become integers, datetimes at midnight
become dates and times of day become times, a column whose cells mix kinds becomes the text
of each cell (:mod:`pgingest.sources.cellkinds`, with a warning), and error cells
(``#DIV/0!``, ``#N/A``) become NULL plus a :class:`~pgingest.model.Reject`.

Why fastexcel: on the 100,000-row x 10-column benchmark workbook it reads to Arrow in ~0.6 s,
python-calamine needs ~0.9 s to Python objects (plus a per-cell conversion to Arrow on top),
openpyxl (read-only) ~12 s.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pgingest.errors import SourceError
from pgingest.model import ArrowChunk, Chunk, Reject, SourceInfo
from pgingest.sources.base import ExcelOptions, one_line
from pgingest.sources.cellkinds import (
    KIND_NAMES,
    is_1904_datetime,
    is_text_detail,
    read_mixed,
    text_cell,
)
from pgingest.sources.celltext import to_text
from pgingest.sources.workbook import (
    ParsedSheet,
    has_dropped_ods_text,
    has_value,
    parse_workbook,
    reader_panics,
    xlsx_merged_headers,
)

__all__ = ["ExcelOptions", "ExcelSource"]

SHEET_COLUMN = "sheet"
"""Name of the column that holds the sheet's name with ``sheet_column``."""
_ERROR_NAMES = {
    "Div0": "#DIV/0!",
    "NA": "#N/A",
    "Name": "#NAME?",
    "Null": "#NULL!",
    "Num": "#NUM!",
    "Ref": "#REF!",
    "Value": "#VALUE!",
    "GettingData": "#GETTING_DATA",
}
_ERROR_DETAIL = re.compile(r"Error\((\w+)\)")
_EMPTY_TEXT = re.compile(r"String\(\"\s*\"\)")
"""An empty text cell where the column holds numbers (a formula saved without its value):
NULL, nothing to reject."""
_GENERATED = re.compile(r"__UNNAMED__\d+")
_SUFFIXED = re.compile(r"(.+)_\d+")
_MIDNIGHT = " 00:00:00"
_EXCEL_EPOCH_DAYS = (-25568, -25569)  # 1899-12-31 and 1899-12-30: a time of day without date
_DAY_ZERO_1904 = -24107
"""1904-01-01 in days since 1970: the date of a time of day in a workbook of the 1904 date
system (Mac Excel's default before 2011)."""
_DAYS_1900_TO_1904 = 1461
"""From 1899-12-31 (the date of a time of day in the 1900 date system) to 1904-01-01."""


class ExcelSource:
    """A workbook sheet (or all its sheets) opened for reading (see :class:`Source`).

    The sheet is read whole when opened (a sheet is at most 1,048,576 rows; fastexcel builds
    the Arrow columns in one pass), then served in slices.
    """

    def __init__(
        self,
        info: SourceInfo,
        options: ExcelOptions | None = None,
        parsed: list[ParsedSheet] | None = None,
    ) -> None:
        """Read the sheet: parse it (unless ``parsed`` holds it, from
        :func:`~pgingest.sources.workbook.parse_workbook` with the same options), then turn it
        into Arrow.

        Raises:
            SourceError: the workbook is corrupt or protected, or the sheet is missing/empty.
            ConfigError: ``header_row`` is below 1.
        """
        self.info = info
        self.warnings: list[str] = []
        """Columns read as text because their cells mix kinds, chart sheets not loaded, text
        the reader drops; one line each."""
        self._options = options or ExcelOptions()
        path = info.path
        if parsed is None:
            parsed = parse_workbook(path, self._options)
        if info.format == "ods" and has_dropped_ods_text(path):
            self.warnings.append(
                "its text cells hold tabs or line breaks inside a paragraph, which the"
                " workbook reader drops: such text loads without them (x<tab>y as xy)"
            )
        self.warnings.extend(
            f"sheet {p.name!r} is a chart sheet (a chart, no cells): not loaded"
            for p in parsed
            if p.chart
        )
        read = [(self._read_sheet(p), p.name) for p in parsed]
        read = [(r, n) for r, n in read if r[0].num_columns]
        if not read:
            what = "the workbook's sheets are" if self._options.all_sheets else "the sheet is"
            raise SourceError(f"{path}: {what} empty", path=path)
        if self._options.all_sheets:
            self._batch, self._rows, self._rejects = _union(
                [r for r, _ in read], [n for _, n in read]
            )
        else:
            self._batch, self._rows, self._rejects = read[0][0]

    def _read_sheet(self, parsed: ParsedSheet) -> _Sheet:
        import fastexcel

        if parsed.sheet is None:
            return _EMPTY
        path = self.info.path
        header, index = parsed.header, parsed.index
        try:
            with reader_panics(path, parsed.name):
                batch, errors = parsed.sheet.to_arrow_with_errors()
        except fastexcel.FastExcelError as exc:
            raise SourceError(
                f"{path}: sheet {parsed.name!r}: cannot read it: {one_line(exc)}", path=path
            ) from exc
        names = list(batch.schema.names)
        # fastexcel names a blank header cell __UNNAMED__<i> (asking it which names it made
        # up, available_columns(), took 37 ms on the 100,000-row benchmark sheet).
        header_names = ["" if _GENERATED.fullmatch(n) else n for n in names]
        if _renamed_by_reader(names):
            header_names = _header_texts(path, parsed, len(names))
        if "" in header_names and self.info.format == "xlsx":
            merged = xlsx_merged_headers(path, index, header + 1)
            for col, left in merged.items():
                if col < len(header_names) and not header_names[col] and header_names[left]:
                    header_names[col] = header_names[left]
        # fastexcel's header_row is the sheet's 0-based row: data row i is sheet row header+2+i.
        rows = pa.array(np.arange(header + 2, header + 2 + batch.num_rows, dtype=np.int64))
        rejects: list[Reject] = []
        texts: dict[int, dict[int, str]] = {}  # column -> row -> a text cell in a typed column
        slow = set(range(batch.num_columns)) if "*" in parsed.mixed else set()
        slow |= {names.index(n) for n in parsed.mixed if n in names}
        for e in errors.errors if errors is not None else []:
            row, col = e.offset_position
            if col >= len(header_names):
                continue
            if not is_text_detail(e.detail):
                if _ERROR_DETAIL.search(e.detail) is None:
                    # A value the column's type cannot take, no error cell (an OpenDocument
                    # duration past 24 hours): read the column again cell by cell.
                    slow.add(col)
                    continue
                rejects.append(
                    Reject(
                        line=header + 2 + row,
                        column=header_names[col] or f"col_{col + 1}",
                        raw=_error_value(e.detail),
                        reason=f"error cell {_error_value(e.detail)} in the workbook:"
                        " loaded as NULL",
                    )
                )
                continue
            text = text_cell(e.detail)
            if text is None:
                if not _EMPTY_TEXT.search(e.detail):
                    slow.add(col)  # a text the detail does not render plainly: read again
                continue
            texts.setdefault(col, {})[row] = text
        arrays = _times_of_day_1904(path, parsed, names, list(batch.columns))
        kinds: dict[int, frozenset[str]] = {}
        for col, cells in texts.items():
            if col in slow:
                continue
            kind = _kind_of(arrays[col].type)
            column = to_text(arrays[col], workbook=True).to_pylist()
            for row, text in cells.items():
                column[row] = text
            arrays[col] = pa.array(column, pa.string())
            kinds[col] = frozenset({kind, "text"})
        if slow:
            read = read_mixed(
                path, parsed.reader, index, header, names, sorted(slow), batch.num_rows
            )
            for col, mixed in read.items():
                arrays[col] = mixed.values
                if len(mixed.kinds) > 1:
                    kinds[col] = frozenset(KIND_NAMES[k] for k in mixed.kinds)
        for col, array in enumerate(arrays):
            if col not in kinds and pa.types.is_timestamp(array.type) and _times_and_dates(array):
                # A time of day is a datetime on day zero to Excel; beside real dates it
                # would load as 1899-12-31 10:30. Each cell as it reads instead.
                arrays[col] = to_text(array, workbook=True)
                kinds[col] = frozenset({"dates", "times of day"})
        sheet = f"sheet {parsed.name!r}, " if self._options.all_sheets else ""
        for col in sorted(kinds):
            name = header_names[col] or f"col_{col + 1}"
            self.warnings.append(
                f"{sheet}column {name}: its cells are of several kinds"
                f" ({', '.join(sorted(kinds[col]))}): read as text, each cell as it reads"
            )
        batch = pa.RecordBatch.from_arrays(arrays, names=names)
        return _tidy(batch, header_names, rows, rejects)

    def __enter__(self) -> ExcelSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the sheet's data."""
        self._batch = pa.record_batch([])

    def column_names(self) -> list[str]:
        """Return the header's names as written (blank for an unnamed column)."""
        return list(self._batch.schema.names)

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """Return the first ``max_rows`` rows, typed (``skip_bad_records`` does not apply)."""
        return pa.Table.from_batches([self._batch.slice(0, max_rows)], schema=self._batch.schema)

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """Stream the rows as :class:`ArrowChunk` slices; ``first_line`` is the sheet row of
        a chunk's first row and ``rejects`` its error cells (``raw`` does not apply)."""
        batch = self._batch
        total = batch.num_rows
        per_row = max(1, batch.nbytes // max(total, 1))
        step = max(1, min(batch_rows, batch_bytes // per_row))
        rows = self._rows
        by_index = self._rejects
        for start in range(0, total, step):
            piece = batch.slice(start, step)
            end = start + piece.num_rows
            rejects = tuple(r for i, r in by_index if start <= i < end)
            yield ArrowChunk(piece, int(rows[start].as_py()), rejects)


def _renamed_by_reader(names: list[str]) -> bool:
    """Whether fastexcel may have made up some of a sheet's column names: for a header cell
    it does not read as text (blank, a date, a boolean: ``__UNNAMED__<i>``) or a repeated
    one (``a``, ``a`` become ``a``, ``a_1``, taking the name of a column titled ``a_1``)."""
    seen: set[str] = set()
    for name in names:
        suffixed = _SUFFIXED.fullmatch(name)
        if _GENERATED.fullmatch(name) or (suffixed and suffixed.group(1) in seen):
            return True
        seen.add(name)
    return False


def _header_texts(path: str, parsed: ParsedSheet, width: int) -> list[str]:
    """The header row's cells as the sheet shows them ("" for a blank one): a date is
    ``2024-03-01``, a datetime ``2024-03-01 10:30:00``, a boolean ``true``, a number ``2024``.
    One more parse of the sheet; only when fastexcel made up names (see
    :func:`_renamed_by_reader`)."""
    import fastexcel

    try:
        with reader_panics(path, parsed.name):
            row = parsed.reader.load_sheet(
                parsed.index,
                header_row=None,
                skip_rows=parsed.header,  # with no header row, from the sheet's first row
                n_rows=1,
                dtypes="string",
                eager=True,
            )
    except fastexcel.FastExcelError as exc:
        raise SourceError(
            f"{path}: sheet {parsed.name!r}: cannot read its header row: {one_line(exc)}",
            path=path,
        ) from exc
    cells = [column[0].as_py() if len(column) else None for column in row.columns]
    texts = [(c or "").removesuffix(_MIDNIGHT) for c in cells]
    return (texts + [""] * width)[:width]


def _times_of_day_1904(
    path: str, parsed: ParsedSheet, names: list[str], arrays: list[Any]
) -> list[Any]:
    """Put the times of day of a 1904-date-system workbook on the 1900 system's day zero.

    The reader gives a time of day the date of the workbook's day zero: 1904-01-01 in the
    1904 system. Moved to 1899-12-31, such a cell reads as in any other workbook (a column of
    times is ``time``, a time beside dates its text). Only a column holding a datetime on
    1904-01-01 that is not at midnight is touched (its midnights there too: ``00:00:00``), and
    only once the reader confirms the workbook counts from 1904 (one more short read).
    """
    found: dict[int, pa.Array] = {}
    for col, array in enumerate(arrays):
        if not pa.types.is_timestamp(array.type) or array.null_count == len(array):
            continue
        day, time_ms = _day_and_time(array)
        on_day = pc.fill_null(pc.equal(day, float(_DAY_ZERO_1904)), False)
        if pc.any(pc.and_(on_day, pc.not_equal(time_ms, 0))).as_py():
            found[col] = on_day
    if not found:
        return arrays
    col, on_day = next(iter(found.items()))
    time_of_day = pc.and_(on_day, pc.not_equal(_day_and_time(arrays[col])[1], 0))
    row = pc.index(time_of_day, True).as_py()
    if not is_1904_datetime(path, parsed.reader, parsed.index, parsed.header, names[col], row):
        return arrays  # a real datetime on 1904-01-01 in a 1900-system workbook
    out = list(arrays)
    for col, on_day in found.items():
        array = arrays[col]
        back = pa.scalar(_DAYS_1900_TO_1904 * 86_400_000, pa.duration("ms"))
        moved = pc.cast(pc.subtract(pc.cast(array, pa.timestamp("ms")), back), array.type)
        out[col] = pc.if_else(on_day, moved, array)
    return out


def _day_and_time(array: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Each datetime's day (days since 1970, as a double) and its time of day in ms."""
    ms = pc.cast(pc.cast(array, pa.timestamp("ms")), pa.int64())
    ms_per_day = 86_400_000
    day = pc.floor(pc.divide(pc.cast(ms, pa.float64()), float(ms_per_day)))
    time_ms = pc.subtract(ms, pc.multiply(pc.cast(day, pa.int64()), ms_per_day))
    return day, time_ms


def _times_and_dates(array: pa.Array) -> bool:
    """Whether a datetime column holds both times of day (on Excel's day zero) and dates."""
    if array.null_count == len(array):
        return False
    day, time_ms = _day_and_time(array)
    zero = pc.is_in(day, pa.array(_EXCEL_EPOCH_DAYS, pa.float64()))
    times = pc.and_(zero, pc.not_equal(time_ms, 0))
    dates = pc.and_(pc.is_valid(array), pc.invert(zero))  # is_in says False for a NULL
    return bool(pc.any(times).as_py()) and bool(pc.any(dates).as_py())


def _kind_of(t: pa.DataType) -> str:
    """How a warning names the kind of a typed column's cells."""
    if pa.types.is_boolean(t):
        return "booleans"
    if pa.types.is_duration(t):
        return "durations"
    if pa.types.is_temporal(t):
        return "dates"
    if pa.types.is_string(t):
        return "text"
    return "numbers"


def _error_value(detail: str) -> str:
    match = _ERROR_DETAIL.search(detail)
    if match is None:
        return detail
    return _ERROR_NAMES.get(match.group(1), "#" + match.group(1).upper())


_Sheet = tuple[pa.RecordBatch, pa.Array, list[tuple[int, Reject]]]
"""A sheet read: its batch, the sheet row number of each row, and its rejects with the index
of their row in the batch."""
_EMPTY: _Sheet = (pa.record_batch([]), pa.array([], pa.int64()), [])


def _tidy(batch: pa.RecordBatch, names: list[str], rows: pa.Array, rejects: list[Reject]) -> _Sheet:
    """Drop empty rows and the empty columns right of the header's last name (an empty-string
    cell is empty); give columns their narrowest exact type.

    Every column up to the last named header cell is kept, named or not, empty or not (an
    unnamed one becomes ``col_N``); right of it, a column is kept when it holds a value or an
    error cell. A row holding only error cells is kept (its cells are NULL, and rejects).
    """
    with_errors = {r.column for r in rejects}
    named = [i for i, name in enumerate(names) if name.strip()]
    span = named[-1] + 1 if named else 0
    keep_cols = [
        i
        for i, column in enumerate(batch.columns)
        if i < span
        or pc.any(has_value(column)).as_py()
        or (names[i] or f"col_{i + 1}") in with_errors
    ]
    arrays = [batch.column(i) for i in keep_cols]
    kept = [names[i] for i in keep_cols]
    if not arrays:
        return _EMPTY
    filled = has_value(arrays[0])
    for column in arrays[1:]:
        filled = pc.or_(filled, has_value(column))
    if rejects and filled.false_count:
        first = int(rows[0].as_py()) if len(rows) else 0
        marked = np.zeros(len(rows), dtype=bool)
        marked[[r.line - first for r in rejects]] = True
        filled = pc.or_(filled, pa.array(marked))
    if filled.false_count:
        arrays = [pc.filter(a, filled) for a in arrays]
        rows = pc.filter(rows, filled)
    arrays = [_narrow(a) for a in arrays]
    fields = [pa.field(n, a.type) for n, a in zip(_unique(kept), arrays, strict=True)]
    position = {int(v): i for i, v in enumerate(rows.to_pylist())} if rejects else {}
    indexed = [(position[r.line], r) for r in rejects if r.line in position]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), rows, indexed


def _unique(names: list[str]) -> list[str]:
    """Repeated header names (a merged header cell spans columns) get ``_2``, ``_3``... as
    the table's column names will, so that sheets can be matched by name: the first keeps
    its name, and a suffixed name is never one that another header cell has."""
    reserved = set(names)
    used: set[str] = set()
    out = []
    for name in names:
        if name and name in used:
            number = 2
            while f"{name}_{number}" in used or f"{name}_{number}" in reserved:
                number += 1
            name = f"{name}_{number}"
        used.add(name)
        out.append(name)
    return out


_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _narrow(array: pa.Array) -> pa.Array:
    """Excel stores every number as a double and every date as a datetime: give a column the
    exact type its values share (integers, date, time of day); vectorized."""
    t = array.type
    if array.null_count == len(array):
        return array.cast(pa.string()) if pa.types.is_null(t) else array
    if pa.types.is_floating(t):
        if not pc.all(pc.fill_null(pc.is_finite(array), True)).as_py():
            return array
        if not pc.all(pc.fill_null(pc.equal(pc.floor(array), array), True)).as_py():
            return array
        low, high = pc.min_max(array).values()
        lo, hi = low.as_py(), high.as_py()
        if _INT32[0] <= lo and hi <= _INT32[1]:
            return array.cast(pa.int32())
        # Doubles hold integers exactly up to 2**53: past that they are not integral data.
        if lo >= -(2**53) and hi <= 2**53:
            return array.cast(pa.int64())
        return array
    if pa.types.is_timestamp(t):
        day, time_ms = _day_and_time(array)
        if pc.all(pc.fill_null(pc.equal(time_ms, 0), True)).as_py():
            return array.cast(pa.date32())
        zero = pc.is_in(day, pa.array(_EXCEL_EPOCH_DAYS, pa.float64()))
        # is_in says False (not NULL) for an empty cell: empty cells are no dates either.
        if pc.all(pc.or_(zero, pc.is_null(array))).as_py():
            micros = pc.multiply(time_ms, 1000)
            return pc.cast(micros, pa.time64("us"))
        return array
    return array


def _union(read: list[_Sheet], sheets: list[str]) -> _Sheet:
    """All sheets in one batch: columns by name in order of first appearance, a common type
    per column (text when the sheets disagree), and the ``sheet`` column first."""
    order: list[str] = []
    types: dict[str, pa.DataType] = {}
    for batch, _, _ in read:
        for field in batch.schema:
            if field.name not in types:
                order.append(field.name)
                types[field.name] = field.type
            else:
                types[field.name] = _common_type(types[field.name], field.type)
    batches: list[pa.RecordBatch] = []
    rows: list[pa.Array] = []
    rejects: list[tuple[int, Reject]] = []
    offset = 0
    for (batch, sheet_rows, sheet_rejects), sheet in zip(read, sheets, strict=True):
        n = batch.num_rows
        arrays = [pa.array([sheet] * n, pa.string())]
        for name in order:
            if name in batch.schema.names:
                arrays.append(_cast_to(batch.column(name), types[name]))
            else:
                arrays.append(pa.nulls(n, types[name]))
        batches.append(pa.RecordBatch.from_arrays(arrays, names=[SHEET_COLUMN, *order]))
        rows.append(sheet_rows)
        rejects.extend(
            (offset + i, Reject(r.line, r.column, r.raw, f"sheet {sheet!r}: {r.reason}"))
            for i, r in sheet_rejects
        )
        offset += n
    table = pa.Table.from_batches(batches).combine_chunks()
    combined = table.to_batches()[0] if table.num_rows else batches[0]
    return combined, pa.concat_arrays(rows), rejects


def _common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    if a == b or pa.types.is_null(b):
        return a
    if pa.types.is_null(a):
        return b
    if pa.types.is_integer(a) and pa.types.is_integer(b):
        return pa.int64()
    if (pa.types.is_integer(a) or pa.types.is_floating(a)) and (
        pa.types.is_integer(b) or pa.types.is_floating(b)
    ):
        return pa.float64()
    if pa.types.is_temporal(a) and pa.types.is_temporal(b):
        return (
            pa.timestamp("ms") if not (pa.types.is_time(a) or pa.types.is_time(b)) else pa.string()
        )
    return pa.string()


def _cast_to(array: Any, target: pa.DataType) -> pa.Array:
    if array.type == target:
        return array
    if pa.types.is_string(target):  # sheets disagree: each cell as it reads
        return to_text(array, workbook=True)
    return pc.cast(array, target)

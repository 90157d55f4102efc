"""Read spreadsheet workbooks (xlsx/xlsm, xls, xlsb, ods) into typed Arrow batches.

The cells are parsed by fastexcel (Rust, calamine) straight into Arrow: no Python loop over
cells. Then, column-wise with pyarrow: the header row is found (the first row as wide as the
table, so title rows above it are skipped), fully empty rows and unnamed empty columns are
dropped, numbers that are all integral become integers, datetimes at midnight become dates and
times of day become times, and error cells (``#DIV/0!``, ``#N/A``) become NULL plus a
:class:`~pgingest.model.Reject`.

Why fastexcel: on the 100,000-row x 10-column benchmark workbook it reads to Arrow in ~0.6 s,
python-calamine needs ~0.9 s to Python objects (plus a per-cell conversion to Arrow on top),
openpyxl (read-only) ~12 s.
"""

from __future__ import annotations

import logging
import math
import re
import zipfile
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from xml.etree.ElementTree import ParseError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from defusedxml import ElementTree

from pgingest.errors import ConfigError, SourceError
from pgingest.model import ArrowChunk, Chunk, Reject, SourceInfo
from pgingest.sources.base import ExcelOptions, one_line

if TYPE_CHECKING:
    import fastexcel

__all__ = ["ExcelOptions", "ExcelSource", "sheet_names"]

# fastexcel logs a warning for every column whose type it cannot guess (an all-empty column):
# pgingest handles those columns itself.
logging.getLogger("fastexcel").setLevel(logging.ERROR)

SHEET_COLUMN = "sheet"
"""Name of the column that holds the sheet's name with ``sheet_column``."""
_LEADING_ROWS = 100
"""Empty rows above a table that the header search (outside xlsx) looks through."""
_HEADER_SCAN_ROWS = 30
"""Rows looked at to find the header: title blocks above a table are a few rows high."""
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
_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_GENERATED = re.compile(r"__UNNAMED__\d+")
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")
_EXCEL_EPOCH_DAYS = (-25568, -25569)  # 1899-12-31 and 1899-12-30: a time of day without date


def _reader(path: str) -> fastexcel.ExcelReader:
    import fastexcel

    try:
        return fastexcel.read_excel(path)
    except (fastexcel.FastExcelError, OSError, ValueError) as exc:
        raise SourceError(
            f"{path}: cannot read the workbook (corrupt, or password-protected?): {one_line(exc)}",
            path=path,
        ) from exc


def sheet_names(path: str, skip_empty: bool = True) -> list[str]:
    """Return the workbook's sheet names in order, without the empty ones (by default).

    Raises:
        SourceError: the workbook cannot be read.
    """
    reader = _reader(path)
    names = list(reader.sheet_names)
    if not skip_empty:
        return names
    return [n for i, n in enumerate(names) if _row_counts(path, reader, i, 1)]


def _xlsx_sheet_part(archive: zipfile.ZipFile, index: int) -> str | None:
    """The zip member holding the index-th sheet of an xlsx workbook."""
    try:
        book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ParseError):
        return None
    sheets = book.findall(f"{_MAIN_NS}sheets/{_MAIN_NS}sheet")
    if index >= len(sheets):
        return None
    rel_id = sheets[index].get(f"{_REL_NS}id")
    for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
        if rel.get("Id") == rel_id:
            target = str(rel.get("Target", ""))
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


def _column_number(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def _xlsx_peek(path: str, index: int, max_rows: int) -> list[int] | None:
    """Non-empty cells per row of the sheet's first ``max_rows`` rows, from its XML (a few KB
    read, where fastexcel would parse the whole sheet); ``None`` when that fails."""
    try:
        with zipfile.ZipFile(path) as archive:
            part = _xlsx_sheet_part(archive, index)
            if part is None:
                return None
            counts: dict[int, int] = {}
            first: int | None = None
            with archive.open(part) as stream:
                for _event, elem in ElementTree.iterparse(stream, events=("end",)):
                    if elem.tag != f"{_MAIN_NS}row":
                        continue
                    row = int(elem.get("r", "0"))
                    filled = sum(
                        1
                        for c in elem.iter(f"{_MAIN_NS}c")
                        if c.find(f"{_MAIN_NS}v") is not None or c.find(f"{_MAIN_NS}is") is not None
                    )
                    elem.clear()
                    if filled:
                        first = row if first is None else first
                        counts[row] = filled
                    if first is not None and row - first + 1 >= max_rows:
                        break
    except (OSError, zipfile.BadZipFile, ParseError, KeyError, ValueError):
        return None
    if first is None:
        return []
    return [counts.get(r, 0) for r in range(1, max(counts) + 1)]


def _xlsx_merged_headers(path: str, index: int, row: int) -> dict[int, int]:
    """Merged cells of the header row: covered column -> first column of the merge (both
    0-based, relative to the first used column). Read only when the header has blank cells."""
    out: dict[int, int] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            part = _xlsx_sheet_part(archive, index)
            if part is None:
                return out
            ranges: list[tuple[int, int, int, int]] = []
            min_col: int | None = None
            with archive.open(part) as stream:
                for _event, elem in ElementTree.iterparse(stream, events=("end",)):
                    if elem.tag == f"{_MAIN_NS}c":
                        ref = _CELL_REF.match(elem.get("r", ""))
                        has_value = elem.find(f"{_MAIN_NS}v") is not None
                        if ref and (has_value or elem.find(f"{_MAIN_NS}is") is not None):
                            col = _column_number(ref.group(1))
                            min_col = col if min_col is None else min(min_col, col)
                    elif elem.tag == f"{_MAIN_NS}row":
                        elem.clear()
                    elif elem.tag == f"{_MAIN_NS}mergeCell":
                        a, _, b = elem.get("ref", "").partition(":")
                        ma, mb = _CELL_REF.match(a), _CELL_REF.match(b)
                        if ma and mb:
                            ranges.append(
                                (
                                    int(ma.group(2)),
                                    int(mb.group(2)),
                                    _column_number(ma.group(1)),
                                    _column_number(mb.group(1)),
                                )
                            )
    except (OSError, zipfile.BadZipFile, ParseError, KeyError, ValueError):
        return out
    base = min_col or 1
    for top, bottom, left, right in ranges:
        if top <= row <= bottom:
            for col in range(left + 1, right + 1):
                out[col - base] = left - base
    return out


def _row_counts(path: str, reader: fastexcel.ExcelReader, index: int, max_rows: int) -> list[int]:
    """Non-empty cells per row of the sheet's first rows, from row 1 on (leading empty rows
    count 0), and up to ``max_rows`` rows past the first non-empty one."""
    peek = _xlsx_peek(path, index, max_rows)  # None unless an xlsx/xlsm (by content)
    if peek is not None:
        return peek
    import fastexcel

    try:
        # Small workbooks in the other formats: a second parse of the sheet costs little.
        head = reader.load_sheet(
            index,
            header_row=None,
            skip_rows=0,  # from row 1: a row's index is then its sheet row (0-based)
            n_rows=max_rows + _LEADING_ROWS,
            dtypes="string",
            eager=True,
        )
    except fastexcel.FastExcelError as exc:
        raise SourceError(f"{path}: cannot read the workbook: {one_line(exc)}", path=path) from exc
    batch = head if isinstance(head, pa.RecordBatch) else head.to_arrow()
    if batch.num_rows == 0 or batch.num_columns == 0:
        return []
    counts = pc.cast(pc.is_valid(batch.column(0)), pa.int32())
    for column in batch.columns[1:]:
        counts = pc.add(counts, pc.cast(pc.is_valid(column), pa.int32()))
    return [int(v) for v in counts.to_pylist()]


def find_header(counts: Sequence[int]) -> int | None:
    """The 0-based index of the header among rows with ``counts`` non-empty cells: the first
    row holding at least half as many cells as the widest row, and at least 3 (or all of them
    in a table narrower than that), so a title of a cell or two above the header is skipped.
    ``None``: no rows."""
    if not counts or max(counts) == 0:
        return None
    widest = max(counts)
    need = max(min(3, widest), math.ceil(widest / 2))
    return next(i for i, n in enumerate(counts) if n >= need)


class ExcelSource:
    """A workbook sheet (or all its sheets) opened for reading (see :class:`Source`).

    The sheet is read whole when opened (a sheet is at most 1,048,576 rows; fastexcel builds
    the Arrow columns in one pass), then served in slices.
    """

    def __init__(self, info: SourceInfo, options: ExcelOptions | None = None) -> None:
        """Read the sheet.

        Raises:
            SourceError: the workbook is corrupt or protected, or the sheet is missing/empty.
            ConfigError: ``header_row`` is below 1.
        """
        self.info = info
        self._options = options or ExcelOptions()
        path = info.path
        if self._options.header_row is not None and self._options.header_row < 1:
            raise ConfigError("--header-row must be 1 or more")
        reader = _reader(path)
        names = list(reader.sheet_names)
        if self._options.all_sheets:
            sheets = [(i, n) for i, n in enumerate(names) if _row_counts(path, reader, i, 1)]
        else:
            index = self._sheet_index(names)
            sheets = [(index, names[index])]
        read = [(self._read_sheet(reader, i, n), n) for i, n in sheets]
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

    def _sheet_index(self, names: list[str]) -> int:
        sheet = self._options.sheet
        path = self.info.path
        if sheet is None:
            if not names:
                raise SourceError(f"{path}: the workbook has no sheet", path=path)
            return 0
        if isinstance(sheet, str) and sheet in names:
            return names.index(sheet)
        position: int | None = sheet if isinstance(sheet, int) else None
        if isinstance(sheet, str) and sheet.strip().isdigit():
            position = int(sheet)
        if position is not None and 1 <= position <= len(names):
            return position - 1
        listed = ", ".join(repr(n) for n in names)
        raise SourceError(f"{path}: no sheet {sheet!r} (sheets: {listed})", path=path)

    def _read_sheet(self, reader: fastexcel.ExcelReader, index: int, name: str) -> _Sheet:
        import fastexcel

        path = self.info.path
        if self._options.header_row is not None:
            header = self._options.header_row - 1
        else:
            counts = _row_counts(path, reader, index, _HEADER_SCAN_ROWS)
            found = find_header(counts)
            if found is None:
                return _EMPTY
            header = found
        try:
            # Types guessed from every row: with a sample, a text cell further down a number
            # column would be dropped as a coercion error.
            sheet = reader.load_sheet(index, header_row=header, schema_sample_rows=None)
            batch, errors = sheet.to_arrow_with_errors()
        except fastexcel.FastExcelError as exc:
            raise SourceError(
                f"{path}: sheet {name!r}: cannot read it: {one_line(exc)}", path=path
            ) from exc
        # fastexcel names a blank header cell __UNNAMED__<i> (asking it which names it made
        # up, available_columns(), took 37 ms on the 100,000-row benchmark sheet).
        header_names = ["" if _GENERATED.fullmatch(n) else n for n in batch.schema.names]
        if "" in header_names and self.info.format == "xlsx":
            merged = _xlsx_merged_headers(path, index, header + 1)
            for col, left in merged.items():
                if col < len(header_names) and not header_names[col] and header_names[left]:
                    header_names[col] = header_names[left]
        # fastexcel's header_row is the sheet's 0-based row: data row i is sheet row header+2+i.
        rows = pa.array(np.arange(header + 2, header + 2 + batch.num_rows, dtype=np.int64))
        rejects = [
            Reject(
                line=header + 2 + e.offset_position[0],
                column=header_names[e.offset_position[1]] or f"col_{e.offset_position[1] + 1}",
                raw=_error_value(e.detail),
                reason="error cell in the workbook: loaded as NULL",
            )
            for e in (errors.errors if errors is not None else [])
            if e.offset_position[1] < len(header_names) and not _EMPTY_TEXT.search(e.detail)
        ]
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
    """Drop empty rows and unnamed empty columns; give columns their narrowest exact type."""
    keep_cols = [
        i
        for i, (name, column) in enumerate(zip(names, batch.columns, strict=True))
        if name or column.null_count < len(column)
    ]
    # Trailing and in-between unnamed columns without a value are not data.
    arrays = [batch.column(i) for i in keep_cols]
    kept = [names[i] for i in keep_cols]
    if not arrays:
        return _EMPTY
    filled = pc.is_valid(arrays[0])
    for column in arrays[1:]:
        filled = pc.or_(filled, pc.is_valid(column))
    if filled.false_count:
        arrays = [pc.filter(a, filled) for a in arrays]
        rows = pc.filter(rows, filled)
    arrays = [_narrow(a) for a in arrays]
    fields = [pa.field(n, a.type) for n, a in zip(_unique(kept), arrays, strict=True)]
    position = {int(v): i for i, v in enumerate(rows.to_pylist())} if rejects else {}
    indexed = [(position[r.line], r) for r in rejects if r.line in position]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)), rows, indexed


def _unique(names: list[str]) -> list[str]:
    """Repeated header names (a merged header cell spans columns) get ``_2``, ``_3``...
    as the table's column names will, so that sheets can be matched by name."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name and name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        seen.setdefault(name, 1)
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
        days = pc.cast(pc.cast(array, pa.timestamp("ms")), pa.int64())
        ms_per_day = 86_400_000
        day = pc.floor(pc.divide(pc.cast(days, pa.float64()), float(ms_per_day)))
        time_ms = pc.subtract(days, pc.multiply(pc.cast(day, pa.int64()), ms_per_day))
        if pc.all(pc.fill_null(pc.equal(time_ms, 0), True)).as_py():
            return array.cast(pa.date32())
        if pc.all(
            pc.fill_null(pc.is_in(day, pa.array(_EXCEL_EPOCH_DAYS, pa.float64())), True)
        ).as_py():
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
    return pc.cast(array, target)

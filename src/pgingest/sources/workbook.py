"""Open a workbook and parse its sheets with fastexcel: what can run before pyarrow is loaded.

fastexcel (Rust, calamine) parses a sheet's cells in ``load_sheet``, with the GIL released;
turning the parsed sheet into Arrow (:mod:`pgingest.sources.excel`) is a small step after it.
This module imports neither pyarrow nor numpy, so that the loader's read-ahead can start the
parse, most of a workbook load, while the rest of the program is still being imported.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, cast
from xml.etree.ElementTree import ParseError

from defusedxml import ElementTree

from pgingest.errors import ConfigError, SourceError
from pgingest.sources.base import ExcelOptions, one_line
from pgingest.sources.inputs import local_copy

if TYPE_CHECKING:
    import fastexcel
    import pyarrow as pa

__all__ = [
    "ParsedSheet",
    "chart_sheets",
    "find_header",
    "has_dropped_ods_text",
    "has_value",
    "open_workbook",
    "parse_workbook",
    "reader_panics",
    "row_counts",
    "sheet_names",
    "xlsx_merged_headers",
]

# fastexcel logs a warning for every column whose type it cannot guess (an all-empty column):
# pgingest handles those columns itself.
logging.getLogger("fastexcel").setLevel(logging.ERROR)

_LEADING_ROWS = 100
"""Empty rows above a table that the header search (outside xlsx) reads at first; a table
starting further down costs one more read of the sheet."""
_HEADER_SCAN_ROWS = 30
"""Rows looked at to find the header: title blocks above a table are a few rows high."""
_MAIN_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


@contextmanager
def reader_panics(path: str, sheet: str | None = None) -> Iterator[None]:
    """Turn a panic of the workbook reader inside the block into a :class:`SourceError`.

    calamine panics on some malformed workbooks (a truncated formula token), and pyo3 raises
    that as ``pyo3_runtime.PanicException``, a ``BaseException``: uncaught, it ends the whole
    run, the other files' loads with it. KeyboardInterrupt and SystemExit pass through.

    Raises:
        SourceError: the reader panicked (naming the file and, when given, the sheet).
    """
    try:
        yield
    except BaseException as exc:
        kind = type(exc)
        if kind.__module__ != "pyo3_runtime" or kind.__name__ != "PanicException":
            raise
        where = f"sheet {sheet!r}: " if sheet is not None else ""
        raise SourceError(
            f"{path}: {where}the workbook reader failed: {one_line(exc)}", path=path
        ) from exc


@dataclass(frozen=True, slots=True)
class ParsedSheet:
    """One sheet, parsed by fastexcel and not yet turned into Arrow."""

    index: int
    """0-based position in the workbook."""
    name: str
    header: int
    """0-based sheet row of the header."""
    sheet: Any
    """The ``fastexcel.ExcelSheet``; ``None`` for an empty sheet."""
    reader: Any = None
    """The ``fastexcel.ExcelReader`` it came from (to read a column again as another type)."""
    mixed: tuple[str, ...] = ()
    """Columns (fastexcel's names) whose cells are of several kinds, read as text; ``("*",)``:
    every column (the reader did not say which)."""
    chart: bool = False
    """A chart sheet (a chart, no cells): not read."""


def parse_workbook(path: str, options: ExcelOptions) -> list[ParsedSheet]:
    """Parse the sheet ``options`` choose (or, with ``all_sheets``, every non-empty one).

    Raises:
        SourceError: the workbook is corrupt or protected, or the sheet is missing or cannot
            be read.
        ConfigError: ``header_row`` is below 1.
    """
    if options.header_row is not None and options.header_row < 1:
        raise ConfigError("--header-row must be 1 or more")
    reader = open_workbook(path)
    names = list(reader.sheet_names)
    charts: list[ParsedSheet] = []
    if options.all_sheets:
        # A chart sheet has no cells: the reader fails on an xlsb's (calamine 0.36: "Error
        # while loading sheet") and reads an xlsx's as empty.
        skip = chart_sheets(path)
        charts = [ParsedSheet(i, n, 0, None, chart=True) for i, n in enumerate(names) if n in skip]
        chosen = [
            (i, n) for i, n in enumerate(names) if n not in skip and row_counts(path, reader, i, 1)
        ]
    else:
        index = _sheet_index(path, names, options.sheet)
        chosen = [(index, names[index])]
    return [_parse_sheet(path, reader, i, n, options.header_row) for i, n in chosen] + charts


def _sheet_index(path: str, names: list[str], sheet: str | int | None) -> int:
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


def _parse_sheet(
    path: str, reader: fastexcel.ExcelReader, index: int, name: str, header_row: int | None
) -> ParsedSheet:
    if header_row is not None:
        header = header_row - 1
    else:
        found = find_header(row_counts(path, reader, index, _HEADER_SCAN_ROWS))
        if found is None:
            return ParsedSheet(index, name, 0, None)
        header = found
    sheet, mixed = _load_typed(path, reader, index, name, header)
    return ParsedSheet(index, name, header, sheet, reader, mixed)


_UNDETERMINED = re.compile(r"could not determine dtype for column (.*)$", re.MULTILINE)
_KINDS = re.compile(r"\{([A-Za-z, ]*)\}")
_NUMBERS = frozenset({"Int", "Float"})


def _load_typed(
    path: str, reader: fastexcel.ExcelReader, index: int, name: str, header: int
) -> tuple[Any, tuple[str, ...]]:
    """Load the sheet with a type per column guessed from every row, strictly: a column
    holding cells of two kinds (numbers and booleans, dates and durations, text and numbers)
    is named by fastexcel's error, read as text and reported as mixed; integers among
    floats are numbers. Each such column costs one more parse of the sheet."""
    import fastexcel

    forced: dict[str, str] = {}
    mixed: list[str] = []
    # Types guessed from every row: with a sample, a text cell further down a number
    # column would be dropped as a coercion error.
    while True:
        try:
            with reader_panics(path, name):
                sheet = reader.load_sheet(
                    index,
                    header_row=header,
                    schema_sample_rows=None,
                    dtype_coercion="strict",
                    dtypes=cast("fastexcel.DTypeMap", dict(forced)) if forced else None,
                )
            return sheet, tuple(mixed)
        except (
            fastexcel.UnsupportedColumnTypeCombinationError,
            fastexcel.CalamineCellError,
        ) as exc:
            found = _UNDETERMINED.search(str(exc))
            column = found.group(1).strip() if found else None
            if column is None or column in forced:
                break  # the message names no column we can pin: every column as text
            kinds = _KINDS.search(str(exc))
            numbers = (
                kinds is not None and {k.strip() for k in kinds.group(1).split(",")} <= _NUMBERS
            )
            forced[column] = "float" if numbers else "string"
            if not numbers:
                mixed.append(column)
        except fastexcel.FastExcelError as exc:
            if not forced:
                raise SourceError(
                    f"{path}: sheet {name!r}: cannot read it: {one_line(exc)}", path=path
                ) from exc
            break  # a pinned column not found by its name: every column as text
    try:
        with reader_panics(path, name):
            sheet = reader.load_sheet(
                index, header_row=header, schema_sample_rows=None, dtypes="string"
            )
    except fastexcel.FastExcelError as exc:
        raise SourceError(
            f"{path}: sheet {name!r}: cannot read it: {one_line(exc)}", path=path
        ) from exc
    return sheet, ("*",)


def open_workbook(path: str) -> fastexcel.ExcelReader:
    """Open a workbook with fastexcel.

    Raises:
        SourceError: corrupt, password-protected or unreadable, or the reader failed on it.
    """
    import fastexcel

    try:
        with reader_panics(path):
            return fastexcel.read_excel(local_copy(path))
    except (fastexcel.FastExcelError, OSError, ValueError) as exc:
        raise SourceError(
            f"{path}: cannot read the workbook (corrupt, or password-protected?): {one_line(exc)}",
            path=path,
        ) from exc


def sheet_names(path: str, skip_empty: bool = True) -> list[str]:
    """Return the workbook's sheet names in order, without the empty ones and the chart
    sheets (by default).

    Raises:
        SourceError: the workbook cannot be read.
    """
    reader = open_workbook(path)
    names = list(reader.sheet_names)
    if not skip_empty:
        return names
    charts = chart_sheets(path)
    return [n for i, n in enumerate(names) if n not in charts and row_counts(path, reader, i, 1)]


_CHARTSHEET_REL = "/chartsheet"
"""How the relationship type of a chart sheet (a sheet holding only a chart) ends."""
_BRT_BUNDLE_SH = 156
"""The xlsb record naming a sheet (BrtBundleSh, [MS-XLSB] 2.4.304)."""


def chart_sheets(path: str) -> frozenset[str]:
    """The names of the workbook's chart sheets, which hold a chart and no cells (xlsx/xlsm
    and xlsb; none for other formats or when the workbook's index cannot be read)."""
    try:
        with zipfile.ZipFile(local_copy(path)) as archive:
            members = set(archive.namelist())
            if "xl/workbook.xml" in members:
                book = ElementTree.fromstring(archive.read("xl/workbook.xml"))
                sheets = [
                    (str(s.get("name", "")), str(s.get(f"{_REL_NS}id", "")))
                    for s in book.findall(f"{_MAIN_NS}sheets/{_MAIN_NS}sheet")
                ]
                rels = archive.read("xl/_rels/workbook.xml.rels")
            elif "xl/workbook.bin" in members:
                sheets = _xlsb_sheets(archive.read("xl/workbook.bin"))
                rels = archive.read("xl/_rels/workbook.bin.rels")
            else:
                return frozenset()
            charts = {
                str(rel.get("Id"))
                for rel in ElementTree.fromstring(rels).iter(f"{_PKG_REL_NS}Relationship")
                if str(rel.get("Type", "")).endswith(_CHARTSHEET_REL)
            }
    except (OSError, zipfile.BadZipFile, ParseError, KeyError, ValueError, struct.error):
        return frozenset()
    return frozenset(name for name, rel_id in sheets if rel_id in charts)


def _xlsb_sheets(book: bytes) -> list[tuple[str, str]]:
    """Each sheet's name and relationship id, from an xlsb's workbook part.

    Raises:
        ValueError: the part is malformed.
    """
    out: list[tuple[str, str]] = []
    at = 0
    while at < len(book):
        kind, at = _xlsb_varint(book, at, 2)
        size, at = _xlsb_varint(book, at, 4)
        if at + size > len(book):
            raise ValueError("xlsb record past the end of the workbook part")
        if kind == _BRT_BUNDLE_SH:
            rel_id, end = _xlsb_text(book, at + 8)  # after hsState and iTabID (4 bytes each)
            name, _ = _xlsb_text(book, end)
            out.append((name, rel_id))
        at += size
    return out


def _xlsb_varint(data: bytes, at: int, most: int) -> tuple[int, int]:
    """A record's type or size: up to ``most`` bytes of 7 bits, low first."""
    value = 0
    for i in range(most):
        if at >= len(data):
            raise ValueError("xlsb record cut short")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            break
    return value, at


def _xlsb_text(data: bytes, at: int) -> tuple[str, int]:
    """An XLWideString (a 4-byte count of UTF-16 code units, then those); a null one (count
    0xFFFFFFFF) is empty."""
    (count,) = struct.unpack_from("<I", data, at)
    at += 4
    if count == 0xFFFFFFFF:
        return "", at
    end = at + 2 * count
    if end > len(data):
        raise ValueError("xlsb string past the end of its record")
    return data[at:end].decode("utf-16-le"), end


_ODS_DROPPED = (b"<text:tab", b"<text:line-break")
"""OpenDocument text elements the reader (calamine) drops from a cell's text: a tab, a line
break inside a paragraph (``x<text:tab/>y`` reads as ``xy``)."""
_SCAN_BYTES = 1 << 20
"""Bytes of an OpenDocument's content read at a time when looking for those (1 MiB)."""


def has_dropped_ods_text(path: str) -> bool:
    """Whether an OpenDocument spreadsheet's cells hold tabs or line breaks, which its reader
    drops (a byte scan of its content, no parse; False when it cannot be read)."""
    keep = max(len(token) for token in _ODS_DROPPED) - 1  # a token cut by a chunk's end
    try:
        with zipfile.ZipFile(local_copy(path)) as archive, archive.open("content.xml") as stream:
            tail = b""
            while chunk := stream.read(_SCAN_BYTES):
                window = tail + chunk
                if any(token in window for token in _ODS_DROPPED):
                    return True
                tail = window[-keep:]
    except (OSError, zipfile.BadZipFile, KeyError, ValueError):
        return False
    return False


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


def _xlsx_shared_strings_part(archive: zipfile.ZipFile) -> str | None:
    """The zip member holding an xlsx workbook's shared strings, if it has any."""
    try:
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ParseError):
        return None
    for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
        if str(rel.get("Type", "")).endswith("/sharedStrings"):
            target = str(rel.get("Target", ""))
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return None


class _EmptySharedStrings:
    """Which shared strings are empty, read only as far as the cells asked about need (a
    workbook lists its strings in order of first use, so the first rows' are near the top)."""

    def __init__(self, archive: zipfile.ZipFile) -> None:
        part = _xlsx_shared_strings_part(archive)
        self._archive = archive
        self._part = part if part is not None and part in archive.namelist() else None
        self._stream: IO[bytes] | None = None
        self._events: Iterator[tuple[str, Any]] | None = None
        self._read = 0
        self._empty: set[int] = set()

    def is_empty(self, index: int) -> bool:
        """Whether shared string ``index`` is the empty string (a missing one is empty)."""
        if self._part is None:
            return True
        if self._events is None:
            self._stream = self._archive.open(self._part)
            self._events = iter(ElementTree.iterparse(self._stream, events=("end",)))
        item = f"{_MAIN_NS}si"
        while self._read <= index:
            event = next(self._events, None)
            if event is None:
                return True
            elem = event[1]
            if elem.tag != item:
                continue
            # A string's text is in <t> and rich-text runs' <r><t>; <rPh> is phonetic help.
            text = "".join(
                t.text or ""
                for t in [elem.find(f"{_MAIN_NS}t"), *elem.iterfind(f"{_MAIN_NS}r/{_MAIN_NS}t")]
                if t is not None
            )
            if not text:
                self._empty.add(self._read)
            self._read += 1
            elem.clear()
        return index in self._empty

    def close(self) -> None:
        """Close the shared strings' stream, if it was opened."""
        if self._stream is not None:
            self._stream.close()


def _xlsx_cell_is_empty(cell: Any, strings: _EmptySharedStrings) -> bool:
    """Whether an xlsx cell holds no value, or the empty string (a formula whose cached value
    is ``""``, an empty shared or inline string): such a cell does not count toward a row."""
    kind = cell.get("t")
    if kind == "inlineStr":
        return not "".join(t.text or "" for t in cell.iter(f"{_MAIN_NS}t"))
    value = cell.find(f"{_MAIN_NS}v")
    if value is None or not value.text:
        return True
    if kind == "s":
        try:
            return strings.is_empty(int(value.text))
        except ValueError:
            return True
    return False


def _xlsx_peek(path: str, index: int, max_rows: int) -> list[int] | None:
    """Cells holding a value per row of the sheet's first ``max_rows`` rows, from its XML (a
    few KB read, where fastexcel would parse the whole sheet); ``None`` when that fails. An
    empty-string value is no value. Rows and cells without their optional ``r=`` reference
    follow the previous one."""
    try:
        with zipfile.ZipFile(local_copy(path)) as archive:
            part = _xlsx_sheet_part(archive, index)
            if part is None:
                return None
            strings = _EmptySharedStrings(archive)
            counts: dict[int, int] = {}
            first: int | None = None
            row = 0
            with closing(strings), archive.open(part) as stream:
                for _event, elem in ElementTree.iterparse(stream, events=("end",)):
                    if elem.tag != f"{_MAIN_NS}row":
                        continue
                    ref = elem.get("r")
                    row = int(ref) if ref else row + 1
                    filled = sum(
                        1 for c in elem.iter(f"{_MAIN_NS}c") if not _xlsx_cell_is_empty(c, strings)
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


def xlsx_merged_headers(path: str, index: int, row: int) -> dict[int, int]:
    """Merged cells of the header row: covered column -> first column of the merge (both
    0-based, relative to the first used column). Read only when the header has blank cells."""
    out: dict[int, int] = {}
    try:
        with zipfile.ZipFile(local_copy(path)) as archive:
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


def row_counts(path: str, reader: fastexcel.ExcelReader, index: int, max_rows: int) -> list[int]:
    """Non-empty cells per row of the sheet's first rows, from row 1 on (leading empty rows
    count 0), and up to ``max_rows`` rows past the first non-empty one."""
    peek = _xlsx_peek(path, index, max_rows)  # None unless an xlsx/xlsm (by content)
    if peek is not None:
        return peek
    # Small workbooks in the other formats: a second parse of the sheet costs little.
    head = _head_rows(path, reader, index, skip_rows=0, n_rows=max_rows + _LEADING_ROWS)
    counts = _filled(head)
    total = int(head.total_height)
    if any(counts) or total <= len(counts):
        return counts
    # Nothing in the first rows, more below: the table starts further down. The reader skips
    # the leading empty rows itself; the row count it then reports says how many there were.
    rest = _head_rows(path, reader, index, skip_rows=None, n_rows=max_rows)
    return [0] * (total - int(rest.total_height)) + _filled(rest)


def _head_rows(
    path: str, reader: fastexcel.ExcelReader, index: int, skip_rows: int | None, n_rows: int
) -> Any:
    """The sheet's first ``n_rows`` rows as text, from row 1 (``skip_rows=0``: a row's index
    is then its sheet row, 0-based) or from its first non-empty row (``None``); a
    ``fastexcel.ExcelSheet``.

    Raises:
        SourceError: the sheet cannot be read.
    """
    import fastexcel

    try:
        with reader_panics(path, reader.sheet_names[index]):
            return reader.load_sheet(
                index, header_row=None, skip_rows=skip_rows, n_rows=n_rows, dtypes="string"
            )
    except fastexcel.FastExcelError as exc:
        raise SourceError(f"{path}: cannot read the workbook: {one_line(exc)}", path=path) from exc


def _filled(sheet: Any) -> list[int]:
    """Non-empty cells per row of a sheet read by :func:`_head_rows`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    batch = sheet.to_arrow()
    if batch.num_rows == 0 or batch.num_columns == 0:
        return []
    counts = pc.cast(has_value(batch.column(0)), pa.int32())
    for column in batch.columns[1:]:
        counts = pc.add(counts, pc.cast(has_value(column), pa.int32()))
    return [int(v) for v in counts.to_pylist()]


def has_value(column: pa.Array) -> pa.Array:
    """Which cells of a column hold a value: not NULL and not the empty string (a formula
    whose cached value is ``""``, an empty shared string), which is an empty cell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    valid = pc.is_valid(column)
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.and_(valid, pc.fill_null(pc.not_equal(column, ""), False))
    return valid


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

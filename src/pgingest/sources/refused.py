"""A raw CSV batch the server refused, read client-side: which records are malformed, the
values of the others, and their bytes (to be sent again byte for byte without the bad ones).

The failure path of a load (``--on-error skip``, or a batch that needs a wider column) reads
a batch here; the types of the values are checked by the caller. Batches were cut, checked
and (where needed) written again by the reader so that COPY reads them as Python's ``csv``
module does, so COPY's reading of quotes (:func:`~pgingest.sources.records.split_records`)
is the right one for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pgingest.model import CsvDialect
from pgingest.sources.records import Ints, Records, split_records
from pgingest.sources.repair import invalid_utf8_records, is_utf8, join_records, keep_bom

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pyarrow as pa
    import pyarrow.csv as pacsv

__all__ = [
    "CODECS",
    "Parsed",
    "copy_lines",
    "decode_line",
    "parse_refused",
    "record_at",
    "text_table",
]

LINE_RECORDS = True
"""Read a batch whose records are one line each without cutting it first (tests turn it off
to compare the two readings)."""

CODECS = {"UTF8": "utf-8", "WIN1252": "cp1252", "LATIN1": "latin-1"}
"""PostgreSQL client encoding of a batch -> Python codec."""


@dataclass(slots=True)
class Parsed:
    """A refused batch, read client-side."""

    data: bytes
    """The batch as UTF-8 (a batch in a single-byte encoding is decoded)."""
    records: Records
    """Its records (COPY's reading: the batch is sent that way)."""
    reasons: dict[int, str]
    """Malformed records by index: a quote never closed, bytes not in the encoding, a wrong
    field count."""
    table: pa.Table | None
    """The values of the well-formed records (the columns asked for, as text)."""
    kept: Ints
    """The index of the record each row of ``table`` comes from."""


def parse_refused(
    data: bytes,
    first_line: int,
    encoding: str,
    dialect: CsvDialect,
    columns: Sequence[str],
    include: Sequence[str],
) -> Parsed | None:
    """Read a raw CSV batch client-side: its records, the malformed ones, the others' values.

    Args:
        data: the batch (whole records, no header).
        first_line: the file line of its first byte.
        encoding: its PostgreSQL client encoding (``UTF8``, ``WIN1252``, ``LATIN1``).
        dialect: the file's dialect.
        columns: the names of the batch's columns, in order.
        include: the columns whose values are wanted; none: only the records are checked
            (``table`` is then ``None``).

    Returns:
        What was found; ``None`` when the batch cannot be parsed client-side the way the
        server reads it (the caller keeps the server's error).
    """
    import numpy as np

    codec = CODECS.get(encoding, "utf-8")
    if codec != "utf-8":
        data = data.decode(codec).encode("utf-8")
    if LINE_RECORDS and dialect.newline != "\r":
        lined = _line_records(data, first_line, dialect, columns, include)
        if lined is not None:
            return lined
    newline = "\r" if dialect.newline == "\r" else "\n"
    records = split_records(
        data,
        first_line,
        delimiter=dialect.delimiter,
        quote=dialect.quotechar,
        newline=newline,
        count_fields=False,
    )
    width = len(columns)
    reasons: dict[int, str] = {}
    for b in np.flatnonzero(records.broken):
        reasons[int(b)] = "unterminated quoted field"
    for i, reason in invalid_utf8_records(data, records.starts, records.ends).items():
        reasons.setdefault(i, reason)
    good = np.ones(len(records), np.bool_)
    good[list(reasons)] = False
    kept = np.flatnonzero(good)
    body = join_records(data, records.starts[good], records.ends[good])
    if not body:
        return Parsed(data, records, reasons, None, kept)
    read = _read_values(keep_bom(body), dialect, columns, include)
    if read is None:
        return None
    table, wrong = read
    parsed = np.ones(len(kept), np.bool_)
    for position, actual in wrong:
        if not 0 <= position < len(kept):
            return None
        parsed[position] = False
        reasons[int(kept[position])] = f"{actual} fields, expected {width}"
    kept = kept[parsed]
    if table.num_rows != len(kept):
        return None
    return Parsed(data, records, reasons, table if include else None, kept)


def _line_records(
    data: bytes,
    first_line: int,
    dialect: CsvDialect,
    columns: Sequence[str],
    include: Sequence[str],
) -> Parsed | None:
    """:func:`parse_refused` of a batch whose records are one line each, the usual case: its
    records are its lines, and one parse of the whole batch finds the wrong field counts.
    ``None`` when that cannot be known so cheaply (a line break inside a value, a CR alone, a
    quote never closed, bytes not UTF-8, a blank line): the caller cuts the records first."""
    import numpy as np

    if not data.endswith(b"\n"):
        return None
    arr = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(arr == _LF) + 1
    starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]])
    first = arr[starts[ends - starts <= 2]]
    if np.any((first == _LF) | (first == _CR)):
        return None  # a blank line: no record (a quoted field holds no line of its own)
    if b"\r" in data and not _crlf_only(arr):
        return None  # a CR alone: a line end to pyarrow, not a line
    quote = ord(dialect.quotechar)
    if np.count_nonzero(arr == quote) & 1 or (not data.isascii() and not is_utf8(data)):
        return None
    read = _read_values(keep_bom(data), dialect, columns, include)
    # As many records as lines: no record holds a line break (each quote closed on its line).
    if read is None or read[0].num_rows + len(read[1]) != len(ends):
        return None
    table, wrong = read
    width = len(columns)
    reasons = {position: f"{actual} fields, expected {width}" for position, actual in wrong}
    good = np.ones(len(ends), np.bool_)
    good[list(reasons)] = False
    lines = first_line + np.arange(len(ends), dtype=np.int64)
    records = Records(
        starts, ends, lines, np.zeros(len(ends), np.int64), np.zeros(len(ends), np.bool_)
    )
    return Parsed(data, records, reasons, table if include else None, np.flatnonzero(good))


def _read_values(
    body: bytes,
    dialect: CsvDialect,
    columns: Sequence[str],
    include: Sequence[str],
) -> tuple[pa.Table, list[tuple[int, int]]] | None:
    """The ``include`` columns of CSV records as text (the first column when none), and the
    records of the wrong width left out (their index, from 0, and field count). ``None``
    when pyarrow cannot read them."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    wrong: list[tuple[int, int]] = []

    def wrong_width(row: pacsv.InvalidRow) -> str:
        # pyarrow numbers the records it reads from 1, as split_records counts them
        wrong.append((int(row.number) - 1, int(row.actual_columns)))
        return "skip"

    try:
        table = pacsv.read_csv(
            pa.py_buffer(body),
            read_options=pacsv.ReadOptions(column_names=list(columns), use_threads=False),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter,
                quote_char=dialect.quotechar,
                double_quote=True,
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=wrong_width,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],  # pyarrow's default list reads NA, NULL, nan as NULL
                include_columns=list(include or columns[:1]),  # none: pyarrow reads them all
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    return table, wrong


def text_table(data: bytes, dialect: CsvDialect, columns: Sequence[str]) -> pa.Table | None:
    """A batch's well-formed records as text columns (for inference); ``None`` if none parse."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    newline = "\r" if dialect.newline == "\r" else "\n"
    records = split_records(
        data, 1, delimiter=dialect.delimiter, quote=dialect.quotechar, newline=newline
    )
    ok = (~records.broken) & (records.fields == len(columns))
    body = join_records(data, records.starts[ok], records.ends[ok])
    if not body:
        return None
    try:
        return pacsv.read_csv(
            pa.py_buffer(keep_bom(body)),
            read_options=pacsv.ReadOptions(column_names=list(columns)),
            parse_options=pacsv.ParseOptions(
                delimiter=dialect.delimiter, quote_char=dialect.quotechar, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
                null_values=[""],
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None


def decode_line(raw: bytes, codec: str) -> str:
    """A record's text for a reject (undecodable bytes shown as ``\\xNN``), line break off."""
    return raw.decode(codec, errors="backslashreplace").rstrip("\r\n")


def copy_lines(data: bytes, dialect: CsvDialect, ends: Ints | None = None) -> tuple[Records, Ints]:
    """A batch's records, and the line COPY names for each (its "line N").

    COPY counts a record as one line plus the line breaks inside its quoted values, but only
    those of one kind: a CR while it has not seen a line end yet (in the first record), then
    the stream's own (LF for a stream of LF line ends, CR otherwise). The count is taken when
    the whole record is read.

    ``ends``: where each record ends, when known (a batch its bad rows were taken out of).
    A batch of LF or CRLF line ends, the last one too, with no line break inside a value (as
    many LFs as records, each CR before an LF) then needs no cut: record N is COPY's line N.
    """
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    if ends is not None and data.endswith(b"\n") and _one_line_each(data, arr, len(ends)):
        ends = np.asarray(ends, np.int64)
        starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]])
        numbers = np.arange(1, len(ends) + 1, dtype=np.int64)
        unbroken = np.zeros(len(ends), np.bool_)
        cut = Records(starts, ends, numbers, np.zeros(len(ends), np.int64), unbroken)
        return cut, numbers
    records = split_records(
        data,
        1,
        delimiter=dialect.delimiter,
        quote=dialect.quotechar,
        newline="\r" if dialect.newline == "\r" else "\n",
        count_fields=False,
    )
    if not len(records):
        return records, np.zeros(0, np.int64)
    starts, ends = records.starts, records.ends
    last = arr[ends - 1]
    crlf_end = (last == _LF) & (ends - starts >= 2) & (arr[np.maximum(ends - 2, 0)] == _CR)
    lfs = np.flatnonzero(arr == _LF)
    crs = np.flatnonzero(arr == _CR)
    lf_inside = np.searchsorted(lfs, ends) - np.searchsorted(lfs, starts) - (last == _LF)
    cr_inside = (
        np.searchsorted(crs, ends) - np.searchsorted(crs, starts) - ((last == _CR) | crlf_end)
    )
    stream_lf = bool(last[0] == _LF and not crlf_end[0])
    counted = cr_inside.copy()
    if stream_lf:
        counted[1:] = lf_inside[1:]
    return records, np.arange(1, len(records) + 1) + np.cumsum(counted)


def _one_line_each(data: bytes, arr: npt.NDArray[np.uint8], records: int) -> bool:
    """Whether ``data`` (``arr``: the same bytes), ending in LF and holding ``records``
    records, holds one line each: as many LFs as records, and every CR just before an LF."""
    import numpy as np

    if np.count_nonzero(arr == _LF) != records:
        return False
    return b"\r" not in data or _crlf_only(arr)


def _crlf_only(arr: npt.NDArray[np.uint8]) -> bool:
    """Whether every CR of bytes ending in LF comes just before an LF."""
    import numpy as np

    crs = np.flatnonzero(arr == _CR)
    return not np.any(arr[crs + 1] != _LF)


_LF, _CR = 10, 13


def record_at(copy_line_numbers: Ints, stream_line: int) -> int:
    """The index of the record COPY names by "line ``stream_line``" (see :func:`copy_lines`);
    -1 when no record has that line."""
    import numpy as np

    index = int(np.searchsorted(copy_line_numbers, stream_line))
    if index < len(copy_line_numbers) and copy_line_numbers[index] == stream_line:
        return index
    return -1

"""Raw CSV chunks that PostgreSQL's COPY reads exactly as Python's ``csv`` module does.

PostgreSQL's CSV parser opens a quoted section at any quote, ends its data at a line holding
only ``\\.`` (before version 18), reads a blank line as a row, refuses a line break of another
style and a NUL byte; Python's ``csv`` module (the reference pgingest loads by) opens a quoted
field only at the start of a field and skips blank lines. :func:`copy_misreads` finds, with a
few vectorized passes, the chunks on which the two readings may differ; :func:`repair_chunk`
reads such a chunk the way Python does and writes it again so that COPY reads it exactly:
every value quoted, NULL an unquoted empty field. Clean chunks, the usual case, go to COPY
byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgingest.sources.records import Ints, python_records

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "BadRecord",
    "Marks",
    "Repaired",
    "copy_misreads",
    "invalid_utf8_records",
    "is_utf8",
    "join_records",
    "keep_bom",
    "record_end_after",
    "repair_chunk",
    "write_records",
]

_LF, _CR = 10, 13
_NO_ARRAY: Any = ()
"""What :class:`Marks` holds before its first chunk (its length is 0, as an empty array's)."""


class Marks:
    """Where the quotes of a chunk are (offsets, ascending) and which bytes are line breaks;
    one per reader, its buffers reused from chunk to chunk."""

    def __init__(self) -> None:
        # Empty until the first chunk is marked: a reader made for a small file never
        # marks one, and never imports numpy.
        self.arr: npt.NDArray[np.uint8] = _NO_ARRAY
        self.quotes: Ints = _NO_ARRAY
        self.breaks: npt.NDArray[np.bool_] = _NO_ARRAY
        """True at the file's line break byte (LF, or CR in a file of CR line breaks)."""
        self._scratch: npt.NDArray[np.bool_] = _NO_ARRAY
        self._line_byte = _LF

    def mark(self, data: bytes, quote: str, newline: bytes = b"\n") -> Marks:
        """Find the quotes and line breaks of ``data`` (two vectorized passes).

        Args:
            data: CSV bytes.
            quote: the quote character.
            newline: the file's line break: ``b"\\n"`` (also for CRLF) or ``b"\\r"``.

        Returns:
            ``self``, for ``data`` now.
        """
        import numpy as np

        n = len(data)
        if (
            self._scratch is _NO_ARRAY or len(self._scratch) < n
        ):  # reused: fresh arrays of a few MB cost page faults
            self._scratch = np.empty(n + (n >> 2), np.bool_)
            self.breaks = np.empty(n + (n >> 2), np.bool_)
        arr = np.frombuffer(data, np.uint8)
        self.arr = arr
        quote_byte = quote.encode("ascii")
        if quote_byte in data:
            self.quotes = np.flatnonzero(np.equal(arr, quote_byte[0], out=self._scratch[:n]))
        else:
            self.quotes = np.zeros(0, np.int64)
        self._line_byte = newline[-1]
        np.equal(arr, self._line_byte, out=self.breaks[:n])
        return self

    def scratch(self, size: int) -> npt.NDArray[np.bool_]:
        """A reusable bool array of ``size`` (the quote mask's buffer, free once marked)."""
        import numpy as np

        if self._scratch is _NO_ARRAY or len(self._scratch) < size:
            self._scratch = np.empty(size, np.bool_)
        return self._scratch[:size]

    def lines(self, end: int) -> int:
        """Line breaks before ``end``."""
        import numpy as np

        return int(np.count_nonzero(self.breaks[:end]))

    def parity_even(self, offset: int) -> bool:
        """Whether an even number of quotes comes before ``offset``."""
        import numpy as np

        return not int(np.searchsorted(self.quotes, offset)) & 1


def record_end_after(data: bytes, marks: Marks, size: int) -> int:
    """Where the first record ending at or past ``size`` bytes ends (just past a line break
    outside quotes as COPY reads them: an even number of quotes before it); else the last
    record end; -1 when no record ends in ``data``."""
    import numpy as np

    line_break = bytes((marks._line_byte,))
    start = min(max(size - 1, 0), len(data))  # (the marks' buffers may be longer than data)
    at = data.find(line_break, start)
    for _ in range(_TRIES):  # the first line break or one of the next is nearly always it
        if at < 0:
            break
        if marks.parity_even(at):
            return at + 1
        at = data.find(line_break, at + 1)
    else:  # a stray quote turned the pairing: look at every line break at once
        breaks = np.flatnonzero(marks.breaks[start : len(data)]) + start
        even = np.flatnonzero((np.searchsorted(marks.quotes, breaks) & 1) == 0)
        if len(even):
            return int(breaks[even[0]]) + 1
    breaks = np.flatnonzero(marks.breaks[:start])
    even = np.flatnonzero((np.searchsorted(marks.quotes, breaks) & 1) == 0)
    return int(breaks[even[-1]]) + 1 if len(even) else -1


_TRIES = 8


def copy_misreads(
    data: bytes, marks: Marks, end: int, *, delimiter: str, quote: str, newline: str
) -> bool:
    """Whether COPY may read ``data[:end]`` (whole records from a record start, cut where COPY
    sees a record end) differently from Python's ``csv`` module.

    True when a quote does not open or close a field (``5" pipe``, ``"a"b``), a line holds
    only ``\\.``, a line is blank, a line break is not the file's style (a CR in an LF file,
    an LF alone in a CRLF file) or a NUL byte is there. False positives are allowed: such a
    chunk is only read more slowly.

    Args:
        data: the chunk's bytes.
        marks: what :meth:`Marks.mark` found in ``data``.
        end: where the records end (the rest is not looked at).
        delimiter: field delimiter.
        quote: quote character.
        newline: the file's line break: ``"\\n"``, ``"\\r\\n"`` or ``"\\r"``.
    """
    import numpy as np

    if end <= 0:
        return False
    arr = marks.arr[:end]
    quotes = marks.quotes[: np.searchsorted(marks.quotes, end)]
    if len(quotes) & 1 or data.find(b"\x00", 0, end) >= 0:
        return True
    line_byte = _CR if newline == "\r" else _LF
    other = _LF if newline == "\r" else _CR
    if len(quotes):
        # Even quotes open a quoted section in COPY's reading: they must stand at a field
        # start, or right after a closing quote (a doubled quote). Odd ones close it: a field
        # end, or a doubled quote, must follow. (Strided views, one gather each.)
        ok = np.zeros(256, np.bool_)
        ok[[ord(delimiter), line_byte, ord(quote)]] = True
        opening = quotes[0::2]
        if opening[0] == 0:
            opening = opening[1:]
        if not ok[arr[opening - 1]].all():
            return True
        ok[other] = True
        closing = quotes[1::2]
        if len(closing) and closing[-1] == end - 1:
            closing = closing[:-1]
        if not ok[arr[closing + 1]].all():
            return True
    breaks = marks.breaks[:end]
    blank = marks.scratch(end - 1)
    np.logical_and(breaks[1:], breaks[:-1], out=blank)  # two line breaks in a row
    if (newline == "\r\n" or blank.any() or breaks[0]) and _outside_quotes(
        _blank_lines(arr, breaks, newline), quotes
    ):
        return True
    if data.find(bytes((other,)), 0, end) >= 0:
        strays = np.flatnonzero(arr == other)
        if newline == "\r\n":  # a CR of the file's own line breaks is followed by an LF
            follows = np.zeros(len(strays), np.bool_)
            inner = strays + 1 < end
            follows[inner] = arr[strays[inner] + 1] == _LF
            strays = strays[~follows]
        if _outside_quotes(strays, quotes):
            return True
    if newline == "\r\n":
        lfs = np.flatnonzero(breaks)
        alone = lfs[(lfs == 0) | (arr[np.maximum(lfs - 1, 0)] != _CR)]
        if _outside_quotes(alone, quotes):
            return True
    return data.find(b"\\", 0, end) >= 0 and _end_marker(arr)


def _blank_lines(arr: npt.NDArray[np.uint8], breaks: npt.NDArray[np.bool_], newline: str) -> Ints:
    """Line breaks ending an empty line."""
    import numpy as np

    ends = np.flatnonzero(breaks)
    if not len(ends):
        return ends
    start = ends
    if newline == "\r\n":
        two = ends >= 1
        two[two] = arr[ends[two] - 1] == _CR
        start = np.where(two, ends - 1, ends)
    line_byte = _CR if newline == "\r" else _LF
    blank: Ints = ends[(start == 0) | (arr[np.maximum(start - 1, 0)] == line_byte)]
    return blank


def _outside_quotes(offsets: Ints, quotes: Ints) -> bool:
    """Whether any offset lies outside quotes in COPY's reading (an even number before it)."""
    import numpy as np

    if not len(offsets):
        return False
    return bool(((np.searchsorted(quotes, offsets) & 1) == 0).any())


def _end_marker(arr: npt.NDArray[np.uint8]) -> bool:
    """Whether a line of ``arr`` (a chunk's bytes) holds only ``\\.``: PostgreSQL before 18
    ends the data there. (Vectorized: ``bytes.find`` of the two bytes took 4 ms per 4 MiB of
    text full of decimal points, and a chunk holding any backslash was searched so.)"""
    import numpy as np

    end = len(arr)
    dots = np.flatnonzero(arr[: end - 1] == _BACKSLASH)
    dots = dots[arr[dots + 1] == _DOT]
    if not len(dots):
        return False
    starts_line = (dots == 0) | np.isin(arr[np.maximum(dots - 1, 0)], _BREAKS)
    after = dots + 2
    ends_line = np.ones(len(dots), np.bool_)
    inside = after < end
    ends_line[inside] = np.isin(arr[after[inside]], _BREAKS)
    return bool(np.any(starts_line & ends_line))


_BACKSLASH, _DOT = 0x5C, 0x2E
_BREAKS = (_LF, _CR)


@dataclass(frozen=True, slots=True)
class BadRecord:
    """A record the reader cannot load: its line, its bytes as in the file, and why."""

    line: int
    raw: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class Repaired:
    """A chunk read the way Python's ``csv`` module reads it and written again for COPY."""

    data: bytes
    """UTF-8 CSV in the file's delimiter and quote, ``\\n`` line breaks, every value quoted."""
    end: int
    """Input bytes taken (whole records); the rest starts a record not complete yet."""
    lines: Ints
    """The file line each record of ``data`` starts on."""
    bad: tuple[BadRecord, ...]
    """Records left out of ``data``: a wrong field count, a quote never closed, a NUL byte,
    bytes that are not UTF-8 (in a UTF-8 file)."""


def repair_chunk(
    data: bytes,
    first_line: int,
    *,
    width: int,
    delimiter: str = ",",
    quote: str = '"',
    newline: str = "\n",
    encoding: str = "utf-8",
    final: bool = True,
) -> Repaired:
    """Read whole records from a record start as Python's ``csv`` module does, and write them
    again so that COPY reads each value exactly (bytes in equal bytes out).

    Args:
        data: CSV bytes from a record start.
        first_line: file line of ``data``'s first byte.
        width: the fields a record must have.
        delimiter: field delimiter.
        quote: quote character.
        newline: the file's line break (``"\\n"``, also for CRLF, or ``"\\r"``).
        encoding: the file's codec (``utf-8`` or a single-byte one).
        final: ``data`` runs to the end of the file.

    Returns:
        The records taken (``end`` may be before the end of ``data`` when it does not end on
        a record end), rewritten, and those left out.
    """
    import numpy as np

    cut = python_records(
        data, first_line, delimiter=delimiter, quote=quote, newline=newline, final=final
    )
    records = cut.records
    starts, ends = records.starts, records.ends
    reasons: dict[int, str] = {}
    for i in np.flatnonzero(records.broken).tolist():
        reasons[i] = "unterminated quoted field"
    for i in np.flatnonzero(records.fields != width).tolist():
        reasons.setdefault(i, f"{int(records.fields[i])} fields, expected {width}")
    for i in _records_with(data, starts, ends, b"\x00"):
        reasons.setdefault(i, "NUL byte (not allowed in PostgreSQL text)")
    if encoding == "utf-8":
        for i, reason in invalid_utf8_records(data, starts, ends).items():
            reasons.setdefault(i, reason)
    good = np.ones(len(starts), np.bool_)
    good[list(reasons)] = False
    body = join_records(data, starts[good], ends[good])
    if encoding != "utf-8" and body:
        body = body.decode(encoding).encode("utf-8")
    out = b""
    if body:
        table = _parse(body, int(good.sum()), width, delimiter, quote)
        out = write_records(table, delimiter, quote)
    bad = tuple(
        BadRecord(int(records.lines[i]), bytes(data[starts[i] : ends[i]]), reason)
        for i, reason in sorted(reasons.items())
    )
    return Repaired(out, cut.end, records.lines[good], bad)


def _records_with(data: bytes, starts: Ints, ends: Ints, needle: bytes) -> list[int]:
    """Indexes of the records holding ``needle``."""
    import numpy as np

    found: list[int] = []
    at = data.find(needle)
    while at >= 0:
        i = int(np.searchsorted(ends, at, side="right"))
        if i >= len(starts):
            break
        if at >= starts[i]:
            found.append(i)
        at = data.find(needle, int(ends[i]))
    return found


def invalid_utf8_records(data: bytes, starts: Ints, ends: Ints) -> dict[int, str]:
    """Records holding bytes that are not UTF-8, with the first such byte of each."""
    import numpy as np

    bad: dict[int, str] = {}
    if data.isascii():
        return bad
    position = 0
    while position < len(data):
        try:
            data[position:].decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            where = position + exc.start
            i = int(np.searchsorted(ends, where, side="right"))
            if i >= len(starts):
                break
            sequence = data[where : position + exc.end].hex(" ")
            bad.setdefault(i, f"invalid byte sequence for encoding UTF8: 0x{sequence}")
            position = int(ends[i])
    return bad


def is_utf8(data: bytes, end: int | None = None) -> bool:
    """Whether ``data[:end]`` (all of it by default) is valid UTF-8 (Arrow's check: no copy,
    no string built)."""
    import numpy as np
    import pyarrow as pa

    size = len(data) if end is None else end
    offsets = pa.py_buffer(np.array([0, size], np.int32).tobytes())
    try:
        pa.StringArray.from_buffers(1, offsets, pa.py_buffer(data)).validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def join_records(data: bytes, starts: Ints, ends: Ints) -> bytes:
    """The bytes of the given records, consecutive ones copied as one run."""
    import numpy as np

    if not len(starts):
        return b""
    breaks = np.flatnonzero(starts[1:] != ends[:-1]) + 1
    run_starts = starts[np.concatenate([[0], breaks])]
    run_ends = ends[np.concatenate([breaks - 1, [len(ends) - 1]])]
    view = memoryview(data)
    return b"".join(view[int(s) : int(e)] for s, e in zip(run_starts, run_ends, strict=True))


def _parse(body: bytes, rows: int, width: int, delimiter: str, quote: str) -> object:
    """The records' values, every column text: NULL for an unquoted empty field, "" for a
    quoted one (pyarrow's parser reads quotes the way Python's ``csv`` module does)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"f{i}" for i in range(width)]
    data = keep_bom(body)
    table = pacsv.read_csv(
        pa.py_buffer(data),
        # One block for the whole input, the BOM kept before it included: with a block
        # shorter than the input, the value after that BOM came out of unowned memory.
        read_options=pacsv.ReadOptions(
            column_names=names, use_threads=False, block_size=len(data) + 1
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char=quote, double_quote=True, newlines_in_values=True
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
        ),
    )
    if table.num_rows != rows:
        raise ValueError(f"parsed {table.num_rows} records, expected {rows}")
    return table


def keep_bom(body: bytes) -> bytes:
    """``body`` for pyarrow's CSV parser, which drops one BOM at the start of its input: here
    it is a value's first character, kept by one more BOM before it (a blank line would be a
    row where blank lines are rows)."""
    bom = b"\xef\xbb\xbf"
    return bom + body if body.startswith(bom) else body


def write_records(table: object, delimiter: str, quote: str) -> bytes:
    """CSV of a table of text columns that COPY reads exactly: every value quoted (quotes
    doubled), NULL an unquoted empty field, one ``\\n`` after each record."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(table, pa.Table) or not table.num_rows:
        return b""
    if quote == '"':  # pyarrow's writer does exactly this, at C++ speed
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        options = pacsv.WriteOptions(
            include_header=False, delimiter=delimiter, quoting_style="all_valid"
        )
        pacsv.write_csv(table, sink, options)
        written: bytes = sink.getvalue().to_pybytes()
        return written
    columns = []
    for column in table.columns:
        escaped = pc.replace_substring(column, quote, quote + quote)
        quoted = pc.binary_join_element_wise(quote, escaped, quote, "")
        columns.append(pc.fill_null(quoted, ""))
    lines = pc.binary_join_element_wise(*columns, pa.scalar(delimiter))
    lines = pc.binary_join_element_wise(lines, pa.scalar("\n"), "").combine_chunks()
    lines = lines.cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    values = lines.buffers()[2]
    out: bytes = values[int(offsets[0]) : int(offsets[-1])].to_pybytes()
    return out

"""Cut CSV bytes into records, vectorized: where each record starts and ends, the line it
starts on, its field count, and which records are broken (a quote never closed).

Two readings of the same bytes: :func:`split_records` reads quotes the way PostgreSQL's COPY
does (any quote toggles), for chunks that are sent to the server as they are (the reader made
sure both readings agree on them); :func:`python_records` reads them the way Python's ``csv``
module does (a quote opens a field only at its start), the reference pgingest loads by, for
the chunks on which the two readings differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


Ints: TypeAlias = "npt.NDArray[np.int64]"


@dataclass(frozen=True, slots=True)
class Records:
    """The records of a chunk, blank lines left out; arrays of one entry per record."""

    starts: Ints
    """Byte offset where each record starts."""
    ends: Ints
    """Byte offset just past each record (its line break included)."""
    lines: Ints
    """Line of the file each record starts on."""
    fields: Ints
    """Number of fields of each record (outside quotes)."""
    broken: npt.NDArray[np.bool_]
    """The record opens a quoted field never closed: it is taken as one physical line."""

    def __len__(self) -> int:
        return len(self.starts)


def split_records(
    data: bytes,
    first_line: int,
    *,
    delimiter: str = ",",
    quote: str = '"',
    newline: str = "\n",
    count_fields: bool = True,
) -> Records:
    """Find the records of ``data`` (whole CSV records, quotes escaped by doubling them).

    A record ends at a line break outside quotes. When the quotes never balance again, the
    line where the unclosed field opens is one broken record and the cut goes on after it, so
    the records after a stray quote are not swallowed by it.

    Args:
        data: the chunk (UTF-8 or a single-byte encoding).
        first_line: file line of the chunk's first byte.
        delimiter: field delimiter.
        quote: quote character.
        newline: ``"\\n"`` (also for CRLF) or ``"\\r"``.
        count_fields: count each record's fields (two thirds of the cost); else ``fields``
            is all zeros.

    Returns:
        The records, in order.
    """
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    n = len(arr)
    newlines = np.flatnonzero(arr == ord(newline)).astype(np.int64)
    quotes = np.flatnonzero(arr == ord(quote)).astype(np.int64)
    line_ends = newlines + 1
    if n and (not len(newlines) or newlines[-1] != n - 1):
        line_ends = np.append(line_ends, n)
    quotes_before = np.searchsorted(quotes, line_ends).astype(np.int64)
    ends_parts: list[Ints] = []
    broken_parts: list[npt.NDArray[np.bool_]] = []
    start, index = 0, 0
    while index < len(line_ends):
        base = int(np.searchsorted(quotes, start))
        parity = (quotes_before[index:] - base) & 1
        even = np.flatnonzero(parity == 0) + index
        closed = line_ends[even]
        if len(even) and even[-1] == len(line_ends) - 1:
            ends_parts.append(closed)
            broken_parts.append(np.zeros(len(closed), np.bool_))
            break
        # The quotes after the last record end never close: that line alone is broken.
        ends_parts.append(closed)
        broken_parts.append(np.zeros(len(closed), np.bool_))
        index = int(even[-1]) + 1 if len(even) else index
        ends_parts.append(line_ends[index : index + 1])
        broken_parts.append(np.ones(1, np.bool_))
        start = int(line_ends[index])
        index += 1
    ends = np.concatenate(ends_parts) if ends_parts else np.zeros(0, np.int64)
    broken = np.concatenate(broken_parts) if broken_parts else np.zeros(0, np.bool_)
    starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]]) if len(ends) else ends
    # Blank lines are no records (COPY's pass-through leaves them to the client-side parse).
    length = ends - starts
    first = arr[np.minimum(starts, max(n - 1, 0))] if n else np.zeros(0, np.uint8)
    blank = (length <= 2) & ((first == 10) | (first == 13))
    keep = ~blank
    starts, ends, broken = starts[keep], ends[keep], broken[keep]
    lines = first_line + np.searchsorted(newlines, starts).astype(np.int64)
    if count_fields:
        fields = _field_counts(arr, starts, ends, quotes, ord(delimiter))
    else:
        fields = np.zeros(len(starts), np.int64)
    return Records(starts, ends, lines, fields, broken)


def _field_counts(
    arr: npt.NDArray[np.uint8], starts: Ints, ends: Ints, quotes: Ints, delimiter: int
) -> Ints:
    """Delimiters outside quotes per record, plus one."""
    import numpy as np

    delims = np.flatnonzero(arr == delimiter).astype(np.int64)
    if not len(starts):
        return np.zeros(0, np.int64)
    owner = np.searchsorted(ends, delims, side="right")
    inside = owner < len(starts)
    delims, owner = delims[inside], owner[inside]
    quote_parity = (np.searchsorted(quotes, delims) - np.searchsorted(quotes, starts[owner])) & 1
    counted = owner[quote_parity == 0]
    return np.bincount(counted, minlength=len(starts)).astype(np.int64) + 1


@dataclass(frozen=True, slots=True)
class Cut:
    """The complete records at the start of some bytes, as Python's ``csv`` module reads them."""

    records: Records
    """The records (blank lines left out); ``broken`` marks a quoted field never closed."""
    end: int
    """Bytes taken by the complete records (and the blank lines among them); the rest starts a
    record that is not complete yet."""


def python_records(
    data: bytes,
    first_line: int,
    *,
    delimiter: str = ",",
    quote: str = '"',
    newline: str = "\n",
    final: bool = True,
) -> Cut:
    """Find the records of ``data`` as Python's ``csv`` module reads them (``strict=False``,
    quotes escaped by doubling them).

    A quote opens a quoted field only at the start of a field; inside it a doubled quote is
    one quote and a lone one closes it; anywhere else a quote is an ordinary character. A
    record ends at a line break (``\n``, ``\r`` or ``\r\n``) outside a quoted field; blank
    lines are no records.

    Args:
        data: whole records from a record start (UTF-8 or a single-byte encoding).
        first_line: file line of ``data``'s first byte.
        delimiter: field delimiter.
        quote: quote character.
        newline: the file's line break (``"\n"``, also for CRLF, or ``"\r"``): lines are
            counted by it.
        final: ``data`` runs to the end of the file: its last record needs no line break, and
            a quoted field never closed makes the line it opens on a broken record (the
            records after it are read again from the next line, as :func:`split_records`
            does; Python's ``csv`` would take the rest of the file into that field).

    Returns:
        The complete records and the bytes they take.
    """
    import numpy as np

    cut = _python_records(data, first_line, delimiter, quote, newline, final)
    if not (final and len(cut.records) and cut.records.broken[-1]):
        return cut
    # The quoted field that never closes: its line alone is the broken record.
    records = cut.records
    start = int(records.starts[-1])
    opened = _last_open(data, start, quote, delimiter)
    line_end = min(
        (at for at in (data.find(b"\n", opened), data.find(b"\r", opened)) if at >= 0),
        default=len(data) - 1,
    )
    if data[line_end : line_end + 2] == b"\r\n":
        line_end += 1
    end = line_end + 1
    line = int(records.lines[-1])
    head = Records(
        np.append(records.starts[:-1], start),
        np.append(records.ends[:-1], end),
        np.append(records.lines[:-1], line),
        np.append(records.fields[:-1], int(records.fields[-1])),
        np.append(records.broken[:-1], True),
    )
    if end >= len(data):
        return Cut(head, len(data))
    newline_byte = newline.encode()[-1:]
    rest = python_records(
        data[end:],
        line + data.count(newline_byte, start, end),
        delimiter=delimiter,
        quote=quote,
        newline=newline,
        final=True,
    )
    tail = rest.records
    return Cut(
        Records(
            np.concatenate([head.starts, tail.starts + end]),
            np.concatenate([head.ends, tail.ends + end]),
            np.concatenate([head.lines, tail.lines]),
            np.concatenate([head.fields, tail.fields]),
            np.concatenate([head.broken, tail.broken]),
        ),
        len(data),
    )


def _last_open(data: bytes, start: int, quote: str, delimiter: str) -> int:
    """Where the quoted field left open in the record at ``start`` opens."""
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    opens, closes = _quoted_fields(arr, np.flatnonzero(arr == ord(quote)), ord(delimiter))
    open_at = opens[closes >= len(data)]
    after = open_at[open_at >= start]
    return int(after[0]) if len(after) else start


def _python_records(
    data: bytes, first_line: int, delimiter: str, quote: str, newline: str, final: bool
) -> Cut:
    import numpy as np

    arr = np.frombuffer(data, np.uint8)
    n = len(arr)
    q_byte, d_byte = ord(quote), ord(delimiter)
    quotes = np.flatnonzero(arr == q_byte).astype(np.int64)
    opens, closes = _quoted_fields(arr, quotes, d_byte)
    lf = np.flatnonzero(arr == _LF).astype(np.int64)
    cr = np.flatnonzero(arr == _CR).astype(np.int64)
    if len(cr):  # a CR followed by LF ends its line at the LF
        paired = cr + 1 < n
        paired[paired] = arr[cr[paired] + 1] == _LF
        cr = cr[~paired]
    breaks = np.union1d(lf, cr) if len(cr) else lf
    if len(opens):  # line breaks inside a quoted field are data
        owner = np.searchsorted(opens, breaks, side="right") - 1
        inside = owner >= 0
        inside[inside] = breaks[inside] < closes[owner[inside]]
        breaks = breaks[~inside]
    ends = breaks + 1
    open_at_end = bool(len(closes)) and closes[-1] >= n
    broken = np.zeros(len(ends), np.bool_)
    taken = int(ends[-1]) if len(ends) else 0
    if final and taken < n:
        ends = np.append(ends, n)
        broken = np.append(broken, open_at_end)
        taken = n
    starts = np.concatenate([np.zeros(1, np.int64), ends[:-1]]) if len(ends) else ends
    content = arr[np.minimum(starts, max(n - 1, 0))] if n else np.zeros(0, np.uint8)
    length = ends - starts
    blank = ((content == _LF) | (content == _CR)) & (
        (length == 1) | ((length == 2) & (content == _CR))  # "\n", "\r" or "\r\n" alone
    )
    keep = ~blank
    starts, ends, broken = starts[keep], ends[keep], broken[keep]
    line_byte = np.flatnonzero(arr == ord(newline)) if newline != "\n" else lf
    lines = first_line + np.searchsorted(line_byte, starts).astype(np.int64)
    delims = np.flatnonzero(arr == d_byte).astype(np.int64)
    if len(opens) and len(delims):
        owner = np.searchsorted(opens, delims, side="right") - 1
        inside = owner >= 0
        inside[inside] = delims[inside] < closes[owner[inside]]
        delims = delims[~inside]
    if len(starts):
        owner = np.searchsorted(ends, delims, side="right")
        fields = np.bincount(owner[owner < len(starts)], minlength=len(starts)) + 1
    else:
        fields = np.zeros(0, np.int64)
    return Cut(Records(starts, ends, lines, fields.astype(np.int64), broken), taken)


_LF, _CR = 10, 13
_NO_CLOSE = 2**63 - 1
"""int64's largest value: no closing quote."""


def _quoted_fields(arr: npt.NDArray[np.uint8], quotes: Ints, delimiter: int) -> tuple[Ints, Ints]:
    """Where each quoted field opens and closes (the offsets of its two quotes; a field never
    closed closes at ``_NO_CLOSE``), in Python's reading: one step per quoted field."""
    import numpy as np

    opens: list[int] = []
    closes: list[int] = []
    count = len(quotes)
    positions = quotes.tolist()
    # a quote opens a field where the byte before it ends a field or a line
    starts_field = np.ones(count, np.bool_)
    inner = quotes > 0
    before = arr[quotes[inner] - 1]
    starts_field[inner] = (before == delimiter) | (before == _LF) | (before == _CR)
    # quote k is followed by another quote: a doubled quote inside a quoted field
    doubled = np.zeros(count, np.bool_)
    if count > 1:
        doubled[:-1] = quotes[1:] == quotes[:-1] + 1
    fast = _closes_vectorized(quotes, np.flatnonzero(starts_field))
    if fast is not None:
        return fast
    candidates = np.flatnonzero(starts_field).tolist()
    doubled_list = doubled.tolist()
    last_close = -1
    for k in candidates:
        p = positions[k]
        if p <= last_close:
            continue  # inside (or the closing quote of) the previous quoted field
        j = k + 1
        while j < count and doubled_list[j]:
            j += 2  # an escaped quote: two quotes in a row
        opens.append(p)
        if j >= count:
            closes.append(_NO_CLOSE)
            break
        last_close = positions[j]
        closes.append(last_close)
    return np.asarray(opens, np.int64), np.asarray(closes, np.int64)


def _closes_vectorized(quotes: Ints, candidates: Ints) -> tuple[Ints, Ints] | None:
    """The quoted fields when no candidate opening quote lies inside an earlier quoted field
    (the usual case, computed without a loop); ``None`` otherwise.

    After an opening quote, quotes in a row pair off (escaped quotes); the first run of an odd
    number of quotes ends with the closing one.
    """
    import numpy as np

    count = len(quotes)
    if not len(candidates):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.ones(count, np.bool_)
    starts[1:] = quotes[1:] != quotes[:-1] + 1
    run_of = np.cumsum(starts) - 1
    run_first = np.flatnonzero(starts)
    run_last = np.append(run_first[1:] - 1, count - 1)
    odd_runs = np.flatnonzero((run_last - run_first + 1) & 1)
    runs = run_of[candidates]
    after = run_last[runs] - candidates  # quotes after the opening one in its run
    close = run_last[runs]
    even = (after & 1) == 0
    nxt = np.searchsorted(odd_runs, runs[even], side="right")
    found = nxt < len(odd_runs)
    even_close = np.full(len(nxt), -1, np.int64)
    even_close[found] = run_last[odd_runs[nxt[found]]]
    close = close.astype(np.int64)
    close[even] = even_close
    opens = quotes[candidates]
    open_ended = np.flatnonzero(close < 0)
    if len(open_ended):  # a field never closed: every later quote is inside it
        end = int(open_ended[0]) + 1
        opens, close = opens[:end], close[:end]
    closes = np.where(close >= 0, quotes[np.maximum(close, 0)], _NO_CLOSE)
    if len(opens) > 1 and not (opens[1:] > closes[:-1]).all():
        return None
    return opens.astype(np.int64), closes.astype(np.int64)

"""Cut a raw CSV chunk into its records, vectorized: where each record starts and ends, the
line it starts on, its field count, and which records are broken (a quote never closed).

Used on the failure path only (a batch the server refused, under ``--on-error skip``): the
bad records are set aside with their raw text and line, and the good ones are sent again byte
for byte as they were in the file. Quotes are read the way PostgreSQL's COPY reads them (any
quote toggles), because the chunk was cut, and is sent, that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Ints = npt.NDArray[np.int64]


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
    delims = np.flatnonzero(arr == delimiter).astype(np.int64)
    if not len(starts):
        return np.zeros(0, np.int64)
    owner = np.searchsorted(ends, delims, side="right")
    inside = owner < len(starts)
    delims, owner = delims[inside], owner[inside]
    quote_parity = (np.searchsorted(quotes, delims) - np.searchsorted(quotes, starts[owner])) & 1
    counted = owner[quote_parity == 0]
    return np.bincount(counted, minlength=len(starts)).astype(np.int64) + 1

"""Where the rows of a JSON-lines file are: each row's line (its number, its bytes), found at
C speed with numpy, and the checks that keep pyarrow's JSON reader to files it reads safely.

A clean file builds no index: its rows are its lines, which a count of line breaks shows.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from pgingest.errors import SourceError
from pgingest.sources.refused import decode_line

__all__ = [
    "LineIndex",
    "LineRecords",
    "line_spans",
    "lines_are_rows",
    "may_nest_deep",
    "objects_only",
]


class LineIndex:
    """Where each row's line is in the file: found when first asked (a clean file never
    asks), or given by the line-by-line read that found them."""

    def __init__(
        self,
        data: bytes,
        starts: np.ndarray | None = None,
        ends: np.ndarray | None = None,
        lines: np.ndarray | None = None,
    ) -> None:
        self.data = data
        self._spans = None if starts is None or ends is None else (starts, ends, lines)
        self._lock = threading.Lock()

    def spans(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Each row's line: its start and end in the data, and its number (``None``: the
        lines of every non-blank line)."""
        with self._lock:
            if self._spans is None:
                starts, ends = line_spans(self.data)
                filled = filled_lines(self.data, starts, ends)
                numbers = np.flatnonzero(filled) + 1
                self._spans = (starts[filled], ends[filled], numbers)
            return self._spans

    def lines(self) -> np.ndarray:
        """The file line of each non-blank line."""
        numbers = self.spans()[2]
        if numbers is None:
            raise SourceError("internal: an NDJSON line index without line numbers")
        return numbers

    def all_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """Every line of the file (blank ones too): starts and ends."""
        return line_spans(self.data)


@dataclass(frozen=True, slots=True)
class LineRecords:
    """Rows of a chunk, each its line as the file has it (for the reject a row may become)."""

    index: LineIndex
    rows: np.ndarray
    """Row numbers in the file (0-based)."""

    def take(self, rows: Any) -> LineRecords:
        """The records of ``rows`` (positions, or a mask)."""
        return LineRecords(self.index, self.rows[rows])

    def text(self, row: int) -> str:
        """Row ``row``'s line, for a reject (its text: a row is valid UTF-8 JSON)."""
        starts, ends, _ = self.index.spans()
        position = int(self.rows[row])
        return decode_line(self.index.data[int(starts[position]) : int(ends[position])], "utf-8")


def line_spans(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (line break off) of each line, as ``bytes.splitlines`` cuts them
    (``\\n``, ``\\r\\n`` or ``\\r``)."""
    arr = np.frombuffer(data, np.uint8)
    lf = arr == 0x0A
    cr = arr == 0x0D
    bare_cr = cr.copy()
    bare_cr[:-1] &= ~lf[1:]
    breaks = np.flatnonzero(lf | bare_cr)
    after_cr = np.zeros(len(arr), np.bool_)
    after_cr[1:] = cr[:-1]
    ends = breaks - (lf[breaks] & after_cr[breaks])  # \\r\\n: the line ends before its \\r
    starts = np.concatenate(([0], breaks + 1)).astype(np.int64)
    ends = np.concatenate((ends, [len(data)])).astype(np.int64)
    if starts[-1] == len(data):  # the last line ends with its break (or the file is empty)
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


_WHITESPACE = np.zeros(256, np.bool_)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True
"""What ``bytes.strip`` takes off: a line of these only is blank."""


def filled_lines(data: bytes, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Which lines hold something besides whitespace."""
    arr = np.frombuffer(data, np.uint8)
    solid = np.concatenate(([0], np.cumsum(~_WHITESPACE[arr], dtype=np.int64)))
    result: np.ndarray = solid[ends] > solid[starts]
    return result


def lines_are_rows(data: bytes, breaks: np.ndarray, rows: int) -> bool:
    """Whether row ``i`` is line ``i + 1``: as many lines (cut at ``breaks``, the positions
    of ``\\n``) as rows, none cut by a bare CR (a clean file builds no line index)."""
    if b"\r" in data:
        arr = np.frombuffer(data, np.uint8)
        after_cr = np.flatnonzero(arr == 0x0D) + 1
        if len(after_cr) and (after_cr[-1] == len(arr) or np.any(arr[after_cr] != 0x0A)):
            return False
    return rows == len(breaks) + (1 if data and not data.endswith(b"\n") else 0)


def objects_only(arr: np.ndarray, breaks: np.ndarray) -> bool:
    """Whether every line starts with ``{`` (no blank line, nothing but objects, likely), for
    pyarrow's JSON reader: it reads a line ``null`` as a row of NULLs, and a first line
    ``null`` kills the process (pyarrow 26)."""
    firsts = np.concatenate(([0], breaks + 1))
    firsts = firsts[firsts < len(arr)]
    return bool(len(firsts)) and bool(np.all(arr[firsts] == 0x7B))


_SAFE_LINE_BYTES = 10_000
"""A line shorter than this nests fewer than :data:`_SAFE_DEPTH` levels."""
_SAFE_DEPTH = 5_000
"""Nesting pyarrow's JSON reader parses (deeper, it overflows its thread's stack and kills the
process: 20,000 levels of arrays did; 5,000 and 10,000 did not)."""


def may_nest_deep(data: bytes, breaks: np.ndarray) -> bool:
    """Whether a line may nest :data:`_SAFE_DEPTH` levels or more (it holds that many ``[``
    and ``{``, in strings too): then only Python's json module, which refuses such nesting
    with an error, reads the file."""
    bounds = np.concatenate(([-1], breaks, [len(data)]))
    if not len(data) or int(np.diff(bounds).max()) <= _SAFE_LINE_BYTES:
        return False
    arr = np.frombuffer(data, np.uint8)
    openers = (arr == 0x5B) | (arr == 0x7B)
    starts = bounds[:-1] + 1
    starts = starts[starts < len(arr)]  # (an empty line counts its next byte: more, not less)
    return int(np.add.reduceat(openers, starts, dtype=np.int64).max()) >= _SAFE_DEPTH

"""Read NDJSON (JSON lines): one object per line; its keys become columns, nested values jsonb.

Every value arrives as the file writes it. A column of numbers is bigint when its values are
integers within int64, double precision when every value survives the trip through a float8
(at most 15 significant digits, a normal float), numeric otherwise (each value sent as its
number text); a column of strings is date or timestamp when every value is an ISO date or
time, timestamptz when every value is a time with a UTC offset (the forms CSV inference reads;
local and zoned times mixed stay text, as in CSV), else text; objects and arrays are jsonb,
each its own JSON text with every number's digits; a key whose values have different JSON
types is text.

pyarrow's JSON reader parses a file whose columns it reads exactly (integers within int64,
booleans, strings); any other file (floats, timestamps, nested values, types mixed) is parsed
with Python's json module, floats as :class:`decimal.Decimal`, so no digit is lost. This
module is the proof that a format plugs in as one reader: nothing in the writer knows about it.

A bad line (not JSON, not an object, nested deeper than Python's json reads, a string or key
PostgreSQL cannot store) fails the file naming it; with ``skip_bad_rows`` it is left out and
kept in the ``rejects`` of the chunk it falls in. Each chunk's rows know their file lines
(blank lines hold no row) and, found only when a reject needs it, their line's text.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from pgingest.errors import RowError, SourceError
from pgingest.model import NUMERIC_TEXT_EXTENSION, ArrowChunk, Chunk, Reject, SourceInfo
from pgingest.sources._lines import (
    LineIndex,
    LineRecords,
    lines_are_rows,
    may_nest_deep,
    objects_only,
)
from pgingest.sources.base import one_line, open_stream, read_errors
from pgingest.textforms import LOCAL_TEMPORAL, ZONED_TIMESTAMP

__all__ = ["NdjsonSource", "NumericTextType"]

_MAX_BLOCK = 1 << 30
"""The whole file is one parse block (up to 1 GiB), so that column types are inferred from
every line: with smaller blocks pyarrow refuses a later block whose types differ."""

_EXACT_ARROW_TYPES = (pa.int64(), pa.bool_(), pa.string(), pa.null())
"""Column types pyarrow's JSON reader gives exactly the values Python's json module reads
(a number past int64 becomes a double, a timestamp string loses its offset: not these)."""

_FLOAT_DIGITS = 15
"""DBL_DIG: every decimal of at most 15 significant digits survives a trip through float8."""
_DBL_MIN = 2.2250738585072014e-308
"""Smallest normal float8: below it (subnormal) fewer than 15 digits survive."""
_INT64 = (-(2**63), 2**63 - 1)
_BIG_EXPONENT = re.compile(r"[eE][+-]?0*[1-9][0-9]{3,}$")
"""An exponent of 1000 or more, which numeric refuses before PostgreSQL 15."""
_MAX_NUMERIC_DIGITS = 15_000
"""Longest number text sent to numeric, as CSV inference allows (its scale stops at 16383)."""

_TEMPORAL_START = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_DATE_CHARS = 10


class NumericTextType(pa.ExtensionType):  # type: ignore[misc]
    """Numbers as their text, for a ``numeric`` column: values no float8 or int64 holds."""

    def __init__(self) -> None:
        """The type (string storage)."""
        super().__init__(pa.string(), NUMERIC_TEXT_EXTENSION)

    def __hash__(self) -> int:
        """Hashable, as Arrow's own types are (type maps look them up)."""
        return hash(NUMERIC_TEXT_EXTENSION)

    def __arrow_ext_serialize__(self) -> bytes:
        """No parameters."""
        return b""

    @classmethod
    def __arrow_ext_deserialize__(
        cls, storage_type: pa.DataType, serialized: bytes
    ) -> NumericTextType:
        """The type again."""
        return cls()


class NdjsonSource:
    """A JSON-lines file opened for reading (see :class:`pgingest.sources.Source`)."""

    def __init__(self, info: SourceInfo, *, skip_bad_rows: bool = False) -> None:
        """Parse the file.

        Args:
            info: the detected file.
            skip_bad_rows: ``--on-error skip``: a bad line is left out and kept as a reject
                of its chunk (see :meth:`chunks`) instead of failing the file.

        Raises:
            SourceError: the file cannot be read, or a line is not a JSON object.
            RowError: a string holds what PostgreSQL cannot store (a lone surrogate, NUL).
        """
        self.info = info
        self.warnings: list[str] = []
        path = info.path
        stream = open_stream(path, info.compression)
        try:
            data = stream.read()
        except read_errors() as exc:
            raise SourceError(f"{path}: cannot read: {one_line(exc)}", path=path) from exc
        finally:
            stream.close()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        self._index = LineIndex(data)
        self._lines: np.ndarray | None = None
        """The file line of each row; ``None``: row ``i`` is line ``i + 1``."""
        self._rejects: list[Reject] = []
        arr = np.frombuffer(data, np.uint8)
        breaks = np.flatnonzero(arr == 0x0A)
        table = None
        if objects_only(arr, breaks) and not may_nest_deep(data, breaks):
            table = _read_exact_with_arrow(data)
        if table is not None and not lines_are_rows(data, breaks, table.num_rows):
            lines = self._index.lines()  # blank lines among the rows
            if len(lines) != table.num_rows:
                table = None  # pyarrow's blank lines are not ours: read line by line
            else:
                self._lines = lines
        if table is None:
            read = _read_with_python(self._index, path, skip_bad_rows)
            table, self._rejects = read.table, read.rejects
            self._index = LineIndex(data, read.starts, read.ends, read.lines)
            self._lines = read.lines
        self._table = table.combine_chunks()

    def __enter__(self) -> NdjsonSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the parsed data."""
        self._table = pa.table({})

    def column_names(self) -> list[str]:
        """The keys, in order of first appearance."""
        return list(self._table.schema.names)

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """The first ``max_rows`` records, typed (bad lines are never among them)."""
        return self._table.slice(0, max_rows)

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """The records as :class:`ArrowChunk` batches; ``first_line`` is the file line of the
        first row, ``lines`` each row's (when blank or bad lines are among them), ``records``
        each row's line as the file has it; the bad lines left out (``skip_bad_rows``) are
        the ``rejects`` of the chunk whose rows end after them (the last one: of the last
        chunk; a file of bad lines only: of one empty chunk)."""
        total = self._table.num_rows
        per_row = max(1, self._table.nbytes // max(total, 1))
        step = max(1, min(batch_rows, batch_bytes // per_row))
        rejects = self._rejects
        taken = 0
        for start in range(0, total, step):
            for batch in self._table.slice(start, step).to_batches():
                if not batch.num_rows:
                    continue
                lines = None
                if self._lines is not None:
                    lines = self._lines[start : start + batch.num_rows]
                first = start + 1 if lines is None else int(lines[0])
                last = first + batch.num_rows - 1 if lines is None else int(lines[-1])
                mine = taken
                end_of_file = start + batch.num_rows >= total
                while mine < len(rejects) and (end_of_file or rejects[mine].line < last):
                    mine += 1
                records = LineRecords(self._index, np.arange(start, start + batch.num_rows))
                yield ArrowChunk(batch, first, tuple(rejects[taken:mine]), lines, records)
                taken = mine
                start += batch.num_rows
        if taken < len(rejects):  # no row at all: the bad lines alone
            empty = pa.RecordBatch.from_pydict({})
            yield ArrowChunk(empty, rejects[taken].line, tuple(rejects[taken:]))


def _read_exact_with_arrow(data: bytes) -> pa.Table | None:
    """The file as pyarrow reads it, when every column is of a type it reads exactly (and
    every string is valid UTF-8 without NUL); ``None`` otherwise."""
    try:
        table = pajson.read_json(
            io.BytesIO(data),
            read_options=pajson.ReadOptions(
                block_size=max(1 << 20, min(len(data) + 1, _MAX_BLOCK))
            ),
        )
    except pa.ArrowInvalid:
        return None  # types mixed, a key twice in an object, a lone surrogate, bad JSON ...
    if any(t not in _EXACT_ARROW_TYPES for t in table.schema.types):
        return None
    columns = []
    for column in table.columns:
        if column.type == pa.string():
            try:
                column.validate(full=True)  # pyarrow does not check the UTF-8 of strings
            except pa.ArrowInvalid:
                return None
            if pc.any(pc.match_substring(column, "\x00")).as_py():
                return None
            column = _typed_strings(column.combine_chunks())
        columns.append(column)
    return pa.table(columns, names=table.schema.names)


@dataclass(frozen=True, slots=True)
class _Read:
    table: pa.Table
    lines: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    rejects: list[Reject]


_DEPTH_REASON = "nested deeper than Python's json module reads"


def _read_with_python(index: LineIndex, path: str, skip: bool) -> _Read:
    """Parse every line with Python's json module, floats as exact decimals; with ``skip``
    each bad line becomes a reject instead of failing the file."""
    data = index.data
    decoder = json.JSONDecoder(parse_float=Decimal, parse_constant=_refuse_constant)
    records: list[dict[str, Any]] = []
    kept: list[int] = []
    rejects: list[Reject] = []
    starts, ends = index.all_lines()
    for position, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        line = data[start:end]
        if not line.strip():
            continue
        number = position + 1
        reason = None
        try:
            value = decoder.decode(line.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError too
            reason = f"not valid JSON: {one_line(exc)}"
        except RecursionError:
            reason = _DEPTH_REASON
        else:
            if not isinstance(value, dict):
                reason = "not a JSON object"
        if reason is not None:
            if not skip:
                raise SourceError(f"{path}: line {number}: {reason}", path=path)
            rejects.append(_line_reject(line, number, None, reason))
            continue
        records.append(value)
        kept.append(position)
    while True:
        try:
            table = _table_of(records, kept, path)
            break
        except _BadLinesError as exc:
            if not skip:
                raise exc.error from None
            bad = set(exc.rows)
            for row in sorted(bad):
                position = kept[row]
                line = data[int(starts[position]) : int(ends[position])]
                rejects.append(_line_reject(line, position + 1, exc.column, exc.reason))
            records = [r for i, r in enumerate(records) if i not in bad]
            kept = [p for i, p in enumerate(kept) if i not in bad]
    rejects.sort(key=lambda r: r.line)
    rows = np.array(kept, np.int64)
    return _Read(table, rows + 1, starts[rows], ends[rows], rejects)


def _line_reject(line: bytes, number: int, column: str | None, reason: str) -> Reject:
    """A bad line's reject: its text, and its bytes when the text cannot hold them (bytes not
    UTF-8, a NUL byte)."""
    try:
        text = line.decode("utf-8")
        exact = "\x00" not in text
    except UnicodeDecodeError:
        text, exact = line.decode("utf-8", errors="backslashreplace"), False
    text = text.replace("\x00", "\\x00")
    return Reject(number, column, text, reason, None if exact else bytes(line))


class _BadLinesError(Exception):
    """Rows (positions among the records) holding a value of ``column`` (``None``: a key)
    that PostgreSQL cannot store; ``error`` is the file's failure without skip."""

    def __init__(self, rows: list[int], column: str | None, reason: str, error: RowError) -> None:
        super().__init__(reason)
        self.rows = rows
        self.column = column
        self.reason = reason
        self.error = error


def _table_of(records: list[dict[str, Any]], kept: list[int], path: str) -> pa.Table:
    """The records as typed columns.

    Raises:
        _BadLinesError: values or keys PostgreSQL cannot store, naming every row of the first
            column found holding one.
    """
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    # A key names a column (normalized: a NUL becomes "_"), and is kept as written in the
    # table's bookkeeping, where a lone surrogate cannot go.
    unwritable = [k for k in keys if not _is_storable(k.replace("\x00", ""))]
    if unwritable:
        bad = unwritable[0]
        rows = [i for i, r in enumerate(records) if bad in r]
        number = kept[rows[0]] + 1
        flaw = _flaw(bad.replace(chr(0), ""))
        raise _BadLinesError(
            rows,
            None,
            f"key {bad!r} holds {flaw}, which PostgreSQL cannot store",
            RowError(
                f"{path}: line {number}: key {bad!r} holds {flaw}, which PostgreSQL cannot store",
                path=path,
                line=number,
            ),
        )
    arrays = []
    for key in keys:
        values = [r.get(key) for r in records]
        try:
            arrays.append(_column(values))
        except _BadStringError as exc:
            number = kept[exc.row] + 1
            rows = [i for i, v in enumerate(values) if _what_is_bad(v) is not None]
            reason = exc.what
            if reason != _DEPTH_REASON:
                reason += ", which PostgreSQL cannot store"
            raise _BadLinesError(
                rows or [exc.row],
                key,
                reason,
                RowError(
                    f"{path}: line {number}, column {key}: {reason}",
                    path=path,
                    line=number,
                    column=key,
                ),
            ) from None
    return pa.table(arrays, names=list(keys))


def _what_is_bad(value: Any) -> str | None:
    """What makes a parsed value unstorable (a lone surrogate or NUL in a string, also in a
    nested value, or nesting too deep to write again); ``None``: nothing."""
    if value is None or isinstance(value, bool | int | Decimal):
        return None
    if isinstance(value, str):
        return None if _is_storable(value) else _flaw(value)
    try:
        _json_text(value).encode("utf-8")
    except _NulError:
        return _flaw("\x00")
    except UnicodeEncodeError:
        return _flaw("\ud800")
    except RecursionError:
        return _DEPTH_REASON
    return None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class _NulError(Exception):
    """A string inside a nested value holds NUL."""


class _BadStringError(Exception):
    """A string in row ``row`` of a column holds ``what``."""

    def __init__(self, row: int, what: str) -> None:
        super().__init__(what)
        self.row = row
        self.what = what


def _column(values: list[Any]) -> pa.Array:
    """One key's values (Python's json types, floats as Decimal) as an Arrow column."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values))
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds <= {int, Decimal}:
        return _numbers(values)
    if kinds == {str}:
        return _typed_strings(_strings(values))
    text: list[str | None] = []
    for row, value in enumerate(values):
        try:
            text.append(
                None if value is None else value if isinstance(value, str) else _json_text(value)
            )
        except _NulError:
            raise _BadStringError(row, _flaw("\x00")) from None
        except RecursionError:
            raise _BadStringError(row, _DEPTH_REASON) from None
    if kinds <= {dict, list}:
        return pa.ExtensionArray.from_storage(pa.json_(), _strings(text))
    return _strings(text)  # JSON types mixed: text, nested values as their JSON


def _numbers(values: list[int | Decimal | None]) -> pa.Array:
    """bigint, double precision or numeric text: the narrowest that keeps every value."""
    numbers = [v for v in values if v is not None]
    if all(isinstance(v, int) and _INT64[0] <= v <= _INT64[1] for v in numbers):
        return pa.array(values, pa.int64())
    if all(_survives_float(v) for v in numbers) and not all(isinstance(v, int) for v in numbers):
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    text = [None if v is None else str(v) for v in values]
    if not all(_fits_numeric(t) for t in text if t is not None):
        return _strings(text)  # numeric refuses it: text, as CSV inference does
    return pa.ExtensionArray.from_storage(NumericTextType(), pa.array(text, pa.string()))


def _survives_float(value: int | Decimal) -> bool:
    """Whether the float8 nearest ``value`` reads back as the same number."""
    number = Decimal(value) if isinstance(value, int) else value
    digits = number.as_tuple().digits
    if len(digits) > _FLOAT_DIGITS:  # trailing zeros too: they state a precision
        return False
    if not number:
        return True
    approx = float(number)
    return abs(approx) >= _DBL_MIN and approx != float("inf") and approx != float("-inf")


def _fits_numeric(text: str) -> bool:
    """Whether numeric reads this number text, by CSV inference's rule: at most 15,000
    characters, an exponent below 1000 (older PostgreSQL refuses more)."""
    return len(text) <= _MAX_NUMERIC_DIGITS and not _BIG_EXPONENT.search(text)


def _json_text(value: Any) -> str:
    """The JSON text of a parsed value, every number with the digits the file wrote, spaced
    as ``json.dumps`` and PostgreSQL's jsonb output space it."""
    try:
        text = _PLAIN_ENCODER.encode(value)  # C speed, for a value without a Decimal
    except _HasDecimalError:
        return _json_text_by_parts(value)
    if "\\u0000" in text:
        return _json_text_by_parts(value)  # raises on a NUL (not on the text "\\u0000")
    return text


def _json_text_by_parts(value: Any) -> str:
    if isinstance(value, dict):
        items = (f"{_json_text_by_parts(k)}: {_json_text_by_parts(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_json_text_by_parts(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, str) and "\x00" in value:
        raise _NulError  # the encoder writes \u0000, which jsonb refuses
    return _PLAIN_ENCODER.encode(value)


class _HasDecimalError(Exception):
    """The value holds a Decimal, which the json module cannot write as it was read."""


def _refuse_decimal(value: Any) -> Any:
    raise _HasDecimalError


_PLAIN_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_refuse_decimal)


def _strings(values: list[str | None]) -> pa.Array:
    """A string column; a lone surrogate or a NUL, which PostgreSQL text (and jsonb) refuse,
    raises :class:`_BadStringError` naming its row."""
    try:
        array = pa.array(values, pa.string())
    except UnicodeEncodeError:
        row = next(i for i, v in enumerate(values) if v is not None and not _is_storable(v))
        raise _BadStringError(row, _flaw(values[row] or "")) from None
    found = pc.match_substring(array, "\x00")
    if pc.any(found).as_py():
        raise _BadStringError(pc.index(found, True).as_py(), _flaw("\x00"))
    return array


def _is_storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _flaw(text: str) -> str:
    """What makes ``text`` unstorable, in words."""
    if "\x00" in text:
        return "a NUL character (\\u0000)"
    return "a lone surrogate (\\ud800-\\udfff)"


def _typed_strings(array: pa.Array) -> pa.Array:
    """Strings that are all ISO dates, timestamps, or timestamps with a UTC offset as that
    type (``timestamptz`` as UTC); any other column as it is."""
    values = array.drop_null()
    if not len(values) or not pc.all(pc.match_substring_regex(values, _TEMPORAL_START)).as_py():
        return array
    target: pa.DataType
    # The coarsest unit that holds every fraction: --text writes every digit of the unit.
    unit = "s"
    if pc.any(pc.match_substring(values, ".")).as_py():
        unit = "us" if pc.any(pc.match_substring_regex(values, r"\.[0-9]{4}")).as_py() else "ms"
    if pc.all(pc.match_substring_regex(values, LOCAL_TEMPORAL)).as_py():
        lengths = pc.min_max(pc.utf8_length(values))
        dates_only = lengths["max"].as_py() == _DATE_CHARS
        target = pa.date32() if dates_only else pa.timestamp(unit)
    elif pc.all(pc.match_substring_regex(values, ZONED_TIMESTAMP)).as_py():
        target = pa.timestamp(unit, tz="UTC")
    else:
        return array  # local and zoned times mixed, or not all temporal: text, as in CSV
    try:
        return array.cast(target)
    except pa.ArrowInvalid:
        return array  # a day the calendar does not have (2026-02-30): text

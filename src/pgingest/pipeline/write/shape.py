"""Shape Arrow batches for the writer: normalize types, JSON-encode nested values, align with the
target table's column types, or fall back to CSV text when binary COPY cannot carry a column."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pgingest.errors import RowError
from pgingest.pipeline.write.pgtext import NestedValueError, json_text, pg_text
from pgingest.schema.evolution import canonical_type
from pgingest.schema.pgtypes import is_json_type, is_list_type, normalize_arrow_type
from pgingest.sources.celltext import to_text

if TYPE_CHECKING:
    import pyarrow as pa


@cache
def _arrow_for_pg() -> dict[str, pa.DataType]:
    """PostgreSQL types (in schema.evolution's canonical spelling) whose binary COPY form pgpq
    produces from the given Arrow type (made on first use: a raw CSV load needs no pyarrow)."""
    import pyarrow as pa

    return {
        "boolean": pa.bool_(),
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "real": pa.float32(),
        "double precision": pa.float64(),
        "text": pa.string(),
        "varchar": pa.string(),
        "bytea": pa.binary(),
        "date": pa.date32(),
        "time": pa.time64("us"),
        "timestamp": pa.timestamp("us"),
        "timestamptz": pa.timestamp("us", tz="UTC"),
        "interval": pa.duration("us"),
        "jsonb": pa.string(),
    }


def arrow_type_for_pg(pg_type: str) -> pa.DataType | None:
    """The Arrow type that binary COPY needs for a column of ``pg_type``; ``None`` if unknown."""
    import pyarrow as pa

    t = canonical_type(pg_type)
    if t.endswith("[]"):
        element = arrow_type_for_pg(t[:-2])
        return None if element is None else pa.list_(element)
    if t in _arrow_for_pg():
        return _arrow_for_pg()[t]
    if t.startswith(("character varying", "character(")):
        return None  # length checks belong to the server: send text through CSV
    if t.startswith("numeric(") and t.endswith(")"):
        precision, _, scale = t[len("numeric(") : -1].partition(",")
        try:
            p, s = int(precision), int(scale or 0)
        except ValueError:
            return None
        # pgpq encodes decimal128 only: wider numbers go as text, the server parses them.
        return pa.decimal128(p, s) if p <= 38 else None
    return None


@dataclass(frozen=True, slots=True)
class Shaped:
    """A batch ready for the writer: binary-encodable Arrow, or CSV text for the server to cast."""

    batch: pa.RecordBatch | None
    csv: bytes | None
    json_columns: tuple[str, ...] = ()


def normalize_batch(
    batch: pa.RecordBatch,
    names: Sequence[str],
    path: str,
    target_types: Sequence[str] | None = None,
    first_line: int = 1,
    *,
    workbook: bool = False,
    warn: Callable[[str], None] | None = None,
) -> Shaped:
    """Rename to ``names`` and convert every column to a type the binary encoder can send.

    A column bound for a text column (``target_types``: ``--text``, ``--types c=text``, a
    table's text column) becomes the text of its values first, whatever the reader typed it
    as (:func:`~pgingest.sources.celltext.to_text`; ``workbook``: as a spreadsheet shows
    them), so nanoseconds are kept there. Elsewhere, values with nanoseconds are cut to
    microseconds (PostgreSQL's precision), ``warn`` told once per column.

    Raises:
        RowError: a timestamp or date outside PostgreSQL's range (naming the row; the
            batch's first row is ``first_line``), a value that cannot be converted, or a
            nested value JSON cannot hold (a struct naming a field twice, a map holding a key
            twice).
    """
    import pyarrow as pa

    arrays: list[pa.Array] = []
    json_cols: list[str] = []
    targets = list(target_types) if target_types is not None else [None] * len(names)
    for name, column, pg_type in zip(names, batch.columns, targets, strict=True):
        check_field_size(column, name, path, first_line)
        if is_json_type(column.type):
            try:
                arrays.append(json_text(column))
            except NestedValueError as exc:
                line = None if exc.row is None else first_line + exc.row
                where = "" if line is None else f"line {line}, "
                raise RowError(
                    f"{path}: {where}column {name}: {exc}: JSON cannot hold it",
                    path=path,
                    line=line,
                    column=name,
                ) from None
            json_cols.append(name)
            continue
        if pg_type is not None and _is_text(pg_type) and not _is_string(column.type):
            arrays.append(to_text(column, workbook=workbook))
            continue
        target = normalize_arrow_type(column.type)
        if _is_temporal(column.type):
            check_range(column, name, path, first_line)
        if target != column.type:
            try:
                column = column.cast(target, safe=True)
            except pa.ArrowInvalid as exc:
                if not _is_nanoseconds(column.type):
                    raise RowError(
                        f"{path}: column {name}: cannot convert {column.type} to {target}: {exc}",
                        path=path,
                        column=name,
                    ) from exc
                original = column.type
                column = truncate_to_micros(column, target)
                if warn is not None:
                    warn(
                        f"column {name}: {original} values with nanoseconds cut to"
                        " microseconds (PostgreSQL's precision; --types"
                        f" {name}=text keeps every digit)"
                    )
            except pa.ArrowNotImplementedError as exc:
                raise RowError(
                    f"{path}: column {name}: cannot convert {column.type} to {target}: {exc}",
                    path=path,
                    column=name,
                ) from exc
        arrays.append(column)
    return Shaped(pa.RecordBatch.from_arrays(arrays, names=list(names)), None, tuple(json_cols))


def _is_text(pg_type: str) -> bool:
    t = canonical_type(pg_type)
    return t in ("text", "varchar") or t.startswith(("character varying", "character("))


def _is_string(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))


def _is_nanoseconds(t: pa.DataType) -> bool:
    """Timestamps, times or durations in nanoseconds, or a list of them."""
    import pyarrow as pa

    if is_list_type(t):
        return _is_nanoseconds(t.value_type)
    return bool(
        (pa.types.is_timestamp(t) or pa.types.is_time(t) or pa.types.is_duration(t))
        and t.unit == "ns"
    )


def truncate_to_micros(column: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array:
    """Nanoseconds cut down to microseconds, towards the past (``23:59:59.999999999`` is
    ``23:59:59.999999`` on the same day, also before 1970), as ``target`` (a list's values,
    for a list: ``target`` is then a list type)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if is_list_type(column.type):
        # (as a plain list of the same values first: fixed-size lists and views have no
        # offsets to rebuild it from)
        lists = column.cast(pa.list_(column.type.value_field))
        offsets = lists.offsets.to_numpy()  # (of a slice: into its parent's values)
        first, last = int(offsets[0]), int(offsets[-1])
        values = truncate_to_micros(lists.values.slice(first, last - first), target.value_type)
        rebuilt: pa.Array = pa.ListArray.from_arrays(
            pa.array(offsets - first, pa.int32()), values, type=target, mask=lists.is_null()
        )
        return rebuilt
    nanos = column.cast(pa.int64())
    micros = pc.divide(nanos, 1000)  # towards zero
    below = pc.less(nanos, pc.multiply(micros, 1000))
    micros = pc.if_else(below, pc.subtract(micros, 1), micros)
    out: pa.Array = micros.cast(target)
    return out


_UNIX_EPOCH_JULIAN_DAY = 2_440_588
"""1970-01-01 as a Julian day number (PostgreSQL's UNIX_EPOCH_JDATE)."""
_PG_MIN_DAYS = 0 - _UNIX_EPOCH_JULIAN_DAY
"""Julian day 0 (4714-11-24 BC in the proleptic Gregorian calendar PostgreSQL uses, 4713-01-01
BC in the Julian one), PostgreSQL's first date and timestamp, in days since 1970-01-01."""
_PG_MAX_DATE_DAYS = 2_147_483_494 - 1 - _UNIX_EPOCH_JULIAN_DAY
"""5874897-12-31, PostgreSQL's last date, in days since 1970-01-01: the day before its
DATE_END_JULIAN (2147483494, 5874898-01-01), which is the first day out of range."""
_MAX_MICROS = 2**63 - 1
"""Microseconds since 1970 that binary COPY can carry (an int64: up to year 294247;
PostgreSQL's own limit, 294276, is a little further)."""
_UNIT_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def check_range(column: pa.Array | pa.ChunkedArray, name: str, path: str, first_line: int) -> None:
    """Refuse a timestamp or date outside what a PostgreSQL column holds, naming its row (a
    list's row for a list of them).

    Raises:
        RowError: the first such value.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column
    lists: pa.Array | None = None
    if is_list_type(column.type):
        lists = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        values = lists.flatten()
    index = _first_outside(values)
    if index is None:
        return
    row = index
    if lists is not None:  # the list holding the value
        ends = np.cumsum(pc.fill_null(pc.list_value_length(lists), 0).to_numpy())
        row = int(np.searchsorted(ends, index, side="right"))
    what, span = (
        ("date", "4713 BC to 5874897 AD")
        if pa.types.is_date(values.type)
        else ("timestamp", "4713 BC to 294247 AD")
    )
    shown = _show(values[index])
    line = first_line + row
    raise RowError(
        f"{path}: line {line}, column {name}: {what} {shown} is outside PostgreSQL's range"
        f" ({span})",
        path=path,
        line=line,
        column=name,
        value=shown,
    )


def _first_outside(column: pa.Array | pa.ChunkedArray) -> int | None:
    """The index of the first timestamp or date outside PostgreSQL's range, or ``None``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if column.null_count == len(column):
        return None
    values = column.cast(pa.int32() if pa.types.is_date32(t) else pa.int64())
    high: int | None
    if pa.types.is_date(t):
        per_day = 86_400_000 if pa.types.is_date64(t) else 1
        low, high = _PG_MIN_DAYS * per_day, _PG_MAX_DATE_DAYS * per_day
    else:
        per_second = _UNIT_PER_SECOND[t.unit]
        low = _PG_MIN_DAYS * 86_400 * per_second
        # The last value whose microseconds fit an int64 (in microseconds or nanoseconds every
        # int64 value up there does): in milliseconds 9223372036854775, not ...854000.
        high = _MAX_MICROS // (1_000_000 // per_second) if per_second < 1_000_000 else None
    lo, hi = pc.min_max(values).values()
    if lo.as_py() >= low and (high is None or hi.as_py() <= high):
        return None
    outside = pc.less(values, low)
    if high is not None:
        outside = pc.or_(outside, pc.greater(values, high))
    index: int = pc.index(pc.fill_null(outside, False), True).as_py()
    return index


def _is_temporal(t: pa.DataType) -> bool:
    """Timestamps or dates, or a list of them: values PostgreSQL's range bounds."""
    import pyarrow as pa

    if is_list_type(t):
        return _is_temporal(t.value_type) and not is_list_type(t.value_type)
    return bool(pa.types.is_timestamp(t) or pa.types.is_date(t))


MAX_FIELD_BYTES = (1 << 30) - 5
"""Bytes of the largest value a PostgreSQL field holds: a varlena is at most 1 GB (2**30 - 1
bytes) with its 4-byte header. A larger value only fails at the server, after the client
built a COPY stream bigger still (a 1 GiB map key: 70 s, 6 GB of memory, the connection
closed, three retries). Tests lower it."""


def check_field_size(
    column: pa.Array | pa.ChunkedArray, name: str, path: str, first_line: int
) -> None:
    """Refuse a string or binary value longer than a PostgreSQL field holds
    (:data:`MAX_FIELD_BYTES`), at any depth of a nested column (a map's key, a list's
    element), naming its row. Free unless the column's buffers are that large: the lengths
    come from the Arrow offsets, only then.

    Raises:
        RowError: the first such value.
    """
    import pyarrow as pa

    limit = MAX_FIELD_BYTES
    if column.nbytes <= limit:  # (no value is longer than the buffers holding it)
        return
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    start = 0
    for chunk in chunks:
        found = _first_long_value(chunk, limit)
        if found is not None:
            row, size = found
            line = first_line + start + row
            raise RowError(
                f"{path}: line {line}, column {name}: a value of {size:,} bytes is larger than"
                f" a PostgreSQL field holds (1 GB)",
                path=path,
                line=line,
                column=name,
                value=f"({size:,} bytes)",
            )
        start += len(chunk)


def _first_long_value(array: pa.Array, limit: int) -> tuple[int, int] | None:
    """The first row of ``array`` holding a value longer than ``limit`` bytes (a nested
    array's row holding one at any depth), with that value's length; ``None`` if none."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if array.nbytes <= limit:
        return None
    if isinstance(array, pa.ExtensionArray):
        return _first_long_value(array.storage, limit)
    if pa.types.is_dictionary(t):
        if not _is_bytes(t.value_type):
            return _first_long_value(array.dictionary_decode(), limit)
        lengths = pc.binary_length(array.dictionary)
        long = pc.take(pc.greater(lengths, limit), array.indices)
        row = pc.index(pc.fill_null(long, False), True).as_py()
        return (row, int(lengths[array.indices[row].as_py()].as_py())) if row >= 0 else None
    if _is_bytes(t):
        lengths = pc.binary_length(array)
        row = pc.index(pc.fill_null(pc.greater(lengths, limit), False), True).as_py()
        return (row, int(lengths[row].as_py())) if row >= 0 else None
    if pa.types.is_struct(t):
        found_rows = [_first_long_value(child, limit) for child in array.flatten()]
        return min((f for f in found_rows if f is not None), default=None)
    if pa.types.is_map(t):  # a list of key-value structs, which lists can flatten
        entries = pa.struct([t.key_field, t.item_field])
        return _first_long_value(array.view(pa.list_(pa.field("e", entries, False))), limit)
    if is_list_type(t):
        found = _first_long_value(array.flatten(), limit)
        if found is None:
            return None
        ends = np.cumsum(pc.fill_null(pc.list_value_length(array), 0).to_numpy())
        return int(np.searchsorted(ends, found[0], side="right")), found[1]
    return None


def _is_bytes(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_string_view(t)
        or pa.types.is_binary_view(t)
    )


def _show(value: pa.Scalar) -> str:
    """A date or timestamp as Python shows it, else its count since 1970 (out of Python's
    range too)."""
    import pyarrow as pa

    try:
        return str(value.as_py())
    except (ValueError, OverflowError, pa.ArrowException):
        count = value.cast(pa.int32() if pa.types.is_date32(value.type) else pa.int64())
        unit = _UNIT_NAMES[getattr(value.type, "unit", "day")]
        return f"{count.as_py()} {unit} since 1970-01-01"


_UNIT_NAMES = {
    "day": "days",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
}


def align_batch(shaped: Shaped, target_types: Sequence[str], path: str, first_line: int) -> Shaped:
    """Cast a normalized batch to the table's column types for binary COPY.

    When a column's table type has no binary mapping (``uuid``, ``varchar(n)``, ``numeric``
    without scale, a domain ...) or the Arrow value cannot be cast exactly, the whole batch goes
    as CSV text and the server casts it, so the table's own rules decide.
    """
    import pyarrow as pa

    if shaped.batch is None:  # already CSV: nothing to align
        return shaped
    batch = shaped.batch
    arrays: list[pa.Array] = []
    json_cols = set(shaped.json_columns)
    out_json: list[str] = []
    for name, column, pg_type in zip(batch.schema.names, batch.columns, target_types, strict=True):
        canonical = canonical_type(pg_type)
        if canonical in ("jsonb", "json"):
            if name not in json_cols and not pa.types.is_string(column.type):
                return Shaped(None, batch_to_csv(batch, target_types))
            if canonical == "json":
                return Shaped(None, batch_to_csv(batch, target_types))
            out_json.append(name)
            arrays.append(column)
            continue
        if name in json_cols:
            return Shaped(None, batch_to_csv(batch, target_types))
        if canonical == "numeric":
            # pgpq writes decimals and uint64 as numeric; integers widen to an exact decimal.
            if pa.types.is_decimal(column.type) or column.type == pa.uint64():
                arrays.append(column)
                continue
            if pa.types.is_integer(column.type):
                arrays.append(column.cast(pa.decimal128(20, 0)))
                continue
        target = arrow_type_for_pg(canonical)
        if target is None:
            return Shaped(None, batch_to_csv(batch, target_types))
        if canonical == "jsonb[]":
            out_json.append(name)  # (its elements declared jsonb, as the server checks)
        if column.type == target:
            arrays.append(column)
            continue
        if pa.types.is_list(column.type) != pa.types.is_list(target):
            return Shaped(None, batch_to_csv(batch, target_types))
        try:
            arrays.append(column.cast(target, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad = _first_bad_row(column, target)
            if bad is None:
                return Shaped(None, batch_to_csv(batch, target_types))
            row, value = bad
            raise RowError(
                f"{path}: line {first_line + row}, column {name}: value {value!r} does not fit "
                f"column type {pg_type}",
                path=path,
                line=first_line + row,
                column=name,
                value=value,
            ) from None
    return Shaped(
        pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), None, tuple(out_json)
    )


def _first_bad_row(column: pa.Array, target: pa.DataType) -> tuple[int, str] | None:
    """Find the first value that a safe cast refuses (only runs on the failure path)."""
    import pyarrow as pa

    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return None
    if not (pa.types.is_integer(target) or pa.types.is_decimal(target)):
        return None
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pa.array([value], column.type).cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index, str(value)
    return None


def batch_to_csv(batch: pa.RecordBatch, target_types: Sequence[str] | None = None) -> bytes:
    """CSV text of ``batch`` for ``COPY ... (FORMAT csv)``: NULL unquoted-empty, values quoted.

    Every value is written as the text its column's type reads back exactly
    (:func:`~pgingest.pipeline.write.pgtext.pg_text`; ``target_types``: the table's column
    types, when known): lists as array literals (JSON for a ``jsonb`` column), structs and
    maps as JSON, bytes as hex, timestamps with a time zone in UTC.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    targets = list(target_types) if target_types is not None else [None] * batch.num_columns
    arrays = [
        pg_text(column, None if pg_type is None else canonical_type(pg_type))
        for column, pg_type in zip(batch.columns, targets, strict=True)
    ]
    table = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(
        table, sink, pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
    )
    data: bytes = sink.getvalue().to_pybytes()
    return data

"""The text of Arrow values that PostgreSQL reads back as exactly those values: what a batch
holds when it goes as CSV (binary COPY cannot carry one of its columns), and the JSON of
nested values (structs, maps, lists of them) bound for ``jsonb``.

Dates and timestamps are written by Arrow (every digit of the unit), years before 1 AD as
PostgreSQL writes them (``0044-03-15 BC``), a time zone's instant in UTC with ``+00`` (the
zone's own offset may be a historical one in seconds, which an ISO offset cannot write);
durations as ``[-]H:MM:SS[.f]``; bytes as ``\\x`` and hex; a uuid in its canonical form;
a list as an array literal (``{"1","2",NULL}``).
"""

from __future__ import annotations

import json
import math
import uuid
from typing import TYPE_CHECKING, Any

from pgingest.schema.pgtypes import is_list_type
from pgingest.sources.celltext import duration_text, to_text

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["NestedValueError", "json_text", "pg_text"]


class NestedValueError(ValueError):
    """A nested value that JSON cannot hold exactly (a struct naming a field twice, a map
    holding a key twice); ``row``: the value's row, when one row holds it."""

    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row


_CYCLE_DAYS = 146_097
"""Days in 400 Gregorian years: moving a date by this keeps its month and day."""
_FIRST_AD_DAY = -719_162
"""0001-01-01 in days since 1970-01-01: earlier dates are BC."""
_LAST_DAY = 2_932_897
"""10000-01-01 in days since 1970-01-01: Arrow writes years up to 32767 only."""
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UNITS_PER_DAY = {
    "day": 1,
    "ms-day": 86_400_000,
    "s": 86_400,
    "ms": 86_400_000,
    "us": 86_400_000_000,
    "ns": 86_400_000_000_000,
}


def pg_text(array: pa.Array | pa.ChunkedArray, pg_type: str | None = None) -> pa.Array:
    """Return ``array``'s values as the text PostgreSQL's input functions read back exactly.

    Args:
        array: a column of any Arrow type.
        pg_type: the type of the column it goes to, when known: a ``uuid`` column takes
            16-byte binary values as uuids, a ``json``/``jsonb`` column takes lists as JSON.

    Returns:
        A ``string`` array of the same length (NULL stays NULL).

    Raises:
        NestedValueError: a nested value that JSON cannot hold exactly.
    """
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    target = (pg_type or "").lower()
    if pa.types.is_dictionary(t):
        return pg_text(array.dictionary_decode(), pg_type)
    if isinstance(t, pa.UuidType):
        return _uuid_text(array.storage) if target != "bytea" else _bytea_text(array.storage)
    if isinstance(t, pa.BaseExtensionType):
        return pg_text(array.storage, pg_type)
    if is_list_type(t):
        if _is_json_target(target) or _is_nested(t.value_type):
            return json_text(array)
        return _array_literal(array, target[:-2] if target.endswith("[]") else None)
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return json_text(array)
    if _is_binary(t):
        return _uuid_text(array) if target == "uuid" else _bytea_text(array)
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return _datetime_text(array)
    if pa.types.is_time(t):
        out: pa.Array = array.cast(pa.string())
        return out
    if pa.types.is_duration(t):
        return duration_text(array)
    if pa.types.is_interval(t):
        return _interval_text(array)
    if pa.types.is_boolean(t) or pa.types.is_null(t):
        return to_text(array)
    return array.cast(pa.string())


def _is_nested(t: pa.DataType) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return _is_nested(t.value_type)
    return bool(is_list_type(t) or pa.types.is_struct(t) or pa.types.is_map(t))


def _is_json_target(target: str) -> bool:
    return target in ("json", "jsonb")


def _is_binary(t: pa.DataType) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_binary_view(t)
        or pa.types.is_fixed_size_binary(t)
    )


def _bytea_text(array: pa.Array) -> pa.Array:
    """bytea's hex form, ``\\x`` and two digits a byte (a NUL byte is text like any other)."""
    import pyarrow as pa

    if pa.types.is_fixed_size_binary(array.type):
        return _fixed_hex(array, prefix=b"\\x")
    # Variable-width binary is rare in the text route: a Python pass.
    return pa.array(
        [None if v is None else "\\x" + v.hex() for v in array.to_pylist()], pa.string()
    )


def _uuid_text(array: pa.Array) -> pa.Array:
    """A uuid's canonical text; a value not 16 bytes long is written as hex, which the
    server refuses naming its row."""
    import pyarrow as pa

    if array.type == pa.binary(16):
        return _fixed_hex(array, dashes=(8, 12, 16, 20))
    out: list[str | None] = []
    for v in array.to_pylist():
        if v is None:
            out.append(None)
        else:
            out.append(str(uuid.UUID(bytes=v)) if len(v) == 16 else v.hex())
    return pa.array(out, pa.string())


def _fixed_hex(array: pa.Array, prefix: bytes = b"", dashes: tuple[int, ...] = ()) -> pa.Array:
    """Fixed-size binary values as lower-case hex after ``prefix``, a ``-`` before each hex
    digit position in ``dashes``: vectorized, as every uuid column of a file goes as text."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    rows, width = len(array), array.type.byte_width
    data = array.buffers()[1]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    start = array.offset * width
    if raw.size < start + rows * width:  # (an all-null array may have no data)
        raw = np.zeros(start + rows * width, np.uint8)
    values = raw[start : start + rows * width].reshape(rows, width)
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    hexed = np.empty((rows, 2 * width), np.uint8)
    hexed[:, 0::2] = digits[values >> 4]
    hexed[:, 1::2] = digits[values & 15]
    pieces = [np.full((rows, len(prefix)), list(prefix), np.uint8)] if prefix else []
    at = 0
    for dash in dashes:
        pieces += [hexed[:, at:dash], np.full((rows, 1), ord("-"), np.uint8)]
        at = dash
    pieces.append(hexed[:, at:])
    text = np.ascontiguousarray(np.concatenate(pieces, axis=1))
    size = text.shape[1]
    offsets = np.arange(0, (rows + 1) * size, size, dtype=np.int32)
    out = pa.StringArray.from_buffers(rows, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))
    result: pa.Array = pc.if_else(array.is_null(), pa.scalar(None, pa.string()), out)
    return result


def _datetime_text(array: pa.Array) -> pa.Array:
    """Dates and timestamps as ISO text with every digit of the unit; BC years as
    PostgreSQL writes them; a time zone's instant in UTC with ``+00``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = array.type
    if pa.types.is_timestamp(t):
        plain = pa.timestamp(t.unit)
        suffix = "+00" if t.tz is not None else ""
        unit = t.unit
        storage = pa.int64()
    else:
        plain, suffix = t, ""
        unit = "ms-day" if pa.types.is_date64(t) else "day"
        storage = pa.int64() if pa.types.is_date64(t) else pa.int32()
    values = array.cast(storage).cast(pa.int64())

    def render(ints: pa.Array) -> pa.Array:
        text: pa.Array = ints.cast(storage).cast(plain).cast(pa.string())
        if pa.types.is_date64(t):
            text = pc.utf8_slice_codeunits(text, 0, 10)  # whole days (checked before)
        if suffix:
            text = pc.binary_join_element_wise(text, suffix, "")
        return text

    text = render(values)
    # Arrow writes years 1 to 9999 as PostgreSQL reads them (it writes year 0 for 1 BC and
    # cannot write years past 32767): the others are moved by 400-year cycles into that span,
    # written, and given their own year back.
    per_day = _UNITS_PER_DAY[unit]
    low, high = _FIRST_AD_DAY * per_day, _LAST_DAY * per_day
    outside = pc.less(values, max(low, _INT64_MIN))
    if high <= _INT64_MAX:
        outside = pc.or_(outside, pc.greater_equal(values, high))
    outside = pc.fill_null(outside, False)
    if not pc.any(outside).as_py():
        return text
    cells = text.to_pylist()
    cycle = _CYCLE_DAYS * per_day
    for i in pc.indices_nonzero(outside).to_pylist():
        value = values[i].as_py()
        cycles = -((value - low) // cycle)  # into 0001-01-01 .. 0400-12-31
        moved = render(pa.array([value + cycles * cycle], pa.int64()))[0].as_py()
        written, rest = moved.split("-", 1)
        year = int(written) - 400 * cycles
        cells[i] = f"{year:04d}-{rest}" if year > 0 else f"{1 - year:04d}-{rest} BC"
    return pa.array(cells, pa.string())


def _interval_text(array: pa.Array) -> pa.Array:
    """A month-day-nano interval as ``M mons D days [-]H:MM:SS.f`` (every digit given)."""
    import pyarrow as pa

    out: list[str | None] = []
    for value in array.to_pylist():
        if value is None:
            out.append(None)
            continue
        time = duration_text(pa.array([value.nanoseconds], pa.duration("ns")))[0].as_py()
        out.append(f"{value.months} mons {value.days} days {time}")
    return pa.array(out, pa.string())


def _array_literal(array: pa.Array, element_type: str | None) -> pa.Array:
    """A list column as PostgreSQL array literals: every element quoted (``"`` and ``\\``
    escaped), NULL unquoted, ``{}`` for an empty list."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_list(array.type):
        array = array.cast(pa.list_(array.type.value_field))
    elements = pg_text(array.values, element_type)
    escaped = pc.replace_substring(pc.replace_substring(elements, "\\", "\\\\"), '"', '\\"')
    quoted = pc.fill_null(pc.binary_join_element_wise('"', escaped, '"', ""), "NULL")
    # (offsets of a slice, which from_arrays takes with no validity: nulls are set after)
    lists = pa.ListArray.from_arrays(array.offsets, quoted)
    joined = pc.binary_join_element_wise("{", pc.binary_join(lists, ","), "}", "")
    out: pa.Array = pc.if_else(array.is_null(), pa.scalar(None, pa.string()), joined)
    return out


def json_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Nested values as JSON text: a struct or map is an object, a list an array.

    Temporal values are strings of :func:`pg_text` (exact, any year, nanoseconds kept),
    decimals strings of their digits, bytes hex strings, uuids canonical strings; NaN and
    infinities the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"`` (JSON has no number
    for them). A map's key that is not a string is written as its JSON (``1``, ``{"k": 1}``).

    Raises:
        NestedValueError: a struct naming a field twice, a map holding a key twice.
    """
    import pyarrow as pa

    try:
        values = _json_values(array)
    except NestedValueError as exc:
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        raise NestedValueError(str(exc), _failing_row(array)) from None
    return pa.array(
        [None if v is None else json.dumps(v, ensure_ascii=False, allow_nan=False) for v in values],
        pa.string(),
    )


def _failing_row(array: pa.Array) -> int | None:
    """The first row whose value alone fails (``None``: the type itself fails, every row)."""
    rows = [array.slice(0, 0)] + [array.slice(row, 1) for row in range(len(array))]
    for row, value in enumerate(rows, start=-1):
        try:
            _json_values(value)
        except NestedValueError:
            return None if row < 0 else row
    return None


def _json_values(array: pa.Array | pa.ChunkedArray) -> list[Any]:
    """Python values that :func:`json.dumps` writes exactly, one per row (``None``: null).
    Nested values are rare and small next to scalar columns: a Python pass is accepted."""
    import pyarrow as pa

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if pa.types.is_dictionary(t):
        return _json_values(array.dictionary_decode())
    if isinstance(t, pa.UuidType):
        return list(_uuid_text(array.storage).to_pylist())
    if isinstance(t, pa.BaseExtensionType):
        return _json_values(array.storage)
    valid = array.is_valid().to_pylist()
    if pa.types.is_struct(t):
        names = [t.field(i).name for i in range(t.num_fields)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise NestedValueError(f"a struct names the field {twice[0]!r} twice")
        fields = [_json_values(child) for child in array.flatten()]
        rows = zip(*fields, strict=True) if fields else ([()] * len(array))
        return [
            dict(zip(names, row, strict=True)) if ok else None
            for ok, row in zip(valid, rows, strict=True)
        ]
    if pa.types.is_map(t):
        # (no kernel flattens a map: its entries are read through its own offsets)
        key_array, item_array = array.values.flatten()
        keys, items = _json_values(key_array), _json_values(item_array)
        offsets = array.offsets.to_pylist()
        return [
            _json_object(keys, items, start, end - start) if ok else None
            for ok, start, end in zip(valid, offsets, offsets[1:], strict=False)
        ]
    if is_list_type(t):
        values = _json_values(array.flatten())
        return [
            values[start : start + length] if ok else None
            for ok, start, length in zip(valid, *_spans(array), strict=True)
        ]
    if pa.types.is_floating(t):
        return [_json_float(v) for v in array.to_pylist()]
    if _is_binary(t):
        return [None if v is None else v.hex() for v in array.to_pylist()]
    if (
        pa.types.is_temporal(t)
        or pa.types.is_interval(t)
        or pa.types.is_decimal(t)
        or pa.types.is_string_view(t)
    ):
        return list(pg_text(array).to_pylist())
    return list(array.to_pylist())


def _spans(array: pa.Array) -> tuple[list[int], list[int]]:
    """Where each row's elements start in ``array.flatten()``, and how many there are."""
    import pyarrow.compute as pc

    lengths = pc.fill_null(pc.list_value_length(array), 0).to_pylist()
    starts, at = [], 0
    for length in lengths:
        starts.append(at)
        at += length
    return starts, lengths


def _json_object(keys: list[Any], items: list[Any], start: int, length: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in zip(keys[start : start + length], items[start : start + length], strict=True):
        name = key if isinstance(key, str) else json.dumps(key, ensure_ascii=False)
        if name in out:
            raise NestedValueError(f"a map holds the key {name!r} twice")
        out[name] = item
    return out


def _json_float(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"

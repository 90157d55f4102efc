"""Map Arrow types to PostgreSQL types, and say what an Arrow column must be cast to first.

A Parquet file keeps its schema: each Arrow type maps to the PostgreSQL type that holds every
value of it. :func:`normalize_arrow_type` then names the Arrow type the binary COPY encoder
(pgpq) can send for that PostgreSQL type.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Final, Literal

from pgingest.errors import TypeConflictError
from pgingest.model import NUMERIC_TEXT_EXTENSION

if TYPE_CHECKING:
    import pyarrow as pa

PgType = Literal[
    "boolean",
    "smallint",
    "integer",
    "bigint",
    "numeric",
    "real",
    "double precision",
    "date",
    "time",
    "timestamp",
    "timestamptz",
    "interval",
    "text",
    "bytea",
    "jsonb",
    "uuid",
]
"""Canonical spelling of the scalar PostgreSQL types pgingest creates. Arrays are written
``<element>[]`` (see :func:`array_of`) and decimals may carry ``numeric(p,s)``."""

BOOLEAN: Final = "boolean"
SMALLINT: Final = "smallint"
INTEGER: Final = "integer"
BIGINT: Final = "bigint"
NUMERIC: Final = "numeric"
REAL: Final = "real"
DOUBLE: Final = "double precision"
DATE: Final = "date"
TIME: Final = "time"
TIMESTAMP: Final = "timestamp"
TIMESTAMPTZ: Final = "timestamptz"
INTERVAL: Final = "interval"
TEXT: Final = "text"
BYTEA: Final = "bytea"
JSONB: Final = "jsonb"
UUID: Final = "uuid"

PG_TYPES: tuple[PgType, ...] = (
    BOOLEAN,
    SMALLINT,
    INTEGER,
    BIGINT,
    NUMERIC,
    REAL,
    DOUBLE,
    DATE,
    TIME,
    TIMESTAMP,
    TIMESTAMPTZ,
    INTERVAL,
    TEXT,
    BYTEA,
    JSONB,
    UUID,
)

_MAX_NUMERIC_PRECISION = 1000
"""PostgreSQL's NUMERIC_MAX_PRECISION: ``numeric(p,s)`` needs ``1 <= p <= 1000``."""

_MAX_DECIMAL128_PRECISION = 38


def array_of(element: str) -> str:
    """The array type of ``element``, e.g. ``integer[]``.

    Args:
        element: A scalar PostgreSQL type.

    Returns:
        ``element`` followed by ``[]`` (PostgreSQL arrays are multi-dimensional, so an array
        of an array type is the same type).
    """
    return element if element.endswith("[]") else f"{element}[]"


def is_list_type(t: pa.DataType) -> bool:
    """Tell whether ``t`` is a list of any kind (list, large, fixed-size, view)."""
    import pyarrow as pa

    return bool(
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
        or pa.types.is_list_view(t)
        or pa.types.is_large_list_view(t)
    )


def _list_element(t: pa.DataType) -> pa.DataType:
    element: pa.DataType = t.value_type
    return element


def is_json_type(t: pa.DataType) -> bool:
    """Tell whether values of ``t`` are stored as ``jsonb`` after the caller serializes them.

    True for structs, maps, lists (at any depth) of those, and lists of lists (a PostgreSQL
    array must be rectangular, Arrow's nested lists need not be); dictionaries are looked
    through. The Arrow JSON extension type is not included: its values already are JSON text
    (its PostgreSQL type is ``jsonb`` all the same).

    Args:
        t: An Arrow type.

    Returns:
        Whether the column must be converted to JSON text before it is sent.
    """
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        return is_json_type(t.value_type)
    if is_list_type(t):
        element = _list_element(t)
        return is_list_type(element) or is_json_type(element)
    return bool(pa.types.is_struct(t) or pa.types.is_map(t))


def _decimal_pg_type(t: pa.DataType) -> str:
    precision: int = t.precision
    scale: int = t.scale
    # Negative scales and scale > precision need PostgreSQL 15; plain numeric holds them all.
    if precision > _MAX_NUMERIC_PRECISION or not 0 <= scale <= precision:
        return NUMERIC
    return f"numeric({precision},{scale})"


@cache
def _scalar_types() -> dict[pa.DataType, str]:
    """Arrow types that map to one PostgreSQL type (built on first use: the type names above
    are imported by code that never touches pyarrow)."""
    import pyarrow as pa

    return {
        pa.bool_(): BOOLEAN,
        pa.int8(): SMALLINT,
        pa.int16(): SMALLINT,
        pa.uint8(): SMALLINT,
        pa.int32(): INTEGER,
        pa.uint16(): INTEGER,
        pa.int64(): BIGINT,
        pa.uint32(): BIGINT,
        pa.uint64(): NUMERIC,
        pa.float16(): REAL,
        pa.float32(): REAL,
        pa.float64(): DOUBLE,
        pa.date32(): DATE,
        pa.date64(): DATE,
        pa.string(): TEXT,
        pa.large_string(): TEXT,
        pa.string_view(): TEXT,
        pa.binary(): BYTEA,
        pa.large_binary(): BYTEA,
        pa.binary_view(): BYTEA,
        pa.null(): TEXT,
        pa.month_day_nano_interval(): INTERVAL,
    }


def pg_type_for_arrow(t: pa.DataType) -> str:
    """The PostgreSQL type that holds every value of Arrow type ``t``.

    Args:
        t: The Arrow type of a column (typically from a Parquet schema).

    Returns:
        A PostgreSQL type as written in DDL: one of :data:`PgType`, ``numeric(p,s)`` for a
        decimal, or ``<element>[]`` for a list.

    Raises:
        TypeConflictError: No PostgreSQL type holds the values (unions, run-end encoded
            arrays and unknown extension types without a usable storage type).
    """
    import pyarrow as pa

    scalar = _scalar_types().get(t)
    if scalar is not None:
        return scalar
    if isinstance(t, pa.UuidType):
        return UUID
    if isinstance(t, pa.JsonType):
        return JSONB
    if isinstance(t, pa.Bool8Type):
        return BOOLEAN
    if isinstance(t, pa.ExtensionType) and t.extension_name == NUMERIC_TEXT_EXTENSION:
        return NUMERIC  # numbers as their text (sources.ndjson): the server reads each exactly
    if isinstance(t, pa.BaseExtensionType):
        return pg_type_for_arrow(t.storage_type)
    if pa.types.is_decimal(t):
        return _decimal_pg_type(t)
    if pa.types.is_time(t):
        return TIME
    if pa.types.is_timestamp(t):
        return TIMESTAMP if t.tz is None else TIMESTAMPTZ
    if pa.types.is_duration(t):
        return INTERVAL
    if pa.types.is_fixed_size_binary(t):
        return BYTEA
    if pa.types.is_dictionary(t):
        return pg_type_for_arrow(t.value_type)
    if is_json_type(t):
        return JSONB
    if is_list_type(t):
        return array_of(pg_type_for_arrow(_list_element(t)))
    raise TypeConflictError(f"Arrow type {t} has no PostgreSQL equivalent")


def normalize_arrow_type(t: pa.DataType) -> pa.DataType:
    """The Arrow type a column of type ``t`` must be cast to before binary COPY sends it.

    Timestamps become microseconds (same time zone), ``time`` becomes ``time64[us]``,
    durations become microseconds, ``date64`` becomes ``date32``, ``float16`` becomes
    ``float32``, dictionaries become their (normalized) value type, ``null`` becomes
    ``string``, JSON types (:func:`is_json_type`) and the JSON extension type become ``string``
    (the caller serializes the JSON types), lists of any kind become ``list`` of the
    normalized element, ``binary_view`` becomes ``binary``, ``bool8`` becomes ``bool``, other
    extension types (``uuid``: 16 bytes, the binary form of a PostgreSQL uuid) become their
    storage type, and a ``decimal256`` of precision 38 or less becomes ``decimal128``. Other
    types are returned unchanged.

    Casting nanoseconds down to microseconds with ``safe=True`` fails on a value with
    sub-microsecond digits instead of silently dropping them.

    Args:
        t: The Arrow type of a column.

    Returns:
        The Arrow type to cast the column to (``t`` itself when no cast is needed).
    """
    import pyarrow as pa

    if pa.types.is_timestamp(t):
        return t if t.unit == "us" else pa.timestamp("us", tz=t.tz)
    if pa.types.is_time(t):
        return pa.time64("us")
    if pa.types.is_duration(t):
        return t if t.unit in ("s", "ms", "us") else pa.duration("us")
    if pa.types.is_date64(t):
        return pa.date32()
    if pa.types.is_float16(t):
        return pa.float32()
    if pa.types.is_null(t) or is_json_type(t) or isinstance(t, pa.JsonType):
        return pa.string()
    if isinstance(t, pa.Bool8Type):
        return pa.bool_()
    if isinstance(t, pa.BaseExtensionType):
        return normalize_arrow_type(t.storage_type)
    if pa.types.is_dictionary(t):
        return normalize_arrow_type(t.value_type)
    if pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_decimal256(t) and t.precision <= _MAX_DECIMAL128_PRECISION:
        return pa.decimal128(t.precision, t.scale)
    if is_list_type(t):
        item: pa.Field = t.value_field
        return pa.list_(item.with_type(normalize_arrow_type(item.type)))
    return t

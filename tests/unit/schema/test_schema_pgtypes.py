"""Arrow types map to PostgreSQL types, and normalize to what binary COPY (pgpq) can send."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pgpq
import pyarrow as pa
import pytest

from pgingest.errors import TypeConflictError
from pgingest.schema.pgtypes import (
    PG_TYPES,
    array_of,
    is_json_type,
    normalize_arrow_type,
    pg_type_for_arrow,
)

STRUCT = pa.struct([("a", pa.int32()), ("b", pa.string())])
MAP = pa.map_(pa.string(), pa.int64())
DICT = pa.dictionary(pa.int32(), pa.string())


@pytest.mark.parametrize(
    ("arrow", "pg"),
    [
        (pa.bool_(), "boolean"),
        (pa.int8(), "smallint"),
        (pa.int16(), "smallint"),
        (pa.uint8(), "smallint"),
        (pa.int32(), "integer"),
        (pa.uint16(), "integer"),
        (pa.int64(), "bigint"),
        (pa.uint32(), "bigint"),
        (pa.uint64(), "numeric"),
        (pa.float16(), "real"),
        (pa.float32(), "real"),
        (pa.float64(), "double precision"),
        (pa.decimal128(12, 2), "numeric(12,2)"),
        (pa.decimal128(38, 0), "numeric(38,0)"),
        (pa.decimal256(76, 10), "numeric(76,10)"),
        (pa.decimal32(5, 2), "numeric(5,2)"),
        (pa.decimal64(18, 4), "numeric(18,4)"),
        (pa.decimal128(5, -2), "numeric"),
        (pa.date32(), "date"),
        (pa.date64(), "date"),
        (pa.time32("s"), "time"),
        (pa.time32("ms"), "time"),
        (pa.time64("us"), "time"),
        (pa.time64("ns"), "time"),
        (pa.timestamp("s"), "timestamp"),
        (pa.timestamp("ns"), "timestamp"),
        (pa.timestamp("us", tz="UTC"), "timestamptz"),
        (pa.timestamp("ms", tz="Europe/Paris"), "timestamptz"),
        (pa.duration("s"), "interval"),
        (pa.duration("ns"), "interval"),
        (pa.month_day_nano_interval(), "interval"),
        (pa.string(), "text"),
        (pa.large_string(), "text"),
        (pa.string_view(), "text"),
        (pa.binary(), "bytea"),
        (pa.large_binary(), "bytea"),
        (pa.binary(16), "bytea"),
        (pa.binary_view(), "bytea"),
        (DICT, "text"),
        (pa.dictionary(pa.int8(), pa.int64()), "bigint"),
        (pa.null(), "text"),
        (pa.list_(pa.int32()), "integer[]"),
        (pa.large_list(pa.string()), "text[]"),
        (pa.list_(pa.float64(), 3), "double precision[]"),
        (pa.list_(pa.list_(pa.int64())), "jsonb"),  # may be ragged: no PostgreSQL array
        (pa.list_(DICT), "text[]"),
        (pa.list_(pa.decimal128(10, 3)), "numeric(10,3)[]"),
        (pa.list_(pa.timestamp("ms", tz="UTC")), "timestamptz[]"),
        (pa.list_(STRUCT), "jsonb"),
        (pa.list_(pa.list_(STRUCT)), "jsonb"),
        (STRUCT, "jsonb"),
        (MAP, "jsonb"),
        (pa.uuid(), "uuid"),
        (pa.list_(pa.uuid()), "uuid[]"),
        (pa.json_(), "jsonb"),
        (pa.bool8(), "boolean"),
    ],
)
def test_arrow_type_maps_to_pg_type(arrow: pa.DataType, pg: str) -> None:
    assert pg_type_for_arrow(arrow) == pg


def test_decimal_scale_outside_zero_to_precision_gives_plain_numeric() -> None:
    assert pg_type_for_arrow(pa.decimal256(76, 76)) == "numeric(76,76)"
    assert pg_type_for_arrow(pa.decimal256(10, 12)) == "numeric"


@pytest.mark.parametrize(
    "arrow",
    [
        pa.dense_union([pa.field("a", pa.int32()), pa.field("b", pa.string())]),
        pa.sparse_union([pa.field("a", pa.int32())]),
        pa.run_end_encoded(pa.int32(), pa.string()),
    ],
)
def test_type_without_pg_equivalent_is_refused(arrow: pa.DataType) -> None:
    with pytest.raises(TypeConflictError):
        pg_type_for_arrow(arrow)


def test_every_scalar_result_is_a_canonical_pg_type() -> None:
    for arrow in (pa.int8(), pa.float16(), pa.time32("s"), pa.null(), pa.uuid(), STRUCT):
        assert pg_type_for_arrow(arrow) in PG_TYPES


def test_array_of_does_not_nest() -> None:
    assert array_of("integer") == "integer[]"
    assert array_of("integer[]") == "integer[]"


@pytest.mark.parametrize(
    ("arrow", "expected"),
    [
        (STRUCT, True),
        (MAP, True),
        (pa.list_(STRUCT), True),
        (pa.large_list(pa.list_(MAP)), True),
        (pa.dictionary(pa.int32(), pa.string()), False),
        (pa.list_(pa.int32()), False),
        (pa.list_(pa.list_(pa.int32())), True),  # ragged: no PostgreSQL array holds it
        (pa.string(), False),
        (pa.json_(), False),  # already JSON text: no serialization needed
    ],
)
def test_is_json_type(arrow: pa.DataType, expected: bool) -> None:
    assert is_json_type(arrow) is expected


@pytest.mark.parametrize(
    ("arrow", "normalized"),
    [
        (pa.timestamp("s"), pa.timestamp("us")),
        (pa.timestamp("ms", tz="UTC"), pa.timestamp("us", tz="UTC")),
        (pa.timestamp("ns", tz="Asia/Tokyo"), pa.timestamp("us", tz="Asia/Tokyo")),
        (pa.timestamp("us"), pa.timestamp("us")),
        (pa.date64(), pa.date32()),
        (pa.date32(), pa.date32()),
        (DICT, pa.string()),
        (pa.dictionary(pa.int8(), pa.timestamp("ns")), pa.timestamp("us")),
        (pa.null(), pa.string()),
        (STRUCT, pa.string()),
        (MAP, pa.string()),
        (pa.list_(STRUCT), pa.string()),
        (pa.json_(), pa.string()),
        (pa.float16(), pa.float32()),
        (pa.float32(), pa.float32()),
        (pa.list_(pa.timestamp("ms")), pa.list_(pa.timestamp("us"))),
        (pa.large_list(pa.int32()), pa.list_(pa.int32())),
        (pa.list_(pa.int16(), 4), pa.list_(pa.int16())),
        (pa.list_(DICT), pa.list_(pa.string())),
        (pa.time32("s"), pa.time64("us")),
        (pa.time32("ms"), pa.time64("us")),
        (pa.time64("ns"), pa.time64("us")),
        (pa.duration("ns"), pa.duration("us")),
        (pa.duration("ms"), pa.duration("ms")),
        (pa.binary_view(), pa.binary()),
        (pa.bool8(), pa.bool_()),
        (pa.uuid(), pa.binary(16)),
        (pa.decimal256(20, 2), pa.decimal128(20, 2)),
        (pa.decimal256(50, 2), pa.decimal256(50, 2)),
        (pa.int64(), pa.int64()),
        (pa.uint64(), pa.uint64()),
        (pa.string(), pa.string()),
        (pa.large_string(), pa.large_string()),
        (pa.decimal128(12, 2), pa.decimal128(12, 2)),
    ],
)
def test_normalize_arrow_type(arrow: pa.DataType, normalized: pa.DataType) -> None:
    assert normalize_arrow_type(arrow) == normalized


def test_list_normalization_keeps_item_nullability() -> None:
    arrow = pa.list_(pa.field("item", pa.timestamp("ns"), nullable=False))
    normalized = normalize_arrow_type(arrow)
    assert normalized.value_field.nullable is False
    assert normalized.value_type == pa.timestamp("us")


def test_safe_cast_to_microseconds_refuses_sub_microsecond_values() -> None:
    target = normalize_arrow_type(pa.timestamp("ns"))
    exact = pa.array([1_000, None], pa.timestamp("ns"))
    assert exact.cast(target, safe=True).to_pylist()[0] == dt.datetime(1970, 1, 1, 0, 0, 0, 1)
    with pytest.raises(pa.ArrowInvalid):
        pa.array([1_001], pa.timestamp("ns")).cast(target, safe=True)


SAMPLES: list[pa.Array] = [
    pa.array([True, None]),
    pa.array([-128, 127], pa.int8()),
    pa.array([1, None], pa.uint8()),
    pa.array([1, 2**16 - 1], pa.uint16()),
    pa.array([1, 2**32 - 1], pa.uint32()),
    pa.array([1, 2**64 - 1], pa.uint64()),
    pa.array([1.5, None], pa.float16()),
    pa.array([1.5], pa.float32()),
    pa.array([Decimal("1.25")], pa.decimal32(5, 2)),
    pa.array([Decimal("1.25")], pa.decimal128(12, 2)),
    pa.array([Decimal("1.25")], pa.decimal256(20, 2)),
    pa.array([dt.date(2024, 2, 29)], pa.date64()),
    pa.array([3_600], pa.time32("s")),
    pa.array([3_600_000], pa.time32("ms")),
    pa.array([3_600_000_000_000], pa.time64("ns")),
    pa.array([1_700_000_000], pa.timestamp("s")),
    pa.array([1_700_000_000_000_000_000], pa.timestamp("ns", tz="UTC")),
    pa.array([5], pa.duration("s")),
    pa.array([5_000], pa.duration("ns")),
    pa.array(["a", None], pa.large_string()),
    pa.array(["a"], pa.string_view()),
    pa.array([b"a"], pa.large_binary()),
    pa.array([b"0123456789abcdef"], pa.binary(16)),
    pa.array([b"a"], pa.binary_view()),
    pa.array(["x", "y", "x"]).dictionary_encode(),
    pa.array([None, None], pa.null()),
    pa.array([[1, 2], None], pa.large_list(pa.int32())),
    pa.array([[1, 2, 3]], pa.list_(pa.int64(), 3)),
    pa.array([[1_000]], pa.list_(pa.timestamp("ns"))),
    pa.array([[1.5]], pa.list_(pa.float16())),
    pa.ExtensionArray.from_storage(pa.uuid(), pa.array([b"0123456789abcdef"], pa.binary(16))),
    pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"a": 1}'])),
    pa.ExtensionArray.from_storage(pa.bool8(), pa.array([1, 0], pa.int8())),
]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda sample: str(sample.type))
def test_normalized_column_casts_and_encodes(sample: pa.Array) -> None:
    target = normalize_arrow_type(sample.type)
    column = sample.cast(target, safe=True) if target != sample.type else sample
    batch = pa.RecordBatch.from_arrays([column], names=["c"])
    encoder = pgpq.ArrowToPostgresBinaryEncoder(batch.schema)
    encoded = encoder.write_header() + encoder.write_batch(batch) + encoder.finish()
    assert encoded.startswith(b"PGCOPY\n\xff\r\n\x00")

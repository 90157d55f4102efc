"""Parquet batches that binary COPY cannot carry go as CSV text: every Arrow type read back
from the table is exactly the value pyarrow reads (property), and nested values become exact
JSON."""

from __future__ import annotations

import decimal
import itertools
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

D = decimal.Decimal
EXACT = decimal.Context(prec=100)
WIDE = pa.decimal256(41, 3)
"""Over 38 digits: binary COPY cannot carry it, so a batch holding it goes as CSV text."""

PG_FIRST_DAY = -2_440_588  # 4713-11-24 BC
PG_LAST_DAY = 2_147_483_493 - 2_440_588  # 5874897-12-31
INT64 = 2**63 - 1
PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000}
ZONES = ["UTC", "Asia/Tokyo", "America/New_York", "Europe/Paris", "+05:30"]


def _micros(array: pa.Array) -> list[int | None]:
    unit = array.type.unit
    return [None if v is None else v * 1_000_000 // PER_SECOND[unit] for v in _ints(array)]


def _ints(array: pa.Array) -> list[int | None]:
    storage = (
        pa.int32()
        if pa.types.is_date32(array.type) or array.type == pa.time32("ms")
        else pa.int64()
    )
    return array.cast(storage).to_pylist()


def _text(array: pa.Array) -> list[str | None]:
    return [None if v is None else str(v) for v in array.to_pylist()]


def _float_key(value: float | None) -> str | None:
    return None if value is None else ("nan" if math.isnan(value) else repr(float(value)))


def _floats(array: pa.Array) -> list[str | None]:
    return [_float_key(v) for v in array.to_pylist()]


def _decimals(array: pa.Array) -> list[Any]:
    return array.to_pylist()


def _uuids(array: pa.Array) -> list[str | None]:
    return [None if v is None else str(uuid.UUID(bytes=v)) for v in array.storage.to_pylist()]


def _list_of(element: Callable[[pa.Array], list[Any]]) -> Callable[[pa.Array], list[Any]]:
    def expected(array: pa.Array) -> list[Any]:
        out = []
        for i in range(len(array)):
            value = array[i]
            out.append(None if not value.is_valid else element(value.values))
        return out

    return expected


@dataclass(frozen=True)
class Kind:
    arrow: pa.DataType
    values: st.SearchStrategy[Any]
    sql: str  # {c}: the column
    expected: Callable[[pa.Array], list[Any]]
    build: Callable[[list[Any], pa.DataType], pa.Array] = lambda v, t: pa.array(v, t)


def _from_ints(storage: pa.DataType) -> Callable[[list[Any], pa.DataType], pa.Array]:
    return lambda values, t: pa.array(values, storage).cast(t)


def _scaled(scale: int) -> Callable[[list[Any], pa.DataType], pa.Array]:
    return lambda values, t: pa.array(
        [None if v is None else D(v).scaleb(-scale, EXACT) for v in values], t
    )


EPOCH_MICROS = "(extract(epoch FROM {c}) * 1000000)::numeric(40,0)::bigint"
"""Microseconds of a time or an interval (exact: extract gives a numeric)."""
TS_MICROS = (
    "((({c})::date - date '1970-01-01')::numeric * 86400000000"
    " + extract(epoch FROM ({c})::time) * 1000000)::numeric(40,0)::bigint"
)
"""Microseconds since 1970 of a timestamp (extract(epoch) of one past year 100,000 is not
exact: its last digit is lost)."""
FLOAT_SQL = "{c}::float8"


def _timestamp(unit: str, tz: str | None) -> Kind:
    per = PER_SECOND[unit]
    low = PG_FIRST_DAY * 86_400 * per
    high = INT64 // (1_000_000 // per)
    return Kind(
        pa.timestamp(unit, tz),
        st.integers(low, high),
        TS_MICROS.format(c="{c} AT TIME ZONE 'UTC'" if tz else "{c}"),
        _micros,
        _from_ints(pa.int64()),
    )


def _duration(unit: str) -> Kind:
    bound = INT64 // (1_000_000 // PER_SECOND[unit])  # -2**63 us: no interval text holds it
    return Kind(
        pa.duration(unit),
        st.integers(-bound, bound),
        EPOCH_MICROS,
        _micros,
        _from_ints(pa.int64()),
    )


TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
DAYS = st.integers(PG_FIRST_DAY, PG_LAST_DAY)
DATE_SQL = "({c} - date '1970-01-01')"

KINDS: dict[str, Kind] = {
    "i8": Kind(pa.int8(), st.integers(-(2**7), 2**7 - 1), "{c}", pa.Array.to_pylist),
    "i64": Kind(pa.int64(), st.integers(-(2**63), 2**63 - 1), "{c}", pa.Array.to_pylist),
    "u32": Kind(pa.uint32(), st.integers(0, 2**32 - 1), "{c}", pa.Array.to_pylist),
    "u64": Kind(pa.uint64(), st.integers(0, 2**64 - 1), "{c}::text", _text),
    "f32": Kind(pa.float32(), st.floats(width=32), "{c}::float8", _floats),
    "f64": Kind(pa.float64(), st.floats(), "{c}", _floats),
    "dec": Kind(
        pa.decimal128(12, 4), st.integers(-(10**12) + 1, 10**12 - 1), "{c}", _decimals, _scaled(4)
    ),
    "dec256": Kind(
        pa.decimal256(60, 7), st.integers(-(10**60) + 1, 10**60 - 1), "{c}", _decimals, _scaled(7)
    ),
    "bool": Kind(pa.bool_(), st.booleans(), "{c}", pa.Array.to_pylist),
    "text": Kind(pa.string(), TEXT, "{c}", pa.Array.to_pylist),
    "bin": Kind(pa.binary(), st.binary(), "{c}", pa.Array.to_pylist),
    "fsb": Kind(pa.binary(4), st.binary(min_size=4, max_size=4), "{c}", pa.Array.to_pylist),
    "uuid": Kind(pa.uuid(), st.uuids().map(lambda u: u.bytes), "{c}::text", _uuids),
    "date": Kind(pa.date32(), DAYS, DATE_SQL, _ints, _from_ints(pa.int32())),
    "time": Kind(
        pa.time64("us"),
        st.integers(0, 86_400_000_000 - 1),
        EPOCH_MICROS,
        _micros,
        _from_ints(pa.int64()),
    ),
    "time_ms": Kind(
        pa.time32("ms"),
        st.integers(0, 86_400_000 - 1),
        EPOCH_MICROS,
        _micros,
        _from_ints(pa.int32()),
    ),
    "ts_s": _timestamp("s", None),
    "ts_ms": _timestamp("ms", None),
    "ts_us": _timestamp("us", None),
    **{
        f"tstz_{i}": _timestamp(unit, zone)
        for i, (unit, zone) in enumerate(itertools.product(("s", "us"), ZONES))
    },
    "dur_s": _duration("s"),
    "dur_ms": _duration("ms"),
    "dur_us": _duration("us"),
    "list_int": Kind(
        pa.list_(pa.int64()),
        st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), max_size=4),
        "{c}",
        pa.Array.to_pylist,
    ),
    "list_u64": Kind(
        pa.list_(pa.uint64()),
        st.lists(st.none() | st.integers(0, 2**64 - 1), max_size=4),
        "{c}::text[]",
        _list_of(_text),
    ),
    "list_text": Kind(
        pa.list_(pa.string()),
        st.lists(
            st.none() | TEXT | st.sampled_from(["NULL", "{", '"', "\\", ",", " a "]), max_size=4
        ),
        "{c}",
        pa.Array.to_pylist,
    ),
    "list_bin": Kind(
        pa.large_list(pa.binary()),
        st.lists(st.none() | st.binary(), max_size=3),
        "{c}",
        pa.Array.to_pylist,
    ),
    "list_f64": Kind(
        pa.list_(pa.float64()),
        st.lists(st.none() | st.floats(), max_size=3),
        "{c}::float8[]",
        _list_of(_floats),
    ),
    "list_date": Kind(
        pa.list_(pa.date32()),
        st.lists(st.none() | DAYS, max_size=3),
        "ARRAY(SELECT e - date '1970-01-01' FROM unnest({c}) WITH ORDINALITY u(e, n) ORDER BY n)",
        _list_of(_ints),
        lambda v, t: pa.array(v, pa.list_(pa.int32())).cast(t),
    ),
    "list_tstz": Kind(
        pa.list_(pa.timestamp("us", "Asia/Tokyo")),
        st.lists(st.none() | st.integers(PG_FIRST_DAY * 86_400_000_000, INT64), max_size=3),
        "ARRAY(SELECT "
        + TS_MICROS.format(c="e AT TIME ZONE 'UTC'")
        + " FROM unnest({c}) WITH ORDINALITY u(e, n) ORDER BY n)",
        _list_of(_micros),
        lambda v, t: pa.array(v, pa.list_(pa.int64())).cast(t),
    ),
    "list_dec": Kind(
        pa.list_(pa.decimal256(50, 2)),
        st.lists(st.none() | st.integers(-(10**50) + 1, 10**50 - 1), max_size=3),
        "{c}",
        _list_of(_decimals),
        lambda v, t: pa.array(
            [
                None if x is None else [None if y is None else D(y).scaleb(-2, EXACT) for y in x]
                for x in v
            ],
            t,
        ),
    ),
}
LIST_SQL_NULL = "CASE WHEN {c} IS NULL THEN NULL ELSE {sql} END"

COUNTER = itertools.count()


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], dict[str, list[Any]]]:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=4, unique=True))
    rows = draw(st.integers(1, 6))
    columns: dict[str, list[Any]] = {}
    for kind in kinds:
        columns[kind] = draw(st.lists(st.none() | KINDS[kind].values, min_size=rows, max_size=rows))
    return kinds, columns


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return _float_key(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=tables())
def test_every_type_sent_as_csv_text_reads_back_exactly(tmp_path, load, db, data):
    kinds, columns = data
    rows = len(columns[kinds[0]])
    arrays = {"rn": pa.array(range(rows), pa.int32()), "wide": pa.array([D("1.5")] * rows, WIDE)}
    for kind in kinds:
        arrays[kind] = KINDS[kind].build(columns[kind], KINDS[kind].arrow)
    name = f"text_route_{next(COUNTER)}"
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.table(arrays), path)
    table = pq.read_table(path)  # what pyarrow reads is the reference
    report = load(path, table=name)
    assert report.ok, report.failed
    select = []
    for kind in kinds:
        column = f'"{kind}"'
        sql = KINDS[kind].sql.format(c=column)
        if sql.startswith("ARRAY("):
            sql = LIST_SQL_NULL.format(c=column, sql=sql)
        select.append(f"{sql} AS {column}")
    back = db.fetch(f"SELECT {', '.join(select)} FROM {name} ORDER BY rn")
    for kind in kinds:
        expected = KINDS[kind].expected(table.column(kind).combine_chunks())
        got = [row[kind] for row in back]
        if kind in ("f32", "f64"):
            got = _floats(pa.array(got, pa.float64()))
        assert _canonical(got) == _canonical(expected), kind


def _beside_wide(columns: dict[str, pa.Array]) -> pa.Table:
    rows = len(next(iter(columns.values())))
    return pa.table({"wide": pa.array([D("1.5")] * rows, WIDE), **columns})


def test_durations_as_text_are_the_exact_interval(tmp_path, load, db):
    # the CSV held the raw count, which PostgreSQL read as seconds: 1 us loaded as 00:00:01
    table = _beside_wide(
        {
            "us": pa.array([1, 90061000001, -1500], pa.duration("us")),
            "ms": pa.array([1500, None, -1], pa.duration("ms")),
            "s": pa.array([1, 86400 * 400, None], pa.duration("s")),
        }
    )
    pq.write_table(table, tmp_path / "dur.parquet")
    assert load(tmp_path / "dur.parquet").ok
    assert db.fetch("SELECT us::text, ms::text, s::text FROM dur ORDER BY us") == [
        ("-00:00:00.0015", "-00:00:00.001", None),
        ("00:00:00.000001", "00:00:01.5", "00:00:01"),
        ("25:01:01.000001", None, "9600:00:00"),
    ]


def test_fixed_size_binary_as_text_is_hex(tmp_path, load, db):
    # raw bytes went to bytea's input: \x41 (4 bytes) loaded as 1 byte, a NUL byte failed
    values = [b"\\x41", b"\\\\ab", b"\x00\x01\xff\x00", None]
    pq.write_table(_beside_wide({"fsb": pa.array(values, pa.binary(4))}), tmp_path / "fsb.parquet")
    assert load(tmp_path / "fsb.parquet").ok
    assert db.types("fsb")["fsb"] == "bytea"
    assert sorted(db.fetch("SELECT fsb FROM fsb"), key=repr) == sorted(
        [(v,) for v in values], key=repr
    )


def test_timestamptz_of_a_zone_with_an_old_local_mean_time_as_text(tmp_path, load, db):
    # Arrow wrote Tokyo's time with its offset cut to minutes (LMT +09:18:59): 59 s late
    instants = [-62135596800000000, 0, -2_000_000_000_000_000]  # 0001-01-01, 1970, 1907 BC
    table = _beside_wide({"ts": pa.array(instants, pa.timestamp("us", "Asia/Tokyo"))})
    pq.write_table(table, tmp_path / "lmt.parquet")
    assert load(tmp_path / "lmt.parquet").ok
    micros = TS_MICROS.format(c="ts AT TIME ZONE 'UTC'")
    got = db.fetch(f"SELECT {micros} FROM lmt ORDER BY ts")
    assert [r[0] for r in got] == sorted(instants)


def test_uuid_loads_as_uuid(tmp_path, load, db):
    # the 16 raw bytes went as text: "invalid byte sequence for encoding UTF8: 0x00"
    values = [uuid.UUID(int=0), uuid.UUID("12341234-1234-1234-1234-123412341234"), None]
    column = pa.array([None if u is None else u.bytes for u in values], pa.uuid())
    pq.write_table(pa.table({"id": pa.array([1, 2, 3]), "u": column}), tmp_path / "u.parquet")
    assert load(tmp_path / "u.parquet").ok
    assert db.types("u")["u"] == "uuid"
    assert [r[0] for r in db.fetch("SELECT u::text FROM u ORDER BY id")] == [
        "00000000-0000-0000-0000-000000000000",
        "12341234-1234-1234-1234-123412341234",
        None,
    ]


def test_lists_as_text_are_array_literals(tmp_path, load, db):
    # lists went as JSON ([1, 2]), which PostgreSQL refuses as a malformed array literal
    pq.write_table(
        pa.table({"l": pa.array([[2**64 - 1, 0], None, []], pa.list_(pa.uint64()))}),
        tmp_path / "u64.parquet",
    )
    strings = [["a,b", 'q"uote', "back\\slash", "NULL", None, "{}", ""], [], None]
    table = _beside_wide(
        {
            "id": pa.array([1, 2, 3]),
            "l": pa.array([[1, 2], None, [None]], pa.list_(pa.int64())),
            "s": pa.array(strings, pa.list_(pa.string())),
            "dec": pa.array([[D("1.25"), None], [], None], pa.list_(pa.decimal256(50, 2))),
        }
    )
    pq.write_table(table, tmp_path / "lists.parquet")
    assert load([tmp_path / "u64.parquet", tmp_path / "lists.parquet"]).ok
    assert db.types("u64")["l"] == "numeric[]"
    assert sorted(r[0] or "" for r in db.fetch("SELECT l::text FROM u64")) == [
        "",
        "{18446744073709551615,0}",
        "{}",
    ]
    assert db.types("lists")["dec"] == "numeric(50,2)[]"
    assert db.rows("lists", "id") == [
        (D("1.5"), 1, [1, 2], strings[0], [D("1.25"), None]),
        (D("1.5"), 2, None, [], []),
        (D("1.5"), 3, [None], None, None),
    ]


def test_a_list_into_a_jsonb_column_as_text_stays_json(tmp_path, load, db):
    db.execute(f'CREATE TABLE "{db.schema}".j (wide numeric(41,3), l jsonb)')
    table = _beside_wide({"l": pa.array([[1, None], []], pa.list_(pa.int64()))})
    pq.write_table(table, tmp_path / "j.parquet")
    assert load(tmp_path / "j.parquet", table="j").ok
    assert sorted(r[0] for r in db.fetch("SELECT l::text FROM j")) == ["[1, null]", "[]"]


def test_nested_values_become_exact_json(tmp_path, load, db):
    # Python's datetime cannot hold these: the conversion failed with a traceback
    table = pa.table(
        {
            "id": pa.array([1, 2]),
            "s": pa.array(
                [
                    {"d": -800_000, "t": 1700000000123456789, "f": float("nan"), "g": 1.5},
                    {"d": 3_000_000, "t": None, "f": float("-inf"), "g": float("inf")},
                ],
                pa.struct(
                    [
                        ("d", pa.date32()),
                        ("t", pa.timestamp("ns", "UTC")),
                        ("f", pa.float64()),
                        ("g", pa.float32()),
                    ]
                ),
            ),
            "m": pa.array(
                [[({"k": 1}, "x")], []], pa.map_(pa.struct([("k", pa.int64())]), pa.string())
            ),
            "u": pa.ListArray.from_arrays(
                pa.array([0, 1, 1], pa.int32()),
                pa.array([uuid.UUID(int=1).bytes], pa.uuid()),
                mask=pa.array([False, True]),
            ),
        }
    )
    pq.write_table(table, tmp_path / "nested.parquet")
    assert load(tmp_path / "nested.parquet").ok
    got = db.fetch("SELECT s::text, m::text, u::text FROM nested ORDER BY id")
    assert [(json.loads(r[0]), json.loads(r[1]), r[2]) for r in got] == [
        (
            {"d": "0222-09-04 BC", "t": "2023-11-14 22:13:20.123456789+00", "f": "NaN", "g": 1.5},
            {'{"k": 1}': "x"},
            "{00000000-0000-0000-0000-000000000001}",  # a list of uuids is uuid[]
        ),
        ({"d": "10183-09-21", "t": None, "f": "-Infinity", "g": "Infinity"}, {}, None),
    ]
    # the dates are PostgreSQL's own
    assert db.fetch("SELECT (s->>'d')::date = date '1970-01-01' - 800000 FROM nested WHERE id = 1")[
        0
    ][0]


def test_nested_values_json_cannot_hold_fail_naming_file_line_and_column(tmp_path, load):
    twice = pa.StructArray.from_arrays(
        [pa.array([1]), pa.array(["x"])],
        fields=[pa.field("a", pa.int64()), pa.field("a", pa.string())],
    )
    pq.write_table(pa.table({"s": twice}), tmp_path / "twice.parquet")
    maps = pa.array([[("k", 1)], None, [("k", 1), ("k", 2)]], pa.map_(pa.string(), pa.int64()))
    pq.write_table(pa.table({"m": maps}), tmp_path / "keys.parquet")
    report = load([tmp_path / "twice.parquet", tmp_path / "keys.parquet"])
    errors = sorted(f.error for f in report.failed)
    assert errors == [
        f"{tmp_path / 'keys.parquet'}: line 3, column m: a map holds the key 'k' twice:"
        " JSON cannot hold it",
        f"{tmp_path / 'twice.parquet'}: column s: a struct names the field 'a' twice:"
        " JSON cannot hold it",
    ]


def test_uuids_and_zoned_timestamps_into_text_columns(tmp_path, load, db):
    # --types c=text wrote a uuid's raw bytes, and Tokyo's year-1 instant with +0918 (59 s off)
    table = pa.table(
        {
            "u": pa.array([uuid.UUID(int=255).bytes, None], pa.uuid()),
            "ts": pa.array([-62135596800000000, 0], pa.timestamp("us", "Asia/Tokyo")),
        }
    )
    pq.write_table(table, tmp_path / "texts.parquet")
    assert load(tmp_path / "texts.parquet", types={"u": "text", "ts": "text"}).ok
    assert db.rows("texts", "ts") == [
        ("00000000-0000-0000-0000-0000000000ff", "0001-01-01 00:00:00.000000Z"),
        (None, "1970-01-01 00:00:00.000000Z"),
    ]
    assert db.val(
        "SELECT ts::timestamptz = '0001-01-01 00:00:00+00' FROM texts WHERE u IS NOT NULL"
    )

"""Property: random JSON lines (integers of any size, floats, decimals of many digits, nested
objects and arrays, strings of any Unicode, ISO dates and times with and without an offset)
load and read back as Python's json module reads them (``parse_float=Decimal``): every digit,
every key, every character, every instant."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"))
"""Any Unicode PostgreSQL text holds (no lone surrogate, no NUL: those are bad values)."""

NUMBERS = st.one_of(
    st.integers(),
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).map(Decimal),
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False, places=25),
    st.sampled_from(
        ["1E400", "-1E-400", "9007199254740993", "0.1234567890123456789", "-0.0", "1e5", "5e-324"]
    ).map(Decimal),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
).filter(lambda v: isinstance(v, list | dict))

OFFSETS = st.integers(-(15 * 60 + 59), 15 * 60 + 59).map(
    lambda m: dt.timezone(dt.timedelta(minutes=m))
)
LOCAL_TIMES = st.datetimes(dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31))

KINDS = {
    "number": NUMBERS,
    "date": st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)).map(dt.date.isoformat),
    "time": st.tuples(LOCAL_TIMES, st.sampled_from("T ")).map(lambda t: t[0].isoformat(t[1])),
    "zoned": st.tuples(
        st.datetimes(dt.datetime(2, 1, 1), dt.datetime(9998, 12, 31), timezones=OFFSETS),
        st.sampled_from("T "),
    ).map(lambda t: t[0].isoformat(t[1])),
    "integer": st.integers(),
    "bool": st.booleans(),
    "text": TEXT.map(lambda s: "x" + s),  # never an ISO date, which would be typed
    "nested": NESTED,
}

COUNTER = itertools.count()


def dump(value: Any, ascii_only: bool) -> str:
    """JSON text with every number as written (json.dumps cannot write a Decimal)."""
    if isinstance(value, dict):
        items = (f"{dump(k, ascii_only)}: {dump(v, ascii_only)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(dump(v, ascii_only) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=ascii_only)


def tagged(value: Any) -> Any:
    """``value`` with each scalar tagged by its JSON type, so that ``true`` is not ``1`` and
    ``1.0`` equals ``1.00`` (as numbers)."""
    if isinstance(value, dict):
        return {k: tagged(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tagged(v) for v in value]
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | Decimal):
        return ("number", Decimal(value))
    return (type(value).__name__, value)


@st.composite
def files(draw: st.DrawFn) -> tuple[dict[str, str], list[str]]:
    kinds = draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=5))
    columns = {f"c{i}_{kind}": kind for i, kind in enumerate(kinds)}
    rows = draw(st.integers(1, 12))
    lines = []
    ascii_only = draw(st.booleans())
    for rn in range(rows):
        record: dict[str, Any] = {"rn": rn}
        for name, kind in columns.items():
            if draw(st.booleans()) or rn == 0:  # a key absent from a line is NULL
                record[name] = draw(st.none() | KINDS[kind])
        lines.append(dump(record, ascii_only))
    return columns, lines


def same(kind: str, expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is got
    if kind == "nested":
        return tagged(json.loads(got, parse_float=Decimal)) == tagged(expected)
    if isinstance(got, float):
        # double precision only for values that survive it: the float's shortest text
        # reads as the very number the file wrote
        return Decimal(repr(got)) == Decimal(expected)
    if kind == "date":
        return got == dt.date.fromisoformat(expected)
    if kind in ("time", "zoned"):
        # the instant, and a zone only where the file gave one
        return got == dt.datetime.fromisoformat(expected) and (got.tzinfo is None) == (
            kind == "time"
        )
    if kind in ("number", "integer"):
        return isinstance(got, int | Decimal) and Decimal(got) == Decimal(expected)
    return type(got) is type(expected) and got == expected


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=files())
def test_ndjson_reads_back_as_pythons_json(tmp_path: Path, load: Any, db: Any, data: Any) -> None:
    columns, lines = data
    n = next(COUNTER)
    path = tmp_path / f"p{n}.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected = [json.loads(line, parse_float=Decimal, parse_int=int) for line in lines]
    report = load(path, table=f"p{n}")
    assert report.ok, report.failed
    names = ", ".join(f'"{c}"' + ("::text" if k == "nested" else "") for c, k in columns.items())
    back = db.fetch(f'SELECT {names} FROM "{db.schema}"."p{n}" ORDER BY rn')
    assert len(back) == len(expected)
    for record, row in zip(expected, back, strict=True):
        for i, (name, kind) in enumerate(columns.items()):
            assert same(kind, record.get(name), row[i]), (name, record.get(name), row[i])

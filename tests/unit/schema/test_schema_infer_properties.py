"""Property tests: inference never picks a type that would change a value.

Three checks on random columns: every value reads back with the same meaning in the inferred
type (modelled in Python: Decimal for numbers, datetime for dates), the vectorized inference
agrees with a plain per-value reference written from the rules, and the pure-Python inference
(small files) decides as the vectorized one.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import re
import sys
from decimal import Decimal
from typing import NamedTuple

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csv_strategies import TEXT as CSV_TEXT
from pgingest.schema import infer
from pgingest.schema.infer import DateOrder, TypeTracker, infer_pg_types, is_text_alone
from pgingest.schema.validate import typed_majority

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DBL_MIN = sys.float_info.min
BOOLEANS = {"true", "false", "t", "f", "yes", "no"}
SPECIALS = {"nan", "inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"}
INTEGER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)")
DECIMAL = re.compile(r"[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?")
TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})"
    r"(?:[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,6})?)?"
    r"(Z|[+-]([0-9]{2}):?([0-9]{2})?)?)?"
)

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# --- strategies ---------------------------------------------------------------------------

big_ints = st.one_of(
    st.integers(min_value=-1000, max_value=1000),
    st.integers(min_value=INT32[0] - 10, max_value=INT32[1] + 10),
    st.integers(min_value=INT64[0] - 10, max_value=INT64[1] + 10),
    st.integers(min_value=-(10**40), max_value=10**40),
)
int_texts = st.one_of(
    big_ints.map(str),
    big_ints.map(lambda n: f"+{n}" if n >= 0 else str(n)),
    st.integers(min_value=0, max_value=99999).map(lambda n: f"{n:05d}"),  # zip codes
)
float_texts = st.one_of(
    st.floats().map(repr),
    st.tuples(st.floats(allow_nan=False), st.integers(1, 20), st.sampled_from("egf")).map(
        lambda t: f"{t[0]:.{t[1]}{t[2]}}" if t[2] != "f" or abs(t[0]) < 1e30 else repr(t[0])
    ),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.builds(
        lambda m, e: f"{m}e{e}",
        st.sampled_from(
            ["1", "-1", "1.5", "9.99", "0", "2.2250738585072014", "1.7976931348623157"]
        ),
        st.sampled_from([-400, -324, -320, -308, -307, 0, 5, 307, 308, 309, 999, 1000, 1001]),
    ),
    st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "inf", "-inf", "+inf", "-NaN"]),
)
date_texts = st.one_of(
    st.dates().map(dt.date.isoformat),
    st.builds(
        lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}",
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
    ),
)
offsets = st.integers(min_value=-17 * 60, max_value=17 * 60).map(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes))
)
timestamp_texts = st.one_of(
    st.builds(
        lambda moment, sep, spec: moment.isoformat(sep, spec),
        st.datetimes(),
        st.sampled_from("T "),
        st.sampled_from(["minutes", "seconds", "milliseconds", "microseconds", "auto"]),
    ),
    st.builds(
        lambda moment, tz: moment.replace(tzinfo=tz).isoformat().replace("+00:00", "Z"),
        st.datetimes(),
        offsets,
    ),
    st.builds(
        lambda day, h, m, s, frac, tz: f"{day} {h:02d}:{m:02d}:{s:02d}{frac}{tz}",
        st.dates().map(dt.date.isoformat),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
        st.sampled_from(["", ".5", ".123456", ".1234567"]),
        st.sampled_from(["", "Z", "+02", "-0530", "+15:59", "+16:00", "z"]),
    ),
)
boolean_texts = st.sampled_from(["true", "False", "T", "f", "YES", "no", "y", "on", "0"])
junk_texts = st.one_of(
    st.text(alphabet="0123456789.eE+-: TZnaif", max_size=12),
    st.sampled_from(["", " 1", "1 ", "x", "٣", "1,5"]),
)
families = [int_texts, float_texts, date_texts, timestamp_texts, boolean_texts]
any_text = st.one_of(*families, junk_texts)


@st.composite
def columns(draw: st.DrawFn) -> list[str | None]:
    """A column mostly of one family (so typed columns are common), sometimes mixed."""
    family = draw(st.sampled_from([*families, any_text]))
    values = st.one_of(st.none(), family) if draw(st.booleans()) else family
    column = draw(st.lists(values, max_size=12))
    if draw(st.integers(0, 9)) == 0:
        column.append(draw(any_text))
    return column


# --- a Python model of what PostgreSQL reads ----------------------------------------------


def reads_back_unchanged(value: str, pg_type: str) -> bool:
    """Whether PostgreSQL accepts ``value`` as ``pg_type`` and reads back the same meaning."""
    if pg_type == "text":
        return True
    if pg_type == "boolean":
        return value.lower() in BOOLEANS
    if pg_type in ("integer", "bigint", "numeric") and INTEGER.fullmatch(value):
        low, high = {"integer": INT32, "bigint": INT64}.get(pg_type, (-math.inf, math.inf))
        return low <= int(value) <= high
    if pg_type == "numeric":
        match = DECIMAL.fullmatch(value)
        return match is not None and abs(int(match.group(1) or 0)) < 1000
    if pg_type == "double precision":
        if value.lower() in SPECIALS:
            return True
        if not DECIMAL.fullmatch(value):
            return False
        number = float(value)
        # PostgreSQL prints the shortest text that reads back as the same float8, as repr does.
        return math.isfinite(number) and Decimal(repr(number)) == Decimal(value)
    return _reads_back_as_time(value, pg_type)


def _reads_back_as_time(value: str, pg_type: str) -> bool:
    match = TIMESTAMP.fullmatch(value)
    if not match:
        return False
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    hour, minute, second, offset_hours = (int(g or 0) for g in match.group(4, 5, 6, 8))
    if hour > 23 or minute > 59 or second > 59 or offset_hours > 15:
        return False  # PostgreSQL would roll these over, or refuse them
    if pg_type == "date":
        return len(value) == 10
    if pg_type == "timestamp":
        return parsed.tzinfo is None
    return pg_type == "timestamptz" and parsed.tzinfo is not None


@PROPERTY_SETTINGS
@given(columns())
def test_inferred_type_keeps_every_value(values: list[str | None]) -> None:
    pg_type = infer_pg_types(pa.table({"c": pa.array(values, pa.string())}))[0]
    for value in values:
        if value is not None:
            assert reads_back_unchanged(value, pg_type), (value, pg_type)


# --- an independent per-value reference of the rules ---------------------------------------


class Kind(NamedTuple):
    """What the reference makes of one value."""

    name: str
    number: int = 0
    """The value of an integer."""
    float_safe: bool = True
    """Reads back unchanged through float8."""
    numeric_safe: bool = True
    """Accepted by numeric."""


def reference_kind(value: str) -> Kind:
    """Classify one value by the rules, one value at a time."""
    if value.lower() in BOOLEANS:
        return Kind("boolean")
    if value.lower() in SPECIALS:
        return Kind("special")
    if len(value) > 15_000:
        return Kind("text")
    if INTEGER.fullmatch(value):
        number = int(value)
        return Kind("integer", number, float_safe=len(str(abs(number))) <= 15)
    match = DECIMAL.fullmatch(value)
    if match:
        decimal = Decimal(value)
        digits = 0 if decimal == 0 else len(decimal.as_tuple().digits)
        as_float = float(value)
        float_safe = digits <= 15 and (
            decimal == 0 or (math.isfinite(as_float) and abs(as_float) >= DBL_MIN)
        )
        numeric_safe = abs(int(match.group(1) or 0)) < 1000
        return Kind("decimal", float_safe=float_safe, numeric_safe=numeric_safe)
    for kind in ("date", "timestamp", "timestamptz"):
        if _is_time(value, kind):
            return Kind(kind)
    return Kind("text")


def _is_time(value: str, kind: str) -> bool:
    match = TIMESTAMP.fullmatch(value)
    if not match or match.group(1) == "0000":
        return False
    try:
        dt.date(*(int(part) for part in match.group(1, 2, 3)))
    except ValueError:
        return False
    return _reads_back_as_time(value, kind)


def reference_type(values: list[str | None]) -> str:
    """Combine the kinds of a column's values into its type."""
    kinds = [reference_kind(value) for value in values if value is not None]
    names = {kind.name for kind in kinds}
    if not names or "text" in names or "" in values:
        return "text"
    if names == {"boolean"}:
        return "boolean"
    if names == {"integer"}:
        for pg_type, (low, high) in (("integer", INT32), ("bigint", INT64)):
            if all(low <= kind.number <= high for kind in kinds):
                return pg_type
        return "numeric"
    if names <= {"integer", "decimal", "special"}:
        if all(kind.float_safe for kind in kinds):
            return "double precision"
        if "special" in names or not all(kind.numeric_safe for kind in kinds):
            return "text"
        return "numeric"
    if names == {"date"}:
        return "date"
    if names <= {"date", "timestamp"}:
        return "timestamp"
    if names == {"timestamptz"}:
        return "timestamptz"
    return "text"


@pytest.mark.parametrize("head_rows", [256, 1])
@PROPERTY_SETTINGS
@given(values=columns())
def test_vectorized_inference_matches_the_per_value_reference(
    head_rows: int, values: list[str | None]
) -> None:
    original = infer._HEAD_ROWS
    infer._HEAD_ROWS = head_rows  # hypothesis and function-scoped fixtures do not mix
    try:
        inferred = infer_pg_types(pa.table({"c": pa.array(values, pa.string())}))[0]
    finally:
        infer._HEAD_ROWS = original
    assert inferred == reference_type(values)


@PROPERTY_SETTINGS
@given(columns(), st.lists(st.integers(0, 12), max_size=3))
def test_batches_give_the_same_type_as_the_whole(values: list[str | None], cuts: list[int]) -> None:
    tracker = TypeTracker()
    bounds = [0, *sorted(min(cut, len(values)) for cut in cuts), len(values)]
    for start, end in itertools.pairwise(bounds):
        tracker.update(pa.table({"c": pa.array(values[start:end], pa.string())}))
    assert tracker.types() == infer_pg_types(pa.table({"c": pa.array(values, pa.string())}))


@PROPERTY_SETTINGS
@given(st.lists(st.integers(*INT32), min_size=1, max_size=20))
def test_int32_values_are_integer(numbers: list[int]) -> None:
    assert infer_pg_types(pa.table({"c": [str(n) for n in numbers]})) == ["integer"]


@PROPERTY_SETTINGS
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1))
def test_short_decimals_are_double_precision(numbers: list[float]) -> None:
    texts = [f"{n:.6e}" for n in numbers]  # 7 significant digits, always with an exponent
    assert infer_pg_types(pa.table({"c": texts})) == ["double precision"]


@PROPERTY_SETTINGS
@given(st.lists(st.dates(min_value=dt.date(1, 1, 1)), min_size=1))
def test_iso_dates_are_date(days: list[dt.date]) -> None:
    assert infer_pg_types(pa.table({"c": [d.isoformat() for d in days]})) == ["date"]


# --- the pure-Python inference (small files) decides as the vectorized one ----------------

slash_texts = st.builds(
    lambda a, b, y, sep, time: f"{a}/{b}/{y:04d}{sep}{time}",
    st.integers(0, 40),
    st.integers(0, 40),
    st.integers(0, 2100),
    st.sampled_from(["", "", " ", "T"]),
    st.sampled_from(["", "10:30", "23:59:59.5", "24:00"]),
)
unicode_lookalikes = st.sampled_from(
    # RE2's and Python's (?i) fold these into ASCII letters; PostgreSQL does not.
    ["ye\u017f", "fal\u017fe", "\u0131nf", "\u0130NF", "na\u0274", "\u212a", "\uff11", "1\n"]
)
text_values = st.one_of(*families, junk_texts, slash_texts, unicode_lookalikes, CSV_TEXT)


@st.composite
def text_columns(draw: st.DrawFn) -> list[list[str | None]]:
    """One to three columns of equal length, each mostly of one family."""
    rows = draw(st.integers(0, 12))
    out = []
    for _ in range(draw(st.integers(1, 3))):
        family = draw(st.sampled_from([*families, slash_texts, text_values]))
        values = st.one_of(st.none(), family) if draw(st.booleans()) else family
        column = draw(st.lists(values, min_size=rows, max_size=rows))
        if rows and draw(st.integers(0, 9)) == 0:
            column[draw(st.integers(0, rows - 1))] = draw(text_values)
        out.append(column)
    return out


def _tracked(
    columns: list[list[str | None]], cuts: list[int], date_format: DateOrder | None, arrow: bool
) -> tuple[list[str], list[DateOrder | None], list[int]]:
    tracker = TypeTracker(date_format)
    rows = len(columns[0])
    bounds = [0, *sorted(min(cut, rows) for cut in cuts), rows]
    for start, end in itertools.pairwise(bounds):
        batch = [column[start:end] for column in columns]
        if arrow:
            names = [f"c{i}" for i in range(len(batch))]
            tracker.update(pa.table([pa.array(c, pa.string()) for c in batch], names=names))
        else:
            tracker.update_columns(batch)
    return tracker.types(), tracker.date_orders(), tracker.ambiguous()


@pytest.mark.parametrize("head_rows", [256, 1])
@PROPERTY_SETTINGS
@given(
    columns=text_columns(),
    cuts=st.lists(st.integers(0, 12), max_size=2),
    date_format=st.sampled_from([None, "dmy", "mdy"]),
)
def test_python_inference_decides_as_the_arrow_one(
    head_rows: int,
    columns: list[list[str | None]],
    cuts: list[int],
    date_format: DateOrder | None,
) -> None:
    original = infer._HEAD_ROWS
    infer._HEAD_ROWS = head_rows  # hypothesis and function-scoped fixtures do not mix
    try:
        arrow = _tracked(columns, cuts, date_format, arrow=True)
        python = _tracked(columns, cuts, date_format, arrow=False)
    finally:
        infer._HEAD_ROWS = original
    assert python == arrow


@pytest.mark.parametrize("value", ["ye\u017f", "fal\u017fe", "\u0131nf", "\u0130nf", "1\n"])
def test_unicode_case_folds_are_not_ascii_words(value: str) -> None:
    # PostgreSQL compares "yes", "inf"... in ASCII only: these are text, whichever way.
    tracker = TypeTracker()
    tracker.update_columns([[value]])
    assert tracker.types() == infer_pg_types(pa.table({"c": [value]})) == ["text"]


def _arrow_inference(values: pa.Array) -> str:
    """The inference a sample's typed-majority search uses (columns.py's)."""
    tracker = TypeTracker()
    tracker.update(pa.table({"v": values}))
    return "text" if tracker.date_orders()[0] is not None else tracker.types()[0]


@PROPERTY_SETTINGS
@given(st.lists(st.one_of(text_values, st.sampled_from(["NA", "null", "n/a"])), max_size=12))
def test_values_text_alone_have_no_typed_majority(values: list[str]) -> None:
    if is_text_alone(values):
        assert typed_majority(pa.array(values, pa.string()), _arrow_inference) is None


def test_a_value_with_a_type_of_its_own_is_not_text_alone() -> None:
    assert is_text_alone(["x", "", "NA", "2026-02-30", "1/2/2026"])
    assert not is_text_alone(["x", "1"])
    assert not is_text_alone(["x", "nan"])

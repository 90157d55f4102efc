"""Values the server surely refuses, found without it; and dates of either order."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgingest.schema.infer import TypeTracker
from pgingest.schema.validate import could_be_typed, invalid_values, text_by_nature, typed_majority


@pytest.mark.parametrize(
    ("pg_type", "values", "bad"),
    [
        ("integer", ["1", " -2 ", "+3", "abc", "", "1.5", "3000000000", None], [3, 4, 5, 6]),
        ("smallint", ["32767", "32768"], [1]),
        ("bigint", ["9223372036854775807", "x"], [1]),
        ("numeric(12,2)", ["1.5", "-2e3", "NaN", "1.2.3", "12,5"], [3, 4]),
        ("double precision", ["inf", "-Infinity", "1e308", "one"], [3]),
        ("boolean", ["t", "FALSE", "yes", "off", "maybe", "2"], [4, 5]),
        ("date", ["2026-02-28", "2026-02-30", "today", "abc", "Jan 5 2026"], [1, 3]),
        ("timestamp", ["2026-02-28 10:00", "2023-02-29T00:00:00"], [1]),
    ],
)
def test_invalid_values(pg_type, values, bad):
    mask = invalid_values(pa.array(values, pa.string()), pg_type)
    assert mask is not None
    assert [i for i, flag in enumerate(mask.to_pylist()) if flag] == bad


def test_types_without_a_check():
    assert invalid_values(pa.array(["x"]), "text") is None
    assert invalid_values(pa.array(["x"]), "uuid") is None


def test_text_by_nature_needs_half_the_values():
    table = pa.table({"code": ["A1", "B2", "3"], "n": ["1", "2", "oops"]})
    assert text_by_nature(table, {"code": "integer", "n": "integer"}) == {"code"}


@pytest.mark.parametrize(
    ("values", "fmt", "pg_type", "order", "ambiguous"),
    [
        (["31/12/2026", "01/02/2026"], None, "date", "dmy", []),
        (["12/31/2026", "1/2/2026"], None, "date", "mdy", []),
        (["01/02/2026", "03/04/2026"], None, "text", None, [0]),
        (["01/02/2026", "03/04/2026"], "mdy", "date", "mdy", []),
        (["31/02/2026"], None, "text", None, []),
        (["13/12/2026", "12/13/2026"], None, "text", None, []),
        (["31/12/2026 23:59:59", "01/01/2026"], None, "timestamp", "dmy", []),
    ],
)
def test_slash_dates(values, fmt, pg_type, order, ambiguous):
    tracker = TypeTracker(fmt)
    tracker.update(pa.table({"d": pa.array(values, pa.string())}))
    assert tracker.types() == [pg_type]
    assert tracker.date_orders() == [order]
    assert tracker.ambiguous() == ambiguous


WORDS = [
    "nan", "NaN", "inf", "+inf", "-Infinity", "infinity", "nan(12)", "nan(payload_x)", "-NAN(AAAA)",
    "epoch", "now", "today", "tomorrow", "yesterday", "allballs", "-infinity",
    "t", "true", "FALSE", "yes", "no", "on", "off", "y", "fals", "0x1F", "1_000",
]  # fmt: skip
SPACES = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\v", "\f", "\u00a0"])


@settings(max_examples=500, deadline=None)
@given(
    values=st.lists(
        st.one_of(
            st.builds(lambda a, w, b: a + w + b, SPACES, st.sampled_from(WORDS), SPACES),
            st.text(max_size=14),
            st.from_regex(r"\s*[+-]?(?i:nan)\([a-z_]{0,12}\)\s*", fullmatch=True),
            st.from_regex(r"[+-]?(?i:nan)\(\w{0,12}\)", fullmatch=True),
        ),
        min_size=1,
        max_size=20,
    ),
    server_version=st.sampled_from([None, 150000, 180000]),
)
def test_a_value_any_family_reads_could_be_typed(values, server_version):
    """The gate of the sample's majority rule: what a family reads is never left out."""
    array = pa.array(values, pa.string())
    could = could_be_typed(array).to_pylist()
    for family in ("double precision", "timestamptz", "boolean"):
        refused = invalid_values(array, family, server_version)
        assert refused is not None
        for value, fits, could_fit in zip(values, refused.to_pylist(), could, strict=True):
            assert could_fit or fits, (family, value)


def test_words_and_names_are_text_without_trying_the_families():
    names = pa.array(["Ada Lovelace", "Grace Hopper", "Edsger Dijkstra", "today"])
    assert could_be_typed(names).to_pylist() == [False, False, False, True]
    assert typed_majority(names, lambda _values: "date") is None

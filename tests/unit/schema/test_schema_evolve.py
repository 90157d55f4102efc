"""Evolution plans without a database: widening rules, policies, the operations planned."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.errors import SchemaDriftError, SchemaError, TypeConflictError
from pgingest.model import ColumnSpec
from pgingest.schema.evolution import (
    AddColumn,
    AlterType,
    Policy,
    apply_operations,
    canonical_type,
    plan_evolution,
    widened_type,
)


@pytest.mark.parametrize(
    ("current", "incoming", "expected"),
    [
        ("integer", "integer", "integer"),
        ("integer", "bigint", "bigint"),
        ("bigint", "integer", "bigint"),
        ("integer", "numeric", "numeric"),
        ("bigint", "numeric", "numeric"),
        ("integer", "double precision", "double precision"),
        ("smallint", "double precision", "double precision"),
        ("bigint", "double precision", "numeric"),
        ("numeric", "double precision", "numeric"),
        ("double precision", "numeric", "double precision"),
        ("double precision", "bigint", "double precision"),
        ("numeric(12,2)", "integer", "numeric(12,2)"),
        ("numeric(12,2)", "double precision", None),
        ("date", "timestamp", "timestamp"),
        ("date", "timestamptz", "timestamptz"),
        ("timestamp without time zone", "timestamptz", "timestamptz"),
        ("timestamp with time zone", "date", "timestamp with time zone"),
        ("integer", "text", "text"),
        ("boolean", "integer", None),
        ("uuid", "text", "text"),
        ("text", "integer", "text"),
        ("jsonb", "integer", None),
    ],
)
def test_widening_rules(current, incoming, expected):
    assert widened_type(current, incoming) == expected


def test_text_only_when_allowed():
    assert widened_type("integer", "text", allow_text=False) is None
    assert canonical_type("timestamp with time zone") == "timestamptz"
    assert canonical_type("NUMERIC( 12, 2 )") == "numeric(12,2)"


CHAIN = ["smallint", "integer", "bigint", "numeric", "real", "double precision"]
TIMES = ["date", "timestamp", "timestamptz"]


@given(st.lists(st.sampled_from(CHAIN), min_size=1, max_size=6))
def test_widening_numbers_is_order_free_and_never_narrows(types):
    result = types[0]
    for t in types[1:]:
        wider = widened_type(result, t)
        assert wider is not None
        assert widened_type(wider, result) == wider  # what it held, it still holds
        assert widened_type(wider, t) == wider
        result = wider


@given(st.lists(st.sampled_from(TIMES), min_size=1, max_size=5))
def test_temporal_widening_is_the_latest_of_the_chain(types):
    result = types[0]
    for t in types[1:]:
        result = widened_type(result, t) or "?"
    assert result == max(types, key=TIMES.index)


def cols(*pairs: str) -> list[ColumnSpec]:
    return [ColumnSpec(*p.split(":")) for p in pairs]


def test_plan_adds_widens_and_reports_missing():
    plan = plan_evolution(
        cols("id:integer", "v:integer", "old:text"),
        cols("v:double precision", "id:bigint", "new:text"),
        Policy(tolerant=True),
    )
    assert plan.operations == (
        AlterType("v", "integer", "double precision"),
        AlterType("id", "integer", "bigint"),
        AddColumn("new", "text"),
    )
    assert plan.missing == ("old",)
    after = apply_operations(cols("id:integer", "v:integer", "old:text"), plan.operations)
    assert [(c.name, c.pg_type) for c in after] == [
        ("id", "bigint"),
        ("v", "double precision"),
        ("old", "text"),
        ("new", "text"),
    ]


def test_policies_refuse_with_every_column_named():
    existing = cols("id:integer", "v:integer")
    with pytest.raises(SchemaDriftError, match=r"new column.s. a, b"):
        plan_evolution(
            existing,
            cols("id:integer", "v:integer", "a:text", "b:text"),
            Policy(on_new_column="fail"),
        )
    with pytest.raises(TypeConflictError, match=r"v integer -> double precision"):
        plan_evolution(
            existing, cols("id:integer", "v:double precision"), Policy(on_type_change="fail")
        )
    with pytest.raises(SchemaError, match=r"lacks column.s. v"):
        plan_evolution(existing, cols("id:integer"), Policy())
    ignored = plan_evolution(
        existing, cols("id:integer", "v:integer", "x:text"), Policy(on_new_column="ignore")
    )
    assert ignored.ignored == ("x",)
    assert ignored.is_empty


def test_declared_and_unknown_types_are_conflicts_not_changes():
    existing = cols("id:integer", "u:uuid")
    plan = plan_evolution(existing, cols("id:bigint", "u:integer"), Policy(fixed=frozenset({"id"})))
    assert plan.is_empty
    assert plan.conflicts == ("id", "u")
    text = plan_evolution(existing, cols("id:text", "u:text"), Policy(), text_ok=["id", "u"])
    assert text.operations == (AlterType("id", "integer", "text"), AlterType("u", "uuid", "text"))

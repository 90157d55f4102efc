"""Citus detection and its rules, as pure functions over the catalog's rows (no Citus here)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.errors import ConfigError
from pgingest.pg.citus import Distribution, check_key, check_replace, distribution

names = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


def test_no_row_is_a_plain_table():
    assert distribution(None) is None


@pytest.mark.parametrize("method", ["h", "r", "a"])
def test_a_partition_method_with_a_column_is_distributed(method):
    row = {"method": method, "model": "s", "column_name": "tenant_id"}
    assert distribution(row) == Distribution("distributed", "tenant_id")


def test_no_partition_method_is_a_reference_or_local_table():
    assert distribution({"method": "n", "model": "t", "column_name": None}) == Distribution(
        "reference"
    )
    assert distribution({"method": "n", "model": "s", "column_name": None}) == Distribution("local")


@pytest.mark.parametrize(
    "row", [{"method": "h", "model": "s", "column_name": None}, {"method": "x", "model": "s"}]
)
def test_a_row_citus_would_not_write_is_refused(row):
    with pytest.raises(ConfigError):
        distribution(row)


@given(
    column=names,
    key=st.lists(names, min_size=1, max_size=4, unique=True),
    mode=st.sampled_from(["upsert", "merge"]),
)
def test_a_key_must_hold_the_distribution_column(column, key, mode):
    found = Distribution("distributed", column)
    if column in key:
        check_key(found, key, "s.t", mode)
        return
    with pytest.raises(ConfigError) as refused:
        check_key(found, key, "s.t", mode)
    message = str(refused.value)
    assert f"distribution column {column}" in message
    assert f"must include {column}" in message
    assert f"--pk {','.join([column, *key])}" in message
    assert ("ON CONFLICT" if mode == "upsert" else "MERGE") in message


@given(key=st.lists(names, min_size=1, max_size=4, unique=True))
def test_plain_reference_and_local_tables_take_any_key(key):
    for found in (None, Distribution("reference"), Distribution("local")):
        check_key(found, key, "s.t", "upsert")


def test_replace_refuses_every_citus_table_and_no_plain_one():
    check_replace(None, "s.t")
    for found, what in (
        (Distribution("distributed", "tenant_id"), "distributed table (distribution column"),
        (Distribution("reference"), "reference table"),
        (Distribution("local"), "local table"),
    ):
        with pytest.raises(ConfigError, match=re.escape(f"refuses s.t: it is a Citus {what}")):
            check_replace(found, "s.t")

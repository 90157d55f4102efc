"""The check that refuses a value longer than a PostgreSQL field, found from Arrow offsets at
any depth of a nested column, naming the row it is in."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pgingest.errors import RowError
from pgingest.pipeline.write import shape

LONG = "x" * 101


@pytest.mark.parametrize(
    ("array", "row", "size"),
    [
        (pa.array(["a", LONG, "b"]), 1, 101),
        (pa.array([b"a", None, LONG.encode() * 2], pa.large_binary()), 2, 202),
        (pa.array([["a"], None, ["b", LONG]]), 2, 101),
        (pa.array([[["a"]], [["b"], [LONG]]]), 1, 101),
        (pa.array([["a", "b"], ["c", LONG]], pa.list_(pa.string(), 2)), 1, 101),
        (pa.array([[("k", "v")], [], [("k", LONG)]], pa.map_(pa.string(), pa.string())), 2, 101),
        (pa.array([{"a": "x", "b": "y"}, {"a": "x", "b": LONG}]), 1, 101),
        (pa.array(["a", LONG, "a"]).dictionary_encode(), 1, 101),
        (pa.array([LONG, "a", "b", LONG]).slice(1), 2, 101),  # a slice: its own rows
        (pa.array([[LONG], ["a"], [LONG]]).slice(1), 1, 101),
    ],
)
def test_the_first_long_value_is_found_with_its_row(array, row, size, monkeypatch):
    monkeypatch.setattr(shape, "MAX_FIELD_BYTES", 100)
    with pytest.raises(RowError) as caught:
        shape.check_field_size(array, "c", "f.parquet", 10)
    assert caught.value.line == 10 + row
    assert str(caught.value) == (
        f"f.parquet: line {10 + row}, column c: a value of {size:,} bytes is larger than a"
        " PostgreSQL field holds (1 GB)"
    )


def test_values_at_the_limit_pass_however_large_the_column(monkeypatch):
    monkeypatch.setattr(shape, "MAX_FIELD_BYTES", 100)
    column = pa.chunked_array([["x" * 100] * 50, ["y" * 100] * 5])
    shape.check_field_size(column, "c", "f.parquet", 1)
    with pytest.raises(RowError, match="line 54, column c"):
        shape.check_field_size(pa.chunked_array([["a"] * 50, ["b", "c", LONG]]), "c", "f", 2)

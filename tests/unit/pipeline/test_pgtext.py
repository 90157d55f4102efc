"""The text and JSON of Arrow values sent as text: cases a Parquet file cannot hold, and
sliced arrays (a batch is a slice of its file's columns)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from pgingest.pipeline.write.pgtext import NestedValueError, json_text, pg_text


def test_an_empty_struct_is_an_empty_object():
    # to_pylist refused it (ArrowInvalid)
    values = pa.StructArray.from_arrays([], fields=[], mask=pa.array([False, True]))
    assert json_text(values).to_pylist() == ["{}", None]


def test_slices_of_maps_and_lists_keep_their_own_rows():
    maps = pa.array([[("a", 1)], None, [("b", 2), ("c", 3)], []], pa.map_(pa.string(), pa.int8()))
    assert json_text(maps.slice(2)).to_pylist() == ['{"b": 2, "c": 3}', "{}"]
    lists = pa.array([[1], None, [2, None], []], pa.list_(pa.int64()))
    assert pg_text(lists.slice(1)).to_pylist() == [None, '{"2",NULL}', "{}"]
    nested = pa.array([[[1]], [[2], None]], pa.list_(pa.list_(pa.int64())))
    assert pg_text(nested.slice(1)).to_pylist() == ["[[2], null]"]


def test_years_arrow_cannot_write():
    # as PostgreSQL writes them: date '1970-01-01' - 719163, - 2440588, + 11967899
    days = pa.array([-719_163, -2_440_588, 11_967_899, None], pa.date32())
    assert pg_text(days).to_pylist() == ["0001-12-31 BC", "4714-11-24 BC", "34736-12-30", None]


def test_a_struct_naming_a_field_twice_is_refused():
    twice = pa.StructArray.from_arrays(
        [pa.array([1]), pa.array([2])],
        fields=[pa.field("a", pa.int64()), pa.field("a", pa.int64())],
    )
    with pytest.raises(NestedValueError, match="'a' twice") as caught:
        json_text(twice)
    assert caught.value.row is None

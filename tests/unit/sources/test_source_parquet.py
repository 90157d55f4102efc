"""Parquet reading: names, typed sample, bounded batches with row numbers."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pgingest.errors import SourceError
from pgingest.model import ArrowChunk
from pgingest.sources import Source, detect, open_source
from pgingest.sources.parquet import ParquetSource


def write_parquet(path: Path, table: pa.Table, **kwargs: int) -> Source:
    pq.write_table(table, path, **kwargs)
    return open_source(detect(str(path)))


def arrow_chunks(source: Source, **kwargs: Any) -> list[ArrowChunk]:
    chunks = list(source.chunks(**kwargs))
    assert all(isinstance(chunk, ArrowChunk) for chunk in chunks)
    return [chunk for chunk in chunks if isinstance(chunk, ArrowChunk)]


@pytest.fixture
def table() -> pa.Table:
    n = 1000
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "Name With Space": [f"name {i}" for i in range(n)],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=i % 300) for i in range(n)],
            "score": [i / 7 for i in range(n)],
        }
    )


def test_names_and_typed_sample(tmp_path: Path, table: pa.Table) -> None:
    source = write_parquet(tmp_path / "t.parquet", table)
    assert source.column_names() == ["id", "Name With Space", "day", "score"]
    sample = source.sample(max_rows=10)
    assert sample.schema == table.schema
    assert sample.num_rows == 10
    assert sample.column("id").to_pylist() == list(range(10))
    assert source.sample().num_rows == 1000
    assert source.sample(max_rows=0).num_rows == 0
    source.close()


def test_chunks_are_bounded_with_row_numbers(tmp_path: Path, table: pa.Table) -> None:
    source = write_parquet(tmp_path / "t.parquet", table, row_group_size=256)
    chunks = arrow_chunks(source, batch_rows=300)
    assert all(chunk.batch.num_rows <= 300 for chunk in chunks)
    assert sum(chunk.batch.num_rows for chunk in chunks) == 1000
    firsts = [chunk.first_line for chunk in chunks]
    expected = [1]
    for chunk in chunks[:-1]:
        expected.append(expected[-1] + chunk.batch.num_rows)
    assert firsts == expected
    ids = [i for chunk in chunks for i in chunk.batch.column("id").to_pylist()]
    assert ids == list(range(1000))
    source.close()


def test_wide_rows_get_smaller_batches(tmp_path: Path) -> None:
    wide = pa.table({"blob": [os.urandom(5_000).hex() for _ in range(200)]})
    source = write_parquet(tmp_path / "wide.parquet", wide, row_group_size=50)
    assert isinstance(source, ParquetSource)
    assert source.batch_size(50_000, 100_000) <= 10
    chunks = arrow_chunks(source, batch_rows=50_000, batch_bytes=100_000)
    assert max(chunk.batch.num_rows for chunk in chunks) <= 10
    assert sum(chunk.batch.num_rows for chunk in chunks) == 200
    source.close()


def test_batches_sliced_when_metadata_underestimates(tmp_path: Path) -> None:
    # one repeated value: dictionary encoding makes the stored size tiny, memory is not
    repeated = pa.table({"blob": ["x" * 10_000 for _ in range(200)]})
    source = write_parquet(tmp_path / "dict.parquet", repeated)
    chunks = arrow_chunks(source, batch_rows=50_000, batch_bytes=100_000)
    assert max(chunk.batch.nbytes for chunk in chunks) <= 100_000
    assert sum(chunk.batch.num_rows for chunk in chunks) == 200
    assert [chunk.first_line for chunk in chunks][:2] == [1, 1 + chunks[0].batch.num_rows]
    source.close()


def test_raw_flag_is_ignored(tmp_path: Path, table: pa.Table) -> None:
    source = write_parquet(tmp_path / "t.parquet", table)
    assert all(isinstance(chunk, ArrowChunk) for chunk in source.chunks(raw=True))
    source.close()


def test_empty_parquet(tmp_path: Path) -> None:
    empty = pa.table({"a": pa.array([], pa.int32()), "b": pa.array([], pa.string())})
    source = write_parquet(tmp_path / "empty.parquet", empty)
    assert source.column_names() == ["a", "b"]
    assert list(source.chunks()) == []
    sample = source.sample()
    assert sample.num_rows == 0
    assert sample.schema == empty.schema
    source.close()


def test_corrupt_data_pages(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"a": list(range(10_000))}), path, compression="none")
    data = bytearray(path.read_bytes())
    data[4:60] = b"\xff" * 56  # first page header broken, footer intact
    path.write_bytes(bytes(data))
    source = open_source(detect(str(path)))
    with pytest.raises(SourceError, match=r"bad\.parquet"):
        list(source.chunks())
    source.close()


def test_context_manager(tmp_path: Path, table: pa.Table) -> None:
    source = write_parquet(tmp_path / "t.parquet", table)
    assert isinstance(source, ParquetSource)
    with source as same:
        assert same.column_names()[0] == "id"


def test_a_batch_over_the_bound_is_sliced_into_even_pieces(tmp_path: Path) -> None:
    # Decoded a little over the bound: two pieces of half the rows each, not one of all
    # but a few rows and one of those few (a transaction of its own each).
    rows = pa.table({"n": pa.array(range(1000), pa.int64())})  # 8,000 bytes
    source = write_parquet(tmp_path / "even.parquet", rows)
    chunks = arrow_chunks(source, batch_rows=50_000, batch_bytes=7_900)
    assert [chunk.batch.num_rows for chunk in chunks] == [500, 500]
    source.close()

"""The first large workbook is opened ahead of the loader: taken once, or closed unused."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgingest.config import LoadOptions
from pgingest.errors import SourceError
from pgingest.pipeline.readahead import READ_AHEAD_MIN_BYTES, start_read_ahead
from workbooks import shared_big_xlsx, simple_xlsx


@pytest.fixture
def large() -> Path:
    path = shared_big_xlsx()
    assert path.stat().st_size >= READ_AHEAD_MIN_BYTES
    return path


def test_large_first_workbook_is_taken_once(large: Path) -> None:
    options = LoadOptions()
    ahead = start_read_ahead([str(large)], options)
    assert [t.path for t in ahead.targets] == [str(large)]
    assert ahead.wants(str(large), options)
    assert not ahead.wants(str(large), LoadOptions(sheet="2"))  # other options: not this one
    source = ahead.take(str(large), options)
    assert source is not None
    assert source.column_names() == ["id", "amount", "day", "label"]
    assert source.sample().num_rows == 50_000
    assert ahead.take(str(large), options) is None  # once
    source.close()


def test_unused_read_ahead_is_closed(large: Path) -> None:
    ahead = start_read_ahead([str(large)], LoadOptions())
    ahead.close()
    assert not ahead.wants(str(large), LoadOptions())


def test_small_files_and_dry_runs_are_not_read_ahead(large: Path, tmp_path: Path) -> None:
    small = simple_xlsx(tmp_path / "small.xlsx")
    assert not start_read_ahead([str(small)], LoadOptions()).wants(str(small), LoadOptions())
    dry = LoadOptions(dry_run=True)
    assert not start_read_ahead([str(large)], dry).wants(str(large), dry)


def test_read_ahead_error_is_raised_where_the_file_is_opened(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04" + b"\0" * READ_AHEAD_MIN_BYTES)
    ahead = start_read_ahead([str(bad)], LoadOptions())
    with pytest.raises(SourceError, match=r"bad\.xlsx"):
        ahead.take(str(bad), LoadOptions())

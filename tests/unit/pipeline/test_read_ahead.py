"""The first large file is hashed (and a workbook opened) ahead of the loader: taken once, or
abandoned unused."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pgingest.config import LoadOptions
from pgingest.errors import HashAbandonedError, SourceError
from pgingest.manifest.hashing import fingerprint
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


def big_csv(path: Path) -> Path:
    rows = "".join(f"{i},name{i}\n" for i in range(READ_AHEAD_MIN_BYTES // 10))
    path.write_text("id,name\n" + rows)
    assert path.stat().st_size >= READ_AHEAD_MIN_BYTES
    return path


def test_first_large_file_is_hashed_ahead_and_taken_once(tmp_path: Path) -> None:
    path = big_csv(tmp_path / "big.csv")
    ahead = start_read_ahead([str(path)], LoadOptions())
    hashing = ahead.take_hash(str(path), os.stat(path))
    assert hashing is not None
    assert asyncio.run(hashing.sha256()) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert hashing.ready() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert ahead.take_hash(str(path), os.stat(path)) is None  # once


def test_hash_ahead_of_a_file_changed_since_is_not_used(tmp_path: Path) -> None:
    path = big_csv(tmp_path / "big.csv")
    ahead = start_read_ahead([str(path)], LoadOptions())
    with path.open("a") as handle:
        handle.write("999999,late\n")
    assert ahead.take_hash(str(path), os.stat(path)) is None


def test_small_files_are_not_hashed_ahead(tmp_path: Path) -> None:
    path = tmp_path / "small.csv"
    path.write_text("id\n1\n")
    ahead = start_read_ahead([str(path)], LoadOptions())
    assert ahead.take_hash(str(path), os.stat(path)) is None


def test_abandoned_hash_stops_and_says_so(tmp_path: Path) -> None:
    path = big_csv(tmp_path / "big.csv")
    stop = threading.Event()
    stop.set()
    with pytest.raises(HashAbandonedError):
        fingerprint(str(path), stop)
    ahead = start_read_ahead([str(path)], LoadOptions())
    hashing = ahead.hash
    ahead.close()  # the file was skipped: nobody waits for its hash
    assert hashing is not None
    assert ahead.take_hash(str(path), os.stat(path)) is None
    with contextlib.suppress(HashAbandonedError):  # (it may have been done already)
        asyncio.run(hashing.sha256())  # returns or raises: the thread has ended


def test_what_runs_before_the_read_ahead_imports_neither_pyarrow_nor_numpy() -> None:
    # The command, the read-ahead and the workbook parse start while the loader's heavy
    # modules are still to be imported: importing them here would delay the parse and hash.
    code = (
        "import sys, pgingest.cli.app, pgingest.pipeline.readahead, pgingest.sources.workbook\n"
        "import pgingest.sources.detect, pgingest.manifest.hashing\n"
        "heavy = sorted(m for m in ('pyarrow', 'numpy', 'asyncpg', 'obstore')"
        " if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr

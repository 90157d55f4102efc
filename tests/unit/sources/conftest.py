"""Fixtures for the reader tests: write a file in tmp_path, then detect and open it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgingest.sources import CsvOptions, Source, detect, open_source


@pytest.fixture
def write(tmp_path: Path) -> Callable[..., str]:
    """Write bytes (or text, as UTF-8) to a file in tmp_path and return its path."""

    def _write(data: bytes | str, name: str = "data.csv") -> str:
        path = tmp_path / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    return _write


@pytest.fixture
def opened(write: Callable[..., str]) -> Iterator[Callable[..., Source]]:
    """Write a file, detect it and open it with the same CSV options; closed afterwards."""
    sources: list[Source] = []

    def _open(data: bytes | str, name: str = "data.csv", csv: CsvOptions | None = None) -> Source:
        options = csv if csv is not None else CsvOptions()
        source = open_source(detect(write(data, name), csv=options), options)
        sources.append(source)
        return source

    yield _open
    for source in sources:
        source.close()

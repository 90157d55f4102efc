"""Discover the files behind the given paths, folders and globs, and name their tables."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pgingest.schema.names import normalize_identifier

# Files a folder scan picks up (an explicitly named file is always taken, whatever its name).
DATA_SUFFIXES = {".csv", ".tsv", ".tab", ".txt", ".psv", ".dat", ".parquet", ".pq", ".parq"}
COMPRESSION_SUFFIXES = {".gz", ".gzip", ".bz2", ".xz", ".zst", ".zstd"}


@dataclass(frozen=True, slots=True)
class Discovered:
    """One input: a file to load, or a path that named nothing loadable."""

    path: str
    error: str | None = None


def _is_data_file(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in COMPRESSION_SUFFIXES:
        suffixes.pop()
    return bool(suffixes) and suffixes[-1] in DATA_SUFFIXES


def discover(paths: Iterable[str]) -> list[Discovered]:
    """Expand files, folders (recursively) and glob patterns into files, in a stable order.

    A folder contributes the data files under it (by suffix, hidden files skipped); a glob
    contributes every file it matches; a file named explicitly is always taken. A path that
    matches nothing is returned with an error, so the other inputs still load.

    Args:
        paths: what the user gave.

    Returns:
        The files, each once, in the order given (folders and globs sorted).
    """
    seen: set[str] = set()
    out: list[Discovered] = []

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(Discovered(str(p)))

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_file(p))
            if not found:
                out.append(Discovered(raw, f"{raw}: no data files in this folder"))
            for p in found:
                add(p)
        elif path.is_file():
            add(path)
        elif glob.has_magic(raw):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(raw), recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                out.append(Discovered(raw, f"{raw}: no file matches this pattern"))
            for p in files:
                add(p)
        else:
            out.append(Discovered(raw, f"{raw}: no such file or folder"))
    return out


def default_table_name(path: str) -> str:
    """The table a file loads into by default: its name without suffixes, normalized."""
    name = Path(path).name
    lowered = name.lower()
    for suffix in sorted(COMPRESSION_SUFFIXES, key=len, reverse=True):
        if lowered.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem = Path(name).stem or name
    return normalize_identifier(stem)

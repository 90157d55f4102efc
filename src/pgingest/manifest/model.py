"""Manifest value types: a file's fingerprint and its manifest entry."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Literal

ManifestStatus = Literal["pending", "running", "success", "failed", "reverted"]
RunStatus = Literal["running", "success", "failed", "interrupted"]

# Large reads let hashlib release the GIL and keep syscalls few.
_HASH_BLOCK = 8 << 20


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A file's identity for the manifest: content hash and size."""

    sha256: str
    size: int


def fingerprint(path: str) -> Fingerprint:
    """The sha256 and size of the file at ``path`` (its bytes as stored, compressed or not)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return Fingerprint(digest.hexdigest(), size)


def stat_key(path: str) -> tuple[int, int, int]:
    """(size, mtime in ns, inode): unchanged when the file was not touched."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One row of ``pgingest.files``."""

    id: int
    path: str
    sha256: str
    size: int
    table_schema: str
    table_name: str
    status: ManifestStatus
    rows: int
    run_id: int | None
    error: str | None = None

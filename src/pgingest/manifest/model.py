"""Manifest value types: a file's manifest entry and the statuses of files and runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ManifestStatus = Literal["pending", "running", "success", "failed", "reverted"]
RunStatus = Literal["running", "success", "failed", "interrupted"]


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

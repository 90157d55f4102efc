"""A file's plan: what of it loads into which table and columns, with which types, and (upsert,
merge) where its staged batches go. Made by the prepare and evolve stages; a stage that learns
something new makes a new plan (:func:`dataclasses.replace`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from pgingest.model import SourceInfo, TableSpec
from pgingest.pg import merge


@dataclass(slots=True)
class FilePlan:
    """What will happen to one file."""

    info: SourceInfo
    table: TableSpec
    create: bool
    columns: list[str]
    """The file's columns that are loaded, in file order."""
    target_types: list[str]
    """Their types in the table (updated when the table widens during the load)."""
    read_columns: list[str] | None = None
    """All the file's columns, when some are left out (``--on-new-column ignore``)."""
    fixed: frozenset[str] = frozenset()
    """Columns with declared types (never widened)."""
    changes: list[str] = field(default_factory=list)
    """Schema changes this file caused."""
    datestyle: str | None = None
    """``DateStyle`` the server reads the file's dates with (``ISO, DMY``), if not the default."""
    target: merge.Target | None = None
    """upsert/merge: where the staged batches go, and how."""
    routes: int = 1
    """upsert/merge: workers the rows are routed to by key."""
    seen: str | None = None
    """merge --delete-missing: the file's key table."""
    warnings: list[str] = field(default_factory=list)
    """What planning and loading decided that the user should know (for the file's result)."""
    marker_columns: set[str] = field(default_factory=set)
    """Typed columns whose missing-value markers (``NA``, ``NULL``...) load as NULL: their
    batches are read client-side before COPY (found in the sample, or in a refused batch)."""

    def warn(self, text: str) -> None:
        """Note a warning once (batch workers call it from their threads)."""
        with _WARNINGS_LOCK:
            if text not in self.warnings:
                self.warnings.append(text)


_WARNINGS_LOCK = threading.Lock()

"""A file's plan: what of it loads into which table and columns, with which types, and (upsert,
merge) where its staged batches go. Made by the prepare and evolve stages; a plan is a value:
a stage that learns something new (the keyed plan, a wider column found while writing) makes a
new one, and :class:`LivePlan` holds the current plan of a file being written."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from pgingest.model import SourceInfo, TableSpec
from pgingest.pg import merge


class Notes:
    """What planning and loading decided that the user should know (for the file's result),
    each noted once; batch workers note from their threads. Shared by every version of a
    file's plan: it is the file's account, not part of the plan."""

    def __init__(self, notes: Iterable[str] = ()) -> None:
        self._items: list[str] = []
        self._lock = threading.Lock()
        for note in notes:
            self.add(note)

    def add(self, text: str) -> None:
        """Note ``text`` unless it is noted already."""
        with self._lock:
            if text not in self._items:
                self._items.append(text)

    def items(self) -> list[str]:
        """The notes so far, in order."""
        with self._lock:
            return list(self._items)


@dataclass(frozen=True, slots=True)
class FilePlan:
    """What will happen to one file."""

    info: SourceInfo
    table: TableSpec
    create: bool
    columns: tuple[str, ...]
    """The file's columns that are loaded, in file order."""
    target_types: tuple[str, ...]
    """Their types in the table."""
    read_columns: tuple[str, ...] | None = None
    """All the file's columns, when some are left out (``--on-new-column ignore``)."""
    fixed: frozenset[str] = frozenset()
    """Columns with declared types (never widened)."""
    changes: tuple[str, ...] = ()
    """Schema changes this file caused."""
    datestyle: str | None = None
    """``DateStyle`` the server reads the file's dates with (``ISO, DMY``), if not the default."""
    target: merge.Target | None = None
    """upsert/merge: where the staged batches go, and how."""
    routes: int = 1
    """upsert/merge: workers the rows are routed to by key."""
    seen: str | None = None
    """merge --delete-missing: the file's key table."""
    notes: Notes = field(default_factory=Notes)
    """What planning and loading decided that the user should know."""
    marker_columns: frozenset[str] = frozenset()
    """Typed columns whose missing-value markers (``NA``, ``NULL``...) load as NULL: their
    batches are read client-side before COPY (found in the sample, or in a refused batch)."""

    @property
    def warnings(self) -> list[str]:
        """The notes so far (for the file's result)."""
        return self.notes.items()

    def warn(self, text: str) -> None:
        """Note a warning once (batch workers call it from their threads)."""
        self.notes.add(text)


class LivePlan:
    """The plan of a file while its batches are written. What is learned meanwhile (a column
    widened for a value, a column of missing-value markers) puts a new plan in place of the
    current one; each batch is read and encoded with the plan current then."""

    def __init__(self, plan: FilePlan) -> None:
        self.current = plan

    def learn(self, **changes: Any) -> FilePlan:
        """Make the current plan a new one with ``changes`` (fields of :class:`FilePlan`)."""
        self.current = replace(self.current, **changes)
        return self.current

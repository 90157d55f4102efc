"""The Reporter protocol through which a load tells what it does, and the silent default."""

from __future__ import annotations

from typing import Protocol

from pgingest.model import FileResult


class Reporter(Protocol):
    """Receives progress events; the CLI renders them, the library default ignores them."""

    def run_started(self, run_id: int) -> None:
        """The manifest recorded a new run."""

    def file_started(self, path: str, table: str) -> None:
        """A file starts loading into ``table``."""

    def batch_done(self, path: str, rows: int) -> None:
        """A batch of ``rows`` rows of ``path`` is committed."""

    def file_done(self, result: FileResult) -> None:
        """A file finished: loaded, skipped or failed."""

    def message(self, text: str) -> None:
        """A note for the user (a warning, a plan)."""


class NullReporter:
    """A reporter that says nothing."""

    def run_started(self, run_id: int) -> None:
        """Ignore."""

    def file_started(self, path: str, table: str) -> None:
        """Ignore."""

    def batch_done(self, path: str, rows: int) -> None:
        """Ignore."""

    def file_done(self, result: FileResult) -> None:
        """Ignore."""

    def message(self, text: str) -> None:
        """Ignore."""

"""The Reporter protocol through which a load tells what it does, its events, and the silent
default. Renderers (plain lines, progress bars), JSON logs and metrics are all reporters; the
pipeline emits each event once and :class:`FanOut` hands it to every one of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pgingest.model import FileResult, LoadReport


@dataclass(frozen=True, slots=True)
class FileStarted:
    """A file starts loading (after its claim in the manifest and its table plan)."""

    path: str
    table: str
    format: str
    size: int
    """Bytes of the file as stored (the progress bar's total when ``rows`` is unknown)."""
    rows: int | None = None
    """Rows in the file when its format says so before reading (Parquet's metadata): then
    the file's progress counts rows against it, not bytes."""


@dataclass(frozen=True, slots=True)
class FilesFound:
    """What the run is about to load: the files discovered (one per sheet of a workbook)."""

    files: int
    nbytes: int
    """Their bytes as stored, summed: the whole run's progress total."""
    sizes: tuple[tuple[str, int], ...] = ()
    """Each file's path and bytes, in the order found."""


@dataclass(frozen=True, slots=True)
class BatchDone:
    """A batch is committed: its rows and the manifest's record of it, in one transaction."""

    path: str
    table: str
    format: str
    batch: int
    """0-based index of the batch in the file."""
    rows: int
    nbytes: int
    """Input bytes the batch covers (an estimate for compressed or binary inputs)."""
    latency: float
    """Seconds from the batch's transaction start to its commit."""
    first_line: int


@dataclass(frozen=True, slots=True)
class Retry:
    """A transient error: the batch (or connection) is tried again after ``delay`` seconds."""

    path: str
    table: str
    batch: int | None
    """The batch index, ``None`` for connecting."""
    attempt: int
    """1 for the first retry."""
    delay: float
    error_class: str
    error: str


@dataclass(frozen=True, slots=True)
class DbError:
    """A database error, retried or not, classified (``connection``, ``admin_shutdown``,
    ``unique_violation``, ``data`` ...)."""

    error_class: str
    path: str | None = None


class Reporter(Protocol):
    """Receives progress events; the CLI renders them, the library default ignores them."""

    def run_started(self, run_id: int) -> None:
        """The manifest recorded a new run."""

    def files_found(self, event: FilesFound) -> None:
        """The files to load are known (before the first one starts)."""

    def file_started(self, event: FileStarted) -> None:
        """A file starts loading."""

    def batch_done(self, event: BatchDone) -> None:
        """A batch is committed."""

    def retry(self, event: Retry) -> None:
        """A transient error is retried."""

    def db_error(self, event: DbError) -> None:
        """A database error happened (retried or not)."""

    def file_done(self, result: FileResult) -> None:
        """A file finished: loaded, skipped or failed."""

    def run_done(self, report: LoadReport) -> None:
        """The run is over (its summary and stage timings are in ``report``)."""

    def message(self, text: str) -> None:
        """A note for the user (a warning, a plan)."""


class NullReporter:
    """A reporter that says nothing."""

    def run_started(self, run_id: int) -> None:
        """Ignore."""

    def files_found(self, event: FilesFound) -> None:
        """Ignore."""

    def file_started(self, event: FileStarted) -> None:
        """Ignore."""

    def batch_done(self, event: BatchDone) -> None:
        """Ignore."""

    def retry(self, event: Retry) -> None:
        """Ignore."""

    def db_error(self, event: DbError) -> None:
        """Ignore."""

    def file_done(self, result: FileResult) -> None:
        """Ignore."""

    def run_done(self, report: LoadReport) -> None:
        """Ignore."""

    def message(self, text: str) -> None:
        """Ignore."""


class FanOut:
    """Hands every event to each of several reporters, in order."""

    def __init__(self, reporters: Sequence[Reporter]) -> None:
        """Wrap ``reporters``."""
        self.reporters = list(reporters)

    def run_started(self, run_id: int) -> None:
        """Forward."""
        for r in self.reporters:
            r.run_started(run_id)

    def files_found(self, event: FilesFound) -> None:
        """Forward."""
        for r in self.reporters:
            r.files_found(event)

    def file_started(self, event: FileStarted) -> None:
        """Forward."""
        for r in self.reporters:
            r.file_started(event)

    def batch_done(self, event: BatchDone) -> None:
        """Forward."""
        for r in self.reporters:
            r.batch_done(event)

    def retry(self, event: Retry) -> None:
        """Forward."""
        for r in self.reporters:
            r.retry(event)

    def db_error(self, event: DbError) -> None:
        """Forward."""
        for r in self.reporters:
            r.db_error(event)

    def file_done(self, result: FileResult) -> None:
        """Forward."""
        for r in self.reporters:
            r.file_done(result)

    def run_done(self, report: LoadReport) -> None:
        """Forward."""
        for r in self.reporters:
            r.run_done(report)

    def message(self, text: str) -> None:
        """Forward."""
        for r in self.reporters:
            r.message(text)

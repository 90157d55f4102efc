"""Progress bars on a terminal (rich): one per file being loaded and one for the whole run.

Used only when stdout is a terminal and neither ``--no-progress`` nor ``-q`` is given;
otherwise :class:`~pgingest.cli.render.LineReporter` prints plain lines. The finished-file
lines and messages are printed above the bars, so the terminal keeps the same record.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from pgingest.cli.render import LineReporter
from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import BatchDone, DbError, FileStarted, Retry


class _ConsoleWriter:
    """A text stream that prints through the console, above its live bars."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def write(self, text: str) -> int:
        self.console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Nothing buffered."""


class BarReporter(LineReporter):
    """Rich progress bars plus the plain reporter's lines, printed above the bars."""

    def __init__(self, files: int | None = None, console: Console | None = None) -> None:
        """Bars on ``console`` (default: stdout); ``files`` is the run's total, when known."""
        self.console = console or Console()
        writer: Any = _ConsoleWriter(self.console)
        super().__init__(out=writer, err=writer)
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TextColumn("{task.fields[rows]:>12,} rows  {task.fields[rate]:>10}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self._files: dict[str, TaskID] = {}
        self._started: dict[str, float] = {}
        self._rows = 0
        self._done = 0
        self._total = self.progress.add_task("all files", total=files, rows=0, rate="", start=True)
        self._open = False

    def _ensure_started(self) -> None:
        if not self._open:
            self.progress.start()
            self._open = True

    def run_started(self, run_id: int) -> None:
        """Show the bars."""
        super().run_started(run_id)
        self._ensure_started()

    def file_started(self, event: FileStarted) -> None:
        """A bar for the file, sized by its bytes."""
        self._ensure_started()
        name = event.path if len(event.path) <= 40 else "…" + event.path[-39:]
        self._files[event.path] = self.progress.add_task(
            name, total=event.size or None, rows=0, rate=""
        )
        self._started[event.path] = self.progress.get_time()

    def batch_done(self, event: BatchDone) -> None:
        """Advance the file's bar and the run's row count."""
        task = self._files.get(event.path)
        self._rows += event.rows
        if task is not None:
            current = self.progress.tasks[self._index(task)]
            rows = int(current.fields.get("rows", 0)) + event.rows
            elapsed = max(1e-6, self.progress.get_time() - self._started[event.path])
            self.progress.update(
                task, advance=event.nbytes, rows=rows, rate=f"{rows / elapsed:,.0f}/s"
            )
        self.progress.update(self._total, rows=self._rows)

    def _index(self, task: TaskID) -> int:
        for i, t in enumerate(self.progress.tasks):
            if t.id == task:
                return i
        raise KeyError(task)

    def retry(self, event: Retry) -> None:
        """The plain reporter's line, above the bars."""
        super().retry(event)

    def db_error(self, event: DbError) -> None:
        """Nothing to show."""

    def file_done(self, result: FileResult) -> None:
        """Remove the file's bar, print its line, advance the run's bar."""
        task = self._files.pop(result.path, None)
        self._started.pop(result.path, None)
        if task is not None:
            self.progress.remove_task(task)
        self._done += 1
        self.progress.update(
            self._total, completed=self._done, description=f"{self._done} file(s) done"
        )
        super().file_done(result)

    def run_done(self, report: LoadReport) -> None:
        """Take the bars away."""
        if self._open:
            self.progress.stop()
            self._open = False

    def message(self, text: str) -> None:
        """Print above the bars."""
        super().message(text)

    def __enter__(self) -> BarReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._open:
            self.progress.stop()
            self._open = False

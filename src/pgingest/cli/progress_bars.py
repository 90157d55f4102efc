"""Progress bars on a terminal (rich): one per file being loaded and one for the whole run.

Used only when the output is a terminal and neither ``--no-progress`` nor ``-q`` is given;
otherwise :class:`~pgingest.cli.render.LineReporter` prints plain lines. The run's bar counts
the bytes of the files found, and moves as each file does (a skipped or failed file counts as
done). A file's bar counts one unit against a total of that unit: rows when the format knows
the file's rows before reading (Parquet), else the bytes of the file read so far. A finished
file prints one whole line above the bars; the bars are gone when the run ends.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.filesize import pick_unit_and_suffix
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pgingest.cli.render import LineReporter
from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import BatchDone, DbError, FilesFound, FileStarted, Retry

NAME_WIDTH = 40
"""Characters of a file's path shown before its bar (the path's end, where names differ)."""


def amount(done: float, total: float | None, unit: str) -> str:
    """``12.3/45.6 MB`` for bytes (one unit for both, the total's), ``1,200/2,000 rows`` for
    rows; ``?`` for an unknown total."""
    if unit == "rows":
        return f"{int(done):,}/{'?' if total is None else f'{int(total):,}'} rows"
    scale, suffix = pick_unit_and_suffix(
        int(total if total is not None else done), ["bytes", "kB", "MB", "GB", "TB", "PB"], 1000
    )
    digits = 0 if scale == 1 else 1
    shown = "?" if total is None else f"{total / scale:,.{digits}f}"
    return f"{done / scale:,.{digits}f}/{shown} {suffix}"


class _AmountColumn(ProgressColumn):
    """Done and total in the task's own unit (its ``unit`` field)."""

    def render(self, task: Task) -> Text:
        return Text(amount(task.completed, task.total, str(task.fields.get("unit", "bytes"))))


class _ConsoleWriter:
    """A text stream that prints through the console, above its live bars, one whole line at
    a time: a line printed in pieces would have the bars redrawn inside it."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._pending = ""

    def write(self, text: str) -> int:
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self.console.print(lines, markup=False, highlight=False, soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        """Lines are printed when whole; a partial line waits for its end."""


class BarReporter(LineReporter):
    """Rich progress bars plus the plain reporter's lines, printed above the bars."""

    def __init__(self, console: Console | None = None) -> None:
        """Bars on ``console`` (default: stdout)."""
        self.console = console or Console()
        writer: Any = _ConsoleWriter(self.console)
        super().__init__(out=writer, err=writer)
        self.progress = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            _AmountColumn(),
            TextColumn("{task.fields[info]}", markup=False),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        # Files being loaded, by path and table (a workbook's sheets share the path).
        self._files: dict[tuple[str, str], TaskID] = {}
        self._started: dict[tuple[str, str], float] = {}
        self._rows: dict[tuple[str, str], int] = {}
        self._done: dict[tuple[str, str], tuple[float, float | None, str]] = {}
        """Per file being loaded: its bar's progress, total and unit."""
        self._share: dict[tuple[str, str], float] = {}
        """Per file being loaded: the bytes of the run's total its progress stands for now."""
        self._sizes: dict[str, int] = {}
        """Bytes per path found (a sheet of a workbook counts its file's bytes: so does the
        total)."""
        self._found = 0
        self._found_bytes: int | None = None
        self._finished_bytes = 0
        self._finished = 0
        self._total_rows = 0
        self._total = self.progress.add_task(
            "all files", total=None, info="", unit="bytes", start=True
        )
        self._open = False

    def _ensure_started(self) -> None:
        if not self._open:
            self.progress.start()
            self._open = True

    def run_started(self, run_id: int) -> None:
        """Show the bars."""
        super().run_started(run_id)
        self._ensure_started()

    def files_found(self, event: FilesFound) -> None:
        """The run's bar gets its total: the bytes of the files found."""
        self._ensure_started()
        self._found = event.files
        self._sizes = dict(event.sizes)
        self._found_bytes = max(1, event.nbytes)
        self.progress.update(self._total, total=self._found_bytes)
        self._update_total()

    def _update_total(self) -> None:
        done = self._finished_bytes + sum(self._share.values())
        if self._found_bytes is not None:
            done = min(done, self._found_bytes)  # a file not found at the start (never)
            if self._found and self._finished >= self._found:
                done = self._found_bytes  # every file done (also when all were empty)
        found = f"/{self._found}" if self._found else ""
        self.progress.update(
            self._total,
            completed=done,
            info=f"{self._finished}{found} files  {self._total_rows:,} rows",
        )

    def file_started(self, event: FileStarted) -> None:
        """A bar for the file: rows against its row count when known, else bytes."""
        self._ensure_started()
        key = (event.path, event.table)
        name = event.path
        if len(name) > NAME_WIDTH:
            name = "…" + name[-(NAME_WIDTH - 1) :]
        unit, total = ("rows", event.rows) if event.rows else ("bytes", event.size or None)
        self._files[key] = self.progress.add_task(name, total=total, info="", unit=unit)
        self._sizes.setdefault(event.path, event.size)
        self._started[key] = self.progress.get_time()
        self._rows[key] = 0
        self._done[key] = (0.0, total, unit)
        self._share[key] = 0.0

    def batch_done(self, event: BatchDone) -> None:
        """Advance the file's bar (never past its total) and the run's."""
        self._total_rows += event.rows
        key = (event.path, event.table)
        task_id = self._files.get(key)
        if task_id is not None:
            rows = self._rows[key] + event.rows
            self._rows[key] = rows
            completed, total, unit = self._done[key]
            completed += event.rows if unit == "rows" else event.nbytes
            if total is not None:
                completed = min(completed, total)
                self._share[key] = self._sizes.get(event.path, 0) * completed / total
            self._done[key] = (completed, total, unit)
            elapsed = max(1e-6, self.progress.get_time() - self._started[key])
            info = f"{rows / elapsed:,.0f} rows/s"
            if unit != "rows":
                info = f"{rows:,} rows  {info}"
            self.progress.update(task_id, completed=completed, info=info)
        self._update_total()

    def retry(self, event: Retry) -> None:
        """The plain reporter's line, above the bars."""
        super().retry(event)

    def db_error(self, event: DbError) -> None:
        """Nothing to show."""

    def file_done(self, result: FileResult) -> None:
        """Remove the file's bar, print its line, count it whole in the run's bar."""
        key = (result.path, result.table)
        task = self._files.pop(key, None)
        self._started.pop(key, None)
        self._rows.pop(key, None)
        self._done.pop(key, None)
        self._share.pop(key, None)
        if task is not None:
            self.progress.remove_task(task)
        self._finished += 1
        self._finished_bytes += self._sizes.get(result.path, 0)
        self._update_total()
        super().file_done(result)

    def run_done(self, report: LoadReport) -> None:
        """Take the bars away."""
        self.close()

    def message(self, text: str) -> None:
        """Print above the bars."""
        super().message(text)

    def close(self) -> None:
        """Take the bars away (what was printed above them stays)."""
        if self._open:
            self.progress.stop()
            self._open = False

    def __enter__(self) -> BarReporter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

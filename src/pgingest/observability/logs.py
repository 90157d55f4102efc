"""Logs: text or JSON lines, and the reporter that writes one line per batch and per file.

JSON lines carry ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``message`` and, when they
apply, ``file``, ``table``, ``batch``, ``rows``, ``latency_ms``, ``status`` and ``error``;
every line carries ``run_id`` (``null`` before the run is recorded, e.g. while connecting).
Every message passes through :func:`pgingest.config.redact_dsn`, so a DSN's password cannot
reach a log however it got into a message.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys
from typing import Any, Literal, TextIO

from pgingest.config import redact_dsn
from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import BatchDone, DbError, FilesFound, FileStarted, Retry

LogFormat = Literal["text", "json"]
FIELDS = ("run_id", "file", "table", "batch", "rows", "latency_ms", "status", "error")
"""The structured fields a log line may carry (passed through ``extra``)."""

log = logging.getLogger("pgingest.load")

_RUN_ID: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "pgingest_run_id", default=None
)


def bind_run(run_id: int | None) -> None:
    """Stamp every log line of the current task (and the tasks it starts) with ``run_id``."""
    _RUN_ID.set(run_id)


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact_dsn(record.getMessage()),
        }
        line["run_id"] = getattr(record, "run_id", None) or _RUN_ID.get()
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = redact_dsn(value) if isinstance(value, str) else value
        if record.exc_info:
            line["traceback"] = redact_dsn(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``LEVEL logger: message`` with the password of any DSN in it redacted."""

    def __init__(self) -> None:
        """Use the plain layout."""
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of text."""
        return redact_dsn(super().format(record))


def configure(
    fmt: LogFormat = "text",
    level: int = logging.WARNING,
    path: str | None = None,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send pgingest's logs to ``path`` (appended) or ``stream`` (default stderr).

    Args:
        fmt: ``text`` or ``json`` lines.
        level: the least level written (``logging.DEBUG`` adds one line per batch).
        path: a log file; ``None`` for the stream.
        stream: where to write without ``path``.

    Returns:
        The handler installed on the ``pgingest`` logger (replacing an earlier one of ours).
    """
    handler: logging.Handler
    if path is not None:
        handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("pgingest")
    root = logging.getLogger("pgingest")
    for old in list(root.handlers):
        if old.get_name() == "pgingest":
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False
    return handler


def release(handler: logging.Handler) -> None:
    """Undo :func:`configure`: remove and close ``handler`` and let pgingest's records reach the
    root logger again, so a process that goes on after a command (a test, a notebook) does not
    write to a stream that command has closed."""
    root = logging.getLogger("pgingest")
    if handler in root.handlers:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(logging.NOTSET)
        root.propagate = True


class LogReporter:
    """Logs the load's events: batches at DEBUG, files and the run at INFO, retries at
    WARNING. Cheap when DEBUG is off: a batch costs one level check."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        """Log to ``logger`` (default ``pgingest.load``)."""
        self.log = logger or log
        self.run_id: int | None = None

    def run_started(self, run_id: int) -> None:
        """Remember the run id for every later line."""
        self.run_id = run_id
        self.log.info("run %s started", run_id, extra={"run_id": run_id, "status": "started"})

    def files_found(self, event: FilesFound) -> None:
        """Nothing to log: each file's start and end are."""

    def file_started(self, event: FileStarted) -> None:
        """A DEBUG line."""
        if self.log.isEnabledFor(logging.DEBUG):
            self.log.debug(
                "%s: loading into %s (%s, %d bytes)",
                event.path,
                event.table,
                event.format,
                event.size,
                extra={
                    "run_id": self.run_id,
                    "file": event.path,
                    "table": event.table,
                    "status": "started",
                },
            )

    def batch_done(self, event: BatchDone) -> None:
        """One DEBUG line per committed batch."""
        if self.log.isEnabledFor(logging.DEBUG):
            latency_ms = round(event.latency * 1000, 1)
            self.log.debug(
                "%s: batch %d committed, %d rows in %.1f ms",
                event.path,
                event.batch,
                event.rows,
                latency_ms,
                extra={
                    "run_id": self.run_id,
                    "file": event.path,
                    "table": event.table,
                    "batch": event.batch,
                    "rows": event.rows,
                    "latency_ms": latency_ms,
                    "status": "committed",
                },
            )

    def retry(self, event: Retry) -> None:
        """A WARNING line per retry."""
        where = f" batch {event.batch}" if event.batch is not None else ""
        self.log.warning(
            "%s%s: %s, retry %d in %.1f s: %s",
            event.path or "connecting",
            where,
            event.error_class,
            event.attempt,
            event.delay,
            event.error,
            extra={
                "run_id": self.run_id,
                "file": event.path or None,
                "table": event.table or None,
                "batch": event.batch,
                "status": "retrying",
                "error": event.error,
            },
        )

    def db_error(self, event: DbError) -> None:
        """Retries and failed files say it; nothing more here."""

    def file_done(self, result: FileResult) -> None:
        """One INFO line per file (WARNING when it failed)."""
        level = logging.WARNING if result.status == "failed" else logging.INFO
        text = {
            "loaded": f"{result.rows} rows in {result.seconds:.2f} s"
            + (f" ({result.message})" if result.message else ""),
            "failed": result.error or "failed",
        }.get(result.status, result.message or result.status)
        self.log.log(
            level,
            "%s: %s: %s",
            result.path,
            result.status,
            text,
            extra={
                "run_id": self.run_id,
                "file": result.path,
                "table": result.table or None,
                "rows": result.rows,
                "latency_ms": round(result.seconds * 1000, 1),
                "status": result.status,
                "error": result.error,
            },
        )
        for warning in result.warnings:
            self.log.warning(
                "%s: %s",
                result.path,
                warning,
                extra={"run_id": self.run_id, "file": result.path, "table": result.table or None},
            )

    def run_done(self, report: LoadReport) -> None:
        """The summary at INFO, with the seconds per stage."""
        stages = ", ".join(f"{k} {v:.2f} s" for k, v in report.stages.items())
        self.log.info(
            "run %s done: %d file(s), %d rows in %.2f s, %d failed, %d retries; stages: %s",
            report.run_id,
            len(report.files),
            report.rows,
            report.seconds,
            len(report.failed),
            report.retries,
            stages or "-",
            extra={
                "run_id": report.run_id,
                "rows": report.rows,
                "latency_ms": round(report.seconds * 1000, 1),
                "status": "failed" if report.failed else "success",
            },
        )

    def message(self, text: str) -> None:
        """Notes at INFO."""
        self.log.info("%s", text, extra={"run_id": self.run_id})

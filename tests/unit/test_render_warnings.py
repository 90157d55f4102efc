"""A file's warnings reach the person (stderr, under --quiet too) and the JSON log."""

from __future__ import annotations

import io
import json
import logging

from pgingest.cli.render import LineReporter
from pgingest.model import FileResult
from pgingest.observability.logs import JsonFormatter, LogReporter


def _result() -> FileResult:
    result = FileResult("/d/a.csv", "public.a", "loaded", rows=3)
    result.warnings.append("read as cp1252: the file is not UTF-8")
    return result


def test_warnings_print_on_stderr_even_when_quiet() -> None:
    out, err = io.StringIO(), io.StringIO()
    LineReporter(out, err, quiet=True).file_done(_result())
    assert out.getvalue() == ""
    assert err.getvalue() == "  warning: /d/a.csv: read as cp1252: the file is not UTF-8\n"


def test_warnings_are_logged_at_warning_level() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pgingest.test_render_warnings")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        reporter = LogReporter(logger)
        reporter.run_started(7)
        reporter.file_done(_result())
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    warning = [line for line in lines if line["level"] == "warning"]
    assert len(warning) == 1
    assert warning[0]["run_id"] == 7
    assert "cp1252" in warning[0]["message"]

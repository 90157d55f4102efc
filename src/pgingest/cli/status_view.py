"""``pgingest status`` on a terminal: rich tables of the runs (local start time and how long
ago, duration, files, rows, rows/s, status), the failed files first with the command that
retries them, the tables (rows loaded and rows now), schema changes and rejects per file.
Off a terminal the plain text of :func:`pgingest.cli.render.render_status` is printed."""

from __future__ import annotations

import shlex
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from pgingest.cli.render import loader, without_path
from pgingest.config import redact_dsn

STATUS_STYLE = {
    "success": "green",
    "failed": "bold red",
    "interrupted": "bold yellow",
    "running": "cyan",
}


def parse_time(value: Any) -> datetime | None:
    """A timestamp of the status data (ISO text or a datetime), aware; ``None`` for none."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ago(moment: datetime, now: datetime) -> str:
    """``just now``, ``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago``."""
    seconds = max(0.0, (now - moment).total_seconds())
    if seconds < 1:
        return "just now"
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min ago"
    if seconds < 86400:
        return f"{seconds // 3600:.0f} h ago"
    return f"{seconds // 86400:.0f} d ago"


def local_time(moment: datetime | None, now: datetime) -> str:
    """``2026-12-04 09:12:17 (5 min ago)`` in the machine's time zone, no microseconds."""
    if moment is None:
        return ""
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S} ({ago(moment, now)})"


def duration(seconds: float | None) -> str:
    """``0.84 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``; empty when unknown."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def rate(rows: int, seconds: float | None) -> str:
    """Rows per second, ``12,345``; empty when there is nothing to divide."""
    return f"{rows / seconds:,.0f}" if seconds and rows else ""


def _table(title: str, *columns: str, right: tuple[str, ...] = (), **options: Any) -> Table:
    """A titled table of ``columns`` (those in ``right`` aligned right), long cells folded."""
    table = Table(title=title, title_justify="left", **options)
    for name in columns:
        table.add_column(name, justify="right" if name in right else "left", overflow="fold")
    return table


def retry_command(run_id: Any, dsn: str | None) -> str:
    """The command that loads a run's failed files again, with the run's options (its
    password masked)."""
    command = f"pgingest resume {run_id}"
    if dsn:
        command += f" --dsn {shlex.quote(redact_dsn(dsn))}"
    return command


def _runs(runs: list[dict[str, Any]], now: datetime) -> Table:
    table = _table(
        "Recent runs",
        *("run", "started", "duration", "files", "rows", "rows/s", "status"),
        right=("run", "duration", "files", "rows", "rows/s"),
        expand=False,
    )
    for r in runs:
        started, finished = parse_time(r["started_at"]), parse_time(r.get("finished_at"))
        seconds = (finished - started).total_seconds() if started and finished else None
        files = f"{r['files_loaded']} loaded"
        if r["files_skipped"]:
            files += f", {r['files_skipped']} skipped"
        if r["files_failed"]:
            files += f", {r['files_failed']} failed"
        status = r["status"]
        shown = status
        if status == "interrupted":
            shown = "interrupted (process gone)"
        table.add_row(
            str(r["id"]),
            local_time(started, now),
            duration(seconds),
            files,
            f"{r['rows']:,}",
            rate(r["rows"], seconds),
            Text(shown, style=STATUS_STYLE.get(status, "")),
        )
    return table


def _running(files: list[dict[str, Any]]) -> Table:
    table = _table("Loading now", *("file", "run", "table", "loader", "committed"))
    for f in files:
        table.add_row(
            f"{f['path']} (file {f['id']})",
            str(f["run_id"]),
            f"{f['table_schema']}.{f['table_name']}",
            loader(f),
            f"{f['committed_batches']} batch(es), {f['committed_rows']:,} rows",
        )
    return table


def _loaders(loaders: list[dict[str, Any]]) -> Table:
    table = _table(
        "Loaders (what each process loaded)",
        *("loader", "files", "rows", "failed", "runs"),
        right=("files", "rows", "failed"),
    )
    for p in loaders:
        table.add_row(
            loader(p),
            str(p["files_loaded"]),
            f"{p['rows']:,}",
            str(p["files_failed"] or ""),
            ", ".join(str(r) for r in p["runs"] or ()),
        )
    return table


def _failed(failed: list[dict[str, Any]], dsn: str | None, now: datetime) -> RenderableType:
    table = _table("Failed files", "file", "table", "failed", show_lines=True)
    table.add_column("error", style="red", overflow="fold")
    runs: list[Any] = []
    for f in failed:
        error = without_path(redact_dsn(f["error"] or ""), f["path"])
        moment = parse_time(f.get("finished_at"))
        table.add_row(
            f"{f['path']} (file {f['id']}, run {f['run_id']})",
            f"{f['table_schema']}.{f['table_name']}",
            ago(moment, now) if moment else "",
            error,
        )
        if f["run_id"] not in runs:
            runs.append(f["run_id"])
    # Whole lines, not folded into a cell: a command is copied from the screen.
    commands = Text(
        "Load them again (each run's failed files, with its options):\n"
        + "\n".join(f"  {retry_command(run, dsn)}" for run in runs),
        no_wrap=True,
        overflow="ignore",
    )
    return Group(table, commands)


def _tables(tables: list[dict[str, Any]], now: datetime) -> Table:
    table = _table(
        "Tables",
        *("table", "files", "rows loaded", "rows now", "last load", "note"),
        right=("files", "rows loaded", "rows now"),
    )
    for t in tables:
        notes = []
        for key, word in (
            ("files_failed", "failed"),
            ("files_reverted", "reverted"),
            ("files_in_progress", "in progress"),
            ("files_interrupted", "interrupted"),
        ):
            if t.get(key):
                notes.append(f"{t[key]} {word}")
        if not t.get("table_exists", True) and not t["files_loaded"]:
            now_rows: RenderableType = "-"
            notes.append("not created: no file loaded")
        elif not t.get("table_exists", True):
            now_rows = Text("GONE (dropped)", style="bold red")
            notes.append("the next load loads its files again")
        else:
            count = t.get("rows_in_table")
            now_rows = "?" if count is None else f"{count:,}"
        if t.get("identity_changed"):
            notes.append("changed since (truncated, recreated or rewritten)")
        table.add_row(
            f"{t['table_schema']}.{t['table_name']}",
            str(t["files_loaded"]),
            f"{t['rows']:,}",
            now_rows,
            local_time(parse_time(t.get("last_load")), now),
            ", ".join(notes),
        )
    return table


def _changes(changes: list[dict[str, Any]], now: datetime) -> Table:
    table = _table("Schema changes", "when", "table", "change", "column", "type", "by file")
    for c in changes:
        types = ""
        if c["old_type"] or c["new_type"]:
            types = f"{c['old_type'] or ''} -> {c['new_type'] or ''}".strip()
        table.add_row(
            local_time(parse_time(c["at"]), now),
            f"{c['table_schema']}.{c['table_name']}",
            c["change"] + (" (reverted)" if c["reverted"] else ""),
            c["column_name"] or "",
            types,
            c["path"] or "?",
        )
    return table


def _rejects(rejects: list[dict[str, Any]]) -> Table:
    table = _table(
        "Rejected rows (pgingest rejects FILE shows them)", "file", "table", "rows", right=("rows",)
    )
    for r in rejects:
        table.add_row(
            f"{r['path']} (file {r['file_id']})",
            f"{r['table_schema']}.{r['table_name']}",
            f"{r['rejects']:,}",
        )
    return table


def _interrupted(files: list[dict[str, Any]]) -> Table:
    table = _table(
        "Interrupted files (`pgingest resume` continues them, `pgingest revert` takes their"
        " rows out)",
        *("file", "run", "loader", "table", "committed"),
    )
    for f in files:
        table.add_row(
            f"{f['path']} (file {f['id']})",
            str(f["run_id"]),
            loader(f),
            f"{f['table_schema']}.{f['table_name']}",
            f"{f['committed_batches']} batch(es), {f['committed_rows']:,} rows",
        )
    return table


def _files(files: list[dict[str, Any]]) -> Table:
    table = _table(
        "Files (rows loaded / rows in the table now)",
        *("table", "file", "loaded", "now", "loader"),
        right=("loaded", "now"),
    )
    for f in files:
        state = "" if f["status"] == "success" else f" ({f['status']}, interrupted)"
        now = "?" if f["rows_in_table"] is None else f"{f['rows_in_table']:,}"
        table.add_row(
            f"{f['table_schema']}.{f['table_name']}",
            f"{f['path']} (file {f['id']}){state}",
            f"{f['rows']:,}",
            now,
            loader(f),
        )
    return table


def status_tables(
    data: dict[str, Any], dsn: str | None = None, now: datetime | None = None
) -> RenderableType:
    """``pgingest status``'s data as rich tables: failures first.

    Args:
        data: what :func:`pgingest.api.status_async` returned.
        dsn: the server asked (shown, password masked, in the retry commands).
        now: the time "ago" is counted from (default: now).

    Returns:
        One renderable of every table that has rows.
    """
    now = now or datetime.now(UTC)
    parts: list[RenderableType] = []
    if data.get("failed"):
        parts.append(_failed(data["failed"], dsn, now))
    if data.get("interrupted"):
        parts.append(_interrupted(data["interrupted"]))
    if data.get("running"):
        parts.append(_running(data["running"]))
    parts.append(_runs(data["runs"], now) if data["runs"] else Text("No runs yet."))
    if data.get("loaders"):
        parts.append(_loaders(data["loaders"]))
    if data["tables"]:
        parts.append(_tables(data["tables"], now))
    if data.get("files"):
        parts.append(_files(data["files"]))
    if data.get("schema_changes"):
        parts.append(_changes(data["schema_changes"], now))
    if data.get("rejects"):
        parts.append(_rejects(data["rejects"]))
    if data.get("replacements"):
        lines = [
            f"{r['table_schema']}.{r['table_name']} <- {r['new_table']}  run {r['run_id']}"
            for r in data["replacements"]
        ]
        parts.append(
            Text("Replaces not swapped in yet (`pgingest resume` continues them):\n  ")
            + Text("\n  ".join(lines))
        )
    return Group(*[item for part in parts for item in (part, Text(""))])


def print_status(data: dict[str, Any], dsn: str | None, console: Console | None = None) -> None:
    """Print :func:`status_tables` on ``console`` (default: stdout)."""
    (console or Console()).print(status_tables(data, dsn))

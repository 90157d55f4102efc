"""How results look on the terminal, and the exit codes."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import BatchDone, DbError, FilesFound, FileStarted, Retry

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MANIFEST_NEWER = 3
"""The database's manifest is newer than this pgingest: upgrade pgingest."""
EXIT_UNEXPECTED = 70


def _rate(rows: float) -> str:
    return f"{rows:,.0f} rows/s"


class LineReporter:
    """Plain progress: one line per finished file, messages to stderr."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None, quiet: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.run_id: int | None = None

    def run_started(self, run_id: int) -> None:
        """Remember the run id, to say how to resume it."""
        self.run_id = run_id

    def files_found(self, event: FilesFound) -> None:
        """Nothing to print: each file says when it is done."""

    def file_started(self, event: FileStarted) -> None:
        """Nothing to print until the file is done."""

    def batch_done(self, event: BatchDone) -> None:
        """Nothing to print per batch."""

    def retry(self, event: Retry) -> None:
        """``retrying path batch N in S s (attempt A): error``, to stderr."""
        if not self.quiet:
            where = f" batch {event.batch}" if event.batch is not None else ""
            print(
                f"retrying {event.path or 'to connect'}{where} in {event.delay:.1f} s"
                f" (attempt {event.attempt}, {event.error_class}): {event.error}",
                file=self.err,
                flush=True,
            )

    def db_error(self, event: DbError) -> None:
        """Counted by metrics; the file's failure or the retry says the rest."""

    def run_done(self, report: LoadReport) -> None:
        """The CLI prints the summary itself."""

    def file_done(self, result: FileResult) -> None:
        """``✓ path  rows  seconds  rows/s`` or ``✗ path  error``."""
        if result.status == "loaded":
            if not self.quiet:
                print(
                    f"✓ {result.path}  {result.rows:,} rows  {result.seconds:.2f} s  "
                    f"{_rate(result.rows_per_second)}  -> {result.table}"
                    + (
                        f"  ({result.rejects:,} rejected: pgingest rejects {result.path})"
                        if result.rejects
                        else ""
                    ),
                    file=self.out,
                    flush=True,
                )
                if (result.message or "").startswith("reloaded: "):
                    # A file loaded before whose rows were gone: say why it loaded again.
                    print(f"  {result.message}", file=self.out, flush=True)
                for change in result.schema_changes:
                    print(f"  schema: {result.table}: {change}", file=self.out, flush=True)
        elif result.status == "failed":
            print(f"✗ {result.error}", file=self.err, flush=True)
        elif not self.quiet and result.message != "dry run":
            print(f"- {result.path}  skipped: {result.message}", file=self.out, flush=True)
        for warning in result.warnings:  # shown even with --quiet: the data is not as sent
            print(f"  warning: {result.path}: {warning}", file=self.err, flush=True)

    def message(self, text: str) -> None:
        """A note, to stderr."""
        if not self.quiet:
            print(text, file=self.err, flush=True)


def summary(report: LoadReport) -> str:
    """The closing line of a load: how it ended (files loaded, and skipped or failed when
    any; rows and time) and, for a failure, the file and the reason (the first one, and how
    many more)."""
    loaded = sum(1 for f in report.files if f.status == "loaded")
    failed = report.failed
    skipped = sum(1 for f in report.files if f.status == "skipped")
    rate = report.rows / report.seconds if report.seconds > 0 else 0.0
    counts = [f"{loaded} file(s) loaded"]
    if skipped:
        counts.append(f"{skipped} skipped")
    if failed:
        counts.append(f"{len(failed)} failed")
    text = (
        f"{'FAILED' if failed else 'done'}: {', '.join(counts)};"
        f" {report.rows:,} rows in {report.seconds:.2f} s ({_rate(rate)})"
    )
    rejected = sum(f.rejects for f in report.files if f.status == "loaded")
    if rejected:
        text += f", {rejected:,} rows rejected"
    if failed:
        first = failed[0]
        reason = _reason(first)
        text += f"; {' '.join(first.path.split())}: {reason}"  # (on one line, as the reason)
        if len(failed) > 1:
            text += f" (and {len(failed) - 1} more failed file(s), listed above)"
    return text


def _reason(result: FileResult) -> str:
    """A failed file's error on one line, without its path repeated in front."""
    return without_path(result.error or "failed", result.path)


def without_path(error: str, path: str) -> str:
    """``error`` on one line, without the file's path (or its name) in front of it: where
    the file is shown beside it."""
    error = " ".join(error.split())
    path = " ".join(path.split())  # (as the one-line error shows a name holding a tab)
    for prefix in (f"{path}: ", f"{path.rsplit('/', 1)[-1]}: "):
        if error.startswith(prefix):
            return error[len(prefix) :]
    return error


def report_json(report: LoadReport, code: int) -> dict[str, Any]:
    """``pgingest load --json``: per file path, table, status, rows, rejects, seconds, error;
    per run its id, counts and exit code."""
    files = [
        {
            "path": f.path,
            "table": f.table,
            "status": f.status,
            "rows": f.rows,
            "rejects": f.rejects,
            "seconds": round(f.seconds, 3),
            "error": f.error,
            "message": f.message,
            "warnings": list(f.warnings),
            "schema_changes": list(f.schema_changes),
        }
        for f in report.files
    ]
    counts = {
        status: sum(1 for f in report.files if f.status == status)
        for status in ("loaded", "skipped", "failed")
    }
    return {
        "run": {
            "id": report.run_id,
            "dry_run": report.dry_run,
            "files": len(report.files),
            **counts,
            "rows": report.rows,
            "rejects": sum(f.rejects for f in report.files if f.status == "loaded"),
            "seconds": round(report.seconds, 3),
            "retries": report.retries,
            "exit_code": code,
        },
        "files": files,
    }


def error_json(error: str, code: int, run_id: int | None = None) -> dict[str, Any]:
    """``pgingest load --json`` when the run could not start or stopped on an error of its
    own (no file results): the run's id if it had one, its exit code and the error."""
    return {
        "run": {
            "id": run_id,
            "files": 0,
            "loaded": 0,
            "skipped": 0,
            "failed": 0,
            "rows": 0,
            "exit_code": code,
            "error": error,
        },
        "files": [],
    }


def table_changes(report: LoadReport) -> list[str]:
    """What changed per table, for the daily re-run of a tree: files new, changed (their
    previous version's rows replaced), unchanged (skipped) and failed, and the rows loaded."""
    tables: dict[str, dict[str, int]] = {}
    for f in report.files:
        if not f.table:
            continue
        counts = tables.setdefault(f.table, {"new": 0, "changed": 0, "unchanged": 0})
        if f.status == "loaded":
            message = f.message or ""
            kind = "new"
            if message.startswith(("changed", "reloaded")):
                kind = message.split(maxsplit=1)[0].rstrip(":")
            counts[kind] = counts.get(kind, 0) + 1
            counts["rows"] = counts.get("rows", 0) + f.rows
        elif f.status == "skipped":
            counts["unchanged"] += 1
        else:
            counts["failed"] = counts.get("failed", 0) + 1
    lines = []
    for table, c in sorted(tables.items()):
        kinds = ("new", "changed", "reloaded", "unchanged", "failed")
        parts = [f"{c[k]} {k}" for k in kinds if c.get(k)]
        rows = f", {c['rows']:,} rows loaded" if c.get("rows") else ""
        lines.append(f"  {table}: {', '.join(parts)} file(s){rows}")
    return lines


def stages_line(report: LoadReport) -> str:
    """Where the time went: seconds per stage summed over workers, and the retries."""
    names = {"read": "read/parse", "encode": "encode", "write": "write", "wait": "wait"}
    parts = [f"{names.get(k, k)} {v:.2f} s" for k, v in report.stages.items()]
    text = "stages (summed over workers): " + ", ".join(parts)
    if report.retries:
        text += f"; {report.retries} retries"
    return text


def exit_code(report: LoadReport) -> int:
    """0 when every file loaded (or was skipped), 1 when any failed."""
    return EXIT_OK if report.ok else EXIT_FAILED


def loader(item: dict[str, Any]) -> str:
    """The loader of a run or file of the status data: ``host pid 1234`` (``?`` unknown:
    recorded before the manifest kept it)."""
    host, pid = item.get("host"), item.get("pid")
    if host is None and pid is None:
        return "?"
    return f"{host or '?'} pid {pid if pid is not None else '?'}"


def render_status(data: dict[str, Any]) -> str:
    """``pgingest status`` as text."""
    out: list[str] = []
    out.append("Recent runs:")
    if not data["runs"]:
        out.append("  (none)")
    for r in data["runs"]:
        out.append(
            f"  run {r['id']}  {r['status']:<11}  started {r['started_at']}  "
            f"loaded {r['files_loaded']}, skipped {r['files_skipped']}, failed {r['files_failed']}"
            f", {r['rows']:,} rows  on {loader(r)}"
        )
    if data.get("running"):
        out.append("Loading now:")
        for f in data["running"]:
            out.append(
                f"  {f['path']} (file {f['id']}, run {f['run_id']}) into"
                f" {f['table_schema']}.{f['table_name']} by {loader(f)}:"
                f" {f['committed_batches']} batch(es), {f['committed_rows']:,} rows committed"
            )
    if data.get("loaders"):
        out.append("Loaders (host, process: what each loaded):")
        for p in data["loaders"]:
            failed = f", {p['files_failed']} failed" if p["files_failed"] else ""
            runs = ", ".join(str(r) for r in p["runs"] or ())
            out.append(
                f"  {loader(p)}: {p['files_loaded']} file(s), {p['rows']:,} rows{failed}"
                f" (run {runs})"
            )
    out.append("Tables:")
    if not data["tables"]:
        out.append("  (none)")
    for t in data["tables"]:
        extra = ""
        if t["files_failed"]:
            extra += f", {t['files_failed']} failed"
        if t["files_reverted"]:
            extra += f", {t['files_reverted']} reverted"
        if t["files_in_progress"]:
            extra += f", {t['files_in_progress']} in progress"
        if t.get("files_interrupted"):
            extra += f", {t['files_interrupted']} interrupted"
        if t.get("table_exists", True):
            now = t.get("rows_in_table")
            in_table = "" if now is None else f", {now:,} rows in the table now"
        else:
            in_table = ", the table is GONE (dropped): the next load loads its files again"
        changed = ""
        if t.get("identity_changed"):
            changed = (
                "; the table changed since (truncated, recreated, restored or rewritten):"
                " the next load checks which files' rows are still in it"
            )
        out.append(
            f"  {t['table_schema']}.{t['table_name']}: {t['files_loaded']} file(s), "
            f"{t['rows']:,} rows loaded (manifest){in_table}, last load {t['last_load']}"
            f"{extra}{changed}"
        )
    if data.get("interrupted"):
        out.append(
            "Interrupted files (their process died; a re-run or `pgingest resume`"
            " continues them, `pgingest revert` takes their rows out):"
        )
        for f in data["interrupted"]:
            out.append(
                f"  {f['path']} (file {f['id']}, run {f['run_id']}, by {loader(f)}):"
                f" {f['committed_batches']} committed batch(es), {f['committed_rows']:,} rows in"
                f" {f['table_schema']}.{f['table_name']}"
            )
    if data.get("files"):
        out.append("Files (rows loaded / rows in the table now, by lineage):")
        for f in data["files"]:
            now = "?" if f["rows_in_table"] is None else f"{f['rows_in_table']:,}"
            state = "" if f["status"] == "success" else f" ({f['status']}, interrupted)"
            out.append(
                f"  {f['table_schema']}.{f['table_name']}  {f['path']} (file {f['id']}){state}:"
                f" {f['rows']:,} / {now}  by {loader(f)}"
            )
    if data["failed"]:
        out.append("Failed files:")
        for f in data["failed"]:
            out.append(f"  {f['path']} (file {f['id']}, run {f['run_id']}): {f['error']}")
    if data["schema_changes"]:
        out.append("Schema changes:")
        for c in data["schema_changes"]:
            column = f".{c['column_name']}" if c["column_name"] else ""
            types = ""
            if c["old_type"] or c["new_type"]:
                types = f" {c['old_type'] or ''} -> {c['new_type'] or ''}"
            undone = " (reverted)" if c["reverted"] else ""
            out.append(
                f"  {c['at']}  {c['change']} {c['table_schema']}.{c['table_name']}{column}"
                f"{types}  by {c['path'] or '?'}{undone}"
            )
    if data.get("replacements"):
        out.append("Replaces not swapped in yet (`pgingest resume` continues them):")
        for r in data["replacements"]:
            out.append(
                f"  {r['table_schema']}.{r['table_name']} <- {r['new_table']}  run {r['run_id']},"
                f" {'every file in it' if r['status'] == 'complete' else 'loading'}"
                + (f": {r['error']}" if r["error"] else "")
            )
    if data["rejects"]:
        out.append("Rejected rows:")
        for r in data["rejects"]:
            out.append(f"  {r['path']}: {r['rejects']} row(s)")
    return "\n".join(out)

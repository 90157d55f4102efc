"""The commands over what the manifest recorded: ``status``, ``report``, ``revert``,
``rejects`` and ``prune``."""

from __future__ import annotations

import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from pgingest.cli.options import dsn_option
from pgingest.cli.render import render_status

__all__ = ["prune", "rejects", "report", "revert", "status"]

T = TypeVar("T")


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """:func:`pgingest.pg.loop.run`, imported when a command runs: ``--help`` needs no loop."""
    from pgingest.pg.loop import run

    return run(coro)


@click.command()
@dsn_option
@click.option("--table", "-t", help="Only this table (name or schema.name).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="How many recent runs, failures and schema changes to list.",
)
@click.option(
    "--files",
    "per_file",
    is_flag=True,
    help="Also list every loaded or interrupted file with its rows in its table now (counted"
    " by lineage: one scan per table).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def status(dsn: str | None, table: str | None, limit: int, per_file: bool, as_json: bool) -> None:
    """Recent runs, files and rows per table (loaded, and in the table now), interrupted and
    failed files, schema changes and rejects: as tables on a terminal (failed files first,
    with the command that retries them), as plain text otherwise."""
    from pgingest.api import status_async

    data = run_loop(status_async(dsn=dsn, table=table, limit=limit, files=per_file))
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if sys.stdout.isatty():
        from pgingest.cli.status_view import print_status

        print_status(data, dsn)
        return
    click.echo(render_status(data))


@click.command()
@dsn_option
@click.option("--file", "path", help="Revert the file loaded from this path.")
@click.option("--sha256", help="Revert the file with this content hash (8+ hex digits).")
@click.option("--run", "run_id", type=int, help="Revert every file of this run.")
@click.option(
    "--schema-changes",
    is_flag=True,
    help="Also undo the schema changes those loads made, when nothing else depends on them.",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
def revert(
    dsn: str | None,
    path: str | None,
    sha256: str | None,
    run_id: int | None,
    schema_changes: bool,
    dry_run: bool,
) -> None:
    """Take loaded files' rows back out of their tables, in one transaction."""
    from pgingest.api import revert_async

    chosen = [x for x in (path, sha256, run_id) if x is not None]
    if len(chosen) != 1:
        raise click.UsageError("give exactly one of --file, --sha256, --run")
    report = run_loop(
        revert_async(
            dsn=dsn,
            path=path,
            sha256=sha256,
            run_id=run_id,
            schema_changes=schema_changes,
            dry_run=dry_run,
        )
    )
    verb = "would remove" if report.dry_run else "removed"
    for f in report.files:
        what = "" if f.status == "success" else " (interrupted: its committed batches)"
        if f.table_gone:
            mark = "would mark" if report.dry_run else "marked"
            click.echo(
                f"table {f.table} is gone: no rows of {f.path} (file {f.file_id}) to remove;"
                f" {mark} it reverted"
            )
            continue
        click.echo(f"{verb} {f.rows:,} rows of {f.path} (file {f.file_id}){what} from {f.table}")
    for change in report.schema_changes:
        click.echo(f"{'would undo' if report.dry_run else 'undid'}: {change}")
    click.echo(f"{verb} {report.rows:,} rows of {len(report.files)} file(s)")


@click.command()
@click.argument("file")
@dsn_option
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False),
    help="Write the rejected lines, as they were in the file, to this file (after the file's"
    " header when it had one), to fix and load them again.",
)
def rejects(file: str, dsn: str | None, csv_path: str | None) -> None:
    """Print the rows of FILE (a path, or a file id) set aside by --on-error skip."""
    from pgingest.api import rejects_async

    entry, rows, header = run_loop(rejects_async(file, dsn=dsn))
    if entry is None:
        raise click.UsageError(f"no loaded file {file!r} in the manifest (see `pgingest status`)")
    if csv_path is not None:
        with open(csv_path, "w", encoding="utf-8", newline="") as out:
            if header is not None:
                out.write(header + "\n")
            for row in rows:
                out.write((row["raw"] or "") + "\n")
        click.echo(f"wrote {len(rows)} rejected row(s) of {entry['path']} to {csv_path}")
        return
    click.echo(
        f"{entry['path']} (file {entry['id']}, {entry['status']}, table"
        f" {entry['table_schema']}.{entry['table_name']}): {len(rows)} rejected row(s)"
    )
    for row in rows:
        column = f", column {row['column_name']}" if row["column_name"] else ""
        click.echo(f"  line {row['line']}{column}: {row['reason']}")
        click.echo(f"    {row['raw']}")


@click.command()
@dsn_option
@click.option(
    "--older-than",
    required=True,
    metavar="AGE",
    help="Remove what is older than this: a whole number and s, m, h, d or w (90d).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
def prune(dsn: str | None, older_than: str, dry_run: bool) -> None:
    """Remove old manifest records nothing needs any more: runs, batch records of finished
    files, rejected rows (they hold raw values), records of reverted or failed attempts.
    Loaded files and interrupted ones stay (skip, resume and revert need them)."""
    from pgingest.api import prune_async

    report = run_loop(prune_async(older_than, dsn=dsn, dry_run=dry_run))
    verb = "would remove" if report.dry_run else "removed"
    click.echo(
        f"{verb} {report.runs:,} run(s), {report.files:,} file record(s), {report.batches:,}"
        f" batch record(s) and {report.rejects:,} rejected row(s) older than"
        f" {report.cutoff:%Y-%m-%d %H:%M:%S %Z}".rstrip()
    )


@click.command()
@click.argument("run_id", metavar="[RUN]", type=int, required=False)
@dsn_option
@click.option(
    "--html",
    "html_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Write the report to this HTML file (one page, nothing fetched when opened).",
)
def report(run_id: int | None, dsn: str | None, html_path: str) -> None:
    """Write a run's report (default: the latest run) as one self-contained HTML page: a
    timeline of its files (start, end, rows/s, status), the slowest files, schema changes,
    rejected rows with their lines, and the retries."""
    from pgingest.api import run_report_async
    from pgingest.cli.report_page import render_report

    data = run_loop(run_report_async(run_id, dsn=dsn))
    with open(html_path, "w", encoding="utf-8") as out:
        out.write(render_report(data))
    run = data["run"]
    click.echo(f"wrote the report of run {run['id']} ({run['status']}) to {html_path}")

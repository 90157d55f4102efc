"""The ``pgingest`` command: its group, ``load`` and ``resume``, and the entry point; options
only, the work is in the library (``status``, ``revert``, ``rejects``: :mod:`pgingest.cli.manifest`;
``db``: :mod:`pgingest.cli.server`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from pgingest.cli.manifest import prune, rejects, revert, status
from pgingest.cli.options import dsn_option
from pgingest.cli.render import (
    EXIT_FAILED,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    LineReporter,
    exit_code,
    stages_line,
    summary,
    table_changes,
)
from pgingest.cli.server import db
from pgingest.config import redact_dsn
from pgingest.errors import ConfigError, PgIngestError
from pgingest.observability.progress import FanOut, Reporter

ENV = "PGINGEST_"


def _env(name: str) -> str:
    return ENV + name.upper().replace("-", "_")


def _split_csv(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    return tuple(part.strip() for part in value.split(","))


class Ctx:
    """What every subcommand shares."""

    def __init__(self, debug: bool) -> None:
        self.debug = debug


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pgingest")
@click.option(
    "--debug", is_flag=True, envvar=_env("debug"), help="Show tracebacks of unexpected errors."
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Load CSV/TSV, Parquet, Excel (xlsx xlsm xls xlsb ods) and NDJSON files into PostgreSQL.

    With no --dsn and no DATABASE_URL, pgingest uses an embedded PostgreSQL kept in its data
    directory (PGINGEST_HOME); `pgingest db uri` prints how to connect to it.
    """
    ctx.obj = Ctx(debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how a load reports: shared by ``load`` and ``resume``."""
    for option in reversed(
        [
            click.option("--quiet", "-q", is_flag=True, help="Print only errors and the summary."),
            click.option(
                "--verbose",
                "-v",
                is_flag=True,
                help="Log more: one line per batch (DEBUG) in the log.",
            ),
            click.option(
                "--no-progress",
                is_flag=True,
                envvar=_env("no_progress"),
                help="No progress bars, plain lines only (the default when stdout is not a"
                " terminal).",
            ),
            click.option(
                "--log-format",
                type=click.Choice(["text", "json"]),
                envvar=_env("log_format"),
                help="Log lines as text or JSON objects (run_id, file, table, batch, rows,"
                " latency_ms, status, error, time).  [default: text]",
            ),
            click.option(
                "--log-file",
                type=click.Path(dir_okay=False),
                envvar=_env("log_file"),
                help="Append the log to this file instead of stderr.",
            ),
            click.option(
                "--metrics-port",
                type=click.IntRange(1, 65535),
                envvar=_env("metrics_port"),
                help="Serve Prometheus metrics on this port (/metrics) while the run lasts.",
            ),
            click.option(
                "--metrics-file",
                type=click.Path(dir_okay=False),
                envvar=_env("metrics_file"),
                help="Write Prometheus metrics to this file (text format) when the run ends.",
            ),
        ]
    ):
        command = option(command)
    return command


class Output:
    """The reporters a load talks to, built from the output options."""

    def __init__(
        self,
        *,
        quiet: bool = False,
        verbose: bool = False,
        no_progress: bool = False,
        log_format: str | None = None,
        log_file: str | None = None,
        metrics_port: int | None = None,
        metrics_file: str | None = None,
    ) -> None:
        self.metrics_file = metrics_file
        self.json_on_stderr = log_format == "json" and log_file is None
        logging_on = log_format is not None or log_file is not None or verbose
        reporters: list[Reporter] = []
        if not quiet and not no_progress and sys.stdout.isatty() and not self.json_on_stderr:
            from pgingest.cli.progress_bars import BarReporter

            self.lines: LineReporter = BarReporter()
        else:
            # JSON logs on stderr: stderr carries only JSON (failures are log lines too).
            err = open(os.devnull, "w") if self.json_on_stderr else None  # noqa: SIM115
            self.lines = LineReporter(quiet=quiet, err=err)
        reporters.append(self.lines)
        if logging_on:
            from pgingest.observability.logs import LogReporter, configure

            level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
            configure("json" if log_format == "json" else "text", level, log_file)
            reporters.append(LogReporter())
        self.metrics: Any = None
        if metrics_port is not None or metrics_file is not None:
            from pgingest.observability.metrics import MetricsReporter

            self.metrics = MetricsReporter()
            if metrics_port is not None:
                self.metrics.serve(metrics_port)
            reporters.append(self.metrics)
        self.reporter = FanOut(reporters)

    def close(self, report: Any = None) -> None:
        """Write the metrics file, stop serving, print the summary and stage timings."""
        if self.metrics is not None:
            if self.metrics_file is not None:
                self.metrics.write(self.metrics_file)
            self.metrics.stop()
        if report is not None:
            to_err = bool(report.failed) and not self.json_on_stderr
            click.echo(summary(report), err=to_err)
            changes = table_changes(report) if not report.dry_run else []
            if len(changes) > 1 or (changes and len(report.files) > 1):
                click.echo("per table:\n" + "\n".join(changes), err=to_err)
            if report.stages and not report.dry_run:
                click.echo(stages_line(report), err=to_err)


@cli.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--dsn",
    envvar=["PGINGEST_DSN", "DATABASE_URL"],
    help="Server to load into (libpq URL or key=value). Default: DATABASE_URL, else the"
    " embedded server.",
)
@click.option(
    "--table",
    "-t",
    envvar=_env("table"),
    help="Target table (default: each file's name, normalized).",
)
@click.option(
    "--schema",
    envvar=_env("schema"),
    default="public",
    show_default=True,
    help="Target schema (created when missing).",
)
@click.option(
    "--format",
    "--file-type",
    "fmt",
    envvar=_env("format"),
    type=click.Choice(["auto", "csv", "tsv", "parquet", "excel", "ndjson"]),
    default=None,
    help="File format; auto (the default) reads the content: CSV/TSV, Parquet, workbooks"
    " (xlsx, xlsm, xls, xlsb, ods) and NDJSON. A text file named like a workbook needs"
    " --format csv.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar=_env("config"),
    help="YAML file with load options, per-folder overrides (table, sheet, header_row, ...) and"
    " sources (glob -> table); a key that is no option is a folder. Flags and PGINGEST_*"
    " variables win over it.",
)
@click.option(
    "--table-from",
    type=click.Choice(["file", "folder"]),
    envvar=_env("table_from"),
    help="Name tables after each file (default) or after each folder below the folder given"
    " (sales/emea/*.xlsx -> sales_emea).",
)
@click.option(
    "--sheet",
    envvar=_env("sheet"),
    help="Workbooks: sheet NAME, 1-based INDEX, or all (each sheet to <table>_<sheet>)."
    "  [default: the first sheet]",
)
@click.option(
    "--sheet-column",
    is_flag=True,
    default=None,
    envvar=_env("sheet_column"),
    help="With --sheet all: every sheet into one table, with a 'sheet' column.",
)
@click.option(
    "--header-row",
    type=click.IntRange(min=1),
    envvar=_env("header_row"),
    help="Workbooks: the header's row number (1-based).  [default: the first row as wide as"
    " the table; title rows above it are skipped]",
)
@click.option(
    "--source-file-column",
    is_flag=True,
    default=None,
    envvar=_env("source_file_column"),
    help="Add a 'source_file' text column with each row's file path.",
)
@click.option(
    "--transform",
    envvar=_env("transform"),
    help="module:function applied to every Arrow record batch before it is written"
    " (returns a pyarrow.RecordBatch).",
)
@click.option(
    "--headers",
    envvar=_env("headers"),
    callback=_split_csv,
    help="Column names a,b,c for a headerless file, or replacing the header.",
)
@click.option(
    "--header/--no-header",
    "header",
    default=None,
    envvar=_env("header"),
    help="Row 1 is (or is not) a header. Default: sniffed.",
)
@click.option(
    "--delimiter",
    envvar=_env("delimiter"),
    help="Force the CSV delimiter (default: sniffed among , ; tab |).",
)
@click.option(
    "--quote",
    envvar=_env("quote"),
    help="Force the CSV quote character (default: sniffed, \" or ').",
)
@click.option(
    "--escape",
    type=click.Choice(["double", "backslash"]),
    envvar=_env("escape"),
    help="How a quote inside a quoted CSV field is written: doubled (RFC 4180) or after a"
    " backslash (default: sniffed).",
)
@click.option(
    "--encoding",
    envvar=_env("encoding"),
    type=click.Choice(
        ["utf-8", "cp1252", "latin-1", "cp1250", "cp1251", "iso8859-2", "iso8859-15", "koi8-r"]
    ),
    help="Force the text encoding (default: decided on the file's content: UTF-8 unless it is"
    " consistently not, then the single-byte encoding of its language).",
)
@click.option(
    "--types",
    envvar=_env("types"),
    help="Column types, e.g. 'zip=text,amount=numeric(12,2)'; text wins over any format's"
    " own types (each value's text).",
)
@click.option(
    "--preserve-types/--text",
    "preserve_types",
    default=None,
    envvar=_env("text"),
    help="Infer (CSV) or keep (Parquet, workbooks, NDJSON) column types (the default), or load"
    " every column of a new table as text, each value as it reads (nanoseconds included).",
)
@click.option(
    "--on-new-column",
    type=click.Choice(["add", "ignore", "fail"]),
    envvar=_env("on_new_column"),
    help="A file column the table lacks: add it to the table (default), ignore its values, or"
    " fail the file.",
)
@click.option(
    "--on-type-change",
    type=click.Choice(["widen", "fail"]),
    envvar=_env("on_type_change"),
    help="Values wider than their column (3.5 in an integer column): widen the column"
    " (default; integer -> bigint -> numeric, -> double precision, date -> timestamp ->"
    " timestamptz, text last) or fail the file.",
)
@click.option(
    "--on-error",
    type=click.Choice(["stop", "skip"]),
    envvar=_env("on_error"),
    help="A row that cannot be parsed or cast: stop the file (default; nothing of it is kept)"
    " or skip it into pgingest.rejects and load the rest (see `pgingest rejects`).",
)
@click.option(
    "--max-errors",
    envvar=_env("max_errors"),
    help="With --on-error skip: the most bad rows per file, a count (100) or a share (0.5%);"
    " past it the file fails.  [default: no limit]",
)
@click.option(
    "--date-format",
    type=click.Choice(["dmy", "mdy"]),
    envvar=_env("date_format"),
    help="Read dates like 01/02/2026 as day/month or month/day when no value of the column"
    " tells (a day above 12). Unset, such a column stays text, with a warning.",
)
@click.option(
    "--contract",
    type=click.Path(dir_okay=False, exists=True),
    envvar=_env("contract"),
    help="YAML contract: per table the columns, their types, not-null, key and header"
    " aliases. A file that breaks it fails before any write, listing every violation.",
)
@click.option(
    "--null-string",
    "null_strings",
    multiple=True,
    envvar=_env("null_string"),
    help="A value meaning NULL (repeatable); an unquoted empty field always is.",
)
@click.option(
    "--tolerant",
    is_flag=True,
    envvar=_env("tolerant"),
    help="A table column missing from a file is loaded as NULL.",
)
@click.option(
    "--batch-size",
    "--chunk-size",
    type=click.IntRange(min=1),
    envvar=_env("batch_size"),
    help="Rows per batch (one transaction each).  [default: 50000]",
)
@click.option(
    "--concurrency",
    "-j",
    type=click.IntRange(min=1),
    envvar=_env("concurrency"),
    help="Files loaded at once.  [default: 4]",
)
@click.option(
    "--internal-concurrency",
    type=click.IntRange(min=1),
    envvar=_env("internal_concurrency"),
    help="Batches of one file loaded at once.  [default: 2]",
)
@click.option(
    "--disable-internal-parallelism",
    is_flag=True,
    envvar=_env("disable_internal_parallelism"),
    help="Load each file's batches one at a time.",
)
@click.option(
    "--mode",
    type=click.Choice(["append", "upsert", "merge", "replace"]),
    envvar=_env("mode"),
    help="append rows; upsert (INSERT ... ON CONFLICT on the key); merge (MERGE, PostgreSQL"
    " 15+); replace the table's content atomically at the end.  [default: append]",
)
@click.option(
    "--pk",
    envvar=_env("pk"),
    callback=_split_csv,
    help="Key columns a[,b] of upsert/merge (default: the table's primary key or a unique"
    " constraint; a new table is created with this primary key).",
)
@click.option(
    "--delete-missing",
    is_flag=True,
    envvar=_env("delete_missing"),
    help="merge: each file is a full snapshot of its key range; rows of the table in that"
    " range (smallest to largest key of the file) whose key the file lacks are deleted.",
)
@click.option(
    "--strategy",
    type=click.Choice(["auto", "parallel", "ordered", "sequential"]),
    envvar=_env("strategy"),
    help="upsert/merge, files into one table: auto (parallel where their keys are disjoint, in"
    " order where they overlap), parallel, ordered (one after another) or sequential (one"
    " file, one batch at a time).  [default: auto]",
)
@click.option(
    "--lock-wait",
    type=click.FloatRange(min=0),
    envvar=_env("lock_wait"),
    help="upsert/merge: seconds to wait for a file another pgingest process is loading when"
    " later files share keys with it; then they fail, for a re-run.  [default: 600]",
)
@click.option(
    "--swap-lock-timeout",
    type=click.FloatRange(min=0, min_open=True),
    envvar=_env("swap_lock_timeout"),
    help="replace: seconds the swap waits for its lock at each try (readers arriving"
    " meanwhile wait behind it at most this long).  [default: 3]",
)
@click.option(
    "--swap-tries",
    type=click.IntRange(min=1),
    envvar=_env("swap_tries"),
    help="replace: tries of the swap before the run fails, the old table untouched and the"
    " new one kept for `pgingest resume`.  [default: 10]",
)
@click.option(
    "--dry-run",
    is_flag=True,
    envvar=_env("dry_run"),
    help="Show what was detected and the DDL that would run; write nothing.",
)
@click.option(
    "--force",
    is_flag=True,
    envvar=_env("force"),
    help="Load files again even when the manifest says their content is loaded.",
)
@click.option(
    "--on-changed",
    type=click.Choice(["replace", "append"]),
    envvar=_env("on_changed"),
    help="A known path with new content: replace the old version's rows (default) or keep both.",
)
@click.option(
    "--txn",
    type=click.Choice(["batch", "file"]),
    envvar=_env("txn"),
    help="One transaction per batch (default; resumable) or per whole file.",
)
@click.option(
    "--lineage/--no-lineage",
    default=None,
    envvar=_env("lineage"),
    help="Add _pgingest_file_id/_pgingest_loaded_at to tables (default on; revert needs them).",
)
@click.option(
    "--pause-every",
    type=click.IntRange(min=0),
    envvar=_env("pause_every"),
    help="Pause after every N files.",
)
@click.option(
    "--pause-seconds",
    type=click.FloatRange(min=0),
    envvar=_env("pause_seconds"),
    help="Length of each pause.",
)
@click.option(
    "--sectional-commit",
    is_flag=True,
    default=None,
    envvar=_env("sectional_commit"),
    help="Stop loading a folder at its first failed file (the rest waits for a re-run).",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    envvar=_env("max_retries"),
    help="Retries of a batch or connection after a transient database error (connection lost"
    " or refused, server restarting, too many connections, deadlock).  [default: 3]",
)
@click.option(
    "--retry-base",
    type=click.FloatRange(min=0),
    envvar=_env("retry_base"),
    help="Seconds before the first retry; doubled for each further one, with jitter.  [default: 1]",
)
@click.option(
    "--retry-max",
    type=click.FloatRange(min=0),
    envvar=_env("retry_max"),
    help="Longest wait between two retries, in seconds.  [default: 30]",
)
@click.option(
    "--stall-timeout",
    type=click.FloatRange(min=0),
    envvar=_env("stall_timeout"),
    help="Seconds a batch's connection may make no progress (no COPY bytes arriving, the"
    " server waiting for a client that sends nothing) before it counts as lost: its server"
    " process is terminated and the batch retried. A statement the server is busy with is"
    " progress. Also the longest wait for a lock; 0: no bound.  [default: 60]",
)
@_output_options
@click.pass_obj
def load(
    obj: Ctx,
    /,
    paths: tuple[str, ...],
    dsn: str | None,
    fmt: str | None,
    config_file: str | None,
    types: str | None,
    null_strings: tuple[str, ...],
    disable_internal_parallelism: bool,
    preserve_types: bool | None,
    quiet: bool,
    verbose: bool,
    no_progress: bool,
    log_format: str | None,
    log_file: str | None,
    metrics_port: int | None,
    metrics_file: str | None,
    **values: Any,
) -> None:
    """Load files, folders (recursive) or glob patterns into PostgreSQL tables.

    Each file is appended to its table in batches, one transaction per batch (--mode upsert,
    merge or replace change that). The table is created when missing, with column types
    inferred from the data (CSV), kept from the file (Parquet, NDJSON) or from the cells
    (workbooks). --table-from folder makes one table per folder; --config FILE reads
    options, per-folder overrides and sources from YAML. Exit code 0 when every file loaded,
    1 when any failed, 2 for a usage error.
    """
    from pgingest.api import load_async
    from pgingest.config import load_config

    options: dict[str, Any] = {}
    if config_file is not None:
        config = load_config(config_file)
        options.update(config.options)
        dsn = dsn or config.dsn
        if not paths:
            paths = config.paths
        if not paths and not config.options.get("sources"):
            raise click.UsageError(
                f"nothing to load: give PATHS, or paths/sources in {config_file}"
            )
    elif not paths:
        raise click.UsageError("give at least one PATH (or --config with paths or sources)")
    # An unset on/off flag is False, not None: it must not undo the config file's True.
    flags = ("dry_run", "text", "tolerant", "force", "delete_missing")
    options.update({k: v for k, v in values.items() if v is not None and (v or k not in flags)})
    if fmt is not None:
        options["format"] = fmt
    if types:
        # Imported only when needed: the inference module pulls in pyarrow.compute and numpy,
        # which a workbook's read-ahead should not wait for.
        from pgingest.schema.infer import parse_type_overrides

        options["types"] = parse_type_overrides(types)
    if null_strings:
        options["null_strings"] = tuple(null_strings)
    if disable_internal_parallelism:
        options["internal_concurrency"] = 1
    if preserve_types is not None:
        options["text"] = not preserve_types
    for flag in ("dry_run", "tolerant", "force", "sectional_commit", "delete_missing"):
        if not options.get(flag):
            options.pop(flag, None)
    output = Output(
        quiet=quiet,
        verbose=verbose,
        no_progress=no_progress or bool(options.get("dry_run")),
        log_format=log_format,
        log_file=log_file,
        metrics_port=metrics_port,
        metrics_file=metrics_file,
    )
    report = None
    try:
        report = _run_interruptible(
            load_async(list(paths), dsn=dsn, reporter=output.reporter, **options), output
        )
        if report.dry_run:
            for plan in report.plans:
                click.echo(plan)
            click.echo("dry run: nothing was written")
    finally:
        output.close(report)
    sys.exit(exit_code(report))


def _run_interruptible(coro: Any, output: Output) -> Any:
    """Run a load; SIGINT/SIGTERM roll back the batches in flight, record the run as
    interrupted, say how to resume and exit 130."""

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(coro)
        received: list[int] = []

        def stop(signum: int) -> None:
            if not received:
                received.append(signum)
                task.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop, signum)
        try:
            return await task
        except asyncio.CancelledError:
            if not received:
                raise
            run = f" {output.lines.run_id}" if output.lines.run_id else ""
            click.echo(
                f"interrupted by {signal.Signals(received[0]).name}: batches in flight were rolled"
                f" back, committed ones are recorded. Continue with: pgingest resume{run}",
                err=True,
            )
            sys.exit(130)

    return asyncio.run(main())


@cli.command()
@click.argument("run_id", type=int, required=False)
@dsn_option
@_output_options
def resume(run_id: int | None, dsn: str | None, **output_options: Any) -> None:
    """Continue an interrupted or failed run (default: the latest) with its options."""
    from pgingest.api import resume_async

    output = Output(**output_options)
    report = None
    try:
        report = _run_interruptible(resume_async(run_id, dsn=dsn, reporter=output.reporter), output)
    finally:
        output.close(report)
    sys.exit(exit_code(report))


cli.add_command(status)
cli.add_command(revert)
cli.add_command(rejects)
cli.add_command(prune)
cli.add_command(db)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pgingest`` command: maps errors to exit codes."""
    debug = os.environ.get(_env("debug"), "") not in ("", "0") or "--debug" in (argv or sys.argv)
    try:
        cli.main(args=argv, prog_name="pgingest", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    except ConfigError as exc:
        click.echo(f"error: {redact_dsn(str(exc))}", err=True)
        sys.exit(EXIT_USAGE)
    except PgIngestError as exc:
        click.echo(f"error: {redact_dsn(str(exc))}", err=True)
        sys.exit(EXIT_FAILED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        click.echo(
            f"unexpected error: {type(exc).__name__}: {redact_dsn(str(exc))}"
            " (--debug shows the traceback)",
            err=True,
        )
        sys.exit(EXIT_UNEXPECTED)


def run() -> None:
    """The console entry point (``pgingest``, ``python -m pgingest``): :func:`main`, then exit
    without the interpreter's teardown.

    Tearing down a process that imported pyarrow, numpy and the driver takes about 0.1 s
    (every module and object freed one by one): 3% of a 3-second load, a tenth of a small
    one. The operating system reclaims it all at once instead. What must outlive the process
    is written before: the metrics file when the load ended, and here the log handlers and
    the output streams are flushed and closed.
    """
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = EXIT_FAILED
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)

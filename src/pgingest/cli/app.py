"""The ``pgingest`` command: its group, ``load`` and ``resume``, and the entry point; options
only, the work is in the library (``status``, ``revert``, ``rejects``: :mod:`pgingest.cli.manifest`;
``db``: :mod:`pgingest.cli.server`)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, TextIO

import click

from pgingest.cli.manifest import prune, rejects, report, revert, status
from pgingest.cli.options import (
    SectionedCommand,
    SectionedOption,
    config_extras,
    config_option,
    dsn_option,
    load_options,
    option_env,
)
from pgingest.cli.render import (
    EXIT_FAILED,
    EXIT_MANIFEST_NEWER,
    EXIT_UNEXPECTED,
    EXIT_USAGE,
    LineReporter,
    error_json,
    exit_code,
    report_json,
    stages_line,
    summary,
    table_changes,
)
from pgingest.cli.server import db
from pgingest.config import redact_dsn
from pgingest.errors import ConfigError, ManifestVersionError, PgIngestError
from pgingest.observability.progress import FanOut, Reporter


class Ctx:
    """What every subcommand shares, and what :func:`main` needs to report an error."""

    def __init__(self, debug: bool = False) -> None:
        self.debug = debug
        self.log_format: str | None = None
        """``json`` once a command's ``--log-format json`` is read: errors become JSON too."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="pgingest")
@click.option(
    "--debug",
    is_flag=True,
    envvar=option_env("--debug"),
    help="Show tracebacks of unexpected errors (and of a failed --transform import).",
)
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Load CSV/TSV, Parquet, Excel (xlsx xlsm xls xlsb ods) and NDJSON files into PostgreSQL.

    With no --dsn and no DATABASE_URL, pgingest uses an embedded PostgreSQL kept in its data
    directory (PGINGEST_HOME); `pgingest db uri` prints how to connect to it.
    """
    state = ctx.ensure_object(Ctx)
    state.debug = state.debug or debug
    root = logging.getLogger()
    before = list(root.handlers)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    added = [handler for handler in root.handlers if handler not in before]
    # Bound to this command's stderr: gone with the command (a caller's process goes on).
    for handler in added:
        ctx.call_on_close(partial(root.removeHandler, handler))


def _remember_log_format(
    ctx: click.Context, _param: click.Parameter, value: str | None
) -> str | None:
    """Note ``--log-format`` before the other options are read (it is eager), so that even a
    refused option's message comes out as JSON."""
    state = ctx.find_object(Ctx)
    if state is not None:
        state.log_format = value
    return value


def _output_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that say how a load reports: shared by ``load`` and ``resume``."""
    for option in reversed(
        [
            click.option(
                "--quiet",
                "-q",
                cls=SectionedOption,
                is_flag=True,
                help="Print only errors and the summary.",
            ),
            click.option(
                "--json",
                "json_out",
                cls=SectionedOption,
                is_flag=True,
                envvar=option_env("--json"),
                help="At the end, print one JSON document on stdout (each file's path, table,"
                " status, rows, rejects, seconds, error; the run's id, counts, exit code);"
                " progress and messages go to stderr.",
            ),
            click.option(
                "--verbose",
                "-v",
                cls=SectionedOption,
                is_flag=True,
                help="Log more: one line per batch (DEBUG) in the log.",
            ),
            click.option(
                "--no-progress",
                cls=SectionedOption,
                is_flag=True,
                envvar=option_env("--no-progress"),
                help="No progress bars, plain lines only (always so when stdout is not a"
                " terminal).",
            ),
            click.option(
                "--log-format",
                cls=SectionedOption,
                type=click.Choice(["text", "json"]),
                envvar=option_env("--log-format"),
                is_eager=True,
                callback=_remember_log_format,
                show_default="text",
                help="Log lines as text or JSON objects (run_id, file, table, batch, rows,"
                " latency_ms, status, error, time); with json, the final error line is JSON"
                " too.",
            ),
            click.option(
                "--log-file",
                cls=SectionedOption,
                type=click.Path(dir_okay=False),
                envvar=option_env("--log-file"),
                show_default="stderr",
                help="Append the log to this file.",
            ),
            click.option(
                "--metrics-port",
                cls=SectionedOption,
                type=click.IntRange(1, 65535),
                envvar=option_env("--metrics-port"),
                help="Serve Prometheus metrics on this port (/metrics) while the run lasts.",
            ),
            click.option(
                "--metrics-file",
                cls=SectionedOption,
                type=click.Path(dir_okay=False),
                envvar=option_env("--metrics-file"),
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
        json_out: bool = False,
        verbose: bool = False,
        no_progress: bool = False,
        log_format: str | None = None,
        log_file: str | None = None,
        metrics_port: int | None = None,
        metrics_file: str | None = None,
    ) -> None:
        self.metrics_file = metrics_file
        self._devnull: TextIO | None = None
        self.json_on_stderr = log_format == "json" and log_file is None
        self.json_out = json_out
        """``--json``: stdout carries only the closing JSON document; the rest goes to stderr."""
        logging_on = log_format is not None or log_file is not None or verbose
        reporters: list[Reporter] = []
        terminal = (sys.stderr if json_out else sys.stdout).isatty()
        if not quiet and not no_progress and terminal and not self.json_on_stderr:
            from rich.console import Console

            from pgingest.cli.progress_bars import BarReporter

            self.lines: LineReporter = BarReporter(Console(stderr=json_out))
        else:
            # JSON logs on stderr: stderr carries only JSON (failures are log lines too).
            err = open(os.devnull, "w") if self.json_on_stderr else None  # noqa: SIM115
            self._devnull = err
            out = (err or sys.stderr) if json_out else None
            self.lines = LineReporter(quiet=quiet, err=err, out=out)
        reporters.append(self.lines)
        if logging_on:
            from pgingest.observability.logs import LogReporter, configure, release

            level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
            handler = configure("json" if log_format == "json" else "text", level, log_file)
            click.get_current_context().call_on_close(lambda: release(handler))
            reporters.append(LogReporter())
        self.metrics: Any = None
        if metrics_port is not None or metrics_file is not None:
            from pgingest.observability.metrics import MetricsReporter

            self.metrics = MetricsReporter()
            if metrics_port is not None:
                self.metrics.serve(metrics_port)
            reporters.append(self.metrics)
        self.reporter = FanOut(reporters)

    def echo(self, text: str, *, err: bool = False) -> None:
        """A line of the run's output: on stderr with ``--json`` (stdout is the document's),
        and nowhere when the JSON log has stderr too (each stream carries only JSON)."""
        if self.json_out:
            if self.json_on_stderr:
                return
            err = True
        click.echo(text, err=err)

    def failed(self, exc: BaseException) -> None:
        """With ``--json``: the document for a run that ended on an error, not per file."""
        if self.json_out:
            code = error_exit_code(exc)
            error = error_json(redact_dsn(str(exc)), code, self.lines.run_id)
            click.echo(json.dumps(error, indent=2))

    def close(self, report: Any = None) -> None:
        """Write the metrics file, stop serving, print the stage timings, the table changes
        and last the line that says how the run ended; with ``--json``, then the document."""
        if self.metrics is not None:
            if self.metrics_file is not None:
                self.metrics.write(self.metrics_file)
            self.metrics.stop()
        close_bars = getattr(self.lines, "close", None)
        if close_bars is not None:
            close_bars()  # the bars are gone before the closing lines are printed
        if report is not None:
            to_err = bool(report.failed) and not self.json_on_stderr
            if report.stages and not report.dry_run:
                self.echo(stages_line(report), err=to_err)
            changes = table_changes(report) if not report.dry_run else []
            if len(changes) > 1 or (changes and len(report.files) > 1):
                self.echo("per table:\n" + "\n".join(changes), err=to_err)
            self.echo(summary(report), err=to_err)
            if self.json_out:
                click.echo(json.dumps(report_json(report, exit_code(report)), indent=2))
        if self._devnull is not None:
            self._devnull.close()  # after the bars and lines that could write to it


@cli.command(cls=SectionedCommand)
@click.argument("paths", nargs=-1)
@config_option
@dsn_option
@load_options
@click.option(
    "--disable-internal-parallelism",
    cls=SectionedOption,
    section="performance",
    is_flag=True,
    envvar=option_env("--disable-internal-parallelism"),
    help="Load each file's batches one at a time (--internal-concurrency 1).",
)
@_output_options
@click.pass_context
def load(
    ctx: click.Context,
    /,
    paths: tuple[str, ...],
    dsn: str | None,
    config_file: str | None,
    disable_internal_parallelism: bool,
    quiet: bool,
    json_out: bool,
    verbose: bool,
    no_progress: bool,
    log_format: str | None,
    log_file: str | None,
    metrics_port: int | None,
    metrics_file: str | None,
    **values: Any,
) -> None:
    """Load files, folders (recursive) or glob patterns into PostgreSQL tables.

    A path may also be a URL: s3://bucket/prefix/ (or a glob, s3://bucket/p/*.parquet),
    gs://, az://, https:// or http://; a .zip archive (local or remote) loads each data file
    in it as a file of its own, named ARCHIVE.zip!/MEMBER (README: "Remote inputs").

    Each file is appended to its table in batches, one transaction per batch (--mode upsert,
    merge or replace change that). The table is created when missing, with column types
    inferred from the data (CSV), kept from the file (Parquet, NDJSON) or from the cells
    (workbooks). --table-from folder makes one table per folder; --config FILE reads
    options, per-folder overrides and sources from YAML. Every option can also be set by a
    PGINGEST_<OPTION> variable (PGINGEST_BATCH_SIZE=100000). Exit code 0 when every file
    loaded, 1 when any failed, 2 for a usage error.
    """
    from pgingest.api import load_async

    extras, config_paths, home = config_extras(ctx)
    if not paths:
        paths = config_paths
    if not paths and not extras.get("sources"):
        where = f" or paths/sources in {config_file}" if config_file else ""
        raise click.UsageError(f"nothing to load: give at least one PATH{where}")
    options: dict[str, Any] = {**values, **extras}
    if options.get("null_strings") is not None:
        options["null_strings"] = tuple(options["null_strings"])
    if disable_internal_parallelism:
        options["internal_concurrency"] = 1
    output = Output(
        quiet=quiet,
        json_out=json_out,
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
            load_async(list(paths), dsn=dsn, home=home, reporter=output.reporter, **options),
            output,
        )
        if report.dry_run:
            for plan in report.plans:
                output.echo(plan)
            output.echo("dry run: nothing was written")
    except PgIngestError as exc:
        output.failed(exc)
        raise
    finally:
        output.close(report)
    sys.exit(exit_code(report))


def _run_interruptible(coro: Any, output: Output) -> Any:
    """Run a load; SIGINT/SIGTERM roll back the batches in flight, record the run as
    interrupted, say how to resume and exit 130."""

    try:
        # (Imported here: `pgingest --help` needs no event loop.)
        import asyncio

        from pgingest.pg.loop import close_unstarted
        from pgingest.pg.loop import run as run_loop
    except BaseException:  # a Ctrl-C meanwhile: the load never started, nor will it
        coro.close()  # (no "coroutine was never awaited" on the way out)
        raise

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

    try:
        return run_loop(main())
    finally:
        close_unstarted(coro)  # (a Ctrl-C before ``main`` started it)


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
    except PgIngestError as exc:
        output.failed(exc)
        raise
    finally:
        output.close(report)
    sys.exit(exit_code(report))


cli.add_command(status)
cli.add_command(report)
cli.add_command(revert)
cli.add_command(rejects)
cli.add_command(prune)
cli.add_command(db)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``pgingest`` command: maps errors to exit codes."""
    debug = os.environ.get(option_env("--debug"), "") not in ("", "0") or "--debug" in (
        argv or sys.argv
    )
    state = Ctx(debug)
    try:
        cli.main(args=argv, prog_name="pgingest", standalone_mode=False, obj=state)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        if state.log_format == "json":
            _error_line(state, exc.format_message())
        else:
            exc.show()
        sys.exit(EXIT_USAGE)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):
            # click's word for a Ctrl-C before the command's own handler was set up (while
            # its modules were imported): the same line and code as a Ctrl-C after it
            _error_line(state, "interrupted")
            sys.exit(130)
        _error_line(state, "aborted")
        sys.exit(EXIT_FAILED)
    except PgIngestError as exc:
        if debug and exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__)
        _error_line(state, str(exc), prefix="error: ")
        sys.exit(error_exit_code(exc))
    except KeyboardInterrupt:
        _error_line(state, "interrupted")
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        _error_line(
            state,
            f"unexpected error: {type(exc).__name__}: {exc} (--debug shows the traceback)",
        )
        sys.exit(EXIT_UNEXPECTED)


def error_exit_code(exc: BaseException) -> int:
    """The exit code of a command that ended on ``exc``: 2 a usage error, 3 a manifest newer
    than this pgingest, 1 anything else."""
    if isinstance(exc, ConfigError):
        return EXIT_USAGE
    if isinstance(exc, ManifestVersionError):
        return EXIT_MANIFEST_NEWER
    return EXIT_FAILED


def _error_line(state: Ctx, message: str, prefix: str = "") -> None:
    """The final line of a failed command on stderr: ``prefix`` and the message, or a JSON
    object (``level`` ``error``, ``message``, ``time``) under ``--log-format json``; a DSN's
    password never."""
    if state.log_format == "json":
        from pgingest.observability.logs import JsonFormatter

        record = logging.LogRecord("pgingest", logging.ERROR, __file__, 0, message, None, None)
        click.echo(JsonFormatter().format(record), err=True)
    else:
        click.echo(redact_dsn(prefix + message), err=True)


def run() -> None:
    """The console entry point (``pgingest``, ``python -m pgingest``): :func:`main`, then exit
    without the interpreter's teardown.

    Tearing down a process that imported pyarrow, numpy and the driver takes about 0.1 s
    (every module and object freed one by one): 3% of a 3-second load, a tenth of a small
    one. The operating system reclaims it all at once instead. What must outlive the process
    is written before: the metrics file when the load ended, and here the log handlers and
    the output streams are flushed and closed.
    """
    # numpy's OpenBLAS starts a thread per core that spins for a while on import: 0.1 s of
    # CPU taken from the server on a small machine, for linear algebra pgingest never does.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
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

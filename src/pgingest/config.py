"""Settings and load options: frozen dataclasses, merged once at the edge.

Flags win over ``PGINGEST_*`` variables, those over a config file, that over the defaults. The
command line merges them in one place, click's (each :class:`LoadOptions` field's metadata
makes its option: see :mod:`pgingest.cli.options`); the library takes keyword arguments over
the defaults, and the DSN and server home from the environment.

Code below this module never reads ``os.environ``; :func:`connection_from_env` is called by the
CLI and by the library's entry points only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pgingest.errors import ConfigError
from pgingest.model import MODES, STRATEGIES, FormatOption, Mode, Strategy

OnChanged = Literal["replace", "append"]
TableFrom = Literal["file", "folder"]
TransformSpec = Callable[[Any], Any] | str
"""A batch transform: the callable, or its ``module:function`` name."""
TxnScope = Literal["batch", "file"]
OnNewColumn = Literal["add", "ignore", "fail"]
OnTypeChange = Literal["widen", "fail"]
OnError = Literal["stop", "skip"]
DateFormat = Literal["dmy", "mdy"]

ENV_PREFIX = "PGINGEST_"
MANIFEST_SCHEMA = "pgingest"
"""The tool's own schema (runs, files, rejects...): never a target."""


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***`` (URL or key=value form).

    Also safe on free text that merely contains a connection string somewhere (an error
    message quoting a config line): every ``scheme://user:password@`` in it is redacted.

    Args:
        dsn: a libpq connection string or URL, or a message that may hold one.

    Returns:
        The same string, safe to print or log.
    """
    text = _URL_PASSWORD.sub(r"\1***@", dsn)
    text = _KEY_PASSWORD_QUERY.sub(r"\1***", text)
    return _KEY_PASSWORD.sub(r"\1***", text)


# A URL's "user:password@" anywhere in a text: the password runs to the last "@" of the word
# (a host holds none; an unencoded password may hold "@", "?", "/"); "password=" as a URL
# query parameter; "password = value" of the key=value form.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)\S*@(?=[^\s@]*(?:\s|$))")
_KEY_PASSWORD_QUERY = re.compile(r"(?i)((?:^|[?&])password=)[^&\s]*")
_KEY_PASSWORD = re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)")


def dsn_url(dsn: str) -> str:
    """A libpq connection string as a URL: ``host=h dbname=d user=u`` becomes
    ``postgresql://u@/d?host=h`` (the driver reads URLs only); a URL is returned as it is.

    Args:
        dsn: a ``postgresql://`` URL or a libpq ``key=value`` string (values may be
            single-quoted, with ``\\'`` and ``\\\\`` inside).

    Returns:
        The URL.

    Raises:
        ConfigError: a key=value string that does not parse.
    """
    text = dsn.strip()
    if "://" in text or "=" not in text:
        return dsn
    from urllib.parse import quote, urlencode

    pairs: dict[str, str] = {}
    position = 0
    while position < len(text):
        match = _KEY_VALUE.match(text, position)
        if match is None:
            raise ConfigError(
                redact_dsn(f"invalid DSN {dsn!r}: expected key=value at {text[position:]!r}")
            )
        value = match.group(3)
        if value is None:
            value = re.sub(r"\\(.)", r"\1", match.group(2))
        pairs[match.group(1)] = value
        position = match.end()
    user = quote(pairs.pop("user", ""), safe="")
    password = pairs.pop("password", None)
    auth = f"{user}:{quote(password, safe='')}@" if password is not None else f"{user}@"
    database = quote(pairs.pop("dbname", ""), safe="")
    query = urlencode(pairs)
    return f"postgresql://{auth if auth != '@' else ''}/{database}" + (f"?{query}" if query else "")


# One libpq key=value pair: a key, "=", then a single-quoted value (backslash escapes) or a bare
# word; whitespace around "=" and between pairs.
_KEY_VALUE = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']*))\s*")


def default_home() -> Path:
    """Per-user data directory of the embedded server (``PGINGEST_HOME`` overrides it)."""
    import platformdirs  # (the embedded server's only: not on a load given a DSN)

    return Path(platformdirs.user_data_dir("pgingest", appauthor=False))


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where the data goes."""

    dsn: str | None = None
    """A libpq URL or key=value string; ``None`` means the embedded server in ``home``."""
    home: Path | None = None
    """Data directory of the embedded server (``PGINGEST_HOME``); ``None``: the per-user one
    (:func:`default_home`), looked up only when the embedded server is used."""
    connect_timeout: float = 30.0
    """Seconds to wait for a connection."""

    def __post_init__(self) -> None:
        if self.dsn is not None:
            object.__setattr__(self, "dsn", dsn_url(self.dsn))

    def __repr__(self) -> str:
        dsn = redact_dsn(self.dsn) if self.dsn else None
        home = str(self.home) if self.home is not None else None
        return f"ConnectionSettings(dsn={dsn!r}, home={home!r})"

    @property
    def data_dir(self) -> Path:
        """The embedded server's data directory: ``home``, else the per-user one."""
        return self.home if self.home is not None else default_home()

    @property
    def is_embedded(self) -> bool:
        """True when no DSN was given and the embedded server is used."""
        return self.dsn is None


Section = Literal[
    "input",
    "target",
    "types and schema",
    "modes and keys",
    "bad rows",
    "performance",
    "reliability",
    "output",
]
"""The groups ``pgingest load --help`` and the option reference list options in."""
SECTIONS: tuple[Section, ...] = get_args(Section)

ENCODINGS = (
    "utf-8",
    "cp1252",
    "latin-1",
    "cp1250",
    "cp1251",
    "iso8859-2",
    "iso8859-15",
    "koi8-r",
    "cp1253",
    "iso8859-7",
    "cp1254",
    "iso8859-9",
    "cp1255",
    "iso8859-8",
)
"""The encodings ``--encoding`` may force (those detection itself may choose)."""


def _option(
    default: Any = None,
    *,
    help: str,
    section: Section,
    factory: Callable[[], Any] | None = None,
    flags: tuple[str, ...] = (),
    shown: str | None = None,
    minimum: float | None = None,
    above: bool = False,
    choices: tuple[str, ...] | None = None,
    existing_file: bool = False,
    cli: bool = True,
) -> Any:
    """A :class:`LoadOptions` field whose metadata describes its command-line option.

    Args:
        default: the default value (or ``factory`` for a mutable one).
        help: the option's help text, without its default (click shows that).
        section: where ``--help`` and the reference list it.
        factory: builds the default instead of ``default``.
        flags: the option's names when not ``--<field-name>``: the first names the
            ``PGINGEST_`` variable; for a boolean, ``("--on", "--off")`` names both switches.
        shown: what the default means, shown instead of a default of ``None`` or ``()``.
        minimum: the smallest value a number may take; ``above``: it must be above it.
        choices: the values a text option may take (a ``Literal`` gives its own).
        existing_file: the value is the path of a file that must exist.
        cli: False for options only a config file or the library can set.
    """
    metadata = {
        "help": help,
        "section": section,
        "flags": flags,
        "shown": shown,
        "minimum": minimum,
        "above": above,
        "choices": choices,
        "existing_file": existing_file,
        "cli": cli,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How files are loaded.

    Each field's metadata holds its help text and its ``--help`` section; the ``load`` command
    makes an option of every field (``--batch-size`` for ``batch_size``, read from
    ``PGINGEST_BATCH_SIZE`` too), a config file may set any field by its name.
    """

    table: str | None = _option(
        help="Target table.",
        section="target",
        flags=("--table", "-t"),
        shown="each file's name, normalized",
    )
    schema: str = _option(
        "public",
        help="Target schema (created when missing; not pgingest, the tool's own).",
        section="target",
    )
    format: FormatOption = _option(
        "auto",
        help="File format; auto reads each file's content: CSV/TSV, Parquet, workbooks (xlsx,"
        " xlsm, xls, xlsb, ods) and NDJSON. A text file named like a workbook needs --format"
        " csv.",
        section="input",
        flags=("--format", "--file-type"),
    )
    headers: tuple[str, ...] | None = _option(
        help="Column names a,b,c for a headerless file, or replacing the header.",
        section="input",
        shown="the header",
    )
    header: bool | None = _option(
        help="Row 1 is (or is not) a header.",
        section="input",
        shown="sniffed",
    )
    delimiter: str | None = _option(
        help="Force the CSV delimiter.",
        section="input",
        shown="sniffed among , ; tab |",
    )
    quote: str | None = _option(
        help="Force the CSV quote character.",
        section="input",
        shown="sniffed, \" or '",
    )
    escape: Literal["double", "backslash"] | None = _option(
        help="How a quote inside a quoted CSV field is written: doubled (RFC 4180) or after a"
        " backslash.",
        section="input",
        shown="sniffed",
    )
    encoding: str | None = _option(
        help="Force the text encoding.",
        section="input",
        choices=ENCODINGS,
        shown="UTF-8 unless the content consistently is not, then the single-byte encoding of"
        " its language",
    )
    types: Mapping[str, str] = _option(
        help="Column types by normalized column name, e.g. 'zip=text,amount=numeric(12,2)' (a"
        " mapping in a config file); text wins over any format's own types (each value's"
        " text).",
        section="types and schema",
        factory=dict,
        shown="inferred",
    )
    text: bool = _option(
        False,
        help="Load every column of a new table as text, each value as it reads (nanoseconds"
        " included), or infer (CSV) and keep (Parquet, workbooks, NDJSON) column types.",
        section="types and schema",
        flags=("--text", "--preserve-types"),
    )
    null_strings: tuple[str, ...] = _option(
        help="A value meaning NULL (repeatable); an unquoted empty field always is.",
        section="input",
        factory=tuple,
        flags=("--null-string",),
        shown="none",
    )
    tolerant: bool = _option(
        False,
        help="A table column missing from a file is loaded as NULL instead of an error.",
        section="types and schema",
    )
    on_new_column: OnNewColumn = _option(
        "add",
        help="A file column the table lacks: add it to the table (logged), ignore its values,"
        " or fail the file.",
        section="types and schema",
    )
    on_type_change: OnTypeChange = _option(
        "widen",
        help="Values wider than their column (3.5 in an integer column): widen the column"
        " (logged; integer -> bigint -> numeric, -> double precision, date -> timestamp ->"
        " timestamptz, text last) or fail the file.",
        section="types and schema",
    )
    on_error: OnError = _option(
        "stop",
        help="A row that cannot be parsed or cast: stop the file (nothing of it is kept) or"
        " skip it into pgingest.rejects and load the rest (see `pgingest rejects`); upsert"
        " and merge also skip a row whose key is NULL or not an integer (README: Bad rows).",
        section="bad rows",
    )
    max_errors: int | str | None = _option(
        help="With --on-error skip: the most bad rows a file may have, a count (100) or a share"
        " of its rows (0.5%); more fail the file.",
        section="bad rows",
        shown="no limit",
    )
    date_format: DateFormat | None = _option(
        help="Read dates like 01/02/2026 as day/month or month/day when no value of the column"
        " tells (a day above 12).",
        section="types and schema",
        shown="such a column stays text, with a warning",
    )
    contract: str | None = _option(
        help="YAML contract: per table the columns, their types, not-null, key and header"
        " aliases. A file that breaks it fails before any write, listing every violation.",
        section="types and schema",
        existing_file=True,
    )
    batch_size: int = _option(
        50_000,
        help="Rows per batch (one transaction each).",
        section="performance",
        flags=("--batch-size", "--chunk-size"),
        minimum=1,
    )
    batch_bytes: int = _option(
        32 << 20,
        help="Upper bound of a batch in bytes, so that very wide rows cannot blow the memory.",
        section="performance",
        minimum=1024,
    )
    concurrency: int = _option(
        4,
        help="Files loaded at the same time (shared among --workers).",
        section="performance",
        flags=("--concurrency", "-j"),
        minimum=1,
    )
    workers: int = _option(
        1,
        help="Loader processes on this machine, as one run. They share the files through the"
        " manifest as separate loaders do: for many files or CPU-heavy formats, where one"
        " process's Python is the limit. Not with --mode replace.",
        section="performance",
        minimum=1,
    )
    internal_concurrency: int = _option(
        2,
        help="Batches of one file loaded at the same time.",
        section="performance",
        minimum=1,
    )
    dry_run: bool = _option(
        False,
        help="Detect, infer and show the DDL that would run; write nothing.",
        section="output",
    )
    sample_rows: int = _option(
        50_000,
        help="Rows of a CSV file read ahead to infer its column types.",
        section="types and schema",
        minimum=1,
    )
    lineage: bool = _option(
        True,
        help="Add _pgingest_file_id and _pgingest_loaded_at to target tables (revert needs them).",
        section="target",
    )
    analyze: bool = _option(
        True,
        help="After the run, ANALYZE each table it changed much: rows written at least 10% of"
        " the rows the planner last counted in it, or a new (or replaced) table; a failure is a"
        " warning. --no-analyze leaves it to autovacuum.",
        section="performance",
    )
    force: bool = _option(
        False,
        help="Load files again even when the manifest says their content is loaded.",
        section="modes and keys",
    )
    on_changed: OnChanged = _option(
        "replace",
        help="A known path with new content: replace the old version's rows, or append (keep"
        " both).",
        section="modes and keys",
    )
    txn: TxnScope = _option(
        "batch",
        help="One transaction per batch (resumable), or one for the whole file.",
        section="modes and keys",
    )
    pause_every: int = _option(
        0,
        help="Pause after every N files (0: never).",
        section="performance",
        minimum=0,
    )
    pause_seconds: float = _option(
        0.0,
        help="How long each pause lasts, in seconds.",
        section="performance",
        minimum=0,
    )
    sectional_commit: bool = _option(
        False,
        help="Stop loading a folder at its first failed file (the rest of it waits for a re-run).",
        section="reliability",
    )
    max_retries: int = _option(
        3,
        help="Retries of a batch (or a connection, or a file's bookkeeping) after a transient"
        " database error: connection lost or refused, server shutting down or starting up, too"
        " many connections, serialization failure, deadlock. 0: fail at the first one.",
        section="reliability",
        minimum=0,
    )
    retry_base: float = _option(
        1.0,
        help="Seconds before the first retry; each further retry waits twice as long (with"
        " jitter).",
        section="reliability",
        minimum=0,
    )
    retry_max: float = _option(
        30.0,
        help="The longest wait between two retries, in seconds.",
        section="reliability",
        minimum=0,
    )
    stall_timeout: float = _option(
        60.0,
        help="Seconds a batch's connection may go without progress (no bytes of its COPY"
        " arriving, its server process waiting for a client that sends nothing, or gone) before"
        " it counts as lost: its server process is terminated and the batch retried on a fresh"
        " connection. A statement the server is busy with (a long ALTER COLUMN TYPE) is"
        " progress. Also the longest wait for any lock. 0: no bound (not recommended).",
        section="reliability",
        minimum=0,
    )
    sheet: str | None = _option(
        help="Workbooks: the sheet to load, by NAME or 1-based position; all: every non-empty"
        " sheet, each to table <table>_<sheet> (or, with --sheet-column, all to one table).",
        section="input",
        shown="the first sheet",
    )
    header_row: int | None = _option(
        help="Workbooks: 1-based row of the header, counted from the sheet's first non-empty row.",
        section="input",
        minimum=1,
        shown="the first row as wide as the table, title rows above it skipped",
    )
    sheet_column: bool = _option(
        False,
        help="With --sheet all: every sheet into one table, with a 'sheet' column.",
        section="input",
    )
    source_file_column: bool = _option(
        False,
        help="Add a 'source_file' text column holding each row's file path.",
        section="target",
    )
    table_from: TableFrom = _option(
        "file",
        help="file: a table per file name; folder: a table per folder, named from its path"
        " below the folder given to load (sales/emea/*.xlsx -> sales_emea).",
        section="target",
    )
    transform: TransformSpec | None = _option(
        help="module:function (importable from the current directory or PYTHONPATH) applied"
        " to every Arrow record batch before it is written and to the sample types are"
        " inferred from; it returns a pyarrow.RecordBatch. The library also takes the"
        " function itself.",
        section="input",
    )
    folders: Mapping[str, Mapping[str, Any]] = _option(
        help="Per-folder option overrides: folder path below the load root (sales/emea) ->"
        " options (table, sheet, header_row, ...); deeper folders win.",
        section="input",
        factory=dict,
        cli=False,
    )
    sources: tuple[Mapping[str, Any], ...] = _option(
        help="Extra inputs: each a path (file, folder or glob) with option overrides such as"
        " its table.",
        section="input",
        factory=tuple,
        cli=False,
    )
    mode: Mode = _option(
        "append",
        help="append rows; upsert (INSERT ... ON CONFLICT on the key); merge (MERGE, PostgreSQL"
        " 15+); replace the table's content atomically at the end of the run.",
        section="modes and keys",
    )
    pk: tuple[str, ...] | None = _option(
        help="Key columns a[,b] of upsert and merge (normalized names; `key` in a config file);"
        " a new table of theirs is created with this primary key. append and replace do not"
        " use it (a table they create has no key).",
        section="modes and keys",
        shown="the table's primary key or a unique constraint",
    )
    delete_missing: bool = _option(
        False,
        help="merge: each file is a full snapshot of its key range; rows of the table in that"
        " range (smallest to largest key of the file) whose key the file lacks are deleted.",
        section="modes and keys",
    )
    strategy: Strategy = _option(
        "auto",
        help="upsert/merge, files into one table: auto (parallel where their keys are"
        " disjoint, in order where they overlap), parallel, ordered (one after another) or"
        " sequential (one file, one batch at a time).",
        section="modes and keys",
    )
    lock_wait: float = _option(
        600.0,
        help="upsert/merge: the longest wait, in seconds, for a file that another pgingest"
        " process is loading when later files of this run share keys with it; then it and"
        " those files fail, to be loaded by a re-run.",
        section="reliability",
        minimum=0,
    )
    swap_lock_timeout: float = _option(
        3.0,
        help="replace: seconds the swap waits for its lock on the old table at each try"
        " (readers arriving meanwhile wait behind it at most this long).",
        section="reliability",
        minimum=0,
        above=True,
    )
    swap_tries: int = _option(
        10,
        help="replace: tries of the swap (each waits --swap-lock-timeout, then up to as long"
        " again, letting readers through) before the run fails, the old table untouched and"
        " the new one kept for `pgingest resume`.",
        section="reliability",
        minimum=1,
    )

    def __post_init__(self) -> None:
        for item in fields(self):
            minimum = item.metadata.get("minimum")
            value = getattr(self, item.name)
            if minimum is None or value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"{option_flag(item.name)} must be a number, got {value!r}")
            if value < minimum or (item.metadata["above"] and value == minimum):
                bound = "above" if item.metadata["above"] else "at least"
                raise ConfigError(
                    f"{option_flag(item.name)} must be {bound} {minimum:g}, got {value!r}"
                )
        if self.schema.strip().lower() == MANIFEST_SCHEMA:
            raise ConfigError(
                f"--schema {self.schema}: that schema holds pgingest's own bookkeeping;"
                " load into another one"
            )
        if self.on_changed not in ("replace", "append"):
            raise ConfigError("--on-changed must be replace or append")
        if self.txn not in ("batch", "file"):
            raise ConfigError("--txn must be batch or file")
        if self.mode not in MODES:
            raise ConfigError(f"unknown mode {self.mode!r}: use {', '.join(MODES)}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"unknown strategy {self.strategy!r}: use {', '.join(STRATEGIES)}")
        if self.pk is not None:
            keys = tuple(self.pk)
            if not keys or any(not isinstance(k, str) or not k.strip() for k in keys):
                raise ConfigError("--pk needs column names: --pk id or --pk a,b")
            if len(set(keys)) != len(keys):
                raise ConfigError(f"--pk names a column twice: {','.join(keys)}")
            object.__setattr__(self, "pk", keys)  # a list from a caller
        if self.workers > 1 and self.mode == "replace":
            raise ConfigError(
                "--workers does not go with --mode replace: a replace builds each table's new"
                " table in one run's process and swaps it in once"
            )
        if self.delete_missing and self.mode != "merge":
            raise ConfigError("--delete-missing needs --mode merge")
        if self.on_new_column not in ("add", "ignore", "fail"):
            raise ConfigError("--on-new-column must be add, ignore or fail")
        if self.on_type_change not in ("widen", "fail"):
            raise ConfigError("--on-type-change must be widen or fail")
        if self.on_error not in ("stop", "skip"):
            raise ConfigError("--on-error must be stop or skip")
        if self.date_format not in (None, "dmy", "mdy"):
            raise ConfigError("--date-format must be dmy or mdy")
        error_limit(self.max_errors)
        if self.format not in get_args(FormatOption):
            choices = ", ".join(get_args(FormatOption))
            raise ConfigError(f"unknown format {self.format!r}: use one of {choices}")
        if self.table_from not in ("file", "folder"):
            raise ConfigError("--table-from must be file or folder")
        if self.sheet is not None and not isinstance(self.sheet, str):
            object.__setattr__(self, "sheet", str(self.sheet))  # a position from YAML
        if self.transform is not None and not (
            callable(self.transform) or (isinstance(self.transform, str) and ":" in self.transform)
        ):
            raise ConfigError("--transform must be module:function or a callable")
        object.__setattr__(self, "sources", tuple(self.sources))


def option_flag(name: str) -> str:
    """The command-line flag of the :class:`LoadOptions` field ``name`` (``--batch-size``)."""
    for item in fields(LoadOptions):
        if item.name == name and item.metadata.get("flags"):
            return str(item.metadata["flags"][0])
    return "--" + name.replace("_", "-")


def error_limit(value: int | str | None) -> tuple[int | None, float | None]:
    """Parse ``--max-errors``: ``(count, None)``, ``(None, share)`` or ``(None, None)``.

    Args:
        value: ``None``, a count (``10``, ``"10"``) or a share (``"0.5%"``).

    Returns:
        The count limit or the share limit (a fraction: ``0.005``).

    Raises:
        ConfigError: neither a non-negative count nor a percentage.
    """
    if value is None:
        return None, None
    text = str(value).strip()
    try:
        if text.endswith("%"):
            share = float(text[:-1]) / 100
            if not 0 <= share <= 1:
                raise ValueError(text)
            return None, share
        count = int(text)
        if count < 0:
            raise ValueError(text)
        return count, None
    except ValueError:
        raise ConfigError(
            f"--max-errors must be a count or a percentage such as 0.5%, got {value!r}"
        ) from None


def connection_from_env(
    dsn: str | None = None,
    home: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConnectionSettings:
    """Connection settings: explicit values, else DATABASE_URL, PGINGEST_DSN, PGINGEST_HOME.

    Args:
        dsn: explicit DSN (``--dsn``).
        home: explicit embedded-server directory.
        environ: the environment to read (default ``os.environ``).

    Returns:
        The settings.
    """
    env = os.environ if environ is None else environ
    dsn = dsn or env.get(ENV_PREFIX + "DSN") or env.get("DATABASE_URL") or None
    home_value = home or env.get(ENV_PREFIX + "HOME")
    path = Path(home_value).expanduser() if home_value else None
    return ConnectionSettings(dsn=dsn, home=path)


def options_with(base: LoadOptions, values: Mapping[str, Any]) -> LoadOptions:
    """Return ``base`` with the non-``None`` entries of ``values`` applied.

    Args:
        base: the starting options.
        values: field name -> value; unknown names raise ``ConfigError``.

    Returns:
        New options.
    """
    known = {f.name for f in fields(LoadOptions)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"unknown load option(s): {', '.join(sorted(unknown))}")
    return replace(base, **{k: v for k, v in values.items() if v is not None})


CRASH_AT_ENV = ENV_PREFIX + "CRASH_AT"
"""Test-only: ``PGINGEST_CRASH_AT=POINT[:N]`` makes the process kill itself (SIGKILL, no
clean-up, as a power cut or the OOM killer would) the N-th time (default 1) it reaches the
named point of the load protocol; see :data:`CRASH_POINTS`. Unset, a crash point costs one
dictionary look-up."""

CRASH_POINTS: dict[str, str] = {
    "run-started": "the run's manifest row is written, no file claimed yet",
    "claimed": "a file is claimed in the manifest, before its first batch",
    "batch-copied": "a batch's rows are sent (COPY done), before its transaction commits",
    "batch-committed": "a batch's transaction (rows and manifest batch record) committed",
    "before-complete": "every batch of a file committed, before the file is marked loaded",
    "completed": "a file is marked loaded (staged, under replace), before the next step",
    "table-created": "a file created its table, before the manifest records the table's identity",
    "evolved": "a table was changed (column added or widened), before that transaction commits",
    "revert-deleted": "revert deleted the files' rows and marked them, before its commit",
    "prune-deleted": "prune deleted old runs, batches and rejects, before its commit",
    "replace-loaded": "replace: every file of a table is in its new table, before the swap",
    "swap-before-commit": "replace: inside the swap's transaction, the new table in the old"
    " one's place and its files marked loaded, before the commit",
    "swap-committed": "replace: the swap committed, before the run's end is recorded",
}
"""The named crash points: where, in the load protocol, :func:`crash_point` may stop the
process. Every point named here is reached by some load, and the crash-point tests run each."""

_crash_spec: list[tuple[str, int] | None] = []  # empty until the environment is read
_crash_seen: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process here if ``PGINGEST_CRASH_AT`` names this point (test-only).

    Args:
        name: one of :data:`CRASH_POINTS`.
    """
    if not _crash_spec:
        _crash_spec.append(_read_crash_spec(os.environ.get(CRASH_AT_ENV, "")))
    spec = _crash_spec[0]
    if spec is None or spec[0] != name:
        return
    _crash_seen[name] = seen = _crash_seen.get(name, 0) + 1
    if seen == spec[1]:
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def _read_crash_spec(value: str) -> tuple[str, int] | None:
    if not value.strip():
        return None
    name, _, count = value.strip().partition(":")
    if name not in CRASH_POINTS:
        raise ConfigError(
            f"{CRASH_AT_ENV}: unknown crash point {name!r} (known: {', '.join(CRASH_POINTS)})"
        )
    try:
        times = int(count) if count else 1
    except ValueError:
        raise ConfigError(f"{CRASH_AT_ENV}: {count!r} is not a whole number") from None
    return name, max(1, times)


_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """An age such as ``90d``, ``12h``, ``2w``, ``30m`` or ``45s`` as a :class:`timedelta`.

    Raises:
        ConfigError: not a whole number followed by one of s, m, h, d, w.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([smhdw])\s*", text.lower())
    if match is None:
        raise ConfigError(
            f"{text!r} is not an age: a whole number and a unit, s m h d or w (e.g. 90d)"
        )
    return timedelta(seconds=int(match.group(1)) * _AGE_UNITS[match.group(2)])

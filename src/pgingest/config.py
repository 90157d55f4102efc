"""Settings and load options: frozen dataclasses, merged once at the edge.

Flags win over the environment, the environment over defaults.

Code below this module never reads ``os.environ``; :func:`settings_from_env` is called by the CLI
and by :func:`pgingest.load` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import platformdirs

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


def default_home() -> Path:
    """Per-user data directory of the embedded server (``PGINGEST_HOME`` overrides it)."""
    return Path(platformdirs.user_data_dir("pgingest", appauthor=False))


@dataclass(frozen=True, slots=True)
class ConnectionSettings:
    """Where the data goes."""

    dsn: str | None = None
    """A libpq URL or key=value string; ``None`` means the embedded server in ``home``."""
    home: Path = field(default_factory=default_home)
    """Data directory of the embedded server (``PGINGEST_HOME``)."""
    connect_timeout: float = 30.0
    """Seconds to wait for a connection."""

    def __repr__(self) -> str:
        dsn = redact_dsn(self.dsn) if self.dsn else None
        return f"ConnectionSettings(dsn={dsn!r}, home={str(self.home)!r})"

    @property
    def is_embedded(self) -> bool:
        """True when no DSN was given and the embedded server is used."""
        return self.dsn is None


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How files are loaded. Every field has a CLI flag and a ``PGINGEST_<FIELD>`` variable."""

    table: str | None = None
    """Target table; default: the file's stem, normalized."""
    schema: str = "public"
    """Target schema (created when missing)."""
    format: FormatOption = "auto"
    """``auto`` detects each file's format from its content."""
    headers: tuple[str, ...] | None = None
    """Column names for a headerless file, or overriding the header."""
    header: bool | None = None
    """Whether row 1 is a header; ``None`` sniffs it."""
    delimiter: str | None = None
    """Force the CSV delimiter (else sniffed)."""
    quote: str | None = None
    """Force the CSV quote character (else sniffed: ``"`` or ``'``)."""
    escape: Literal["double", "backslash"] | None = None
    """How a quote inside a quoted CSV field is written: doubled (RFC 4180) or after a
    backslash; ``None`` sniffs it."""
    encoding: str | None = None
    """Force the CSV encoding (else detected)."""
    types: Mapping[str, str] = field(default_factory=dict)
    """Per-column type overrides, by normalized column name."""
    text: bool = False
    """Load every CSV column as text."""
    null_strings: tuple[str, ...] = ()
    """Extra NULL markers (an unquoted empty field is always NULL)."""
    tolerant: bool = False
    """A table column missing from a file is NULL instead of an error."""
    on_new_column: OnNewColumn = "add"
    """A file column the table lacks: ``add`` it to the table (logged), ``ignore`` it (its
    values are not loaded), or ``fail`` the file."""
    on_type_change: OnTypeChange = "widen"
    """Values wider than their column (``3.5`` in an integer column): ``widen`` the column
    (logged), or ``fail`` the file."""
    on_error: OnError = "stop"
    """A row that cannot be parsed or cast: ``stop`` the file (nothing of it is kept), or
    ``skip`` it into ``pgingest.rejects`` and load the rest."""
    max_errors: int | str | None = None
    """With ``on_error="skip"``: the most bad rows a file may have, a count (``100``) or a
    share of its rows (``"0.5%"``); more fail the file. ``None``: no limit."""
    date_format: DateFormat | None = None
    """How to read ``01/02/2026`` when no value of the column tells (a day above 12):
    ``dmy`` or ``mdy``. Unset, such a column stays text, with a warning."""
    contract: str | None = None
    """Path of a YAML contract: per table, the columns, types, not-null, key, header aliases."""
    batch_size: int = 50_000
    """Rows per batch (one transaction each)."""
    batch_bytes: int = 32 << 20
    """Upper bound of a batch in bytes, so very wide rows cannot blow the memory."""
    concurrency: int = 4
    """Files loaded at the same time."""
    internal_concurrency: int = 2
    """Batches of one file loaded at the same time."""
    dry_run: bool = False
    """Detect, infer and plan; write nothing."""
    sample_rows: int = 50_000
    """Rows read ahead to infer CSV column types."""
    lineage: bool = True
    """Add ``_pgingest_file_id`` / ``_pgingest_loaded_at`` to target tables (revert needs them)."""
    force: bool = False
    """Load files again even when the manifest says their content is loaded."""
    on_changed: OnChanged = "replace"
    """A known path with new content: ``replace`` the old version's rows, or ``append``."""
    txn: TxnScope = "batch"
    """``batch``: one transaction per batch; ``file``: the whole file in one transaction."""
    pause_every: int = 0
    """Pause after every N files (0: never)."""
    pause_seconds: float = 0.0
    """How long each pause lasts."""
    sectional_commit: bool = False
    """Stop loading a folder at its first failed file (the rest of it is left for a re-run)."""
    max_retries: int = 3
    """Retries of a batch (or a connection, or a file's bookkeeping) after a transient database
    error: connection lost or refused, server shutting down or starting up, too many
    connections, serialization failure, deadlock. 0: fail at the first one."""
    retry_base: float = 1.0
    """Seconds before the first retry; each further retry waits twice as long (with jitter)."""
    retry_max: float = 30.0
    """The longest wait between two retries, in seconds."""
    stall_timeout: float = 60.0
    """Seconds a batch's connection may go without progress (no bytes of its COPY arriving,
    its server process waiting for a client that sends nothing, or gone) before it counts as
    lost: its server process is terminated and the batch retried on a fresh connection. A
    statement the server is busy with (a long ``ALTER COLUMN TYPE``) is progress. Also the
    longest wait for any lock. 0: no bound (not recommended)."""
    sheet: str | None = None
    """Workbooks: the sheet to load, by name or 1-based position; ``all``: every non-empty
    sheet, each to table ``<table>_<sheet>`` (or, with :attr:`sheet_column`, all to one
    table). Default: the first sheet."""
    header_row: int | None = None
    """Workbooks: 1-based row of the header, counted from the sheet's first non-empty row;
    default: the first row as wide as the table (title rows above it are skipped)."""
    sheet_column: bool = False
    """With ``sheet: all``: every sheet into one table, with a ``sheet`` column."""
    source_file_column: bool = False
    """Add a ``source_file`` text column holding each row's file path."""
    table_from: TableFrom = "file"
    """``file``: a table per file name; ``folder``: a table per folder, named from its path
    below the folder given to load (``sales/emea/*.xlsx`` -> ``sales_emea``)."""
    transform: TransformSpec | None = None
    """A function ``(pyarrow.RecordBatch) -> pyarrow.RecordBatch`` applied to every batch
    before it is written (and to the sample types are inferred from), or its
    ``module:function`` name."""
    folders: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Per-folder option overrides (from the config file): folder path below the load root
    (``sales/emea``) -> options (``table``, ``sheet``, ``header_row``, ...); deeper folders
    win."""
    sources: tuple[Mapping[str, Any], ...] = ()
    """Extra inputs (from the config file): each a ``path`` (file, folder or glob) with
    option overrides such as its ``table``."""
    mode: Mode = "append"
    """``append`` rows; ``upsert`` (INSERT ... ON CONFLICT on the key); ``merge`` (MERGE,
    PostgreSQL 15+); ``replace`` the table's content atomically at the end of the run."""
    pk: tuple[str, ...] | None = None
    """Key columns for upsert/merge (normalized names); default: the table's primary key or a
    unique constraint."""
    delete_missing: bool = False
    """merge: each file is a full snapshot of its key range; target rows in that range whose key
    the file lacks are deleted."""
    strategy: Strategy = "auto"
    """How files upserting into one table are scheduled: ``auto`` (parallel where their keys
    are disjoint, in order where they overlap), ``parallel``, ``ordered`` or ``sequential``."""
    lock_wait: float = 600.0
    """upsert/merge: the longest wait, in seconds, for a file that another pgingest process is
    loading when later files of this run share keys with it (they must come after it); then
    it and those files fail, to be loaded by a re-run."""
    swap_lock_timeout: float = 3.0
    """replace: seconds the swap waits for its lock on the old table at each try. Readers that
    arrive meanwhile queue behind it, so this bounds their wait too."""
    swap_tries: int = 10
    """replace: tries of the swap (each waits ``swap_lock_timeout``, then up to as long
    again before the next, letting readers through); then the run fails, the old table
    untouched, the new one kept for ``pgingest resume``."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if self.batch_bytes < 1024:
            raise ConfigError("batch bytes must be at least 1024")
        if self.concurrency < 1:
            raise ConfigError("--concurrency must be at least 1")
        if self.internal_concurrency < 1:
            raise ConfigError("--internal-concurrency must be at least 1")
        if self.max_retries < 0:
            raise ConfigError("--max-retries must be 0 or more")
        if self.retry_base < 0 or self.retry_max < 0:
            raise ConfigError("--retry-base and --retry-max must be 0 or more")
        if self.stall_timeout < 0:
            raise ConfigError("--stall-timeout must be 0 or more")
        if self.pause_every < 0 or self.pause_seconds < 0:
            raise ConfigError("--pause-every and --pause-seconds cannot be negative")
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
        if self.lock_wait < 0:
            raise ConfigError("--lock-wait cannot be negative")
        if self.swap_lock_timeout <= 0 or self.swap_tries < 1:
            raise ConfigError("--swap-lock-timeout must be above 0 and --swap-tries at least 1")
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
        if self.header_row is not None and self.header_row < 1:
            raise ConfigError("--header-row must be 1 or more")
        if self.sheet is not None and not isinstance(self.sheet, str):
            object.__setattr__(self, "sheet", str(self.sheet))  # a position from YAML
        if self.transform is not None and not (
            callable(self.transform) or (isinstance(self.transform, str) and ":" in self.transform)
        ):
            raise ConfigError("--transform must be module:function or a callable")
        object.__setattr__(self, "sources", tuple(self.sources))


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
    path = Path(home_value).expanduser() if home_value else default_home()
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


FUTURE_OPTIONS = frozenset({"mode", "key", "pk", "contract"})
"""Config-file options this version does not have yet (upsert/merge modes and keys, contracts):
accepted in the file's schema, passed through when :class:`LoadOptions` has them, and refused
with a clear message otherwise (``mode: append``, today's behaviour, is always accepted)."""
RUN_WIDE_OPTIONS = frozenset({"mode", "pk", "delete_missing", "strategy"})
"""Options of a whole run: files of one table must share their key and how they are applied."""
_CONNECTION_KEYS = frozenset({"dsn", "home"})
_FILE_KEYS = frozenset({"paths", "folders", "sources"})


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """What a YAML config file (``--config``) holds."""

    options: Mapping[str, Any]
    """Load options (field names of :class:`LoadOptions`), ``folders`` and ``sources`` included."""
    dsn: str | None = None
    home: str | None = None
    paths: tuple[str, ...] = ()
    """What to load when the command line names nothing."""


def _key(name: object, where: str) -> str:
    if not isinstance(name, str):
        raise ConfigError(f"{where}: option names must be strings, got {name!r}")
    return name.replace("-", "_")


def check_overrides(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Validate per-folder or per-source options: LoadOptions fields, plus the future ones.

    Raises:
        ConfigError: an unknown option, or a future one this version cannot honour.
    """
    known = {f.name for f in fields(LoadOptions)}
    out: dict[str, Any] = {}
    for raw, value in values.items():
        name = _key(raw, where)
        if name in ("pk",) and "key" in known:
            name = "key"
        if name not in known:
            if name not in FUTURE_OPTIONS:
                raise ConfigError(f"{where}: unknown option {raw!r}")
            if name == "mode" and value == "append":
                continue  # what this version does anyway
            raise ConfigError(
                f"{where}: option {raw!r} is not supported by this version of pgingest"
            )
        if name in ("folders", "sources"):
            raise ConfigError(f"{where}: {raw!r} is only allowed at the top of the file")
        if name in RUN_WIDE_OPTIONS and not (name == "mode" and value == "append"):
            raise ConfigError(
                f"{where}: {name} can only be set for the whole run (top of the file or the"
                " command line), not per folder or source"
            )
        out[name] = tuple(value) if isinstance(value, list) else value
    return out


OPTION_ALIASES = {"default_sheet": "sheet"}
"""Config-file spellings of options: the seed design's ``default_sheet`` is ``sheet``."""


def _split_folders(
    body: Mapping[Any, Any], where: str, allowed: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a mapping into options and folders: a key that names an option (or ``allowed``)
    is one, any other key whose value is a mapping (or empty) is a folder of that name, and
    ``folders:`` lists folders too. An option's name always wins over a folder's.

    Raises:
        ConfigError: a key that is neither an option nor a folder (a scalar value).
    """
    known = {f.name for f in fields(LoadOptions)} | FUTURE_OPTIONS | allowed
    options: dict[str, Any] = {}
    folders: dict[str, Any] = {}
    for raw, value in body.items():
        name = _key(raw, where)
        name = OPTION_ALIASES.get(name, name)
        if name == "folders" and value is not None:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{where}: 'folders' must map folder paths to options")
            folders.update(value)
        elif name in known or name == "folders":
            options[name] = value
        elif value is None or isinstance(value, Mapping):
            folders[str(raw)] = value
        else:
            raise ConfigError(f"{where}: unknown option {raw!r}")
    return options, folders


def _flatten_folders(tree: Any, prefix: str, out: dict[str, dict[str, Any]], where: str) -> None:
    if not isinstance(tree, Mapping):
        raise ConfigError(f"{where}: 'folders' must map folder paths to options")
    for raw_folder, body in tree.items():
        folder = str(raw_folder).strip("/")
        path = f"{prefix}/{folder}" if prefix else folder
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: folder {path!r} must map to options")
        options, nested = _split_folders(body, f"{where}: folder {path!r}")
        options.pop("folders", None)
        out[path] = check_overrides(options, f"{where}: folder {path!r}")
        if nested:
            _flatten_folders(nested, path, out, where)


def load_config(path: str | Path) -> ConfigFile:
    """Read a YAML config file: load options, per-folder overrides, sources, paths, DSN.

    The top level holds any :class:`LoadOptions` field (``schema``, ``sheet``,
    ``header_row``, ``table_from``...; dashes or underscores; ``default_sheet`` is
    ``sheet``), ``dsn``, ``paths`` (what to load when the command names nothing; like the
    sources' paths, relative to the file's folder), ``folders`` (folder below the load root
    -> options, nested with ``folders`` again) and ``sources`` (a list of ``{path: <file,
    folder or glob>, table: ..., <options>}``). Any other key whose value is a mapping is a
    folder too, at the top or inside a folder (the seed design's shape: ``folder_b: {nested:
    {sheet: S}}``); a key that names an option is always the option.

    Args:
        path: the file.

    Returns:
        The parsed file.

    Raises:
        ConfigError: the file is missing, not YAML, or names unknown options.
    """
    import yaml

    where = str(path)
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read the config file: {exc.strerror or exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # Only the position and the parser's complaint: the parser's own message quotes the
        # offending line, which may be a DSN with its password.
        raise ConfigError(f"{where}: not valid YAML{_yaml_problem(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: the config file must be a mapping of options")
    top, top_folders = _split_folders(data, where, _CONNECTION_KEYS | _FILE_KEYS)
    dsn = top.pop("dsn", None)
    home = top.pop("home", None)
    paths = top.pop("paths", None) or ()
    if isinstance(paths, str):
        paths = (paths,)
    folders: dict[str, dict[str, Any]] = {}
    if top_folders:
        _flatten_folders(top_folders, "", folders, where)
    top.pop("folders", None)
    sources: list[dict[str, Any]] = []
    for number, item in enumerate(top.pop("sources", None) or (), start=1):
        if isinstance(item, str):
            item = {"path": item}
        if not isinstance(item, Mapping) or not item.get("path"):
            raise ConfigError(f"{where}: source {number} needs a 'path' (file, folder or glob)")
        rest = {k: v for k, v in item.items() if k != "path"}
        entry = check_overrides(rest, f"{where}: source {number}")
        entry["path"] = _beside(str(item["path"]), path)
        sources.append(entry)
    options = check_overrides(top, where)
    if folders:
        options["folders"] = folders
    if sources:
        options["sources"] = tuple(sources)
    return ConfigFile(
        options,
        dsn=str(dsn) if dsn else None,
        home=str(home) if home else None,
        paths=tuple(_beside(str(p), path) for p in paths),
    )


def _yaml_problem(exc: Exception) -> str:
    """Where and what a YAML error is, without quoting the file's text."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{where}: {problem}" if problem else where


def _beside(value: str, config: str | Path) -> str:
    """A relative path of the config file is relative to the file's folder (so that a job
    runs the same from any working directory); absolute paths and ``~`` stay as they are."""
    if value.startswith("~") or Path(value).is_absolute():
        return value
    return str(Path(config).expanduser().parent / value)


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

"""Settings and load options: frozen dataclasses, merged once at the edge.

Flags win over the environment, the environment over defaults.

Code below this module never reads ``os.environ``; :func:`settings_from_env` is called by the CLI
and by :func:`pgingest.load` only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from pgingest.errors import ConfigError
from pgingest.model import FormatOption

OnChanged = Literal["replace", "append"]
TxnScope = Literal["batch", "file"]

ENV_PREFIX = "PGINGEST_"


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with any password replaced by ``***`` (URL or key=value form).

    Args:
        dsn: a libpq connection string or URL.

    Returns:
        The same string, safe to print or log.
    """
    if "://" in dsn:
        try:
            parts = urlsplit(dsn)
        except ValueError:
            return re.sub(r"//[^@/]*@", "//***@", dsn)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{host}"
        query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    return re.sub(r"(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", dsn)


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
        if self.pause_every < 0 or self.pause_seconds < 0:
            raise ConfigError("--pause-every and --pause-seconds cannot be negative")
        if self.on_changed not in ("replace", "append"):
            raise ConfigError("--on-changed must be replace or append")
        if self.txn not in ("batch", "file"):
            raise ConfigError("--txn must be batch or file")
        if self.format not in ("auto", "csv", "tsv", "parquet"):
            raise ConfigError(f"unknown format {self.format!r}: use auto, csv, tsv or parquet")


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

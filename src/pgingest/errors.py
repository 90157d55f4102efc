"""The whole exception tree of pgingest.

::

    PgIngestError                    base of everything pgingest raises
    ├── ConfigError                  bad flags/options, invalid DSN, unknown format
    ├── SourceError                  cannot open/decode a file
    │   └── RowError                 one bad row: path, line, column, value preview
    │       ├── RecordFormatError    the records are malformed for the server's CSV parser
    │       └── TooManyErrorsError   more bad rows than --max-errors allows
    ├── SchemaError                  table and file disagree on columns
    │   ├── SchemaDriftError         columns added/changed under a strict policy
    │   ├── TypeConflictError        a value does not fit the column's type
    │   └── ContractError            a file breaks its table's contract (every violation)
    ├── DatabaseError                translated driver error: .sqlstate, chained with ``from``
    │   ├── ConnectionLostError      retryable: lost, refused, server restarting, stalled
    │   ├── ConflictError            retryable: deadlock, serialization failure, lock timeout
    │   └── ConstraintError          not retryable (unique, not-null, FK)
    └── ManifestError
        ├── LeaseLostError           another process took a file over
        ├── ManifestVersionError     the manifest is newer than this pgingest knows
        ├── ConcurrentLoadError      another run holds the table's lock (retryable)
        └── TableChangedError        a file's table changed under its load (retryable)

Besides the tree, two internal signals (``HashAbandonedError``, ``UnreadableNoticeError``) pass
between pgingest's modules and never reach a caller.
"""

from __future__ import annotations


class PgIngestError(Exception):
    """Base class of every error pgingest raises."""

    retryable: bool = False


class ConfigError(PgIngestError):
    """Bad flags or options, invalid DSN, unknown format."""


class SourceError(PgIngestError):
    """A file cannot be opened, detected or decoded."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class RowError(SourceError):
    """One bad row: names the file, the line, the column and the value."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> None:
        super().__init__(message, path=path)
        self.line = line
        self.column = column
        self.value = value


class RecordFormatError(RowError):
    """The records themselves are malformed for the server's CSV parser: a quote it reads as
    opening a field (``5" pipe``), a row with more or fewer fields, a blank line. Raw CSV
    chunks meet it; pgingest then parses the file itself (RFC 4180 rules: a quote opens a
    field only at its start; blank lines are skipped) and names the line if that fails too."""


class TooManyErrorsError(RowError):
    """More bad rows than ``--max-errors`` allows: the file fails."""


class SchemaError(PgIngestError):
    """The file's columns and the table's columns do not agree."""

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table


class SchemaDriftError(SchemaError):
    """Columns were added or changed where the policy forbids it."""


class TypeConflictError(SchemaError):
    """An incoming type cannot be stored in the column's type."""


class ContractError(SchemaError):
    """A file breaks its table's contract; ``violations`` lists every breach."""

    def __init__(
        self, message: str, *, table: str | None = None, violations: list[str] | None = None
    ) -> None:
        super().__init__(message, table=table)
        self.violations = violations or []


class DatabaseError(PgIngestError):
    """A database error, translated from the driver by SQLSTATE."""

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConnectionLostError(DatabaseError):
    """The connection failed or was lost; the batch can be retried."""

    retryable = True


class ConflictError(DatabaseError):
    """A deadlock, a serialization failure or a lock wait cut by ``lock_timeout``: another
    try (on the same connection) may succeed."""

    retryable = True


class ConstraintError(DatabaseError):
    """A unique, not-null, check or foreign-key constraint refused a row."""


class ManifestError(PgIngestError):
    """The manifest refuses or cannot record a load."""


class LeaseLostError(ManifestError):
    """Another process took a file over while this one reconnected; this one stops it."""


class ManifestVersionError(ManifestError):
    """The database's manifest was made by a newer pgingest than this one: refused, never
    written or read with an older loader's idea of it."""

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the manifest (schema pgingest) in this database is version {found}, newer than"
            f" this pgingest knows (version {known}): a newer pgingest migrated it; upgrade"
            " pgingest (pip install -U pgingest) to load into, or read, this database"
        )
        self.found = found
        self.known = known


class ConcurrentLoadError(ManifestError):
    """Another run holds the table's lock."""

    retryable = True


class TableChangedError(ManifestError):
    """The target table changed while a file loaded (truncated, dropped, recreated) and took
    the file's committed rows with it: the file is loaded again from its start."""

    retryable = True


class ColumnsChangedError(TableChangedError):
    """Another load changed the types of the table's columns (widened them) after this file
    was planned: its batches, encoded for the old types, are refused. Not retried as it is:
    the file is claimed again (resumed after its committed batches) and planned anew."""


class WidenedError(ColumnsChangedError):
    """upsert and merge: the load widened its table's column for a value of its own file
    past the sample (``3.5`` among integers). The file's batches are routed and encoded for
    the plan's types, so it is claimed again (resumed after its committed batches) and
    planned anew, for the wider table."""

    def __init__(self, message: str, changes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.changes = changes
        """The table's changes, described as the file's result lists them: the plan for the
        wider table has none of its own, so the restart carries them to the result."""


# Signals between pgingest's own modules, caught where they are raised for; never a user's.


class HashAbandonedError(Exception):
    """A file's hash was abandoned before the end of the file (nobody needs it any more)."""


class UnreadableNoticeError(Exception):
    """A skipped-row notice of the server in a language pgingest cannot read."""

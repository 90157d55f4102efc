"""Shared value types and closed vocabularies, exchanged between the stages of a load."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

Format = Literal["csv", "tsv", "parquet", "xlsx", "xls", "xlsb", "ods", "ndjson"]
FormatOption = Literal["auto", "csv", "tsv", "parquet", "excel", "ndjson"]
Compression = Literal["none", "gzip", "bz2", "xz", "zstd"]
Mode = Literal["append", "upsert", "merge", "replace"]
Strategy = Literal["auto", "parallel", "ordered", "sequential"]
FileStatus = Literal["loaded", "failed", "skipped"]

FORMATS: tuple[Format, ...] = ("csv", "tsv", "parquet", "xlsx", "xls", "xlsb", "ods", "ndjson")
WORKBOOK_FORMATS: tuple[Format, ...] = ("xlsx", "xls", "xlsb", "ods")
"""Spreadsheet workbooks (``xlsx`` also stands for ``xlsm``), read sheet by sheet."""
ARROW_FORMATS: tuple[Format, ...] = ("parquet", "ndjson", *WORKBOOK_FORMATS)
"""Formats whose readers yield typed Arrow batches (encoded to binary COPY), never CSV text."""
NUMERIC_TEXT_EXTENSION = "pgingest.numeric_text"
"""Name of the Arrow extension type of numbers kept as their text (string storage): a reader's
column whose values no float8 or int64 holds exactly; its PostgreSQL type is ``numeric``."""
MODES: tuple[Mode, ...] = ("append", "upsert", "merge", "replace")
STRATEGIES: tuple[Strategy, ...] = ("auto", "parallel", "ordered", "sequential")


@dataclass(frozen=True, slots=True)
class CsvDialect:
    """How a delimited text file is written."""

    delimiter: str = ","
    quotechar: str = '"'
    escapechar: str | None = None
    """``None`` means quotes are escaped by doubling them (RFC 4180)."""
    has_header: bool = True
    encoding: str = "utf-8"
    """``utf-8`` (a BOM is stripped), ``cp1252`` or ``latin-1``."""
    newline: Literal["\n", "\r\n", "\r"] = "\n"
    skip_lines: int = 0
    """Lines before the header that are not data: Excel's ``sep=;`` hint line."""
    encoding_settled: bool = True
    """False when nothing but ASCII was seen yet: the first non-ASCII bytes decide, on the
    evidence of the rest of the file (what came before reads the same in every encoding)."""
    encoding_note: str = ""
    """Why the encoding was chosen, when it is not plain UTF-8 (for a warning)."""


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What detection found out about one file."""

    path: str
    format: Format
    size: int
    compression: Compression = "none"
    dialect: CsvDialect | None = None
    """Set for csv/tsv only."""


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """One column of a target table."""

    name: str
    """Normalized, safe identifier (not yet quoted)."""
    pg_type: str
    """PostgreSQL type as written in DDL, e.g. ``bigint`` or ``numeric``."""
    source_name: str | None = None
    """The header as it was in the file."""
    not_null: bool = False
    """Declared ``NOT NULL`` (a contract)."""


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A target table: schema, name and columns in file order."""

    schema: str
    name: str
    columns: tuple[ColumnSpec, ...]
    key: tuple[str, ...] = ()
    """Primary key columns declared by a contract (created with the table)."""

    @property
    def qualified(self) -> str:
        """``schema.name`` for messages (not for SQL: quote with ``pg.ddl``)."""
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True, slots=True)
class Reject:
    """A row set aside (``--on-error skip``), or a value a reader could not take (e.g. an
    Excel error cell), loaded as NULL instead."""

    line: int
    """1-based row (Excel: the sheet's row number) or line of the value."""
    column: str | None
    """The column's name (a reader's: as written in the file); ``None``: the whole row (a
    field too many, a broken quote)."""
    raw: str | None
    """The value as the file shows it, e.g. ``#DIV/0!``."""
    reason: str
    raw_bytes: bytes | None = None
    """The record's bytes as in the file, when ``raw`` cannot hold them exactly (bytes that
    are not in the file's encoding, a NUL byte)."""


@dataclass(frozen=True, slots=True)
class CsvChunk:
    """Raw CSV bytes holding whole records, ready for ``COPY ... (FORMAT csv)``."""

    data: bytes
    first_line: int
    """1-based physical line of the file where the chunk's first record starts."""
    encoding: str
    """PostgreSQL client encoding of ``data``: ``UTF8``, ``WIN1252`` or ``LATIN1``."""
    lines: Any = None
    """numpy int64, the file line each record of ``data`` starts on, when the reader wrote the
    records again (so that COPY reads them as Python's ``csv`` module does) or left some out;
    ``None``: ``data`` is the file's bytes from ``first_line`` on."""
    rejects: tuple[Reject, ...] = ()
    """Records the reader left out (bad rows skipped: a wrong field count, bytes not in the
    file's encoding, a NUL byte), to be recorded in ``pgingest.rejects``."""


class RowRecords(Protocol):
    """Each row's record as the file has it (an NDJSON row's line, a CSV row's bytes): the
    raw text of the reject a row may become."""

    def text(self, row: int) -> str:
        """Row ``row``'s record, for a reject."""
        ...

    def take(self, rows: np.ndarray) -> RowRecords:
        """The records of ``rows`` (positions, or a mask)."""
        ...


@dataclass(slots=True)
class ArrowChunk:
    """An Arrow record batch and where its first row was in the file."""

    batch: pa.RecordBatch
    first_line: int
    rejects: tuple[Reject, ...] = ()
    """Values of these rows the reader loaded as NULL (recorded in ``pgingest.rejects``), or
    (NDJSON) lines the reader left out (bad rows skipped)."""
    lines: Any = None
    """numpy int64, the file line of each row, when they are not consecutive from
    ``first_line`` (NDJSON: blank and bad lines hold no row)."""
    records: RowRecords | None = None
    """Each row's record as the file has it (NDJSON: its line): the raw text of the reject a
    row may become; ``None``: the file has no such text (a row's reject is the row written as
    CSV)."""


Chunk = CsvChunk | ArrowChunk


@dataclass(slots=True)
class FileResult:
    """The outcome of loading one file."""

    path: str
    table: str
    status: FileStatus
    rows: int = 0
    seconds: float = 0.0
    format: str | None = None
    error: str | None = None
    message: str | None = None
    rejects: int = 0
    """Bad rows set aside in ``pgingest.rejects`` (``on_error="skip"``)."""
    schema_changes: list[str] = field(default_factory=list)
    """Changes this file made to its table (added columns, widened types)."""
    warnings: list[str] = field(default_factory=list)
    """What the load decided that the user should know, one line each: an encoding chosen
    other than UTF-8, a column read as text because its values mix kinds, precision cut,
    a header name changed. Shown under the file's line and logged."""

    @property
    def rows_per_second(self) -> float:
        """Throughput of this file (0 when it took no time)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(slots=True)
class LoadReport:
    """What a call to :func:`pgingest.load` did, file by file."""

    files: list[FileResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    plans: list[str] = field(default_factory=list)
    """With ``dry_run``: one human-readable plan per file."""
    run_id: int | None = None
    """The manifest's id of this run (``None`` for a dry run)."""
    stages: dict[str, float] = field(default_factory=dict)
    """Seconds spent per stage, summed over workers: ``read`` (reading and parsing files),
    ``encode`` (shaping and encoding batches), ``write`` (COPY and commit on the server),
    ``wait`` (workers idle, waiting for the next batch), ``manifest`` (the bookkeeping's
    statements: the run's start and end, each file's claim and completion, each batch's
    progress row, which ``write`` includes too; and any wait for a file's content hash),
    ``analyze`` (the ANALYZE of the tables the run changed much, after its files)."""
    retries: int = 0
    """Transient errors retried during the run."""
    strategies: dict[str, str] = field(default_factory=dict)
    """Per target table (``schema.name``): how its files were scheduled and why (upsert and
    merge: ``parallel``, ``ordered`` or ``sequential``, see ``--strategy``)."""

    @property
    def rows(self) -> int:
        """Rows loaded by all files."""
        return sum(f.rows for f in self.files if f.status == "loaded")

    @property
    def failed(self) -> list[FileResult]:
        """Files that did not load."""
        return [f for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.failed

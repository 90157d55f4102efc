"""pgingest: load folders of CSV/TSV and Parquet files into PostgreSQL, fast and safely."""

from pgingest.api import load, load_async
from pgingest.config import ConnectionSettings, LoadOptions
from pgingest.errors import (
    ConcurrentLoadError,
    ConfigError,
    ConflictError,
    ConnectionLostError,
    ConstraintError,
    ContractError,
    DatabaseError,
    ManifestError,
    ManifestVersionError,
    PgIngestError,
    RowError,
    SchemaDriftError,
    SchemaError,
    SourceError,
    TypeConflictError,
)
from pgingest.model import FileResult, LoadReport

__version__ = "0.1.0"

__all__ = [
    "ConcurrentLoadError",
    "ConfigError",
    "ConflictError",
    "ConnectionLostError",
    "ConnectionSettings",
    "ConstraintError",
    "ContractError",
    "DatabaseError",
    "FileResult",
    "LoadOptions",
    "LoadReport",
    "ManifestError",
    "ManifestVersionError",
    "PgIngestError",
    "RowError",
    "SchemaDriftError",
    "SchemaError",
    "SourceError",
    "TypeConflictError",
    "load",
    "load_async",
]

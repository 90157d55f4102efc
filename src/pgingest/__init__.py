"""pgingest: load folders of CSV/TSV and Parquet files into PostgreSQL, fast and safely.

The names below are imported from their modules when first used (``pgingest.load``, ``from
pgingest import LoadOptions``): importing the package itself imports nothing else, so that the
command line can start under its own guard (a Ctrl-C while its modules load ends in one line,
not a traceback) and imports only what its command needs.
"""

from __future__ import annotations

# Not even ``typing`` (``re``, ``enum``, ~10 ms) is imported here: type checkers take any
# ``TYPE_CHECKING`` as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

_HOMES = {
    **dict.fromkeys(("load", "load_async"), "pgingest.api"),
    **dict.fromkeys(("ConnectionSettings", "LoadOptions"), "pgingest.config"),
    **dict.fromkeys(("FileResult", "LoadReport"), "pgingest.model"),
}
"""The module of each public name (the errors' is :mod:`pgingest.errors`)."""


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (PEP 562)."""
    if name not in __all__:
        raise AttributeError(f"module 'pgingest' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_HOMES.get(name, "pgingest.errors")), name)
    globals()[name] = value  # found directly from now on
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, "__version__"])

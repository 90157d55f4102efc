"""Schema work without I/O: safe names, type inference for CSV text, Arrow to PostgreSQL types.

Nothing here talks to a database or reads a file, so all of it is unit-testable on Arrow
tables built in memory. The names helpers do not need pyarrow; the rest is imported on first
use, so that importing ``pgingest.schema.names`` (for quoting) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from pgingest.schema.names import (
    LINEAGE_COLUMNS,
    MAX_IDENTIFIER_BYTES,
    normalize_identifier,
    normalize_names,
    quote_ident,
    validate_identifier,
)

if TYPE_CHECKING:
    from pgingest.schema.infer import TypeTracker, infer_pg_types, parse_type_overrides
    from pgingest.schema.pgtypes import (
        PG_TYPES,
        PgType,
        array_of,
        is_json_type,
        normalize_arrow_type,
        pg_type_for_arrow,
    )

_LAZY = {
    "PG_TYPES": "pgingest.schema.pgtypes",
    "PgType": "pgingest.schema.pgtypes",
    "TypeTracker": "pgingest.schema.infer",
    "array_of": "pgingest.schema.pgtypes",
    "infer_pg_types": "pgingest.schema.infer",
    "is_json_type": "pgingest.schema.pgtypes",
    "normalize_arrow_type": "pgingest.schema.pgtypes",
    "parse_type_overrides": "pgingest.schema.infer",
    "pg_type_for_arrow": "pgingest.schema.pgtypes",
}


def __getattr__(name: str) -> object:
    """Import the pyarrow-based part of the public API on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "LINEAGE_COLUMNS",
    "MAX_IDENTIFIER_BYTES",
    "PG_TYPES",
    "PgType",
    "TypeTracker",
    "array_of",
    "infer_pg_types",
    "is_json_type",
    "normalize_arrow_type",
    "normalize_identifier",
    "normalize_names",
    "parse_type_overrides",
    "pg_type_for_arrow",
    "quote_ident",
    "validate_identifier",
]

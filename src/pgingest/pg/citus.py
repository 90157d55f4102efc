"""Citus (distributed PostgreSQL) targets: whether a table is distributed, and by which column,
read from Citus's catalog when the extension is there; and what upsert, merge and replace
require of such a table. The decisions are pure functions over what the catalog query
returns, so they are tested without Citus (which these machines cannot install).

Citus accepts COPY into a distributed table as into any other (append needs nothing). It runs
``INSERT ... ON CONFLICT`` only when the conflict target holds the distribution column (each
shard enforces its own unique indexes), and ``MERGE`` only when the join on the key includes
it; a reference table (a copy on every node) takes both on any key. ``--mode replace`` swaps in
a new plain table, which would no longer be distributed: refused."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pgingest.errors import ConfigError
from pgingest.pg.ddl import qualified_name

CITUS_VERSION = "SELECT extversion FROM pg_extension WHERE extname = 'citus'"
"""The installed Citus extension's version; no row without Citus."""

DISTRIBUTION = (
    "SELECT p.partmethod::text AS method, p.repmodel::text AS model,"
    " CASE WHEN p.partkey IS NULL THEN NULL"
    " ELSE column_to_column_name(p.logicalrelid, p.partkey) END AS column_name"
    " FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass($1)"
)
"""A table's row of Citus's ``pg_dist_partition`` (run only when Citus is installed: the
catalog and ``column_to_column_name`` are Citus's): its partition method (``h`` hash, ``r``
range, ``a`` append: distributed by a column; ``n``: none), its replication model (``t``:
a reference table) and its distribution column's name. No row: a plain table."""

Kind = Literal["distributed", "reference", "local"]


@dataclass(frozen=True, slots=True)
class Distribution:
    """How Citus spreads a table: ``distributed`` by ``column``, ``reference`` (a copy on
    every node) or ``local`` (a Citus local table, on the coordinator)."""

    kind: Kind
    column: str | None = None


def distribution(row: Mapping[str, Any] | None) -> Distribution | None:
    """The distribution that a row of :data:`DISTRIBUTION` describes (``None``: no row, a
    plain table).

    Raises:
        ConfigError: a method that names no distribution column, or one Citus does not have.
    """
    if row is None:
        return None
    method, model, column = row["method"], row.get("model"), row.get("column_name")
    if method in ("h", "r", "a"):
        if not column:
            raise ConfigError(f"Citus reports a distributed table without a column: {dict(row)}")
        return Distribution("distributed", str(column))
    if method == "n":
        return Distribution("reference" if model == "t" else "local")
    raise ConfigError(f"unknown Citus partition method {method!r}")


def check_key(found: Distribution | None, key: Sequence[str], qualified: str, mode: str) -> None:
    """Refuse an upsert or merge whose key Citus cannot enforce on a distributed table.

    Raises:
        ConfigError: the table is distributed and ``key`` lacks its distribution column.
    """
    if found is None or found.kind != "distributed" or found.column in key:
        return
    statement = "INSERT ... ON CONFLICT" if mode == "upsert" else "MERGE"
    raise ConfigError(
        f"--mode {mode} into {qualified}, a Citus distributed table (distribution column"
        f" {found.column}): its key ({', '.join(key)}) must include {found.column}, or Citus"
        f" refuses the {statement} (each shard enforces its own keys); use --pk"
        f" {','.join([found.column or '', *key])} with a unique index on those columns"
    )


def check_replace(found: Distribution | None, qualified: str) -> None:
    """Refuse ``--mode replace`` of a Citus table: its new table would be a plain one.

    Raises:
        ConfigError: the table is distributed, a reference or a Citus local table.
    """
    if found is None:
        return
    what = {
        "distributed": f"a Citus distributed table (distribution column {found.column})",
        "reference": "a Citus reference table",
        "local": "a Citus local table",
    }[found.kind]
    raise ConfigError(
        f"--mode replace refuses {qualified}: it is {what}, and replace swaps in a new plain"
        " table that would not be; load it with append, upsert or merge (or TRUNCATE it"
        " and append)"
    )


async def table_distribution(conn: Any, schema: str, table: str) -> Distribution | None:
    """How Citus distributes ``schema.table``; ``None`` without Citus or for a plain table
    (one query without Citus: whether the extension is there)."""
    if await conn.fetchval(CITUS_VERSION) is None:
        return None
    return distribution(await conn.fetchrow(DISTRIBUTION, qualified_name(schema, table)))

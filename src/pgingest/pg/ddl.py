"""Table DDL: look up a table's columns, create schemas and tables, through one quoting helper."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pgingest.model import ColumnSpec, TableSpec
from pgingest.schema.evolution import AddColumn, Operation
from pgingest.schema.names import quote_ident

__all__ = [
    "alter_table_sql",
    "create_table",
    "create_table_sql",
    "ensure_schema",
    "execute_operations",
    "lock_table",
    "lock_table_ddl",
    "qualified_name",
    "quote_ident",
    "table_columns",
]


def qualified_name(schema: str, table: str) -> str:
    """``"schema"."table"``, both validated and quoted."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def create_table_sql(spec: TableSpec, extra_columns: str = "") -> str:
    """The ``CREATE TABLE IF NOT EXISTS`` statement for ``spec``.

    Column types come from inference, the Arrow type map or validated ``--types`` overrides;
    names are quoted. ``extra_columns`` is trusted SQL from pgingest itself (lineage columns).
    """
    cols = ",\n  ".join(
        f"{quote_ident(c.name)} {c.pg_type}{' NOT NULL' if c.not_null else ''}"
        for c in spec.columns
    )
    if spec.key:
        key = ", ".join(quote_ident(k) for k in spec.key)
        cols = f"{cols},\n  PRIMARY KEY ({key})"
    if extra_columns:
        cols = f"{cols},\n  {extra_columns}" if cols else extra_columns
    return f"CREATE TABLE IF NOT EXISTS {qualified_name(spec.schema, spec.name)} (\n  {cols}\n)"


async def ensure_schema(conn: Any, schema: str) -> None:
    """Create ``schema`` when it does not exist."""
    exists = await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
    if not exists:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")


async def table_columns(conn: Any, schema: str, table: str) -> list[ColumnSpec] | None:
    """The columns of an existing table in order, or ``None`` when it does not exist."""
    rows = await conn.fetch(
        """
        SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type
        FROM pg_attribute a
        JOIN pg_class c ON c.oid = a.attrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
        """,
        schema,
        table,
    )
    if not rows:
        exists = await conn.fetchval(
            "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relname = $2",
            schema,
            table,
        )
        return [] if exists else None
    return [ColumnSpec(name=r["attname"], pg_type=r["type"]) for r in rows]


async def changed_types(
    conn: Any, schema: str, table: str, columns: Sequence[str], types: Sequence[str]
) -> list[str]:
    """The ``columns`` whose type in the table is no longer the one in ``types`` (``"id:
    integer -> bigint"``; a column gone: ``-> gone``): what a binary COPY encoded for
    ``types`` needs to know after the server refused its stream."""
    now = {c.name: c.pg_type for c in await table_columns(conn, schema, table) or []}
    return [
        f"{name}: {was} -> {now.get(name, 'gone')}"
        for name, was in zip(columns, types, strict=True)
        if now.get(name) != was
    ]


async def create_table(
    conn: Any, spec: TableSpec, extra_columns: str = ""
) -> tuple[list[ColumnSpec], bool]:
    """Create the table of ``spec`` unless it exists.

    Returns:
        The table's actual columns, and whether this call created it.

    Concurrent creators of the same table are serialized by a transaction-level advisory lock
    on the table's name, so two workers never race on ``CREATE TABLE``.
    """
    async with conn.transaction():
        await lock_table_ddl(conn, spec.schema, spec.name)
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"pgingest.ddl:{spec.schema}"
        )
        await ensure_schema(conn, spec.schema)
        existing = await table_columns(conn, spec.schema, spec.name)
        created = existing is None
        if created:
            await conn.execute(create_table_sql(spec, extra_columns))
            existing = await table_columns(conn, spec.schema, spec.name)
    return existing or [], created


RETYPE_LOCK_TIMEOUT = "30s"
"""Longest wait for a table's exclusive lock before retyping it (a COPY in flight holds it)."""


async def lock_exclusive(conn: Any, schema: str, table: str) -> None:
    """Inside a transaction: the table's ACCESS EXCLUSIVE lock, waited for at most
    :data:`RETYPE_LOCK_TIMEOUT` (then ``lock_not_available``): no COPY is in flight after."""
    await conn.execute(f"SET LOCAL lock_timeout = '{RETYPE_LOCK_TIMEOUT}'")
    await conn.execute(f"LOCK TABLE {qualified_name(schema, table)} IN ACCESS EXCLUSIVE MODE")


async def is_empty(conn: Any, schema: str, table: str) -> bool:
    """Whether the table holds no row (one index or heap probe)."""
    name = qualified_name(schema, table)
    return bool(await conn.fetchval(f"SELECT NOT EXISTS (SELECT FROM {name})"))


async def lock_table_ddl(conn: Any, schema: str, table: str) -> None:
    """Inside a transaction: take the table's DDL lock (a transaction-level advisory lock on
    its name), so that workers creating or changing the same table do it one at a time."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"pgingest.ddl:{schema}.{table}"
    )


async def lock_table(conn: Any, schema: str, table: str) -> None:
    """Inside a transaction: lock the table against every other use until it ends (the lock
    ``ALTER TABLE`` takes itself), before a change whose effect must be read right after."""
    await conn.execute(f"LOCK TABLE {qualified_name(schema, table)} IN ACCESS EXCLUSIVE MODE")


def alter_table_sql(schema: str, table: str, operation: Operation) -> str:
    """The ``ALTER TABLE`` statement of one planned operation.

    Types come from inference, the Arrow type map, the widening rules or validated
    overrides; names are quoted. A widened column converts its values with a plain cast
    (every rule of :mod:`pgingest.schema.evolution` is a cast that keeps the value).
    """
    name = qualified_name(schema, table)
    column = quote_ident(operation.name)
    if isinstance(operation, AddColumn):
        return f"ALTER TABLE {name} ADD COLUMN {column} {operation.pg_type}"
    new = operation.new_type
    return f"ALTER TABLE {name} ALTER COLUMN {column} TYPE {new} USING {column}::{new}"


async def execute_operations(
    conn: Any, schema: str, table: str, operations: Sequence[Operation]
) -> None:
    """Run the plan's operations in order (the caller holds the transaction and the lock)."""
    for operation in operations:
        await conn.execute(alter_table_sql(schema, table, operation))

"""Evolve a target table while it loads: plan with :mod:`pgingest.schema.evolution`, run the DDL
with :mod:`pgingest.pg.ddl` under the table's DDL lock, log each change in the manifest.

Planning happens again under the lock, against the table as it is then: when two workers need
the same change, the second finds it made and does nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pgingest.config import LoadOptions, crash_point
from pgingest.manifest import store
from pgingest.model import ColumnSpec
from pgingest.pg import ddl
from pgingest.schema.evolution import (
    AddColumn,
    AlterType,
    Policy,
    SchemaPlan,
    apply_operations,
    plan_evolution,
)
from pgingest.schema.names import LINEAGE_COLUMNS
from pgingest.schema.pgtypes import TEXT

log = logging.getLogger("pgingest.evolve")


def policy_for(options: LoadOptions, fixed: Iterable[str] = ()) -> Policy:
    """The evolution policy of a load; ``fixed`` columns have declared types."""
    return Policy(
        on_new_column=options.on_new_column,
        on_type_change=options.on_type_change,
        tolerant=options.tolerant,
        fixed=frozenset(fixed) | frozenset(options.types),
    )


@dataclass(frozen=True, slots=True)
class Evolution:
    """What :func:`evolve_table` found and did."""

    columns: list[ColumnSpec]
    """The table's data columns afterwards."""
    plan: SchemaPlan
    changes: list[str]
    """One line per change made, for the report."""


def describe(operation: Any) -> str:
    """``add column x bigint`` / ``column x integer -> bigint``."""
    if isinstance(operation, AddColumn):
        return f"add column {operation.name} {operation.pg_type}"
    return f"column {operation.name} {operation.old_type} -> {operation.new_type}"


async def evolve_table(
    conn: Any,
    schema: str,
    table: str,
    incoming: Sequence[ColumnSpec],
    policy: Policy,
    *,
    text_ok: Iterable[str] = (),
    file_id: int | None = None,
    run_id: int | None = None,
    dry_run: bool = False,
) -> Evolution:
    """Change the table so that ``incoming`` columns fit, serialized per table.

    Args:
        conn: a connection outside any transaction.
        schema: the table's schema.
        table: the table.
        incoming: the columns and the types their values need.
        policy: what may change.
        text_ok: incoming columns that may turn a column into text.
        file_id: the file that causes the changes (logged with them).
        run_id: the run.
        dry_run: plan only.

    Returns:
        The columns afterwards, the plan and the changes made.

    Raises:
        SchemaError: the policy refuses a change (see :func:`plan_evolution`).
    """
    qualified = f"{schema}.{table}"
    async with conn.transaction():
        if not dry_run:
            await ddl.lock_table_ddl(conn, schema, table)
        actual = await ddl.table_columns(conn, schema, table) or []
        data = [c for c in actual if c.name not in LINEAGE_COLUMNS]
        plan = plan_evolution(data, incoming, policy, table=qualified, text_ok=text_ok)
        changes = [describe(op) for op in plan.operations]
        if plan.operations and not dry_run:
            # Widening a column rewrites the table (a new storage node): the manifest records
            # the new identity in this transaction, under the lock the ALTER takes anyway, so
            # that no other change (a TRUNCATE) can hide behind it.
            await ddl.lock_table(conn, schema, table)
            before = await store.table_identity(conn, schema, table)
            await ddl.execute_operations(conn, schema, table, plan.operations)
            await store.restamp_table(conn, schema, table, before)
            for op in plan.operations:
                await store.record_schema_change(
                    conn,
                    schema=schema,
                    table=table,
                    change="add_column" if isinstance(op, AddColumn) else "alter_type",
                    column=op.name,
                    old_type=None if isinstance(op, AddColumn) else op.old_type,
                    new_type=op.pg_type if isinstance(op, AddColumn) else op.new_type,
                    file_id=file_id,
                    run_id=run_id,
                )
            for change in changes:
                log.info("%s: %s (file id %s)", qualified, change, file_id)
            crash_point("evolved")
        columns = apply_operations(data, plan.operations)
    return Evolution(columns, plan, changes)


async def retype_empty_table(
    conn: Any,
    schema: str,
    table: str,
    incoming: Sequence[ColumnSpec],
    *,
    file_id: int | None,
    run_id: int | None,
) -> list[str] | None:
    """A table a header-only file created (every column text, see
    :data:`pgingest.manifest.store.HEADER_ONLY`), still empty: its text columns take the
    types the first file with data needs, each change logged. Serialized per table.

    Returns:
        The changes made, or ``None`` when the table is not such a table (any more).
    """
    qualified = f"{schema}.{table}"
    async with conn.transaction():
        await ddl.lock_table_ddl(conn, schema, table)
        declared = await store.header_only_table(conn, schema, table)
        if declared is None:
            return None
        # Rows another worker is copying in are not visible yet: wait for its COPY to end.
        await ddl.lock_exclusive(conn, schema, table)
        if not await ddl.is_empty(conn, schema, table):
            return None
        actual = await ddl.table_columns(conn, schema, table) or []
        wanted = {c.name: c.pg_type for c in incoming}
        operations = [
            AlterType(c.name, c.pg_type, wanted[c.name])
            for c in actual
            if c.name in wanted
            and c.name not in declared
            and c.pg_type == TEXT
            and wanted[c.name] != TEXT
        ]
        if operations:
            await ddl.execute_operations(conn, schema, table, operations)
        for op in operations:
            await store.record_schema_change(
                conn,
                schema=schema,
                table=table,
                change="alter_type",
                column=op.name,
                old_type=op.old_type,
                new_type=op.new_type,
                file_id=file_id,
                run_id=run_id,
            )
        changes = [f"{describe(op)} (the table was empty)" for op in operations]
        for change in changes:
            log.info("%s: %s (file id %s)", qualified, change, file_id)
    return changes

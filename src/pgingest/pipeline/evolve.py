"""Evolve a target table while it loads: plan with :mod:`pgingest.schema.evolve`, run the DDL
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
from pgingest.schema.evolve import (
    AddColumn,
    Policy,
    SchemaPlan,
    apply_operations,
    plan_evolution,
)
from pgingest.schema.names import LINEAGE_COLUMNS

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

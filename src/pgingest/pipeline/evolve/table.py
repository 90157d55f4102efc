"""The table a file loads into: columns found on the table or inferred from the file, the
table created or evolved to fit; and the dry run's account of it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pgingest.config import LoadOptions, crash_point
from pgingest.manifest import store
from pgingest.model import ARROW_FORMATS, TableSpec
from pgingest.pg import ddl
from pgingest.pipeline.context import RunContext
from pgingest.pipeline.discover import SMALL_FILE_BYTES
from pgingest.pipeline.evolve.change import evolve_table, policy_for, retype_empty_table
from pgingest.pipeline.job import FileJob
from pgingest.pipeline.prepare.columns import (
    check_file,
    declared_table,
    incoming_columns,
    infer_columns,
    options_for_contract,
)
from pgingest.pipeline.prepare.plan import FilePlan, Notes
from pgingest.schema.evolution import plan_evolution
from pgingest.schema.names import LINEAGE_COLUMNS, lineage_renames, normalize_names
from pgingest.schema.pgtypes import TEXT
from pgingest.sources import Source

__all__ = ["describe_plan", "fit_table"]

log = logging.getLogger("pgingest.run")


async def fit_table(
    ctx: RunContext,
    source: Source,
    table_name: str,
    options: LoadOptions,
    job: FileJob | None = None,
    conn: Any = None,
    extras: str = "",
) -> FilePlan:
    """Fit the table ``source`` loads into to the file, and plan the file: the table's
    columns read off it when it exists (the table evolved where the file brings new columns
    or wider values), inferred from the file when it does not (the table created, unless it
    is a dry run). ``options`` are the file's; ``conn`` is the file's connection (a pooled one
    when ``None``); ``job`` its manifest entry (``None``: dry run); ``extras`` more clauses
    of a new table's ``CREATE TABLE`` (the key of an upsert target).

    Raises:
        ContractError: the file breaks the table's contract.
        SchemaDriftError: the file's columns or types are refused by the evolution policy.
    """
    if conn is None:
        async with ctx.pool.acquire() as own:
            return await fit_table(ctx, source, table_name, options, job, own, extras)
    raw_names = source.column_names()
    names = normalize_names(raw_names)
    renamed = lineage_renames(raw_names, names)
    schema = options.schema
    key = (schema, table_name)
    contract = ctx.contract.for_table(schema, table_name) if ctx.contract else None
    if contract is not None:
        names = contract.rename(names)
        await asyncio.to_thread(check_file, contract, source, names, options)
        options = options_for_contract(contract, names, options)
    fixed = frozenset(options.types)
    file_id = job.file_id if job is not None else None
    dry = options.dry_run
    existing = ctx.tables.get(key)
    retyped: list[str] = []
    if existing is None:
        existing = await ddl.table_columns(conn, schema, table_name)
    if existing:
        if options.lineage and not dry:
            names_now = [c.name for c in existing]
            if await store.ensure_lineage(conn, schema, table_name, names_now):
                existing = await ddl.table_columns(conn, schema, table_name) or []
        ctx.tables[key] = existing
        data = [c for c in existing if c.name not in LINEAGE_COLUMNS]
        have = {c.name: c for c in data}
        if not dry and data and all(c.pg_type == TEXT for c in data) and not options.text:
            # A table a header-only file made: the first file with data types its columns.
            retyped = await _retype_header_only(
                ctx, source, (schema, table_name), names, options, job, conn
            )
            if retyped:
                existing = await ddl.table_columns(conn, schema, table_name) or []
                ctx.tables[key] = existing
                data = [c for c in existing if c.name not in LINEAGE_COLUMNS]
                have = {c.name: c for c in data}
        if source.info.size <= SMALL_FILE_BYTES:  # less work than a thread hop
            found = incoming_columns(source, names, have, options)
        else:
            found = await asyncio.to_thread(incoming_columns, source, names, have, options)
        create = False
    else:
        found = await asyncio.to_thread(infer_columns, source, names, options)
        create = True
        if contract is not None:
            found.columns, table_key = declared_table(contract, found.columns)
        else:
            table_key = ()
        if not dry:
            table = TableSpec(schema, table_name, tuple(found.columns), table_key)
            lineage = store.lineage_columns_sql() if options.lineage else ""
            lineage = ",\n  ".join(x for x in (lineage, extras) if x)
            actual, created = await ddl.create_table(conn, table, lineage)
            if created and job is not None:
                crash_point("table-created")
                # Files claimed before the table existed (this one, and others loading into
                # it at once) recorded no table: this is theirs.
                await store.restamp_table(conn, schema, table_name, store.NO_TABLE)
                await store.record_schema_change(
                    conn,
                    schema=schema,
                    table=table_name,
                    change="create_table",
                    new_type=store.HEADER_ONLY if found.no_rows else None,
                    file_id=job.file_id,
                    run_id=ctx.run_id,
                )
            ctx.tables[key] = actual
    incoming, text_ok = found.columns, found.text_ok
    for warning in found.warnings:
        log.warning("%s", warning, extra={"file": source.info.path})
        ctx.reporter.message(f"warning: {warning}")
    ignored: tuple[str, ...] = ()
    changes: list[str] = []
    known = None if create else [c for c in existing or () if c.name not in LINEAGE_COLUMNS]
    quick = None
    if known is not None:
        # Planned against the columns already known: no change needed means no DDL
        # transaction and no lock (with many small files, those round trips add up).
        quick = plan_evolution(
            known,
            incoming,
            policy_for(options, fixed),
            table=f"{schema}.{table_name}",
            text_ok=text_ok,
        )
    if create and dry:
        columns = list(incoming)
    elif quick is not None and quick.is_empty:
        columns, ignored = list(known or ()), quick.ignored
    else:
        evolution = await evolve_table(
            conn,
            schema,
            table_name,
            incoming,
            policy_for(options, fixed),
            text_ok=text_ok,
            file_id=file_id,
            run_id=ctx.run_id,
            dry_run=dry,
        )
        columns, ignored, changes = evolution.columns, evolution.plan.ignored, evolution.changes
    table = TableSpec(schema, table_name, tuple(columns))
    by_name = {c.name: c.pg_type for c in columns}
    loaded = [n for n in names if n not in ignored]
    return FilePlan(
        source.info,
        table,
        create,
        tuple(loaded),
        tuple(by_name[n] for n in loaded),
        read_columns=tuple(names) if ignored else None,
        fixed=fixed,
        changes=(*retyped, *changes),
        datestyle=found.datestyle,
        notes=Notes([*renamed, *found.notes]),
        marker_columns=frozenset(found.marker_columns) & frozenset(loaded),
    )


async def _retype_header_only(
    ctx: RunContext,
    source: Source,
    target: tuple[str, str],
    names: list[str],
    options: LoadOptions,
    job: FileJob | None,
    conn: Any,
) -> list[str]:
    """Give the text columns of a table a header-only file made, still empty, the types this
    file's values need; the changes, for the file's result."""
    if source.info.format in ARROW_FORMATS or target in ctx.not_header_only:
        return []  # only a CSV file without rows makes such a table
    if await store.header_only_table(conn, *target) is None:
        ctx.not_header_only.add(target)  # (a table's making does not change in a run)
        return []
    found = await asyncio.to_thread(infer_columns, source, names, options)
    changes = await retype_empty_table(
        conn,
        *target,
        found.columns,
        file_id=job.file_id if job is not None else None,
        run_id=ctx.run_id,
    )
    return list(changes or ())


def describe_plan(plan: FilePlan, lineage: bool) -> str:
    """The dry run's account of a file: what was detected, the table, its DDL, the changes."""
    info = plan.info
    lines = [f"{info.path}: {info.format}, {info.size:,} bytes"]
    if info.compression != "none":
        lines[0] += f", {info.compression}"
    if info.dialect is not None:
        d = info.dialect
        lines.append(
            f"  dialect: delimiter {d.delimiter!r}, quote {d.quotechar!r}, "
            f"escape {'doubled quote' if d.escapechar is None else repr(d.escapechar)}, "
            f"header {'yes' if d.has_header else 'no'}, encoding {d.encoding}"
        )
    lines.append(f"  table {plan.table.qualified} ({'create' if plan.create else 'exists'})")
    for column in plan.table.columns:
        src = f"  <- {column.source_name!r}" if column.source_name else ""
        lines.append(f"    {column.name} {column.pg_type}{src}")
    if plan.create:
        extra = store.lineage_columns_sql() if lineage else ""
        sql = ddl.create_table_sql(plan.table, extra)
        lines.append("  DDL: " + sql.replace("\n", "\n  "))
    for change in plan.changes:
        lines.append(f"  would change: {change}")
    if plan.read_columns is not None:
        left_out = [n for n in plan.read_columns if n not in plan.columns]
        lines.append(f"  left out (--on-new-column ignore): {', '.join(left_out)}")
    if plan.datestyle is not None:
        lines.append(f"  dates read as {plan.datestyle}")
    return "\n".join(lines)

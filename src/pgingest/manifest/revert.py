"""Take loaded files back out: delete their rows by lineage, mark them reverted, and optionally
undo the schema changes their loads made when nothing else depends on them. Interrupted files
(committed batches, never completed) are taken out the same way; a file whose table is gone
is marked reverted and said to be so."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pgingest.config import crash_point
from pgingest.errors import ManifestError
from pgingest.manifest.store import LINEAGE_FILE, lock_key, table_identity
from pgingest.pg.ddl import qualified_name, quote_ident

log = logging.getLogger("pgingest.revert")

NOT_REVERTIBLE_MODES = frozenset({"upsert", "merge"})
"""Loads that update rows in place: revert refuses them (it cannot bring old values back)."""


@dataclass(slots=True)
class RevertedFile:
    """One file taken back out (or that would be, in a dry run)."""

    file_id: int
    path: str
    table: str
    rows: int
    status: str = "success"
    """The file's status before: ``success``, or an interrupted file's (``running``,
    ``failed``) whose committed batches' rows were taken out."""
    table_gone: bool = False
    """Its table does not exist any more: there were no rows to take out."""


@dataclass(slots=True)
class RevertReport:
    """What :func:`revert` removed."""

    files: list[RevertedFile] = field(default_factory=list)
    schema_changes: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def rows(self) -> int:
        """Rows removed from the target tables."""
        return sum(f.rows for f in self.files)


async def select_files(
    conn: Any, *, path: str | None, sha256: str | None, run_id: int | None
) -> list[Any]:
    """The manifest entries matching exactly one of the selectors whose rows may be in a
    table: loaded files (``success``) and interrupted ones (``running``, ``pending`` or
    ``failed`` with committed batches)."""
    chosen = [x for x in (path, sha256, run_id) if x is not None]
    if len(chosen) != 1:
        raise ManifestError("say which files to revert: exactly one of --file, --sha256, --run")
    query = (
        "SELECT id, path, sha256, table_schema, table_name, rows, status,"
        " (SELECT r.options->>'mode' FROM pgingest.runs r WHERE r.id = files.run_id) AS mode"
        " FROM pgingest.files WHERE (status = 'success' OR (status IN ('running', 'pending',"
        " 'failed') AND EXISTS (SELECT 1 FROM pgingest.file_batches b"
        " WHERE b.file_id = files.id))) AND "
    )
    if path is not None:
        rows = await conn.fetch(query + "path = $1 ORDER BY id", path)
    elif sha256 is not None:
        if len(sha256) < 8:
            raise ManifestError("--sha256 needs at least 8 hex digits")
        rows = await conn.fetch(query + "sha256 LIKE $1 || '%' ORDER BY id", sha256.lower())
    else:
        rows = await conn.fetch(query + "run_id = $1 ORDER BY id", run_id)
    # The other names of a loaded content (copies skipped as the same content) go with it.
    names = await conn.fetch(
        query + "status = 'success' AND NOT (id = ANY($1::bigint[]))"
        " AND (sha256, table_schema, table_name) IN (SELECT f.sha256, f.table_schema,"
        " f.table_name FROM pgingest.files f WHERE f.id = ANY($1::bigint[])"
        " AND f.status = 'success') ORDER BY id",
        [r["id"] for r in rows],
    )
    return [*rows, *names]


async def revert(
    conn: Any,
    *,
    path: str | None = None,
    sha256: str | None = None,
    run_id: int | None = None,
    schema_changes: bool = False,
    dry_run: bool = False,
) -> RevertReport:
    """Remove the rows of the selected files, atomically.

    A loaded file, or an interrupted one (its committed batches' rows), loses its rows
    (by lineage) and is marked ``reverted``; a file whose table is gone is marked reverted and
    reported so (``table_gone``). A file being loaded right now (its lock is held) is refused.

    Args:
        conn: an open connection.
        path: revert the file(s) loaded from this path.
        sha256: revert the file(s) with this content hash (a prefix of 8+ digits is enough).
        run_id: revert every file a run loaded.
        schema_changes: also undo the schema changes those loads caused, when no other loaded
            file depends on them (a column still holding other files' values stays).
        dry_run: count what would be removed; change nothing.

    Returns:
        What was (or would be) removed.

    Raises:
        ManifestError: nothing matches, a file is being loaded now, a file was upserted or
            merged, or a table has no lineage column.
    """
    report = RevertReport(dry_run=dry_run)
    async with conn.transaction():
        entries = await select_files(conn, path=path, sha256=sha256, run_id=run_id)
        if not entries:
            raise ManifestError("no loaded file matches; `pgingest status` lists what is loaded")
        for entry in entries:
            report.files.append(await _revert_one(conn, entry, dry_run))
        if schema_changes:
            ids = [e["id"] for e in entries]
            report.schema_changes = await _undo_schema_changes(conn, ids, dry_run)
        if dry_run:
            # Nothing was changed, but leave no doubt: roll the transaction back.
            raise _DryRun(report)
        crash_point("revert-deleted")
    return report


async def _revert_one(conn: Any, entry: Any, dry_run: bool) -> RevertedFile:
    schema, table = entry["table_schema"], entry["table_name"]
    name = qualified_name(schema, table)
    if entry["status"] != "success":
        # An interrupted file: its lock is free unless a pgingest process loads it now. Held
        # to the end of this transaction, so that no resume takes it meanwhile.
        free = await conn.fetchval(
            "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0))",
            lock_key("file", str(entry["id"])),
        )
        if not free:
            raise ManifestError(
                f"cannot revert {entry['path']} (file {entry['id']}): a pgingest process is"
                " loading it right now; revert it when that run has ended"
            )
    if entry["mode"] in NOT_REVERTIBLE_MODES:
        raise ManifestError(
            f"cannot revert {entry['path']}: it was loaded with --mode {entry['mode']},"
            f" which overwrote rows of {schema}.{table} in place; the values it replaced"
            " are not kept, so deleting its rows would lose data. Load the earlier files"
            " again (--force) to restore their values"
        )
    identity = await table_identity(conn, schema, table)
    gone = not identity.exists
    if gone:
        rows = 0
    elif not identity.lineage:
        raise ManifestError(
            f"cannot revert {entry['path']}: table {schema}.{table} has no "
            f"{LINEAGE_FILE} column (it was loaded with --no-lineage), so its rows "
            "cannot be told apart"
        )
    elif dry_run:
        rows = await conn.fetchval(
            f"SELECT count(*) FROM {name} WHERE {quote_ident(LINEAGE_FILE)} = $1", entry["id"]
        )
    else:
        status = await conn.execute(
            f"DELETE FROM {name} WHERE {quote_ident(LINEAGE_FILE)} = $1", entry["id"]
        )
        rows = int(status.split()[-1])
    if not dry_run:
        error = f"its table {schema}.{table} was gone when it was reverted" if gone else None
        await conn.execute(
            "UPDATE pgingest.files SET status = 'reverted', finished_at = now(),"
            " error = coalesce($2, error) WHERE id = $1",
            entry["id"],
            error,
        )
    return RevertedFile(
        entry["id"], entry["path"], f"{schema}.{table}", int(rows), entry["status"], gone
    )


class _DryRun(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, report: RevertReport) -> None:
        super().__init__("dry run")
        self.report = report


async def revert_safely(conn: Any, **selectors: Any) -> RevertReport:
    """:func:`revert`, turning the dry run's deliberate rollback into a normal return."""
    try:
        return await revert(conn, **selectors)
    except _DryRun as dry:
        return dry.report


async def _undo_schema_changes(conn: Any, file_ids: list[int], dry_run: bool) -> list[str]:
    changes = await conn.fetch(
        "SELECT id, table_schema, table_name, column_name, change, old_type, new_type"
        " FROM pgingest.schema_changes WHERE file_id = ANY($1::bigint[]) AND NOT reverted"
        " ORDER BY id DESC",
        file_ids,
    )
    done: list[str] = []
    for change in changes:
        schema, table = change["table_schema"], change["table_name"]
        name = qualified_name(schema, table)
        if not await conn.fetchval("SELECT to_regclass($1)", name):
            continue
        others = await conn.fetchval(
            "SELECT count(*) FROM pgingest.files WHERE table_schema = $1 AND table_name = $2"
            " AND status = 'success' AND NOT (id = ANY($3::bigint[]))",
            schema,
            table,
            file_ids,
        )
        kind = change["change"]
        # Rows that stay after the revert (a dry run has not deleted the reverted ones yet).
        lineage = quote_ident(LINEAGE_FILE)
        others_rows = f"({lineage} IS NULL OR NOT ({lineage} = ANY($1::bigint[])))"
        if kind == "create_table":
            rows_left = await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {name} WHERE {others_rows})", file_ids
            )
            if others or rows_left:
                continue
            if not dry_run:
                await conn.execute(f"DROP TABLE {name}")
            done.append(f"drop table {schema}.{table}")
        elif kind == "add_column":
            column = quote_ident(change["column_name"])
            in_use = await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {name} WHERE {column} IS NOT NULL"
                f" AND {others_rows})",
                file_ids,
            )
            if in_use:
                continue
            if not dry_run:
                await conn.execute(f"ALTER TABLE {name} DROP COLUMN {column}")
            done.append(f"drop column {schema}.{table}.{change['column_name']}")
        elif kind == "alter_type" and change["old_type"]:
            column = quote_ident(change["column_name"])
            old_type = change["old_type"]
            if not dry_run:
                try:
                    async with conn.transaction():
                        await conn.execute(
                            f"ALTER TABLE {name} ALTER COLUMN {column} TYPE {old_type}"
                            f" USING {column}::{old_type}"
                        )
                except Exception as exc:  # remaining values need the wider type: keep it
                    log.info("%s.%s keeps its wider type: %s", table, change["column_name"], exc)
                    continue
            done.append(f"{schema}.{table}.{change['column_name']} back to {old_type}")
        if not dry_run:
            await conn.execute(
                "UPDATE pgingest.schema_changes SET reverted = true WHERE id = $1", change["id"]
            )
    return done

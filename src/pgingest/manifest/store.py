"""Every read and write of the bookkeeping schema ``pgingest`` during a load: runs, claiming
and completing files, batches, rejects, schema changes, and the identity of target tables.

The schema itself and its migrations are :mod:`pgingest.manifest.schema`; the server-side
functions (claim, complete, reconcile) :mod:`pgingest.manifest.functions`. Functions take an
open connection of the ``pg`` layer; values are always bound parameters, identifiers always
pass the quoting helper.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, cast

from pgingest.config import LoadOptions
from pgingest.manifest.functions import FILE_ID_SETTING, LINEAGE_FILE_DEFAULT
from pgingest.manifest.model import (
    LINEAGE_FILE,
    LINEAGE_TIME,
    NO_TABLE,
    TableIdentity,
)
from pgingest.manifest.schema import SCHEMA_VERSION, STATUSES, ensure_manifest
from pgingest.model import Reject
from pgingest.observability.progress import Retry
from pgingest.pg.copy import writer_woken_on_loss
from pgingest.pg.ddl import qualified_name, quote_ident
from pgingest.pg.stall import terminate_orphan
from pgingest.pg.transaction import Transaction

__all__ = [
    "FILE_ID_SETTING",
    "HEADER_ONLY",
    "HELD_ELSEWHERE",
    "IN_REPLACEMENT",
    "LINEAGE_FILE",
    "LINEAGE_FILE_DEFAULT",
    "LINEAGE_TIME",
    "LOCK_NOT_AVAILABLE",
    "NO_TABLE",
    "SAME_CONTENT",
    "SCHEMA_VERSION",
    "STATUSES",
    "Claim",
    "Completion",
    "TableIdentity",
    "claim_file",
    "committed_batch_rows",
    "complete_file",
    "count_rejects",
    "ensure_lineage",
    "ensure_manifest",
    "fail_file",
    "file_rejects",
    "file_rows",
    "finish_run",
    "header_only_table",
    "lineage_columns_sql",
    "lock_key",
    "options_record",
    "record_batch",
    "record_rejects",
    "record_retries",
    "record_schema_change",
    "record_sha256",
    "release_file",
    "relock_file",
    "relock_run",
    "remove_replaced",
    "restamp_table",
    "run_to_resume",
    "set_file_id",
    "start_run",
    "table_identity",
    "wait_for_file",
]
log = logging.getLogger("pgingest.manifest")

HELD_ELSEWHERE = "being loaded by another pgingest process"
"""The reason :func:`claim_file` gives for skipping a file another process holds (the same
text as in ``pgingest.claim``)."""
IN_REPLACEMENT = "already in the new table of the replace"
"""The reason :func:`claim_file` gives for skipping a file ``staged`` in a replacement (the
same text as in ``pgingest.claim``)."""
SAME_CONTENT = "same content "
"""How the reasons :func:`claim_file` gives for skipping a file whose content another file of
the table holds (loaded, staged or loading) begin."""
LOCK_NOT_AVAILABLE = "55P03"
"""SQLSTATE of a lock wait cut by ``lock_timeout``."""


def lock_key(kind: str, value: str) -> str:
    """The text of an advisory lock's key (hashed server-side with ``hashtextextended``):
    ``file`` (a file being loaded, session-level), ``run`` (a live run, session-level),
    ``size`` and ``table`` (the manifest's decisions about a table, transaction-level),
    ``content`` (a content's rows changing hands, transaction-level)."""
    return f"pgingest.{kind}:{value}"


def options_record(options: LoadOptions) -> dict[str, Any]:
    """The run's options as the manifest records them (``pgingest resume`` reads them back):
    JSON values, a callable transform by its import name."""
    transform = options.transform
    record = asdict(replace(options, transform=None))
    record["types"] = dict(options.types)
    if callable(transform):  # recorded by name, so that a resumed run can import it again
        transform = f"{transform.__module__}:{transform.__qualname__}"
    record["transform"] = transform
    record["folders"] = {k: dict(v) for k, v in options.folders.items()}
    record["sources"] = [dict(v) for v in options.sources]
    return record


async def start_run(
    conn: Any, paths: Sequence[str], options: Mapping[str, Any], host: str, pid: int
) -> int:
    """Record a new run; return its id.

    ``conn`` takes the run's session lock (``lock_key("run", id)``) in the same statement, and
    must hold it for as long as the run lives: ``pgingest status`` tells a live run from one
    whose process died by whether the lock is held.
    """
    run_id = await conn.fetchval(
        "WITH r AS (INSERT INTO pgingest.runs (host, pid, paths, options)"
        " VALUES ($1, $2, $3::jsonb, $4::jsonb) RETURNING id)"
        " SELECT r.id FROM r, LATERAL (SELECT pg_advisory_lock(hashtextextended("
        "'pgingest.run:' || r.id, 0))) AS locked",
        host,
        pid,
        json.dumps(list(paths)),
        json.dumps(dict(options), default=str),
    )
    return int(run_id)


async def run_to_resume(conn: Any, run_id: int | None) -> Mapping[str, Any] | None:
    """The run ``run_id`` (``None``: the latest that did not succeed), with its ``paths``
    and ``options`` as recorded; ``None`` when there is none."""
    if run_id is None:
        row = await conn.fetchrow(
            "SELECT id, paths, options FROM pgingest.runs WHERE status <> 'success'"
            " ORDER BY id DESC LIMIT 1"
        )
    else:
        row = await conn.fetchrow(
            "SELECT id, paths, options FROM pgingest.runs WHERE id = $1", run_id
        )
    return cast("Mapping[str, Any] | None", row)


async def relock_run(conn: Any, run_id: int) -> bool:
    """Take the run's session lock on a new connection (the one holding it was lost); False
    while the server still keeps the lost connection's session (it holds the lock then)."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lock_key("run", str(run_id))
        )
    )


async def finish_run(conn: Any, run_id: int, status: str, counts: Mapping[str, int]) -> None:
    """Close a run with its status and counts."""
    await conn.execute(
        "UPDATE pgingest.runs SET finished_at = now(), status = $2, files_loaded = $3,"
        " files_skipped = $4, files_failed = $5, rows = $6 WHERE id = $1",
        run_id,
        status,
        counts.get("loaded", 0),
        counts.get("skipped", 0),
        counts.get("failed", 0),
        counts.get("rows", 0),
    )


async def record_retries(conn: Any, run_id: int, retries: Sequence[tuple[datetime, Retry]]) -> None:
    """Keep a run's retries (when each happened, and what), for its report."""
    if not retries:
        return
    await conn.executemany(
        "INSERT INTO pgingest.retries (run_id, at, path, table_name, batch, attempt, delay,"
        " error_class, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        [
            (
                run_id,
                at,
                r.path or None,
                r.table or None,
                r.batch,
                r.attempt,
                r.delay,
                r.error_class,
                r.error,
            )
            for at, r in retries
        ],
    )


@dataclass(slots=True)
class Claim:
    """The outcome of claiming a file: load it (perhaps resuming), skip it, or hash it first."""

    action: str  # "load" | "skip" | "hash"
    file_id: int | None = None
    reason: str = ""
    done_batches: set[int] = field(default_factory=set)
    done_rows: int = 0
    replaces: int | None = None
    chunking: dict[str, Any] = field(default_factory=dict)

    @property
    def held_elsewhere(self) -> bool:
        """Skipped because another process is loading the file (it holds its lock)."""
        return self.action == "skip" and self.reason == HELD_ELSEWHERE


async def claim_file(
    conn: Any,
    *,
    path: str,
    size: int,
    mtime_ns: int,
    sha256: str | None,
    schema: str,
    table: str,
    fmt: str | None,
    run_id: int,
    chunking: Mapping[str, Any],
    force: bool,
    on_changed: str,
    lineage: bool = True,
    owner: str | None = None,
) -> Claim:
    """Decide what to do with one file and, to load it, hold its lock on ``conn``.

    Identical content has identical size, so the content hash is only needed up front when
    the table already has a loaded file of the same size and ``force`` is off
    (``Claim("hash")``: hash, then claim again with ``sha256``); otherwise loading starts at
    once and the hash is computed alongside and checked by :func:`complete_file`. A file
    unchanged since it loaded (same path, size and mtime) is skipped without reading it. An
    unfinished attempt of the same file resumes; an unfinished attempt of an earlier version of
    the path has its rows removed. A file whose hash is not known yet is never taken for
    another (``NULL`` is no match): only the same path and mtime, or the same hash, is.

    The table's identity is checked first: when the table is not the one its loaded files
    recorded (dropped, recreated, truncated, restored), the files whose rows are gone are
    marked reverted, and this one, if it was among them, loads again (``reason`` starts with
    ``again: `` and says why). An unfinished file whose committed rows are gone starts over.

    The session-level advisory lock taken here is held for as long as the file loads, so a
    second process skips the file instead of loading it twice, and a crashed process's file is
    free to resume; :func:`complete_file` releases it (:func:`release_file` after a failure).
    The claiming connection's rows are stamped with the file id (see :func:`set_file_id`).
    Runs server-side (``pgingest.claim``) in one round trip. When the lock is held by a
    backend of this very run (``owner``, its ``application_name``) whose connection the run
    lost (a half-open connection: the server still keeps its session), that backend is
    terminated and the file claimed again.
    """
    args = (
        path,
        size,
        mtime_ns,
        sha256,
        schema,
        table,
        fmt,
        run_id,
        json.dumps(dict(chunking)),
        force,
        on_changed == "replace",
        lineage,
    )
    row = await _claim(conn, args)
    if (
        owner is not None
        and row["action"] == "skip"
        and row["reason"] == HELD_ELSEWHERE
        and await free_orphaned_file(conn, int(row["file_id"]), owner)
    ):
        row = await _claim(conn, args)
    stored = row["chunking"]
    if isinstance(stored, str):
        stored = json.loads(stored)
    return Claim(
        row["action"],
        row["file_id"],
        row["reason"],
        {int(batch) for batch in (row["done_batches"] or "").split(",") if batch},
        int(row["done_rows"] or 0),
        row["replaces"],
        dict(stored or {}),
    )


async def _claim(conn: Any, args: tuple[Any, ...]) -> Any:
    # done_batches as text: an integer[] column makes the driver look its type up in the
    # catalog on each new connection, a query of ~10 ms: most of a small file's bookkeeping.
    return await conn.fetchrow(
        "SELECT action, file_id, reason, array_to_string(done_batches, ',') AS done_batches,"
        " done_rows, replaces, chunking"
        " FROM pgingest.claim($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)",
        *args,
    )


async def free_orphaned_file(conn: Any, file_id: int, owner: str) -> bool:
    """Terminate the backend holding the file's lock if it is ``owner``'s (this run's
    ``application_name``) and not ``conn``'s: a connection the run lost whose session the
    server still keeps. True when one was terminated (the lock is free, or about to be).
    A live other process's lock is left alone."""
    holder = await conn.fetchval(
        "SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted"
        " AND l.objsubid = 1 AND l.pid <> pg_backend_pid()"
        " AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())"
        " AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended($1, 0)",
        lock_key("file", str(file_id)),
    )
    if holder is None:
        return False
    freed = await terminate_orphan(conn, int(holder), owner)
    if freed:
        log.warning(
            "file id %s: its lock was held by backend %s of this run's lost connection:"
            " terminated it",
            file_id,
            holder,
        )
    return freed


async def release_file(conn: Any, file_id: int) -> None:
    """Release the file's session lock taken by :func:`claim_file`."""
    await conn.execute(
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock_key("file", str(file_id))
    )


async def wait_for_file(conn: Any, file_id: int, seconds: float) -> bool:
    """Wait, at most ``seconds``, until no other session holds the file's lock (the process
    loading it finished, failed or died); False when it still holds it then."""
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT set_config('lock_timeout', $1, true)", f"{max(1, int(seconds * 1000))}ms"
            )
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                lock_key("file", str(file_id)),
            )
    except Exception as exc:
        if getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE:
            return False
        raise
    return True


async def relock_file(conn: Any, file_id: int, owner: str | None = None) -> bool:
    """Take the file's session lock again on a new connection, after the claiming one was
    lost; False when another process took the file meanwhile. A lock still held by the lost
    connection's session (``owner``'s: see :func:`free_orphaned_file`) is freed first."""
    key = lock_key("file", str(file_id))
    sql = "SELECT pg_try_advisory_lock(hashtextextended($1, 0))"
    if await conn.fetchval(sql, key):
        return True
    if owner is None or not await free_orphaned_file(conn, file_id, owner):
        return False
    return bool(await conn.fetchval(sql, key))


async def committed_batch_rows(conn: Any, file_id: int, batch: int) -> int | None:
    """Rows of the batch if its transaction committed (the manifest records it inside), else
    ``None``: after a lost connection, this tells whether a retry would apply it twice."""
    rows = await conn.fetchval(
        "SELECT rows FROM pgingest.file_batches WHERE file_id = $1 AND batch = $2",
        file_id,
        batch,
    )
    return None if rows is None else int(rows)


async def set_file_id(conn: Any, file_id: int) -> None:
    """Stamp the rows COPY writes on this connection with the file's id (lineage default)."""
    await conn.execute("SELECT set_config($1, $2, false)", FILE_ID_SETTING, str(file_id))


async def loaded_paths(conn: Any, run_id: int | None) -> set[str]:
    """The paths run ``run_id`` has loaded so far (as the manifest records them)."""
    if run_id is None:
        return set()
    rows = await conn.fetch(
        "SELECT path FROM pgingest.files WHERE run_id = $1 AND status = 'success'", run_id
    )
    return {r["path"] for r in rows}


def record_batch(txn: Transaction, file_id: int, batch: int, first_line: int, rows: int) -> None:
    """Inside a batch's transaction: record it, in the commit's query string (one round trip
    fewer; integers only, as literals); its primary key refuses a second application."""
    txn.at_commit(
        "INSERT INTO pgingest.file_batches (file_id, batch, first_line, rows)"
        f" VALUES ({int(file_id)}, {int(batch)}, {int(first_line)}, {int(rows)})"
    )


async def record_rejects(conn: Any, file_id: int, rejects: Sequence[Reject]) -> None:
    """Inside a batch's transaction: keep its bad rows (``--on-error skip``) and the values
    its reader loaded as NULL (e.g. Excel error cells), so that they commit or roll back with
    the batch's rows. One COPY: a batch of a file with 1% bad rows has hundreds."""
    with writer_woken_on_loss(conn):  # (thousands are written in steps)
        await conn.copy_records_to_table(
            "rejects",
            schema_name="pgingest",
            columns=["file_id", "line", "column_name", "raw", "reason", "raw_bytes"],
            records=[(file_id, r.line, r.column, r.raw, r.reason, r.raw_bytes) for r in rejects],
        )


async def remove_replaced(conn: Any, replaced_id: int, new_id: int) -> int:
    """Inside the new version's first batch transaction: the old version's rows go.

    Another name of the old content (a copy, a rename, a rotated log: recorded loaded by
    ``pgingest.claim`` without rows) keeps them: they are handed over to it, and only the old
    version is marked replaced. A file loaded again as it is (``--force``) replaces every name
    of its content.

    Returns:
        The rows deleted.
    """
    query = (
        "SELECT o.table_schema, o.table_name, o.status, o.sha256, o.path, n.sha256 AS new_sha"
        " FROM pgingest.files o, pgingest.files n WHERE o.id = $1 AND n.id = $2"
    )
    row = await conn.fetchrow(query, replaced_id, new_id)
    if row is None or row["status"] != "success":
        return 0
    # Two names of one content replaced at once (both changed) would each hand the rows to
    # the other: one at a time, each deciding on what the other committed.
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        lock_key("content", f"{row['table_schema']}.{row['table_name']}:{row['sha256']}"),
    )
    row = await conn.fetchrow(query, replaced_id, new_id)
    if row is None or row["status"] != "success":
        return 0
    table = qualified_name(row["table_schema"], row["table_name"])
    lineage = quote_ident(LINEAGE_FILE)
    names = await conn.fetch(
        "SELECT id FROM pgingest.files WHERE sha256 = $1 AND table_schema = $2"
        " AND table_name = $3 AND status = 'success' AND id <> ALL($4::text::bigint[])"
        " AND path IS DISTINCT FROM $5 ORDER BY id",
        row["sha256"],
        row["table_schema"],
        row["table_name"],
        id_array([replaced_id, new_id]),
        row["path"],
    )
    same = row["sha256"] is not None and row["new_sha"] == row["sha256"]
    if names and not same:
        heir = names[0]["id"]
        await conn.execute(
            f"UPDATE {table} SET {lineage} = $2 WHERE {lineage} = $1", replaced_id, heir
        )
        # Added, not copied: the old version may itself be the rowless name (the rows are the
        # heir's, or another name's, already): copied, its 0 was said of their holder.
        await conn.execute(
            "UPDATE pgingest.files h SET rows = h.rows + o.rows FROM pgingest.files o"
            " WHERE h.id = $2 AND o.id = $1",
            replaced_id,
            heir,
        )
        gone = [replaced_id]
        deleted = 0
        why = f"replaced by file {new_id}; its rows stay, as file {heir}'s (same content)"
    else:
        gone = [replaced_id, *(n["id"] for n in names)] if same else [replaced_id]
        status = await conn.execute(
            f"DELETE FROM {table} WHERE {lineage} = ANY($1::text::bigint[])", id_array(gone)
        )
        deleted = int(status.split()[-1])
        why = f"replaced by file {new_id}"
    await conn.execute(
        "UPDATE pgingest.files SET status = 'reverted', finished_at = now(),"
        " error = $2 WHERE id = ANY($1::text::bigint[])",
        id_array(gone),
        why,
    )
    return deleted


def id_array(ids: Iterable[int]) -> str:
    """File ids as a ``bigint[]`` literal, bound as text and cast by the statement: a
    ``bigint[]`` parameter has the driver look its type up in the catalog on each new
    connection (three more statements, ~10 ms: a small file's whole bookkeeping)."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


@dataclass(frozen=True, slots=True)
class Completion:
    """How a load ended in the manifest."""

    rows: int
    duplicate_of: int | None = None
    duplicate_path: str | None = None
    again: str | None = None
    """Why the file must be loaded again: its table changed under the load and its committed
    rows are gone (the file's partial load was discarded; it is ``failed``, unlocked)."""


async def complete_file(
    conn: Any,
    file_id: int,
    sha256: str | None,
    *,
    fmt: str | None = None,
    force: bool,
    lineage: bool,
) -> Completion:
    """Mark a file loaded, with its content hash, in one transaction (``pgingest.complete``),
    and release the file's lock.

    When another file of the same content finished loading into the table meanwhile (two
    names for one content, loaded at once), this one is the duplicate: its rows are removed
    again and it is marked reverted, so the content is in the table once. The table's
    identity is recorded with the file; when it is not the one recorded at the claim (the
    table was truncated or recreated during the load) and the file's committed rows are gone,
    the file is not marked loaded: ``Completion.again`` says why.
    """
    row = await conn.fetchrow(
        "SELECT * FROM pgingest.complete($1, $2, $3, $4, $5)", file_id, sha256, fmt, force, lineage
    )
    return Completion(
        int(row["rows"] or 0), row["duplicate_of"], row["duplicate_path"], row["again"]
    )


async def fail_file(conn: Any, file_id: int, error: str, *, discard: bool) -> None:
    """Mark a file failed. With ``discard`` its committed batches are removed too (bad data:
    nothing of the file stays); otherwise they stay and the next run resumes after them."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT table_schema, table_name FROM pgingest.files WHERE id = $1", file_id
        )
        if discard and row is not None:
            # Rows that carry the file's id go (also when this load was --no-lineage and the
            # table has the column); the file may fail before its table exists.
            await conn.execute(
                "SELECT pgingest.discard_rows($1, $2, $3)",
                row["table_schema"],
                row["table_name"],
                file_id,
            )
        await conn.execute(
            "UPDATE pgingest.files SET status = 'failed', finished_at = now(), error = $2,"
            " rows = (SELECT coalesce(sum(rows), 0) FROM pgingest.file_batches WHERE file_id = $1)"
            " WHERE id = $1",
            file_id,
            error,
        )


async def ensure_lineage(conn: Any, schema: str, table: str, existing: Sequence[str]) -> bool:
    """Add the lineage columns to a table that lacks them; True when it changed the table.

    The file id comes from a transaction-local setting, so COPY fills it without the client
    sending it for every row; existing rows keep NULL (no table rewrite).
    """
    missing = [c for c in (LINEAGE_FILE, LINEAGE_TIME) if c not in existing]
    if not missing:
        return False
    name = qualified_name(schema, table)
    async with conn.transaction():
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"pgingest.ddl:{schema}.{table}",
        )
        columns = {
            r[0]
            for r in await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0"
                " AND NOT attisdropped",
                name,
            )
        }
        if LINEAGE_FILE not in columns:
            await conn.execute(f"ALTER TABLE {name} ADD COLUMN {quote_ident(LINEAGE_FILE)} bigint")
            await conn.execute(
                f"ALTER TABLE {name} ALTER COLUMN {quote_ident(LINEAGE_FILE)} SET DEFAULT"
                f" {LINEAGE_FILE_DEFAULT}"
            )
        if LINEAGE_TIME not in columns:
            await conn.execute(
                f"ALTER TABLE {name} ADD COLUMN {quote_ident(LINEAGE_TIME)} timestamptz"
            )
            await conn.execute(
                f"ALTER TABLE {name} ALTER COLUMN {quote_ident(LINEAGE_TIME)} SET DEFAULT now()"
            )
    return True


def lineage_columns_sql() -> str:
    """Column definitions of the lineage columns for ``CREATE TABLE``."""
    return (
        f"{quote_ident(LINEAGE_FILE)} bigint DEFAULT {LINEAGE_FILE_DEFAULT},\n"
        f"  {quote_ident(LINEAGE_TIME)} timestamptz DEFAULT now()"
    )


async def record_schema_change(
    conn: Any,
    *,
    schema: str,
    table: str,
    change: str,
    column: str | None = None,
    old_type: str | None = None,
    new_type: str | None = None,
    file_id: int | None = None,
    run_id: int | None = None,
) -> None:
    """Log one change to a target table in ``pgingest.schema_changes``."""
    await conn.execute(
        "INSERT INTO pgingest.schema_changes (table_schema, table_name, column_name, change,"
        " old_type, new_type, file_id, run_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        schema,
        table,
        column,
        change,
        old_type,
        new_type,
        file_id,
        run_id,
    )


HEADER_ONLY = "header only"
"""``new_type`` of a ``create_table`` change whose file had no data rows: its columns are text
until the first file with data retypes them (while the table is empty)."""


async def header_only_table(conn: Any, schema: str, table: str) -> frozenset[str] | None:
    """When the table was created (last) by a file with no data rows: the columns that file's
    run declared types for (never retyped); else ``None``."""
    row = await conn.fetchrow(
        "SELECT c.new_type, r.options -> 'types' AS types FROM pgingest.schema_changes c"
        " LEFT JOIN pgingest.runs r ON r.id = c.run_id"
        " WHERE c.table_schema = $1 AND c.table_name = $2 AND c.change = 'create_table'"
        " AND NOT c.reverted ORDER BY c.id DESC LIMIT 1",
        schema,
        table,
    )
    if row is None or row["new_type"] != HEADER_ONLY:
        return None
    declared = json.loads(row["types"]) if isinstance(row["types"], str) else row["types"]
    return frozenset(declared or {})


async def count_rejects(conn: Any, file_id: int) -> int:
    """Bad rows kept so far for a file (its committed batches')."""
    return int(
        await conn.fetchval("SELECT count(*) FROM pgingest.rejects WHERE file_id = $1", file_id)
    )


async def file_rejects(conn: Any, path: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The latest manifest entry of ``path`` (or of a file id given as digits) and its
    rejected rows in line order: ``(entry, rows)``; ``(None, [])`` when it is unknown."""
    if not await conn.fetchval("SELECT to_regclass('pgingest.rejects') IS NOT NULL"):
        return None, []
    entry = await conn.fetchrow(
        "SELECT id, path, table_schema, table_name, status, rows FROM pgingest.files"
        " WHERE path = $1 OR id::text = $2 ORDER BY (path = $1) DESC, id DESC LIMIT 1",
        path,
        path.strip(),
    )
    if entry is None:
        return None, []
    rows = await conn.fetch(
        "SELECT line, column_name, raw, reason FROM pgingest.rejects WHERE file_id = $1"
        " ORDER BY line NULLS LAST, id",
        entry["id"],
    )
    return dict(entry), [dict(r) for r in rows]


async def file_rows(conn: Any, file_id: int) -> int:
    """Rows of a file's committed batches."""
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(rows), 0) FROM pgingest.file_batches WHERE file_id = $1", file_id
        )
    )


async def record_sha256(conn: Any, file_id: int, sha256: str) -> None:
    """Record a loading file's content hash as soon as it is known (inside a batch's
    transaction), so that an interrupted file can be found, and reverted, by its hash."""
    await conn.execute(
        "UPDATE pgingest.files SET sha256 = $2 WHERE id = $1 AND sha256 IS NULL", file_id, sha256
    )


async def table_identity(conn: Any, schema: str, table: str) -> TableIdentity:
    """Which table ``schema.table`` is now (:data:`NO_TABLE` when there is none).

    To rewrite a table and keep the manifest's record of it true, read its identity after
    taking the lock the rewrite needs, and pass it to :func:`restamp_table` after the
    rewrite, in the same transaction.
    """
    row = await conn.fetchrow("SELECT * FROM pgingest.table_identity($1, $2)", schema, table)
    if row is None or not row["table_oid"]:
        return NO_TABLE
    return TableIdentity(int(row["table_oid"]), int(row["table_node"]), bool(row["lineage"]))


async def restamp_table(conn: Any, schema: str, table: str, before: TableIdentity) -> int:
    """Record that pgingest itself rewrote ``schema.table`` (or created it): every file whose
    recorded identity of the table is ``before`` gets the table's identity now.

    Call it inside the transaction that made the change, after it: a column widened with
    ``ALTER COLUMN TYPE`` (a new storage node), the replace swap (another table under the
    name: call it after the old table's files are marked replaced), a table created for
    files claimed before it existed (``before`` = :data:`NO_TABLE`). Read ``before`` with
    :func:`table_identity` after taking the lock of the change, so that no other change (a
    TRUNCATE by someone else) slips in between: that one must stay visible, for the next
    claim to check the files' rows.

    Returns:
        How many files' records were brought up to date.
    """
    status = await conn.execute(
        "UPDATE pgingest.files f SET table_oid = i.table_oid, table_node = i.table_node"
        " FROM pgingest.table_identity($1, $2) i"
        " WHERE f.table_schema = $1 AND f.table_name = $2 AND f.status <> 'reverted'"
        " AND f.table_oid = $3 AND f.table_node = $4"
        " AND (f.table_oid, f.table_node) IS DISTINCT FROM (i.table_oid, i.table_node)",
        schema,
        table,
        before.oid,
        before.node,
    )
    return int(status.split()[-1])

"""The bookkeeping schema ``pgingest`` and every read and write of it.

Functions take an open connection of the ``pg`` layer; values are always bound parameters,
identifiers always pass the quoting helper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgingest.manifest.model import FileEntry
from pgingest.model import Reject
from pgingest.pg.ddl import qualified_name, quote_ident

SCHEMA_VERSION = 3
"""The bookkeeping schema's version; a database at an older one is brought up to it (its
functions replaced) by the first run that finds it. 2: ``claim`` with ``--force`` no longer
asks for the content hash first. 3: ``rejects.raw_bytes`` (see :data:`_REJECTS_RAW_BYTES`)."""
FILE_ID_SETTING = "pgingest.file_id"
LINEAGE_FILE_DEFAULT = "pgingest.current_file_id()"
"""The lineage file id column's default: the session's file id, evaluated once per COPY."""
LINEAGE_FILE = "_pgingest_file_id"
LINEAGE_TIME = "_pgingest_loaded_at"

_BOOTSTRAP = [
    "CREATE SCHEMA IF NOT EXISTS pgingest",
    """CREATE TABLE IF NOT EXISTS pgingest.version (
        version integer NOT NULL,
        migrated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS pgingest.runs (
        id bigserial PRIMARY KEY,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        status text NOT NULL DEFAULT 'running'
            CHECK (status IN ('running', 'success', 'failed', 'interrupted')),
        host text,
        pid integer,
        paths jsonb NOT NULL DEFAULT '[]',
        options jsonb NOT NULL DEFAULT '{}',
        files_loaded integer NOT NULL DEFAULT 0,
        files_skipped integer NOT NULL DEFAULT 0,
        files_failed integer NOT NULL DEFAULT 0,
        rows bigint NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS pgingest.files (
        id bigserial PRIMARY KEY,
        run_id bigint REFERENCES pgingest.runs (id),
        path text NOT NULL,
        sha256 text,
        size bigint NOT NULL,
        mtime_ns bigint,
        table_schema text NOT NULL,
        table_name text NOT NULL,
        format text,
        status text NOT NULL
            CHECK (status IN ('pending', 'running', 'success', 'failed', 'reverted')),
        rows bigint NOT NULL DEFAULT 0,
        chunking jsonb NOT NULL DEFAULT '{}',
        replaces bigint REFERENCES pgingest.files (id),
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        error text)""",
    "CREATE INDEX IF NOT EXISTS files_content ON pgingest.files (sha256, table_schema, table_name)",
    "CREATE INDEX IF NOT EXISTS files_size ON pgingest.files (table_schema, table_name, size)",
    "CREATE INDEX IF NOT EXISTS files_path ON pgingest.files (path)",
    "CREATE INDEX IF NOT EXISTS files_run ON pgingest.files (run_id)",
    """CREATE TABLE IF NOT EXISTS pgingest.file_batches (
        file_id bigint NOT NULL REFERENCES pgingest.files (id) ON DELETE CASCADE,
        batch integer NOT NULL,
        first_line bigint NOT NULL,
        rows bigint NOT NULL,
        committed_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (file_id, batch))""",
    """CREATE TABLE IF NOT EXISTS pgingest.schema_changes (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        table_schema text NOT NULL,
        table_name text NOT NULL,
        column_name text,
        change text NOT NULL CHECK (change IN ('create_table', 'add_column', 'alter_type')),
        old_type text,
        new_type text,
        file_id bigint REFERENCES pgingest.files (id),
        run_id bigint REFERENCES pgingest.runs (id),
        reverted boolean NOT NULL DEFAULT false)""",
    """CREATE TABLE IF NOT EXISTS pgingest.rejects (
        id bigserial PRIMARY KEY,
        file_id bigint NOT NULL REFERENCES pgingest.files (id) ON DELETE CASCADE,
        line bigint,
        column_name text,
        raw text,
        reason text NOT NULL,
        at timestamptz NOT NULL DEFAULT now())""",
]

_REJECTS_RAW_BYTES = "ALTER TABLE pgingest.rejects ADD COLUMN IF NOT EXISTS raw_bytes bytea"
"""Migration to version 3: a rejected record's bytes as in the file, when its text (``raw``)
cannot hold them (bytes that are not in the file's encoding, a NUL byte)."""
_MIGRATIONS = [_REJECTS_RAW_BYTES]
"""Statements that bring the tables of an older version up to date (each safe to repeat)."""

# Claiming and completing a file run server-side, one round trip each: with many small files
# the round trips, not the data, are the cost (2,000 files of 100 rows: 56 files/s with the
# same logic client-side in 8 statements). Lock keys match ``_lock_key`` below.
_FUNCTIONS = [
    # The lineage default. Declared IMMUTABLE on purpose: the planner then evaluates it once
    # when it prepares a statement's column defaults (once per COPY) instead of once per row,
    # which took ~25% of the server's COPY time. The file id is constant within a statement by
    # design (set per connection and file before its COPY); a statement that relies on this
    # default must not be a prepared plan reused across files.
    f"""
CREATE OR REPLACE FUNCTION pgingest.current_file_id() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('{FILE_ID_SETTING}', true), '')::bigint $$
""",
    r"""
CREATE OR REPLACE FUNCTION pgingest.claim(
    p_path text, p_size bigint, p_mtime bigint, p_sha text, p_schema text, p_table text,
    p_fmt text, p_run bigint, p_chunking jsonb, p_force boolean, p_replace boolean,
    p_lineage boolean)
RETURNS TABLE (action text, file_id bigint, reason text, done_batches integer[],
               done_rows bigint, replaces bigint, chunking jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    v_replaces bigint;
    v_id bigint;
    v_done integer[];
    v_rows bigint;
    v_any_success boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'pgingest.size:' || p_schema || '.' || p_table || ':' || p_size, 0));
    FOR r IN
        SELECT f.id, f.path, f.sha256, f.mtime_ns, f.status, f.chunking, f.replaces
        FROM pgingest.files f
        WHERE f.table_schema = p_schema AND f.table_name = p_table AND f.size = p_size
          AND f.status <> 'reverted'
        ORDER BY f.id DESC
    LOOP
        IF r.status = 'success' THEN
            v_any_success := true;
        END IF;
        IF NOT ((r.path = p_path AND r.mtime_ns = p_mtime)
                OR (p_sha IS NOT NULL AND r.sha256 = p_sha)) THEN
            CONTINUE;
        END IF;
        IF r.status = 'success' THEN
            IF NOT p_force THEN
                RETURN QUERY SELECT 'skip'::text, r.id,
                    CASE WHEN r.path = p_path THEN 'already loaded'
                         ELSE 'same content already loaded from ' || r.path END,
                    NULL::integer[], 0::bigint, NULL::bigint, NULL::jsonb;
                RETURN;
            END IF;
            IF p_replace THEN
                v_replaces := r.id;
            END IF;
            EXIT;
        END IF;
        -- pending / running / failed: an attempt that did not finish.
        IF NOT pg_try_advisory_lock(hashtextextended('pgingest.file:' || r.id, 0)) THEN
            RETURN QUERY SELECT 'skip'::text, r.id,
                'being loaded by another pgingest process'::text,
                NULL::integer[], 0::bigint, NULL::bigint, NULL::jsonb;
            RETURN;
        END IF;
        SELECT coalesce(array_agg(b.batch), '{}'), coalesce(sum(b.rows), 0)::bigint
          INTO v_done, v_rows FROM pgingest.file_batches b WHERE b.file_id = r.id;
        UPDATE pgingest.files SET status = 'running', run_id = p_run, path = p_path,
               error = NULL, finished_at = NULL WHERE id = r.id;
        PERFORM set_config('pgingest.file_id', r.id::text, false);
        RETURN QUERY SELECT 'load'::text, r.id,
            CASE WHEN cardinality(v_done) > 0 THEN 'resume' ELSE 'retry' END,
            v_done, v_rows, r.replaces, r.chunking;
        RETURN;
    END LOOP;
    -- The content may be a loaded file's (same size): say so before loading it, unless it is
    -- to be loaded again anyway (--force).
    IF p_sha IS NULL AND v_replaces IS NULL AND v_any_success AND NOT p_force THEN
        RETURN QUERY SELECT 'hash'::text, NULL::bigint, ''::text, NULL::integer[], 0::bigint,
            NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    -- Unfinished attempts at this path whose file changed since: their rows go.
    FOR r IN
        SELECT f.id FROM pgingest.files f
        WHERE f.path = p_path AND f.table_schema = p_schema AND f.table_name = p_table
          AND f.status IN ('running', 'pending', 'failed')
          AND EXISTS (SELECT 1 FROM pgingest.file_batches b WHERE b.file_id = f.id)
    LOOP
        IF pg_try_advisory_lock(hashtextextended('pgingest.file:' || r.id, 0)) THEN
            IF p_lineage AND to_regclass(format('%I.%I', p_schema, p_table)) IS NOT NULL
               AND EXISTS (SELECT 1 FROM pg_attribute
                           WHERE attrelid = format('%I.%I', p_schema, p_table)::regclass
                             AND attname = '_pgingest_file_id' AND NOT attisdropped) THEN
                EXECUTE format('DELETE FROM %I.%I WHERE _pgingest_file_id = $1',
                               p_schema, p_table) USING r.id;
            END IF;
            DELETE FROM pgingest.file_batches b WHERE b.file_id = r.id;
            UPDATE pgingest.files SET status = 'failed', rows = 0, finished_at = now(),
                   error = 'abandoned: the file changed before it was resumed'
             WHERE id = r.id;
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || r.id, 0));
        END IF;
    END LOOP;
    IF v_replaces IS NULL AND p_replace THEN
        SELECT f.id INTO v_replaces FROM pgingest.files f
        WHERE f.path = p_path AND f.table_schema = p_schema AND f.table_name = p_table
          AND f.status = 'success'
          AND (f.sha256 IS DISTINCT FROM p_sha OR f.mtime_ns IS DISTINCT FROM p_mtime)
        ORDER BY f.id DESC LIMIT 1;
    END IF;
    INSERT INTO pgingest.files (run_id, path, sha256, size, mtime_ns, table_schema, table_name,
                                format, status, chunking, replaces)
    VALUES (p_run, p_path, p_sha, p_size, p_mtime, p_schema, p_table, p_fmt, 'running',
            p_chunking, v_replaces)
    RETURNING id INTO v_id;
    PERFORM pg_advisory_lock(hashtextextended('pgingest.file:' || v_id, 0));
    -- The claiming connection writes the file's first batches: stamp its rows already.
    PERFORM set_config('pgingest.file_id', v_id::text, false);
    RETURN QUERY SELECT 'load'::text, v_id, 'new'::text, '{}'::integer[], 0::bigint,
        v_replaces, p_chunking;
END
$fn$""",
    r"""
CREATE OR REPLACE FUNCTION pgingest.complete(
    p_id bigint, p_sha text, p_fmt text, p_force boolean, p_lineage boolean)
RETURNS TABLE (rows bigint, duplicate_of bigint, duplicate_path text)
LANGUAGE plpgsql AS $fn$
DECLARE
    f record;
    twin record;
    v_rows bigint;
BEGIN
    SELECT size, table_schema, table_name INTO f FROM pgingest.files WHERE id = p_id;
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'pgingest.size:' || f.table_schema || '.' || f.table_name || ':' || f.size, 0));
    IF NOT p_force THEN
        SELECT o.id, o.path INTO twin FROM pgingest.files o
        WHERE o.sha256 = p_sha AND o.table_schema = f.table_schema
          AND o.table_name = f.table_name AND o.status = 'success' AND o.id <> p_id
        ORDER BY o.id LIMIT 1;
        IF FOUND THEN
            IF p_lineage THEN
                EXECUTE format('DELETE FROM %I.%I WHERE _pgingest_file_id = $1',
                               f.table_schema, f.table_name) USING p_id;
            END IF;
            UPDATE pgingest.files SET status = 'reverted', sha256 = p_sha, rows = 0,
                   finished_at = now(),
                   error = 'same content as file ' || twin.id || ', loaded meanwhile'
             WHERE id = p_id;
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || p_id, 0));
            RETURN QUERY SELECT 0::bigint, twin.id, twin.path;
            RETURN;
        END IF;
    END IF;
    UPDATE pgingest.files SET status = 'success', sha256 = p_sha, finished_at = now(),
           error = NULL, format = coalesce(p_fmt, format),
           rows = (SELECT coalesce(sum(b.rows), 0) FROM pgingest.file_batches b
                   WHERE b.file_id = p_id)
     WHERE id = p_id RETURNING pgingest.files.rows INTO v_rows;
    PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || p_id, 0));
    RETURN QUERY SELECT v_rows, NULL::bigint, NULL::text;
END
$fn$""",
]


def _lock_key(kind: str, value: str) -> str:
    return f"pgingest.{kind}:{value}"


async def ensure_manifest(conn: Any) -> None:
    """Create schema ``pgingest`` and its tables on first use, or bring an older version's up
    to :data:`SCHEMA_VERSION` (tables created if missing, functions replaced); safe when
    processes race."""
    exists = await conn.fetchval(
        "SELECT to_regclass('pgingest.version') IS NOT NULL AND"
        " to_regprocedure('pgingest.complete(bigint, text, text, boolean, boolean)') IS NOT NULL"
        " AND to_regprocedure('pgingest.current_file_id()') IS NOT NULL"
    )
    if exists and await _schema_version(conn) >= SCHEMA_VERSION:
        return
    async with conn.transaction():
        # One global lock: two processes starting together create the schema once.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "pgingest.bootstrap"
        )
        for statement in [*_BOOTSTRAP, *_MIGRATIONS, *_FUNCTIONS]:
            await conn.execute(statement)
        if await _schema_version(conn) < SCHEMA_VERSION:  # a row per migration
            await conn.execute("INSERT INTO pgingest.version (version) VALUES ($1)", SCHEMA_VERSION)


async def _schema_version(conn: Any) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM pgingest.version"))


async def start_run(
    conn: Any, paths: Sequence[str], options: Mapping[str, Any], host: str, pid: int
) -> int:
    """Record a new run; return its id."""
    run_id = await conn.fetchval(
        "INSERT INTO pgingest.runs (host, pid, paths, options)"
        " VALUES ($1, $2, $3::jsonb, $4::jsonb) RETURNING id",
        host,
        pid,
        json.dumps(list(paths)),
        json.dumps(dict(options), default=str),
    )
    return int(run_id)


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
) -> Claim:
    """Decide what to do with one file and, to load it, hold its lock on ``conn``.

    Identical content has identical size, so the content hash is only needed up front when
    the table already has a loaded file of the same size and ``force`` is off
    (``Claim("hash")``: hash, then claim again with ``sha256``); otherwise loading starts at
    once and the hash is computed alongside and checked by :func:`complete_file`. A file
    unchanged since it loaded (same path, size and mtime) is skipped without reading it. An
    unfinished attempt of the same file resumes; an unfinished attempt of an earlier version of
    the path has its rows removed.

    The session-level advisory lock taken here is held for as long as the file loads, so a
    second process skips the file instead of loading it twice, and a crashed process's file is
    free to resume; :func:`complete_file` releases it (:func:`release_file` after a failure).
    The claiming connection's rows are stamped with the file id (see :func:`set_file_id`).
    Runs server-side (``pgingest.claim``) in one round trip.
    """
    row = await conn.fetchrow(
        "SELECT * FROM pgingest.claim($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12)",
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
    stored = row["chunking"]
    if isinstance(stored, str):
        stored = json.loads(stored)
    return Claim(
        row["action"],
        row["file_id"],
        row["reason"],
        set(row["done_batches"] or ()),
        int(row["done_rows"] or 0),
        row["replaces"],
        dict(stored or {}),
    )


async def release_file(conn: Any, file_id: int) -> None:
    """Release the file's session lock taken by :func:`claim_file`."""
    await conn.execute(
        "SELECT pg_advisory_unlock(hashtextextended($1, 0))", _lock_key("file", str(file_id))
    )


async def relock_file(conn: Any, file_id: int) -> bool:
    """Take the file's session lock again on a new connection, after the claiming one was
    lost; False when another process took the file meanwhile."""
    return bool(
        await conn.fetchval(
            "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
            _lock_key("file", str(file_id)),
        )
    )


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


async def record_batch(conn: Any, file_id: int, batch: int, first_line: int, rows: int) -> None:
    """Inside a batch's transaction: record it; its primary key refuses a second application."""
    await conn.execute(
        "INSERT INTO pgingest.file_batches (file_id, batch, first_line, rows)"
        " VALUES ($1, $2, $3, $4)",
        file_id,
        batch,
        first_line,
        rows,
    )


async def record_rejects(conn: Any, file_id: int, rejects: Sequence[Reject]) -> None:
    """Inside a batch's transaction: keep its bad rows (``--on-error skip``) and the values
    its reader loaded as NULL (e.g. Excel error cells), so that they commit or roll back with
    the batch's rows. One COPY: a batch of a file with 1% bad rows has hundreds."""
    await conn.copy_records_to_table(
        "rejects",
        schema_name="pgingest",
        columns=["file_id", "line", "column_name", "raw", "reason", "raw_bytes"],
        records=[(file_id, r.line, r.column, r.raw, r.reason, r.raw_bytes) for r in rejects],
    )


async def remove_replaced(conn: Any, replaced_id: int, new_id: int) -> int:
    """Inside the new version's first batch transaction: delete the old version's rows."""
    row = await conn.fetchrow(
        "SELECT table_schema, table_name, status FROM pgingest.files WHERE id = $1", replaced_id
    )
    if row is None or row["status"] != "success":
        return 0
    status = await conn.execute(
        f"DELETE FROM {qualified_name(row['table_schema'], row['table_name'])}"
        f" WHERE {quote_ident(LINEAGE_FILE)} = $1",
        replaced_id,
    )
    await conn.execute(
        "UPDATE pgingest.files SET status = 'reverted', finished_at = now(),"
        " error = $2 WHERE id = $1",
        replaced_id,
        f"replaced by file {new_id}",
    )
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class Completion:
    """How a load ended in the manifest."""

    rows: int
    duplicate_of: int | None = None
    duplicate_path: str | None = None


async def complete_file(
    conn: Any, file_id: int, sha256: str, *, fmt: str | None = None, force: bool, lineage: bool
) -> Completion:
    """Mark a file loaded, with its content hash, in one transaction (``pgingest.complete``),
    and release the file's lock.

    When another file of the same content finished loading into the table meanwhile (two
    names for one content, loaded at once), this one is the duplicate: its rows are removed
    again and it is marked reverted, so the content is in the table once.
    """
    row = await conn.fetchrow(
        "SELECT * FROM pgingest.complete($1, $2, $3, $4, $5)", file_id, sha256, fmt, force, lineage
    )
    return Completion(int(row["rows"] or 0), row["duplicate_of"], row["duplicate_path"])


async def fail_file(conn: Any, file_id: int, error: str, *, discard: bool, lineage: bool) -> None:
    """Mark a file failed. With ``discard`` its committed batches are removed too (bad data:
    nothing of the file stays); otherwise they stay and the next run resumes after them."""
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT table_schema, table_name FROM pgingest.files WHERE id = $1", file_id
        )
        if discard and row is not None:
            name = qualified_name(row["table_schema"], row["table_name"])
            # The file may fail before its table exists (a bad first row while sampling).
            exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
            if lineage and exists:
                await conn.execute(
                    f"DELETE FROM {qualified_name(row['table_schema'], row['table_name'])}"
                    f" WHERE {quote_ident(LINEAGE_FILE)} = $1",
                    file_id,
                )
            await conn.execute("DELETE FROM pgingest.file_batches WHERE file_id = $1", file_id)
            await conn.execute("DELETE FROM pgingest.rejects WHERE file_id = $1", file_id)
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


def entry(row: Mapping[str, Any]) -> FileEntry:
    """A ``pgingest.files`` row as a :class:`FileEntry`."""
    return FileEntry(
        id=row["id"],
        path=row["path"],
        sha256=row["sha256"],
        size=row["size"],
        table_schema=row["table_schema"],
        table_name=row["table_name"],
        status=row["status"],
        rows=row["rows"],
        run_id=row["run_id"],
        error=row["error"],
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


async def mark_replaced(conn: Any, schema: str, table: str, run_id: int | None) -> int:
    """``--mode replace`` swapped a table in: the files the old table held are ``reverted``.

    Returns:
        How many manifest entries were marked.
    """
    status = await conn.execute(
        "UPDATE pgingest.files SET status = 'reverted', finished_at = now(),"
        " error = 'replaced by run ' || $3::text"
        " WHERE table_schema = $1 AND table_name = $2 AND status = 'success'"
        " AND run_id IS DISTINCT FROM $3",
        schema,
        table,
        run_id,
    )
    return int(status.split()[-1])


async def abandon_replacement(conn: Any, schema: str, table: str, run_id: int | None) -> None:
    """A replace whose files did not all load was dropped: its loaded files are ``failed``
    (their rows went with the new table), so a re-run loads them again."""
    async with conn.transaction():
        # Their batches went with the dropped table: a re-run must not resume after them.
        await conn.execute(
            "DELETE FROM pgingest.file_batches WHERE file_id IN (SELECT id FROM pgingest.files"
            " WHERE table_schema = $1 AND table_name = $2 AND run_id = $3)",
            schema,
            table,
            run_id,
        )
        await conn.execute(
            "UPDATE pgingest.files SET status = 'failed', rows = 0, finished_at = now(),"
            " error = 'replace abandoned: another file of the table failed; the old table is"
            " kept' WHERE table_schema = $1 AND table_name = $2 AND run_id = $3"
            " AND status = 'success'",
            schema,
            table,
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

"""The bookkeeping schema ``pgingest``: its tables, its version and the migrations that bring
an older manifest up to date (columns are only ever appended; functions are replaced)."""

from __future__ import annotations

from typing import Any

from pgingest.errors import ManifestVersionError
from pgingest.manifest.functions import FUNCTIONS

STATUSES = ("pending", "running", "staged", "success", "failed", "reverted")
"""A file's manifest status. ``staged``: all its rows are in the new table of a ``--mode
replace`` that is not swapped in yet (its ``table_name`` is that new table's)."""

SCHEMA_VERSION = 11
"""The bookkeeping schema's version; a database at an older one is brought up to it (its
migrations run, its functions replaced) by the first run that finds it. 2: ``claim`` with
``--force`` no longer asks for the content hash first. 3: each file records the identity of
the table it loaded into (``table_oid``, ``table_node``, ``lineage``), and ``claim`` and
``complete`` check it; ``complete`` returns why a file must be loaded again. 4: ``--mode
replace`` records its new table in ``pgingest.replacements`` and its files as ``staged``
until the swap. 5: ``rejects.raw_bytes``, a rejected record's bytes as in the file when its
text (``raw``) cannot hold them (bytes not in the file's encoding, a NUL byte). 6:
``pgingest.retries``, the transient errors a run retried (the run's report shows them). 7:
what the model-based test found in ``claim`` and ``complete``: a replace's new table gets each
content once (a copy of a staged file is skipped); a file skipped as the same content as a
loaded one is recorded loaded, without rows, and keeps the content when the other file changes
(log rotation); an interrupted upsert or merge whose file changed keeps the rows its committed
batches wrote; a file whose content another name holds or is loading is loaded too when it
must replace its own earlier version (with ``--force`` too) or be recorded as a name of the
content, which waits for a hand-over of that content's rows in flight; ``complete`` keeps one
of two copies loaded at once with ``--force`` too (but for upsert and merge) and takes a file
for a duplicate only of one that holds rows; an upsert or merge with ``--force`` writes an
interrupted file's committed batches again. 8: each file records the host and process id of the
loader that claimed it last (``host``, ``pid``: several loaders share a load, ``pgingest
status`` names which loaded what and who is loading now); ``claim`` and ``complete`` commit
asynchronously, ``complete`` clears the session's file id (a small file's connection goes back
to the pool without a reset), and ``claim`` resumes an attempt only if it still is one once its
row is locked; ``files_size_first`` replaces ``files_size``, and ``claim`` finds a file by its
path and its content, no longer among every file of its size. 9: ``claim`` and ``complete``
run their lookups by path and by content first: on a manifest without statistics the planner
ran them once per file of a size, or walked every loaded file of the table per completion
(server time growing with the table's files); ``claim`` takes a file's own unfinished
attempt before another name's of the same content. 10: ``claim`` with ``--force`` skips a
file this run loaded already (the workers of ``--workers`` each claimed it, and loaded it
again, once per worker). 11: an upsert or merge of a CSV file records ``raw_routes`` in its
chunking: its rows are routed from the raw chunks of an append, cut otherwise than the
reader's batches of text that an older loader would resume it with (so an older loader must
not resume it: it refuses this manifest)."""

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
    # The size first: every query of the manifest can take one index only, the one that leads
    # with the column it looks for (path, content, size), even when planned on a manifest not
    # analyzed yet (every equality guessed alike: an index on table and size, taken for a
    # path's lookup, had each claim read every file of the table).
    "CREATE INDEX IF NOT EXISTS files_size_first ON pgingest.files"
    " (size, table_schema, table_name)",
    "DROP INDEX IF EXISTS pgingest.files_size",
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
    # Version 3: the identity of the table a file loaded into, as it was when the file
    # completed (or last checked): its oid and its storage (the relfilenode; for a
    # partitioned table a hash of its leaves' relfilenodes), and whether its rows carry the
    # file's id (the table had the lineage column). 0/0: no such table.
    "ALTER TABLE pgingest.files ADD COLUMN IF NOT EXISTS table_oid oid",
    "ALTER TABLE pgingest.files ADD COLUMN IF NOT EXISTS table_node bigint",
    "ALTER TABLE pgingest.files ADD COLUMN IF NOT EXISTS lineage boolean",
    # The latest loaded file of a table (its recorded identity): one probe per claim.
    "CREATE INDEX IF NOT EXISTS files_loaded ON pgingest.files (table_schema, table_name, id)"
    " WHERE status = 'success'",
    # Version 3 returns one more column from complete: a function's result type cannot be
    # replaced, only dropped and created again (in this transaction: no caller sees it gone).
    "DROP FUNCTION IF EXISTS pgingest.complete(bigint, text, text, boolean, boolean)",
    # Version 4: (re)made here rather than in the CREATE TABLE above, whose check an older
    # manifest has without 'staged'.
    "ALTER TABLE pgingest.files DROP CONSTRAINT IF EXISTS files_status_check",
    "ALTER TABLE pgingest.files ADD CONSTRAINT files_status_check CHECK (status IN ("
    + ", ".join(f"'{s}'" for s in STATUSES)
    + "))",
    # One row per table that a --mode replace run is loading into a new table, from the start
    # of the run to the swap; the run holds the table's session lock meanwhile.
    """CREATE TABLE IF NOT EXISTS pgingest.replacements (
        table_schema text NOT NULL,
        table_name text NOT NULL,
        new_table text NOT NULL,
        run_id bigint REFERENCES pgingest.runs (id),
        started_by bigint REFERENCES pgingest.runs (id),
        holder_pid integer,
        status text NOT NULL DEFAULT 'loading' CHECK (status IN ('loading', 'complete')),
        started_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        error text,
        PRIMARY KEY (table_schema, table_name))""",
    # Version 5.
    "ALTER TABLE pgingest.rejects ADD COLUMN IF NOT EXISTS raw_bytes bytea",
    # Version 6: each retry of a run, written with the run's end (``pgingest report``).
    """CREATE TABLE IF NOT EXISTS pgingest.retries (
        id bigserial PRIMARY KEY,
        run_id bigint NOT NULL REFERENCES pgingest.runs (id) ON DELETE CASCADE,
        at timestamptz NOT NULL,
        path text,
        table_name text,
        batch integer,
        attempt integer NOT NULL,
        delay double precision NOT NULL,
        error_class text NOT NULL,
        error text NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS retries_run ON pgingest.retries (run_id)",
    # Version 8: the loader (host, process) that claimed the file last; ``claim`` reads them
    # from the session's ``pgingest.host`` and ``pgingest.pid`` settings.
    "ALTER TABLE pgingest.files ADD COLUMN IF NOT EXISTS host text",
    "ALTER TABLE pgingest.files ADD COLUMN IF NOT EXISTS pid integer",
]

_MIGRATIONS: dict[int, list[str]] = {
    # The files a version-2 manifest knew get the identity of their table as it is now
    # (that manifest trusted it as such); a file whose table is gone gets 0/0, so the next
    # claim into that table finds it gone and loads it again.
    3: [
        """UPDATE pgingest.files f
           SET table_oid = i.table_oid, table_node = i.table_node, lineage = i.lineage
           FROM (SELECT DISTINCT table_schema, table_name FROM pgingest.files
                 WHERE table_oid IS NULL AND status <> 'reverted') t,
                LATERAL pgingest.table_identity(t.table_schema, t.table_name) i
           WHERE f.table_schema = t.table_schema AND f.table_name = t.table_name
             AND f.table_oid IS NULL AND f.status <> 'reverted'""",
    ],
}


async def ensure_manifest(conn: Any) -> None:
    """Create schema ``pgingest`` and its tables on first use, or bring an older version's up
    to :data:`SCHEMA_VERSION` (columns appended, functions replaced, data migrated); safe when
    processes race."""
    exists = await conn.fetchval(
        "SELECT to_regclass('pgingest.version') IS NOT NULL AND"
        " to_regprocedure('pgingest.complete(bigint, text, text, boolean, boolean)') IS NOT NULL"
        " AND to_regprocedure('pgingest.current_file_id()') IS NOT NULL"
    )
    # (``exists``: the version table is there, so its version is one statement away.)
    if exists and check_version(await _version(conn)):
        return
    async with conn.transaction():
        # One global lock: two processes starting together create the schema once.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "pgingest.bootstrap"
        )
        found = await schema_version(conn)
        if check_version(found) and exists:  # another process upgraded it meanwhile
            return
        statements = [*_BOOTSTRAP, *FUNCTIONS]
        for version, migration in sorted(_MIGRATIONS.items()):
            if found < version:
                statements.extend(migration)
        # One script, one round trip (not one per statement: ~40 of them), in order; the
        # first error stops it, and the transaction rolls it all back.
        await conn.execute(";\n".join(statements))
        if found < SCHEMA_VERSION:  # a row per migration
            await conn.execute("INSERT INTO pgingest.version (version) VALUES ($1)", SCHEMA_VERSION)


def check_version(found: int) -> bool:
    """Whether a manifest of version ``found`` is this loader's own (True) or older (False:
    to migrate).

    Raises:
        ManifestVersionError: it is newer than :data:`SCHEMA_VERSION`: a newer pgingest
            migrated it, and an older loader must neither claim files in it (its functions
            are the newer ones) nor migrate it back.
    """
    if found > SCHEMA_VERSION:
        raise ManifestVersionError(found, SCHEMA_VERSION)
    return found == SCHEMA_VERSION


async def manifest_exists(conn: Any) -> bool:
    """Whether this database has a manifest (anything was ever loaded into it)."""
    return bool(await conn.fetchval("SELECT to_regclass('pgingest.files') IS NOT NULL"))


async def schema_version(conn: Any) -> int:
    """The version of the bookkeeping schema in this database (0: none)."""
    if not await conn.fetchval("SELECT to_regclass('pgingest.version') IS NOT NULL"):
        return 0
    return await _version(conn)


async def _version(conn: Any) -> int:
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM pgingest.version"))

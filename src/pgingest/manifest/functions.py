"""The manifest's server-side functions: claiming and completing a file, and knowing the table
a file loaded into (its identity, and whether a file's rows are still in it).

Claiming and completing a file run server-side, one round trip each: with many small files
the round trips, not the data, are the cost (2,000 files of 100 rows: 56 files/s with the
same logic client-side in 8 statements). Lock keys match ``store.lock_key``.

Three-valued logic: a comparison with NULL is neither true nor false, and ``IF NOT (NULL)``
does not take its branch. Every test below of a nullable column (a content hash not known
yet, an mtime, a recorded identity) is written so that unknown never counts as equal:
``coalesce(a = b, false)`` or ``IS DISTINCT FROM``.

**The table's identity.** Each file records the table it loaded into: its oid and its
storage node (``pg_relation_filenode``; for a partitioned table a hash of its leaf
partitions' nodes), 0/0 when there is no such table, and whether the table had the lineage
column (so the file's rows carry its id). DROP, re-CREATE and a dump and restore change the
oid; TRUNCATE, VACUUM FULL, CLUSTER and a rewriting ALTER change the node. pgingest's own
rewrites record the new identity in their own transaction (``store.restamp_table``), so the
common path (the identity unchanged) does no row checks. When a claim finds the table's
identity differs from the one its files recorded, ``reconcile`` judges the table as a whole
(see its comment), marks the files whose rows are gone ``reverted`` (so they load again, with
the reason) and records the identity found for the others.
"""

from __future__ import annotations

from pgingest.manifest.model import LINEAGE_FILE

FILE_ID_SETTING = "pgingest.file_id"
LINEAGE_FILE_DEFAULT = "pgingest.current_file_id()"
"""The lineage file id column's default: the session's file id, evaluated once per COPY."""

_CURRENT_FILE_ID = f"""
CREATE OR REPLACE FUNCTION pgingest.current_file_id() RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT nullif(current_setting('{FILE_ID_SETTING}', true), '')::bigint $$
"""
# The lineage default above is declared IMMUTABLE on purpose: the planner then evaluates it
# once when it prepares a statement's column defaults (once per COPY) instead of once per
# row, which took ~25% of the server's COPY time. The file id is constant within a statement
# by design (set per connection and file before its COPY); a statement that relies on this
# default must not be a prepared plan reused across files.

_TABLE_IDENTITY = r"""
CREATE OR REPLACE FUNCTION pgingest.table_identity(
    p_schema text, p_table text,
    OUT table_oid oid, OUT table_node bigint, OUT lineage boolean)
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
    table_oid := to_regclass(format('%I.%I', p_schema, p_table));
    IF table_oid IS NULL THEN
        table_oid := 0;
        table_node := 0;
        lineage := false;
        RETURN;
    END IF;
    table_node := pg_relation_filenode(table_oid);
    IF table_node IS NULL THEN
        -- No storage of its own: a partitioned table, whose leaves' TRUNCATE renews.
        SELECT coalesce(hashtextextended(
                   string_agg(pg_relation_filenode(t.relid)::text, ',' ORDER BY t.relid), 0), 0)
          INTO table_node FROM pg_partition_tree(table_oid) t WHERE t.isleaf;
    END IF;
    lineage := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = table_oid
                       AND a.attname = '_pgingest_file_id' AND NOT a.attisdropped);
END
$fn$"""

# The advisory locks held now in this database, as the bigint keys they were taken with
# (a bigint key shows in pg_locks as its high half in classid, its low half in objid, and
# objsubid 1), read without taking any: taking one, even for a moment, would make a claim at
# that moment skip the file. One snapshot of the lock table per call: a query checking many
# keys reads it once (``key IN (SELECT pgingest.held_locks())``).
_HELD_LOCKS = r"""
CREATE OR REPLACE FUNCTION pgingest.held_locks() RETURNS SETOF bigint
LANGUAGE sql STABLE AS $fn$
    SELECT (l.classid::bigint << 32) | l.objid::bigint FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
$fn$"""

_LOCK_HELD = r"""
CREATE OR REPLACE FUNCTION pgingest.lock_held(p_key text) RETURNS boolean
LANGUAGE sql STABLE AS $fn$
    SELECT hashtextextended(p_key, 0) IN (SELECT pgingest.held_locks())
$fn$"""

# Whether the committed rows of an unfinished file are in its table: checked only when the
# table's identity is not the one the file recorded (a crash, then a TRUNCATE; a TRUNCATE
# while it loaded). An appended file's rows carry its id: all of them must be there. A keyed
# file's rows may have been overwritten since, and a table without lineage cannot tell rows
# apart: the table is judged as a whole (empty or gone: the rows are gone).
_ROWS_PRESENT = rf"""
CREATE OR REPLACE FUNCTION pgingest.rows_present(
    p_schema text, p_table text, p_id bigint, p_rows bigint, p_keyed boolean)
RETURNS boolean LANGUAGE plpgsql AS $fn$
DECLARE
    v record;
    v_any boolean;
    v_count bigint;
BEGIN
    SELECT * INTO v FROM pgingest.table_identity(p_schema, p_table);
    IF v.table_oid = 0 THEN
        RETURN false;
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', p_schema, p_table) INTO v_any;
    IF NOT v_any THEN
        RETURN false;
    END IF;
    IF p_keyed OR NOT v.lineage THEN
        RETURN true;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I.%I WHERE {LINEAGE_FILE} = $1', p_schema, p_table)
       INTO v_count USING p_id;
    RETURN v_count = p_rows;
END
$fn$"""

# An unfinished file's partial load goes: its rows (when they carry its id), its batch
# records and its rejects, so that it starts over.
_DISCARD_ROWS = rf"""
CREATE OR REPLACE FUNCTION pgingest.discard_rows(p_schema text, p_table text, p_id bigint)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
    IF (pgingest.table_identity(p_schema, p_table)).lineage THEN
        EXECUTE format('DELETE FROM %I.%I WHERE {LINEAGE_FILE} = $1', p_schema, p_table)
          USING p_id;
    END IF;
    DELETE FROM pgingest.file_batches b WHERE b.file_id = p_id;
    DELETE FROM pgingest.rejects j WHERE j.file_id = p_id;
END
$fn$"""

# The table is not the one its loaded files recorded: which of them still have their rows in
# it? Judged for the table as a whole, under the table's lock, with one scan at most:
# - gone (no such table): every file of it is gone;
# - the table holds rows of at least one of those files (a dump and restore, VACUUM FULL,
#   CLUSTER, a rewrite by hand): it is that table, rewritten. An appended file whose rows
#   carry its id stays loaded when they are there and is gone when they are not; a keyed file
#   (upsert, merge) stays loaded either way, since later files may have overwritten every row
#   it wrote, and loading it again would put older values over newer ones; a file without
#   lineage cannot be told apart and stays;
# - else, empty (TRUNCATE, recreated), or holding only rows of other origins while some of
#   the files' rows would carry their id (recreated and filled otherwise, also without the
#   lineage column): every file is gone;
# - else (no lineage, rows of unknown origin): nothing can tell; the files stay loaded.
# Files gone are marked reverted with the reason; the others get the identity found.
_RECONCILE = rf"""
CREATE OR REPLACE FUNCTION pgingest.reconcile(p_schema text, p_table text)
RETURNS TABLE (gone_id bigint, gone_reason text)
LANGUAGE plpgsql AS $fn$
DECLARE
    v record;
    v_stale bigint[];
    v_checkable bigint[];
    v_present bigint[] := '{{}}';
    v_any boolean;
    v_why text;
    v_gone bigint[];
    v_whys text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'pgingest.table:' || p_schema || '.' || p_table, 0));
    SELECT * INTO v FROM pgingest.table_identity(p_schema, p_table);
    SELECT coalesce(array_agg(f.id), '{{}}'),
           coalesce(array_agg(f.id) FILTER (WHERE coalesce(f.lineage, false)), '{{}}')
      INTO v_stale, v_checkable
      FROM pgingest.files f
     WHERE f.table_schema = p_schema AND f.table_name = p_table AND f.status = 'success'
       AND (v.table_oid = 0 OR f.table_oid IS DISTINCT FROM v.table_oid
            OR f.table_node IS DISTINCT FROM v.table_node);
    IF cardinality(v_stale) = 0 THEN
        RETURN;
    END IF;
    IF v.table_oid = 0 THEN
        v_why := format('its table %I.%I is gone (dropped after it loaded)', p_schema, p_table);
    ELSE
        -- (Files whose rows carried their id, in a table without the column now: it is
        -- another table, made anew.)
        IF cardinality(v_checkable) > 0 AND v.lineage THEN
            EXECUTE format('SELECT coalesce(array_agg(DISTINCT {LINEAGE_FILE}), ''{{}}'')'
                           ' FROM %I.%I WHERE {LINEAGE_FILE} = ANY($1)', p_schema, p_table)
               INTO v_present USING v_checkable;
        END IF;
        IF cardinality(v_present) = 0 THEN
            EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I.%I)', p_schema, p_table)
               INTO v_any;
            IF NOT v_any OR cardinality(v_checkable) > 0 THEN
                v_why := format('its rows are gone from %I.%I (the table was truncated or'
                                ' recreated after it loaded)', p_schema, p_table);
            END IF;
        END IF;
    END IF;
    WITH gone AS (
        UPDATE pgingest.files f
           SET status = 'reverted', finished_at = now(),
               error = coalesce(v_why, format('its rows are not in %I.%I any more (the table'
                   ' was rewritten, restored or recreated after it loaded)', p_schema, p_table))
         WHERE f.id = ANY(v_stale)
           AND (v_why IS NOT NULL
                OR (f.id = ANY(v_checkable) AND NOT f.id = ANY(v_present)
                    AND coalesce((SELECT r.options->>'mode' FROM pgingest.runs r
                                  WHERE r.id = f.run_id), 'append')
                        NOT IN ('upsert', 'merge')))
        RETURNING f.id, f.error)
    SELECT array_agg(g.id), array_agg(g.error) INTO v_gone, v_whys FROM gone g;
    UPDATE pgingest.files f SET table_oid = v.table_oid, table_node = v.table_node
     WHERE f.id = ANY(v_stale) AND f.status = 'success';
    RETURN QUERY SELECT unnest(coalesce(v_gone, '{{}}')), unnest(coalesce(v_whys, '{{}}'));
END
$fn$"""

# ASYNC_COMMIT: ``claim`` and ``complete`` commit without waiting for their WAL to reach
# disk (``synchronous_commit`` off for their own transaction; a small file paid three flushes,
# one per commit). Safe because what they record is made durable by the next synchronous
# commit of the server, which flushes the WAL before it (the file's batches, the run's end),
# and losing them to a server crash before that is harmless: a lost claim is a file not
# claimed yet (its rows cannot have committed: their batches commit synchronously, after it),
# a lost completion leaves the file ``running`` with every batch recorded, which the next run
# resumes to a completion that loads nothing again.

# LOCKS: what orders the manifest's functions. ``claim`` holds, until it commits, a lock on the
# file's path in its table (two claims of one file: the second sees the first's attempt) and,
# when the file's content hash is known, one on that content in its table (two names of one
# content: the second sees the first's); ``complete``, the recording of another name of a
# loaded content (below) and the hand-over of a content's rows (``store.remove_replaced``)
# take that content's lock too. Files that merely have one size no longer wait for each other
# (they did: 2,000 small files of two sizes were claimed and completed one at a time, however
# many loaders). A claim whose hash is not known yet cannot be ordered against another name of
# its content: both load, and ``complete`` keeps one (as when two names load at once). What a
# lock cannot order is the end of an attempt: ``complete`` (a replace's staging, a failure, an
# abandonment) lets go of the file's session lock before it commits, so a claim that takes
# that lock locks the attempt's row too and looks again once whatever ended it committed.

_CLAIM = r"""
CREATE OR REPLACE FUNCTION pgingest.claim(
    p_path text, p_size bigint, p_mtime bigint, p_sha text, p_schema text, p_table text,
    p_fmt text, p_run bigint, p_chunking jsonb, p_force boolean, p_replace boolean,
    p_lineage boolean)
RETURNS TABLE (action text, file_id bigint, reason text, done_batches integer[],
               done_rows bigint, replaces bigint, chunking jsonb)
LANGUAGE plpgsql AS $fn$
DECLARE
    r record;
    v record;
    v_known record;
    v_replaces bigint;
    v_id bigint;
    v_done integer[];
    v_rows bigint;
    v_mode text;
    v_any_success boolean := false;
    v_match boolean;
    v_stale boolean;
    v_checked boolean := false;
    v_gone bigint[] := '{}';
    v_whys text[] := '{}';
    v_again text;
    v_note text;
    v_force_sha text;
    v_old_version boolean;
    v_now record;
    v_rescan boolean;
    v_passed bigint[] := '{}';
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);  -- (see ASYNC_COMMIT above)
    -- (See LOCKS above.)
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'pgingest.path:' || p_schema || '.' || p_table || ':' || p_path, 0));
    IF p_sha IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtextextended(
            'pgingest.content:' || p_schema || '.' || p_table || ':' || p_sha, 0));
    END IF;
    SELECT * INTO v FROM pgingest.table_identity(p_schema, p_table);
    v_old_version := p_replace AND EXISTS (
        WITH at_path AS MATERIALIZED (  -- (by path first: see the twin lookup in complete)
            SELECT f.status, f.sha256 FROM pgingest.files f
             WHERE f.path = p_path AND f.table_schema = p_schema AND f.table_name = p_table)
        SELECT 1 FROM at_path
         WHERE at_path.status = 'success' AND at_path.sha256 IS DISTINCT FROM p_sha);
    -- The table's latest loaded file says which table the manifest knew: when that is not
    -- the table there now, find out first which files' rows are still in it.
    SELECT f.table_oid, f.table_node INTO v_known FROM pgingest.files f
     WHERE f.table_schema = p_schema AND f.table_name = p_table AND f.status = 'success'
     ORDER BY f.id DESC LIMIT 1;
    IF FOUND AND (v.table_oid = 0 OR v_known.table_oid IS DISTINCT FROM v.table_oid
                  OR v_known.table_node IS DISTINCT FROM v.table_node) THEN
        SELECT coalesce(array_agg(g.gone_id), '{}'), coalesce(array_agg(g.gone_reason), '{}')
          INTO v_gone, v_whys FROM pgingest.reconcile(p_schema, p_table) g;
        v_checked := true;
    END IF;
    LOOP
        v_stale := false;
        v_rescan := false;
        -- The same file: same path and mtime, or same content. An unknown hash (a file still
        -- loading, or this one not hashed yet) is no match. Filtered here, not in the loop:
        -- a table may hold thousands of files of one size (fixed-width exports).
        FOR r IN
            -- Two index lookups (by path, by content), not every file of this size: a table
            -- of fixed-width exports holds thousands of one size. Run first (MATERIALIZED):
            -- left to the planner (no statistics on a new manifest), they ran once per file
            -- of this size.
            WITH found AS MATERIALIZED (
                SELECT f.id, f.path, f.sha256, f.mtime_ns, f.status, f.chunking, f.replaces,
                       f.table_oid, f.table_node, f.error, f.size, f.run_id
                  FROM pgingest.files f
                 WHERE f.path = p_path AND f.table_schema = p_schema
                   AND f.table_name = p_table AND f.mtime_ns = p_mtime
                UNION ALL
                SELECT f.id, f.path, f.sha256, f.mtime_ns, f.status, f.chunking, f.replaces,
                       f.table_oid, f.table_node, f.error, f.size, f.run_id
                  FROM pgingest.files f
                 WHERE f.sha256 = p_sha AND f.table_schema = p_schema
                   AND f.table_name = p_table)
            SELECT c.* FROM (
                SELECT DISTINCT ON (f.id) f.* FROM found f
                WHERE f.size = p_size
                  AND (f.status <> 'reverted' OR f.id = ANY(v_gone) OR f.path = p_path)
                  AND NOT f.id = ANY(v_passed)) c
            -- This file's own records first: an unfinished attempt of another name of the
            -- content (a copy loading at once) is that name's to resume; taken over here it
            -- was renamed to this path, and this path's own attempt left running for ever.
            ORDER BY coalesce(c.path = p_path AND c.mtime_ns = p_mtime, false) DESC, c.id DESC
        LOOP
            v_match := coalesce(r.path = p_path AND r.mtime_ns = p_mtime, false)
                       OR coalesce(r.sha256 = p_sha, false);
            IF r.status = 'reverted' THEN
                -- Loaded before and taken out since (its rows found gone, just now or by an
                -- earlier claim; or reverted): it loads again, saying why.
                IF v_again IS NULL AND (coalesce(r.path = p_path AND r.mtime_ns = p_mtime, false)
                                        OR (v_match AND r.id = ANY(v_gone))) THEN
                    v_again := coalesce(r.error, 'it was reverted');
                END IF;
                CONTINUE;
            END IF;
            IF NOT v_match THEN
                CONTINUE;
            END IF;
            -- --mode replace: this file is in the run's new table already (continued after a
            -- crash), or another file of the same content is.
            -- Another file of the same content is in it too: the new table holds what an
            -- append of the run's files into an empty table would, each content once.
            IF r.status = 'staged' THEN
                RETURN QUERY SELECT 'skip'::text, r.id,
                    CASE WHEN coalesce(r.path = p_path AND r.mtime_ns = p_mtime, false)
                         THEN 'already in the new table of the replace'
                         ELSE 'same content already in the new table of the replace, from '
                              || r.path END,
                    NULL::integer[], 0::bigint, NULL::bigint, NULL::jsonb;
                RETURN;
            END IF;
            IF r.status = 'success' THEN
                IF NOT v_checked AND (v.table_oid = 0 OR r.table_oid IS DISTINCT FROM v.table_oid
                                      OR r.table_node IS DISTINCT FROM v.table_node) THEN
                    v_stale := true;  -- recorded in another table: check the table, then again
                    EXIT;
                END IF;
                IF p_force AND r.run_id = p_run
                   AND coalesce(r.path = p_path AND r.mtime_ns = p_mtime, false) THEN
                    -- Loaded by this run already (another worker of --workers): --force loads
                    -- a file again once per run, not once per worker.
                    RETURN QUERY SELECT 'skip'::text, r.id, 'already loaded by this run',
                        NULL::integer[], 0::bigint, NULL::bigint, NULL::jsonb;
                    RETURN;
                END IF;
                IF r.path IS DISTINCT FROM p_path AND v_old_version THEN
                    -- This path's earlier version must go (with --force too): loaded, this
                    -- file replaces it, and ``complete`` keeps it as a name of the content.
                    CONTINUE;
                END IF;
                IF NOT p_force THEN
                    IF r.path IS DISTINCT FROM p_path THEN
                        -- (After the hand-over of the content's rows that a new version of
                        -- r's file may be committing: r may be replaced by then.)
                        PERFORM pg_advisory_xact_lock(hashtextextended('pgingest.content:'
                            || p_schema || '.' || p_table || ':' || r.sha256, 0));
                        IF NOT EXISTS (SELECT 1 FROM pgingest.files o
                                       WHERE o.id = r.id AND o.status = 'success') THEN
                            CONTINUE;
                        END IF;
                        -- Another name of a loaded content (a copy, a rename, a rotated
                        -- log): recorded as loaded too, without rows of its own, so that the
                        -- content stays when the file that loaded it gets a new version
                        -- (``store.remove_replaced`` hands the rows over) and goes with it
                        -- on a revert.
                        INSERT INTO pgingest.files (run_id, path, sha256, size, mtime_ns,
                            table_schema, table_name, format, status, rows, finished_at,
                            table_oid, table_node, lineage)
                        SELECT o.run_id, p_path, o.sha256, p_size, p_mtime, p_schema, p_table,
                               o.format, 'success', 0, now(), v.table_oid, v.table_node,
                               v.lineage
                          FROM pgingest.files o WHERE o.id = r.id;
                    END IF;
                    RETURN QUERY SELECT 'skip'::text, r.id,
                        CASE WHEN r.path = p_path THEN 'already loaded'
                             ELSE 'same content already loaded from ' || r.path END,
                        NULL::integer[], 0::bigint, NULL::bigint, NULL::jsonb;
                    RETURN;
                END IF;
                IF p_replace THEN
                    v_replaces := r.id;
                    -- Loaded again as it is: the new record has that content (known before
                    -- its hash is), so that the old one's rows go, not to another name.
                    v_force_sha := r.sha256;
                END IF;
                EXIT;
            END IF;
            -- pending / running / failed: an attempt that did not finish.
            IF NOT pg_try_advisory_lock(hashtextextended('pgingest.file:' || r.id, 0)) THEN
                IF p_replace AND r.path IS DISTINCT FROM p_path THEN
                    -- Another name of the content loading now: loaded too, and ``complete``
                    -- keeps the later to finish as a name of it (rowless), so that the
                    -- content stays while either name holds it, and this path's earlier
                    -- version is replaced.
                    CONTINUE;
                END IF;
                RETURN QUERY SELECT 'skip'::text, r.id,
                    CASE WHEN r.path = p_path THEN 'being loaded by another pgingest process'
                         ELSE 'same content being loaded from ' || r.path END,
                    NULL::integer[], 0::bigint, NULL::bigint, NULL::jsonb;
                RETURN;
            END IF;
            -- Still an attempt to resume? Its lock is let go of before the commit of what
            -- ended it (``complete``, a replace's staging, another claim abandoning it because
            -- the file at its path changed): wait for its row, then look again (at its
            -- batches too, below), from the start if it ended meanwhile.
            SELECT o.status, coalesce(o.error, '') LIKE 'abandoned%' AS abandoned INTO v_now
              FROM pgingest.files o WHERE o.id = r.id FOR NO KEY UPDATE;
            IF v_now.status IS NULL OR v_now.status NOT IN ('pending', 'running', 'failed')
               OR v_now.abandoned THEN
                PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || r.id, 0));
                IF v_now.status IS NULL OR v_now.abandoned THEN
                    v_passed := v_passed || r.id;  -- gone or closed: not to be taken again
                END IF;
                v_rescan := true;
                EXIT;
            END IF;
            SELECT coalesce(array_agg(b.batch), '{}'), coalesce(sum(b.rows), 0)::bigint
              INTO v_done, v_rows FROM pgingest.file_batches b WHERE b.file_id = r.id;
            IF p_force AND cardinality(v_done) > 0 AND EXISTS (
                    SELECT 1 FROM pgingest.runs ru
                    WHERE ru.id = p_run AND ru.options->>'mode' IN ('upsert', 'merge')) THEN
                -- An upsert with --force writes the files before this one again: its own
                -- committed batches are written again after them (upserting a row twice
                -- changes nothing), or the earlier files would win over it.
                DELETE FROM pgingest.file_batches b WHERE b.file_id = r.id;
                v_done := '{}';
                v_rows := 0;
            END IF;
            IF cardinality(v_done) > 0 AND (r.table_oid IS DISTINCT FROM v.table_oid
                                            OR r.table_node IS DISTINCT FROM v.table_node) THEN
                -- Its table changed since its batches committed: are their rows still there?
                SELECT ru.options->>'mode' INTO v_mode FROM pgingest.runs ru WHERE ru.id = p_run;
                IF coalesce(v_mode, 'append') <> 'replace' AND NOT pgingest.rows_present(
                        p_schema, p_table, r.id, v_rows,
                        coalesce(v_mode IN ('upsert', 'merge'), false)) THEN
                    PERFORM pgingest.discard_rows(p_schema, p_table, r.id);
                    v_done := '{}';
                    v_rows := 0;
                    v_note := format('its committed rows were gone from %I.%I (the table was'
                                     ' truncated or recreated): loaded from its start',
                                     p_schema, p_table);
                END IF;
            END IF;
            UPDATE pgingest.files SET status = 'running', run_id = p_run, path = p_path,
                   error = NULL, finished_at = NULL, table_oid = v.table_oid,
                   table_node = v.table_node,
                   host = nullif(current_setting('pgingest.host', true), ''),
                   pid = nullif(current_setting('pgingest.pid', true), '')::integer
             WHERE id = r.id;
            PERFORM set_config('pgingest.file_id', r.id::text, false);
            RETURN QUERY SELECT 'load'::text, r.id,
                CASE WHEN cardinality(v_done) > 0 THEN 'resume'
                     WHEN v_note IS NOT NULL THEN 'again: ' || v_note
                     ELSE 'retry' END,
                v_done, v_rows, r.replaces, r.chunking;
            RETURN;
        END LOOP;
        CONTINUE WHEN v_rescan;
        EXIT WHEN NOT v_stale;
        SELECT v_gone || coalesce(array_agg(g.gone_id), '{}'),
               v_whys || coalesce(array_agg(g.gone_reason), '{}')
          INTO v_gone, v_whys FROM pgingest.reconcile(p_schema, p_table) g;
        v_checked := true;
    END LOOP;
    -- The content may be a loaded file's (same size): say so before loading it, unless it is
    -- to be loaded again anyway (--force).
    -- A replace (which implies --force) loads each content once into its new table too.
    IF p_sha IS NULL AND v_replaces IS NULL THEN
        v_any_success := EXISTS (
            SELECT 1 FROM pgingest.files f
            WHERE f.table_schema = p_schema AND f.table_name = p_table AND f.size = p_size
              AND ((f.status = 'success' AND NOT p_force) OR f.status = 'staged'));
    END IF;
    IF p_sha IS NULL AND v_replaces IS NULL AND v_any_success THEN
        RETURN QUERY SELECT 'hash'::text, NULL::bigint,
            coalesce('again: ' || v_again, ''), NULL::integer[], 0::bigint,
            NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    -- Unfinished attempts at this path whose file changed since: their rows go. An upsert's
    -- or merge's stay, as a changed file's loaded version's do: they overwrote rows of
    -- earlier files in place, and deleting them would lose those keys.
    FOR r IN
        SELECT f.id, coalesce((SELECT ru.options->>'mode' FROM pgingest.runs ru
                               WHERE ru.id = f.run_id) IN ('upsert', 'merge'), false) AS keyed
        FROM pgingest.files f
        WHERE f.path = p_path AND f.table_schema = p_schema AND f.table_name = p_table
          AND f.status IN ('running', 'pending', 'failed')
          AND EXISTS (SELECT 1 FROM pgingest.file_batches b WHERE b.file_id = f.id)
    LOOP
        IF NOT pg_try_advisory_lock(hashtextextended('pgingest.file:' || r.id, 0)) THEN
            CONTINUE;  -- being loaded (resumed) by another process
        END IF;
        -- Unfinished still? (``complete`` lets go of a file's lock before it commits.)
        PERFORM 1 FROM pgingest.files o
         WHERE o.id = r.id AND o.status IN ('running', 'pending', 'failed')
           FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || r.id, 0));
            CONTINUE;
        END IF;
        IF r.keyed THEN
            UPDATE pgingest.files SET status = 'failed', finished_at = now(),
                   error = 'abandoned: the file changed before it was resumed (the rows its'
                           ' committed batches upserted stay)'
             WHERE id = r.id AND coalesce(error, '') NOT LIKE 'abandoned%';
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || r.id, 0));
        ELSE
            PERFORM pgingest.discard_rows(p_schema, p_table, r.id);
            UPDATE pgingest.files SET status = 'failed', rows = 0, finished_at = now(),
                   error = 'abandoned: the file changed before it was resumed'
             WHERE id = r.id;
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || r.id, 0));
        END IF;
    END LOOP;
    IF v_replaces IS NULL AND p_replace THEN
        WITH at_path AS MATERIALIZED (  -- (by path first: see the twin lookup in complete)
            SELECT f.id, f.status, f.sha256, f.mtime_ns FROM pgingest.files f
             WHERE f.path = p_path AND f.table_schema = p_schema AND f.table_name = p_table)
        SELECT at_path.id INTO v_replaces FROM at_path
        WHERE at_path.status = 'success'
          AND (at_path.sha256 IS DISTINCT FROM p_sha OR at_path.mtime_ns IS DISTINCT FROM p_mtime)
        ORDER BY at_path.id DESC LIMIT 1;
    END IF;
    INSERT INTO pgingest.files (run_id, path, sha256, size, mtime_ns, table_schema, table_name,
                                format, status, chunking, replaces, table_oid, table_node,
                                host, pid)
    VALUES (p_run, p_path, coalesce(p_sha, v_force_sha), p_size, p_mtime, p_schema, p_table,
            p_fmt, 'running',
            p_chunking, v_replaces, v.table_oid, v.table_node,
            nullif(current_setting('pgingest.host', true), ''),
            nullif(current_setting('pgingest.pid', true), '')::integer)
    RETURNING id INTO v_id;
    PERFORM pg_advisory_lock(hashtextextended('pgingest.file:' || v_id, 0));
    -- The claiming connection writes the file's first batches: stamp its rows already.
    PERFORM set_config('pgingest.file_id', v_id::text, false);
    RETURN QUERY SELECT 'load'::text, v_id,
        CASE WHEN v_again IS NOT NULL THEN 'again: ' || v_again ELSE 'new' END,
        '{}'::integer[], 0::bigint, v_replaces, p_chunking;
END
$fn$"""

_COMPLETE = r"""
CREATE OR REPLACE FUNCTION pgingest.complete(
    p_id bigint, p_sha text, p_fmt text, p_force boolean, p_lineage boolean)
RETURNS TABLE (rows bigint, duplicate_of bigint, duplicate_path text, again text)
LANGUAGE plpgsql AS $fn$
DECLARE
    f record;
    v record;
    twin record;
    v_rows bigint;
    v_mode text;
    v_why text;
BEGIN
    SELECT fi.size, fi.table_schema, fi.table_name, fi.table_oid, fi.table_node, fi.run_id
      INTO f FROM pgingest.files fi WHERE fi.id = p_id;
    PERFORM set_config('synchronous_commit', 'off', true);  -- (see ASYNC_COMMIT above)
    -- Two names of one content completing at once decide one after the other (see LOCKS).
    PERFORM pg_advisory_xact_lock(hashtextextended(
        'pgingest.content:' || f.table_schema || '.' || f.table_name || ':' || p_sha, 0));
    SELECT * INTO v FROM pgingest.table_identity(f.table_schema, f.table_name);
    SELECT coalesce(sum(b.rows), 0)::bigint INTO v_rows
      FROM pgingest.file_batches b WHERE b.file_id = p_id;
    IF f.table_oid IS DISTINCT FROM v.table_oid OR f.table_node IS DISTINCT FROM v.table_node
    THEN
        -- The table changed while the file loaded: are its committed rows still there?
        SELECT ru.options->>'mode' INTO v_mode FROM pgingest.runs ru WHERE ru.id = f.run_id;
        IF coalesce(v_mode, 'append') <> 'replace' AND v_rows > 0
           AND NOT pgingest.rows_present(f.table_schema, f.table_name, p_id, v_rows,
                                         coalesce(v_mode IN ('upsert', 'merge'), false)) THEN
            v_why := format('its table %I.%I changed while it loaded (truncated, dropped or'
                            ' recreated) and its committed rows were gone: it loads again',
                            f.table_schema, f.table_name);
            PERFORM pgingest.discard_rows(f.table_schema, f.table_name, p_id);
            UPDATE pgingest.files SET status = 'failed', rows = 0, finished_at = now(),
                   error = v_why
             WHERE id = p_id;
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || p_id, 0));
            RETURN QUERY SELECT 0::bigint, NULL::bigint, NULL::text, v_why;
            RETURN;
        END IF;
    END IF;
    -- Two names of one content loaded at once: the later to finish is the duplicate, and its
    -- rows go again (only rows that carry its id can; without lineage both stay loaded). It
    -- stays recorded as loaded, without rows, as a name of that content (see claim).
    -- With --force too, but for an upsert or merge: a file loaded again, as it is, replaced
    -- its earlier record and the other names of its content with its first batch; a copy
    -- loaded beside it in the same run is such a twin.
    SELECT ru.options->>'mode' INTO v_mode FROM pgingest.runs ru WHERE ru.id = f.run_id;
    IF (NOT p_force OR coalesce(v_mode, 'append') NOT IN ('upsert', 'merge')) AND v.lineage THEN
        -- The content's files first (MATERIALIZED): ordered by id and left to the planner,
        -- the lookup walked every loaded file of the table in id order (files_loaded), a
        -- cost growing with the table's files at every completion.
        WITH same AS MATERIALIZED (
            SELECT o.id, o.path, o.status, o.rows FROM pgingest.files o
             WHERE o.sha256 = p_sha AND o.table_schema = f.table_schema
               AND o.table_name = f.table_name)
        SELECT same.id, same.path INTO twin FROM same
        WHERE same.status = 'success' AND same.id <> p_id
          AND same.rows > 0  -- (a rowless name of the content holds none of its rows)
        ORDER BY same.id LIMIT 1;
        IF FOUND THEN
            EXECUTE format('DELETE FROM %I.%I WHERE _pgingest_file_id = $1',
                           f.table_schema, f.table_name) USING p_id;
            DELETE FROM pgingest.file_batches b WHERE b.file_id = p_id;
            UPDATE pgingest.files SET status = 'success', sha256 = p_sha, rows = 0,
                   finished_at = now(), error = NULL, format = coalesce(p_fmt, format),
                   table_oid = v.table_oid, table_node = v.table_node, lineage = v.lineage,
                   run_id = (SELECT o.run_id FROM pgingest.files o WHERE o.id = twin.id)
             WHERE id = p_id;
            PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || p_id, 0));
            PERFORM set_config('pgingest.file_id', '', false);
            RETURN QUERY SELECT 0::bigint, twin.id, twin.path, NULL::text;
            RETURN;
        END IF;
    END IF;
    UPDATE pgingest.files SET status = 'success', sha256 = p_sha, finished_at = now(),
           error = NULL, format = coalesce(p_fmt, format), rows = v_rows,
           table_oid = v.table_oid, table_node = v.table_node, lineage = v.lineage
     WHERE id = p_id;
    PERFORM pg_advisory_unlock(hashtextextended('pgingest.file:' || p_id, 0));
    -- The session holds nothing of the file now: its pool may hand it on without a reset.
    PERFORM set_config('pgingest.file_id', '', false);
    RETURN QUERY SELECT v_rows, NULL::bigint, NULL::text, NULL::text;
END
$fn$"""

FUNCTIONS = [
    _CURRENT_FILE_ID,
    _TABLE_IDENTITY,
    _HELD_LOCKS,
    _LOCK_HELD,
    _ROWS_PRESENT,
    _DISCARD_ROWS,
    _RECONCILE,
    _CLAIM,
    _COMPLETE,
]
"""Every function of the bookkeeping schema, in dependency order (created or replaced by
:func:`pgingest.manifest.schema.ensure_manifest`)."""

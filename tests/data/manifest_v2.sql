-- The bookkeeping schema as version 2 of pgingest made it (pg_dump of a fresh manifest):
-- the upgrade test loads it into a fresh database and upgrades it.
SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;
CREATE SCHEMA pgingest;
CREATE FUNCTION pgingest.claim(p_path text, p_size bigint, p_mtime bigint, p_sha text, p_schema text, p_table text, p_fmt text, p_run bigint, p_chunking jsonb, p_force boolean, p_replace boolean, p_lineage boolean) RETURNS TABLE(action text, file_id bigint, reason text, done_batches integer[], done_rows bigint, replaces bigint, chunking jsonb)
    LANGUAGE plpgsql
    AS $_$
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
$_$;
CREATE FUNCTION pgingest.complete(p_id bigint, p_sha text, p_fmt text, p_force boolean, p_lineage boolean) RETURNS TABLE(rows bigint, duplicate_of bigint, duplicate_path text)
    LANGUAGE plpgsql
    AS $_$
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
$_$;
CREATE FUNCTION pgingest.current_file_id() RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('pgingest.file_id', true), '')::bigint $$;
SET default_tablespace = '';
SET default_table_access_method = heap;
CREATE TABLE pgingest.file_batches (
    file_id bigint NOT NULL,
    batch integer NOT NULL,
    first_line bigint NOT NULL,
    rows bigint NOT NULL,
    committed_at timestamp with time zone DEFAULT now() NOT NULL
);
CREATE TABLE pgingest.files (
    id bigint NOT NULL,
    run_id bigint,
    path text NOT NULL,
    sha256 text,
    size bigint NOT NULL,
    mtime_ns bigint,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    format text,
    status text NOT NULL,
    rows bigint DEFAULT 0 NOT NULL,
    chunking jsonb DEFAULT '{}'::jsonb NOT NULL,
    replaces bigint,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    error text,
    CONSTRAINT files_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'success'::text, 'failed'::text, 'reverted'::text])))
);
CREATE SEQUENCE pgingest.files_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE pgingest.files_id_seq OWNED BY pgingest.files.id;
CREATE TABLE pgingest.rejects (
    id bigint NOT NULL,
    file_id bigint NOT NULL,
    line bigint,
    column_name text,
    raw text,
    reason text NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL
);
CREATE SEQUENCE pgingest.rejects_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE pgingest.rejects_id_seq OWNED BY pgingest.rejects.id;
CREATE TABLE pgingest.runs (
    id bigint NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    status text DEFAULT 'running'::text NOT NULL,
    host text,
    pid integer,
    paths jsonb DEFAULT '[]'::jsonb NOT NULL,
    options jsonb DEFAULT '{}'::jsonb NOT NULL,
    files_loaded integer DEFAULT 0 NOT NULL,
    files_skipped integer DEFAULT 0 NOT NULL,
    files_failed integer DEFAULT 0 NOT NULL,
    rows bigint DEFAULT 0 NOT NULL,
    CONSTRAINT runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'success'::text, 'failed'::text, 'interrupted'::text])))
);
CREATE SEQUENCE pgingest.runs_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE pgingest.runs_id_seq OWNED BY pgingest.runs.id;
CREATE TABLE pgingest.schema_changes (
    id bigint NOT NULL,
    at timestamp with time zone DEFAULT now() NOT NULL,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    column_name text,
    change text NOT NULL,
    old_type text,
    new_type text,
    file_id bigint,
    run_id bigint,
    reverted boolean DEFAULT false NOT NULL,
    CONSTRAINT schema_changes_change_check CHECK ((change = ANY (ARRAY['create_table'::text, 'add_column'::text, 'alter_type'::text])))
);
CREATE SEQUENCE pgingest.schema_changes_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;
ALTER SEQUENCE pgingest.schema_changes_id_seq OWNED BY pgingest.schema_changes.id;
CREATE TABLE pgingest.version (
    version integer NOT NULL,
    migrated_at timestamp with time zone DEFAULT now() NOT NULL
);
ALTER TABLE ONLY pgingest.files ALTER COLUMN id SET DEFAULT nextval('pgingest.files_id_seq'::regclass);
ALTER TABLE ONLY pgingest.rejects ALTER COLUMN id SET DEFAULT nextval('pgingest.rejects_id_seq'::regclass);
ALTER TABLE ONLY pgingest.runs ALTER COLUMN id SET DEFAULT nextval('pgingest.runs_id_seq'::regclass);
ALTER TABLE ONLY pgingest.schema_changes ALTER COLUMN id SET DEFAULT nextval('pgingest.schema_changes_id_seq'::regclass);
INSERT INTO pgingest.version (version, migrated_at) VALUES (2, '2026-12-04 17:58:08.967685+00');
SELECT pg_catalog.setval('pgingest.files_id_seq', 1, false);
SELECT pg_catalog.setval('pgingest.rejects_id_seq', 1, false);
SELECT pg_catalog.setval('pgingest.runs_id_seq', 1, false);
SELECT pg_catalog.setval('pgingest.schema_changes_id_seq', 1, false);
ALTER TABLE ONLY pgingest.file_batches
    ADD CONSTRAINT file_batches_pkey PRIMARY KEY (file_id, batch);
ALTER TABLE ONLY pgingest.files
    ADD CONSTRAINT files_pkey PRIMARY KEY (id);
ALTER TABLE ONLY pgingest.rejects
    ADD CONSTRAINT rejects_pkey PRIMARY KEY (id);
ALTER TABLE ONLY pgingest.runs
    ADD CONSTRAINT runs_pkey PRIMARY KEY (id);
ALTER TABLE ONLY pgingest.schema_changes
    ADD CONSTRAINT schema_changes_pkey PRIMARY KEY (id);
CREATE INDEX files_content ON pgingest.files USING btree (sha256, table_schema, table_name);
CREATE INDEX files_path ON pgingest.files USING btree (path);
CREATE INDEX files_run ON pgingest.files USING btree (run_id);
CREATE INDEX files_size ON pgingest.files USING btree (table_schema, table_name, size);
ALTER TABLE ONLY pgingest.file_batches
    ADD CONSTRAINT file_batches_file_id_fkey FOREIGN KEY (file_id) REFERENCES pgingest.files(id) ON DELETE CASCADE;
ALTER TABLE ONLY pgingest.files
    ADD CONSTRAINT files_replaces_fkey FOREIGN KEY (replaces) REFERENCES pgingest.files(id);
ALTER TABLE ONLY pgingest.files
    ADD CONSTRAINT files_run_id_fkey FOREIGN KEY (run_id) REFERENCES pgingest.runs(id);
ALTER TABLE ONLY pgingest.rejects
    ADD CONSTRAINT rejects_file_id_fkey FOREIGN KEY (file_id) REFERENCES pgingest.files(id) ON DELETE CASCADE;
ALTER TABLE ONLY pgingest.schema_changes
    ADD CONSTRAINT schema_changes_file_id_fkey FOREIGN KEY (file_id) REFERENCES pgingest.files(id);
ALTER TABLE ONLY pgingest.schema_changes
    ADD CONSTRAINT schema_changes_run_id_fkey FOREIGN KEY (run_id) REFERENCES pgingest.runs(id);

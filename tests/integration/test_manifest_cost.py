"""The manifest's per-file cost does not grow with the files a table holds.

``claim`` and ``complete`` look a file up by its path and by its content. Left to the planner
on a manifest without statistics (a new one, as in every first big load), those lookups ran
once per loaded file of the same size (a subplan under the size index), and ``complete``'s
search for an earlier copy of the content walked every loaded file of the table in id order:
server time per file growing with the table, 1.6 s more server CPU over 2,000 small files.
Each test gives the table 400 loaded files of one size and no statistics, then counts the
manifest rows one claim and one completion read (``pg_stat_xact_user_tables``: this
transaction's own reads).
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

LOADED = 400
SIZE = 1234
BOUND = 20
"""Manifest rows a claim plus a completion may read: a handful, whatever ``LOADED`` is."""


async def _reads(conn: asyncpg.Connection) -> int:
    row = await conn.fetchrow(
        "SELECT coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0) AS n"
        " FROM pg_stat_xact_user_tables WHERE relid = 'pgingest.files'::regclass"
    )
    return int(row["n"]) if row else 0


async def _claim_and_complete(dsn: str, schema: str, *, same_content: bool) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn, timeout=10)
    transaction = conn.transaction()
    await transaction.start()  # rolled back: the test's rows and the statistics come back
    try:
        # No statistics on the manifest, as after its creation.
        await conn.execute(
            "DELETE FROM pg_statistic WHERE starelid = 'pgingest.files'::regclass;"
            " UPDATE pg_class SET reltuples = -1, relpages = 0"
            " WHERE oid = 'pgingest.files'::regclass"
        )
        ident = await conn.fetchrow("SELECT * FROM pgingest.table_identity($1, 't')", schema)
        run = await conn.fetchval(
            "INSERT INTO pgingest.runs (host, pid) VALUES ('test', 1) RETURNING id"
        )
        await conn.execute(
            "INSERT INTO pgingest.files (run_id, path, sha256, size, mtime_ns,"
            " table_schema, table_name, format, status, rows, finished_at, table_oid,"
            " table_node, lineage)"
            " SELECT $1, '/loaded/' || i, md5(i::text), $2, 1, $3, 't', 'csv', 'success',"
            " 1, now(), $4, $5, $6 FROM generate_series(1, $7) i",
            run,
            SIZE,
            schema,
            ident["table_oid"],
            ident["table_node"],
            ident["lineage"],
            LOADED,
        )
        # Its content as hashed while it loaded: with ``same_content`` a copy of a loaded
        # file's, which the completion finds (the file is a second name of it).
        sha = await conn.fetchval("SELECT md5('1')") if same_content else "f" * 64
        before = await _reads(conn)
        claim = await conn.fetchrow(
            "SELECT * FROM pgingest.claim('/new.csv', $1, 2, $4, $2, 't', 'csv', $3,"
            " '{}'::jsonb, false, true, true)",
            SIZE,
            schema,
            run,
            "e" * 64,
        )
        assert claim["action"] == "load", dict(claim)
        claimed = await _reads(conn)
        done: Any = await conn.fetchrow(
            "SELECT * FROM pgingest.complete($1, $2, 'csv', false, true)",
            claim["file_id"],
            sha,
        )
        assert (done["duplicate_path"] == "/loaded/1") is same_content, dict(done)
        completed = await _reads(conn)
        return claimed - before, completed - claimed
    finally:
        await transaction.rollback()
        await conn.close()


def test_claim_and_complete_read_a_bounded_number_of_files(load, db, tmp_path):
    (tmp_path / "first.csv").write_text("id\n1\n")
    load(tmp_path / "first.csv", table="t")  # the manifest and the table
    claim, complete = asyncio.run(_claim_and_complete(db.dsn, db.schema, same_content=False))
    assert claim <= BOUND, claim
    assert complete <= BOUND, complete


def test_complete_finds_a_copy_among_many_files_cheaply(load, db, tmp_path):
    (tmp_path / "first.csv").write_text("id\n1\n")
    load(tmp_path / "first.csv", table="t")
    claim, complete = asyncio.run(_claim_and_complete(db.dsn, db.schema, same_content=True))
    assert claim <= BOUND, claim
    assert complete <= BOUND, complete

"""Both levels of parallelism on a pool smaller than asked (the role's connection limit caps
it): no deadlock, no lost batch, the same table as a sequential load."""

from __future__ import annotations

import asyncio
import csv
import logging
import random
import re
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pgingest

BIG_ROWS = 40_000  # > 1 MiB of CSV: each file gets several batch workers


def with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def write_csv(path: Path, seed: int, start: int) -> Path:
    rng = random.Random(seed)  # noqa: S311 - test data
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "k", "v"])
        for _ in range(BIG_ROWS):
            writer.writerow([start + rng.randrange(BIG_ROWS), rng.randrange(10**6), rng.random()])
    return path


def test_files_and_batches_on_a_capped_pool(tmp_path, db, load, caplog):
    role = f"capped_{uuid.uuid4().hex[:8]}"
    schema = db.schema
    files = [write_csv(tmp_path / f"f{n}.csv", n, 10_000 * n) for n in range(3)]
    # The reference: one file, one batch at a time, as the test's superuser.
    reference = load(files, table="ref", mode="upsert", pk="id", strategy="sequential")
    assert reference.ok, reference.files
    db.execute(f'CREATE TABLE "{schema}".t (id bigint PRIMARY KEY, k integer, v numeric)')
    statements = [
        f"CREATE ROLE {role} LOGIN NOSUPERUSER CONNECTION LIMIT 6",
        f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO {role}',
        f"GRANT USAGE ON SCHEMA pgingest TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgingest TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgingest TO {role}",
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{schema}".t TO {role}',
    ]
    try:
        for statement in statements:
            db.execute(statement)
        caplog.set_level(logging.WARNING, logger="pgingest.run")
        # Asks 2 files x 3 workers + 2 = 8 connections; the role may hold 6.
        report = asyncio.run(
            asyncio.wait_for(
                pgingest.load_async(
                    files,
                    dsn=with_user(db.dsn, role),
                    schema=schema,
                    table="t",
                    mode="upsert",
                    lineage=False,
                    concurrency=2,
                    internal_concurrency=3,
                    batch_size=4_000,
                ),
                timeout=120,  # a deadlock fails the test instead of hanging it
            )
        )
        assert report.ok, report.files
        # 6 from the role's limit, or fewer when other sessions fill the server meanwhile.
        capped = re.search(
            r"the server allows (\d+) more connection\(s\), not the 8 asked", caplog.text
        )
        assert capped, caplog.text
        assert int(capped.group(1)) <= 6
        if int(capped.group(1)) == 6:
            assert "2 file(s) at once with 2 worker(s) each" in caplog.text
        assert [f.rows for f in report.files] == [BIG_ROWS] * 3  # every batch applied once
        committed = db.fetch(
            "SELECT f.path, sum(b.rows) AS rows, count(*) AS batches FROM pgingest.files f"
            " JOIN pgingest.file_batches b ON b.file_id = f.id"
            " WHERE f.table_schema = $1 AND f.table_name = 't' GROUP BY f.path",
            schema,
        )
        assert sorted(r["rows"] for r in committed) == [BIG_ROWS] * 3
        assert all(r["batches"] > 2 for r in committed)
        assert db.rows("t", order_by="id") == db.rows("ref", order_by="id")
    finally:
        db.execute(f'DROP TABLE IF EXISTS "{schema}".t')
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE IF EXISTS {role}")

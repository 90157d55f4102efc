"""A binary COPY whose server session is ended while the client waits for its socket to drain
(the server not reading: here, its COPY waits for a lock) fails at once as a lost connection,
and the load retries the batch: before, the driver waited for a socket that would never drain,
until the stall monitor's bound (60 s by default), for every ``pg_terminate_backend`` or
server restart that caught a binary COPY (Parquet, and upsert or merge of CSV) so."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pgingest.manifest import store
from pgingest.model import Reject
from pgingest.pg import copy

ROWS = 200_000


def wide_batch(rows: int = ROWS) -> pa.RecordBatch:
    """About 30 MB of rows: far more than a socket holds."""
    return pa.record_batch(
        {
            "id": pa.array(range(rows), pa.int64()),
            "v": pa.array([f"value {i:08d} " * 8 for i in range(rows)]),
        }
    )


async def _waiting_copy_pid(conn: asyncpg.Connection, application: str, bound: float) -> int:
    """The pid of a session of ``application`` whose COPY waits for a lock (within ``bound``)."""
    deadline = time.monotonic() + bound
    while time.monotonic() < deadline:
        pid = await conn.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE $1"
            " AND query LIKE '%COPY%' AND wait_event_type = 'Lock' LIMIT 1",
            application,
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    sessions = await conn.fetch(
        "SELECT application_name, state, wait_event_type, left(query, 80) AS query"
        " FROM pg_stat_activity WHERE application_name LIKE $1",
        application,
    )
    pytest.fail(f"no COPY of {application} waited for a lock within {bound} s: {sessions}")


def test_a_binary_copy_whose_session_is_ended_fails_at_once(db):
    async def scenario() -> None:
        table = f'"{db.schema}".t'
        admin = await asyncpg.connect(db.dsn)
        holder = await asyncpg.connect(db.dsn)
        loader = await asyncpg.connect(
            db.dsn, server_settings={"application_name": "copy-terminated"}
        )
        try:
            await admin.execute(f"CREATE TABLE {table} (id bigint, v text)")
            await holder.execute("BEGIN")
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            batch = wide_batch()
            copying = asyncio.ensure_future(
                copy.copy_arrow(
                    loader, db.schema, "t", ["id", "v"], batch, copy.BinaryEncoder(batch.schema)
                )
            )
            pid = await _waiting_copy_pid(admin, "copy-terminated", 30)
            await asyncio.sleep(0.3)  # the socket full, the driver waiting for it to drain
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            began = time.monotonic()
            with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError)):
                await asyncio.wait_for(copying, 10)
            assert time.monotonic() - began < 10
            await holder.execute("ROLLBACK")
            assert await admin.fetchval(f"SELECT count(*) FROM {table}") == 0
        finally:
            for conn in (loader, holder, admin):
                await conn.close(timeout=5)

    asyncio.run(scenario())


def test_a_copy_of_many_rejects_whose_session_is_ended_fails_at_once(db):
    """A batch's rejects go in one COPY of records, written in steps once they pass half a
    megabyte (thousands of bad rows): the same wait, the same wake."""

    async def scenario() -> None:
        admin = await asyncpg.connect(db.dsn)
        holder = await asyncpg.connect(db.dsn)
        loader = await asyncpg.connect(
            db.dsn, server_settings={"application_name": "rejects-terminated"}
        )
        try:
            await store.ensure_manifest(admin)
            await holder.execute("BEGIN")
            # (SHARE: its COPY waits, the driver's look at the columns before it does not)
            await holder.execute("LOCK TABLE pgingest.rejects IN SHARE MODE")
            rejects = [Reject(i, "v", "x" * 400, "not a number") for i in range(10_000)]
            recording = asyncio.ensure_future(store.record_rejects(loader, 0, rejects))
            pid = await _waiting_copy_pid(admin, "rejects-terminated", 30)
            await asyncio.sleep(0.3)
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.InterfaceError)):
                await asyncio.wait_for(recording, 10)
            await holder.execute("ROLLBACK")
        finally:
            for conn in (loader, holder, admin):
                await conn.close(timeout=5)

    asyncio.run(scenario())


def test_a_load_whose_binary_copy_session_is_ended_retries_the_batch_at_once(tmp_path, db):
    """The whole command: a Parquet file into a table locked by another session; the load's
    COPY sessions are ended while they wait, then the lock is released. The load ends well
    within the stall monitor's 60 s, every row once, the manifest saying so."""
    src = tmp_path / "wide.parquet"
    pq.write_table(pa.Table.from_batches([wide_batch()]), src)

    async def scenario() -> subprocess.CompletedProcess[str]:
        table = f'"{db.schema}".t'
        admin = await asyncpg.connect(db.dsn)
        holder = await asyncpg.connect(db.dsn)
        try:
            await admin.execute(f"CREATE TABLE {table} (id bigint, v text)")
            await holder.execute("BEGIN")
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            args = ["load", str(src), "--dsn", db.dsn, "--schema", db.schema, "--table", "t"]
            args += ["--stall-timeout", "60", "--no-analyze", "--no-lineage"]
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "pgingest",
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            await _waiting_copy_pid(admin, "pgingest%", 30)
            await asyncio.sleep(0.3)  # the sockets full, the driver waiting for them to drain
            began = time.monotonic()
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name LIKE 'pgingest%' AND query LIKE '%COPY%'"
                " AND wait_event_type = 'Lock'"
            )
            await asyncio.sleep(1)
            await holder.execute("ROLLBACK")
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 120)
            finally:
                if proc.returncode is None:
                    proc.kill()
                    await proc.wait()
            elapsed = time.monotonic() - began
            assert elapsed < 30, f"{elapsed:.0f} s after the sessions ended: {out!r} {err!r}"
            return subprocess.CompletedProcess(
                args, proc.returncode or 0, out.decode(), err.decode()
            )
        finally:
            for conn in (holder, admin):
                await conn.close(timeout=5)

    done = asyncio.run(scenario())
    assert done.returncode == 0, done.stdout + done.stderr
    # The retries say what happened, in plain words, and nothing else is printed: uvloop
    # refuses the driver's write after the loss, and leaves the loss it recorded unawaited.
    assert "connection lost during the COPY of batch" in done.stderr, done.stderr
    assert "never retrieved" not in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == ROWS
    manifest = db.fetch("SELECT status, rows FROM pgingest.files WHERE path = $1", str(src))
    assert [tuple(r) for r in manifest] == [("success", ROWS)]

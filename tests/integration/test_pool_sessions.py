"""What a pooled session carries from one use to the next: the settings every session starts
with survive the pool's reset, and a connection handed back without a reset (a small file's,
after ``complete``) holds nothing of its file."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from tests.conftest import Db

from pgingest.config import ConnectionSettings
from pgingest.manifest import store
from pgingest.pg import connect
from pgingest.pg.transaction import Transaction

HELD = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
    " AND granted"
)
FILE_ID = "SELECT coalesce(current_setting('pgingest.file_id', true), '')"


def with_user(dsn: str, user: str) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def test_session_settings_outlive_the_reset_of_a_release(db: Db) -> None:
    """A role's statement_timeout must not come back after the first release (SET at connect
    time was undone by the reset's RESET ALL: the next long COPY was cut)."""
    role = f"timed_{uuid.uuid4().hex[:8]}"
    db.execute(f"CREATE ROLE {role} LOGIN")
    db.execute(f"ALTER ROLE {role} SET statement_timeout = '1500ms'")

    async def main() -> list[tuple[str, str]]:
        settings = ConnectionSettings(dsn=with_user(db.dsn, role))
        pool = await connect.create_pool(settings, 1, server_settings=connect.session_settings())
        seen = []
        try:
            for _ in range(3):
                async with pool.acquire(timeout=30) as conn:
                    seen.append(
                        (
                            await conn.fetchval("SHOW statement_timeout"),
                            await conn.fetchval("SHOW temp_buffers"),
                        )
                    )
                    await conn.execute("SELECT pg_sleep(2)")  # longer than the role allows
        finally:
            await asyncio.wait_for(pool.close(), 30)
        return seen

    try:
        assert asyncio.run(main()) == [("0", "64MB")] * 3
    finally:
        db.execute(f"DROP ROLE {role}")


def test_a_connection_is_reset_unless_it_was_released_as_new(db: Db) -> None:
    async def main() -> list[tuple[int, str]]:
        pool = await connect.create_pool(ConnectionSettings(dsn=db.dsn), 1)
        seen = []
        try:
            for declare in (False, True):
                async with pool.acquire(timeout=30) as conn:
                    await conn.execute("SELECT pg_advisory_lock(42)")
                    await conn.execute("SELECT set_config('pgingest.file_id', '7', false)")
                    if declare:  # not true here: the next acquirer gets the lock and the id
                        connect.release_as_new(conn)
                async with pool.acquire(timeout=30) as conn:
                    seen.append((await conn.fetchval(HELD), await conn.fetchval(FILE_ID)))
                    await conn.execute("SELECT pg_advisory_unlock_all()")
            async with pool.acquire(timeout=30) as conn:  # once only: reset again after
                await conn.execute("SELECT set_config('pgingest.file_id', '8', false)")
            async with pool.acquire(timeout=30) as conn:
                seen.append((await conn.fetchval(HELD), await conn.fetchval(FILE_ID)))
        finally:
            await asyncio.wait_for(pool.close(), 30)
        return seen

    assert asyncio.run(main()) == [(0, ""), (1, "7"), (0, "")]


def test_a_completed_file_leaves_nothing_in_its_session(db: Db, load: Any, tmp_path: Path) -> None:
    """What lets a small file's connection go back to the pool without a reset: after
    ``complete`` (both its outcomes: loaded, and a duplicate of another name's content) the
    session holds no advisory lock and no file id."""
    first = tmp_path / "a.csv"
    first.write_text("id,name\n1,ann\n2,bob\n")
    report = load(first, table="s")
    assert report.ok

    async def load_by_hand(path: Path, other_loading: bool) -> tuple[int, str, str | None]:
        conn = await asyncpg.connect(db.dsn)
        try:
            stat = os.stat(path)
            claim = await store.claim_file(
                conn,
                path=str(path),
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                sha256=None,
                schema=db.schema,
                table="s",
                fmt="csv",
                run_id=report.run_id,
                chunking={},
                force=other_loading,
                on_changed="append",
            )
            assert claim.action == "load", claim
            assert claim.file_id is not None
            async with Transaction(conn) as txn:
                await txn.begin()
                await conn.execute(f'INSERT INTO "{db.schema}".s (id, name) VALUES (3, $1)', "x")
                store.record_batch(txn, claim.file_id, 0, 2, 1)
            done = await store.complete_file(
                conn, claim.file_id, "f" * 64, fmt="csv", force=False, lineage=True
            )
            return await conn.fetchval(HELD), await conn.fetchval(FILE_ID), done.duplicate_path
        finally:
            await conn.close()

    second = tmp_path / "b.csv"
    second.write_text("id,name\n3,cy\n")
    assert asyncio.run(load_by_hand(second, False)) == (0, "", None)
    third = tmp_path / "c.csv"
    third.write_text("id,name\n3,cy\n")  # the same content: ``complete`` finds it a duplicate
    assert asyncio.run(load_by_hand(third, True)) == (0, "", str(second))


def test_the_server_version_needs_no_query_and_is_the_servers(pg_dsn):
    from pgingest.pg import connect

    async def both() -> tuple[int, int]:
        conn = await asyncpg.connect(pg_dsn)
        try:
            asked = int(await conn.fetchval("SHOW server_version_num"))
            return await connect.server_version(conn), asked
        finally:
            await conn.close()

    reported, asked = asyncio.run(both())
    assert reported == asked


def test_a_session_given_back_mid_transaction_is_rolled_back_without_an_error_line(db, caplog):
    """Seen while a keyed file was planned again: a batch's task cancelled inside its
    transaction gives its connection back, the driver rolls it back and says so through the
    loop's handler, which printed ``ERROR asyncio: Resetting connection with an active
    transaction`` to the user. The command's loop sends that to the debug log."""
    import logging

    from pgingest.pg import loop

    async def give_back_in_transaction() -> int:
        pool = await asyncpg.create_pool(db.dsn, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await conn.execute("BEGIN")
                await conn.execute("CREATE TEMP TABLE given_back (n int)")
            async with pool.acquire() as conn:  # the same session, rolled back
                return int(
                    await conn.fetchval(
                        "SELECT count(*) FROM pg_tables WHERE tablename = 'given_back'"
                    )
                )
        finally:
            await pool.close()

    with caplog.at_level(logging.DEBUG):
        assert loop.run(give_back_in_transaction()) == 0
    said = [
        (r.levelno, r.getMessage())
        for r in caplog.records
        if "active transaction" in r.getMessage()
    ]
    assert said
    assert all(level == logging.DEBUG for level, _ in said), said

"""A batch's transaction whose BEGIN rides on its COPY and whose COMMIT on its manifest record
(pgingest.pg.transaction): all of it commits together or none of it does, and the connection
is left outside any transaction either way."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from pgingest.model import CsvChunk, CsvDialect
from pgingest.pg import copy
from pgingest.pg.transaction import Transaction


def run(db: Any, body: Callable[[asyncpg.Connection, asyncpg.Connection], Awaitable[None]]) -> None:
    async def main() -> None:
        conn = await asyncpg.connect(db.dsn, timeout=10)
        other = await asyncpg.connect(db.dsn, timeout=10)
        try:
            await conn.execute(f'SET search_path = "{db.schema}"')
            await conn.execute("CREATE TABLE t (id int); CREATE TABLE log (n int PRIMARY KEY)")
            await body(conn, other)
        finally:
            await conn.close()
            await other.close()

    asyncio.run(main())


async def copy_rows(conn: Any, schema: str, txn: Transaction, data: bytes) -> int:
    chunk = CsvChunk(data, 1, "UTF8")
    return await copy.copy_csv(
        conn, schema, "t", ["id"], chunk, CsvDialect(), opening=txn.opening()
    )


def test_copy_and_kept_statements_commit_together(db):
    async def body(conn: Any, other: Any) -> None:
        async with Transaction(conn) as txn:
            assert await copy_rows(conn, db.schema, txn, b"1\n2\n") == 2
            assert conn.is_in_transaction()  # the COPY opened it
            txn.at_commit(f'INSERT INTO "{db.schema}".log VALUES (1)')
            # Nothing is visible before the commit, the kept statement has not run yet.
            assert await other.fetchval(f'SELECT count(*) FROM "{db.schema}".t') == 0
            assert await conn.fetchval("SELECT count(*) FROM log") == 0
        assert not conn.is_in_transaction()
        assert await other.fetchval(f'SELECT count(*) FROM "{db.schema}".t') == 2
        assert await other.fetchval(f'SELECT count(*) FROM "{db.schema}".log') == 1

    run(db, body)


def test_a_failing_kept_statement_commits_nothing(db):
    async def body(conn: Any, other: Any) -> None:
        await conn.execute("INSERT INTO log VALUES (1)")

        async def batch() -> None:
            async with Transaction(conn) as txn:
                await copy_rows(conn, db.schema, txn, b"1\n2\n")
                txn.at_commit(f'INSERT INTO "{db.schema}".log VALUES (1)')  # already there

        with pytest.raises(asyncpg.UniqueViolationError):
            await batch()
        assert not conn.is_in_transaction()  # rolled back, usable
        assert await conn.fetchval("SELECT count(*) FROM t") == 0

    run(db, body)


def test_an_error_in_the_block_rolls_back(db):
    async def body(conn: Any, other: Any) -> None:
        async def failing() -> None:
            async with Transaction(conn) as txn:
                await copy_rows(conn, db.schema, txn, b"1\n")
                raise RuntimeError("the batch failed after its COPY")

        with pytest.raises(RuntimeError):
            await failing()
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM t") == 0
        with pytest.raises(asyncpg.InvalidTextRepresentationError):
            async with Transaction(conn) as txn:
                await copy_rows(conn, db.schema, txn, b"1\nx\n")  # a bad value
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT count(*) FROM t") == 0

    run(db, body)


def test_begin_on_its_own_before_a_statement_with_parameters(db):
    async def body(conn: Any, other: Any) -> None:
        async with Transaction(conn) as txn:
            await txn.begin()
            await conn.execute("INSERT INTO t VALUES ($1)", 7)
            assert txn.opening() == ""  # open already: a later COPY carries nothing
            await copy_rows(conn, db.schema, txn, b"8\n")
            assert await other.fetchval(f'SELECT count(*) FROM "{db.schema}".t') == 0
        assert await other.fetchval(f'SELECT count(*) FROM "{db.schema}".t') == 2

    run(db, body)

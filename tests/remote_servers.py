"""Real servers on loopback for the remote-input tests (and the benchmark): an HTTP file server
with Range and ETag support and injectable faults, and moto's S3-compatible server."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Faults:
    """Faults the next requests meet: each a count of requests still to fail that way."""

    status_503: int = 0
    reset: int = 0
    methods: tuple[str, ...] = ("GET",)
    """The requests that meet them (a HEAD is asked before a file is loaded, outside the
    file's retries: a GET is what a load's read meets)."""
    requests: list[str] = field(default_factory=list)
    """Every request line seen (method, path, Range header)."""


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path
    faults: Faults

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def _target(self) -> Path | None:
        name = self.path.split("?", 1)[0].lstrip("/")
        path = (self.root / name).resolve()
        if self.root.resolve() not in path.parents or not path.is_file():
            return None
        return path

    def _fault(self) -> bool:
        faults = self.faults
        faults.requests.append(f"{self.command} {self.path} {self.headers.get('Range', '')}")
        if self.command not in faults.methods:
            return False
        if faults.status_503 > 0:
            faults.status_503 -= 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True
        if faults.reset > 0:
            faults.reset -= 1
            # RST instead of FIN: the client sees "connection reset by peer".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return True
        return False

    def _headers(self, path: Path) -> tuple[int, str]:
        st = path.stat()
        etag = '"' + hashlib.md5(f"{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest() + '"'
        return st.st_size, etag

    def do_HEAD(self) -> None:
        if self._fault():
            return
        path = self._target()
        if path is None:
            self.send_error(404)
            return
        size, etag = self._headers(path)
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.end_headers()

    def do_GET(self) -> None:
        if self._fault():
            return
        path = self._target()
        if path is None:
            self.send_error(404)
            return
        size, etag = self._headers(path)
        start, end = 0, size - 1
        ranged = self.headers.get("Range")
        if ranged:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", ranged.strip())
            if match is None:
                self.send_error(416)
                return
            if match.group(1) == "":  # the last N bytes
                start = max(0, size - int(match.group(2)))
            else:
                start = int(match.group(1))
                if match.group(2):
                    end = min(end, int(match.group(2)))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        length = end - start + 1
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", self.date_time_string(int(path.stat().st_mtime)))
        self.end_headers()
        try:
            with open(path, "rb") as handle:
                handle.seek(start)
                left = length
                while left > 0:
                    chunk = handle.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


@contextmanager
def http_file_server(root: Path) -> Iterator[tuple[str, Faults]]:
    """Serve ``root``'s files on loopback; yields the base URL and its fault switches."""
    faults = Faults()
    handler = type("Handler", (_Handler,), {"root": root, "faults": faults})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", faults
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3-compatible server on loopback; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def env_for_s3(endpoint: str) -> dict[str, str]:
    """The standard AWS variables pointing at a loopback S3 server (moto takes any key)."""
    return {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
    }


def environ_with(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}

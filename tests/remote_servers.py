"""Real servers on loopback for the remote-input tests (and the benchmark): an HTTP file server
with Range and ETag support and injectable faults, moto's S3-compatible server, azurite (Azure
Blob Storage, from npm) and gcp-storage-emulator (Google Cloud Storage)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit


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
    sent: int = 0
    """Bytes of objects sent in all (a GET whose client stops reading sends less than asked)."""
    before: Callable[[str], None] | None = None
    """Called with each request line before it is answered (a test replaces a file there)."""
    if_match: list[str | None] = field(default_factory=list)
    """Each GET's ``If-Match`` header (``None``: an unconditional GET)."""


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
        line = f"{self.command} {self.path} {self.headers.get('Range', '')}"
        faults.requests.append(line)
        if faults.before is not None:
            faults.before(line)
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
        wanted = self.headers.get("If-Match")
        self.faults.if_match.append(wanted)
        if (
            wanted is not None
            and wanted.strip() != "*"
            and etag not in [t.strip() for t in wanted.split(",")]
        ):
            self.send_response(412)  # another version than the one asked for
            self.send_header("ETag", etag)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
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
                # sendfile: the kernel copies the bytes, so the server's CPU (on the loader's
                # machine in the benchmark) is little more than a real store's would be there.
                self.wfile.flush()
                offset, end = start, start + length
                while offset < end:
                    sent = os.sendfile(
                        self.connection.fileno(),
                        handle.fileno(),
                        offset,
                        min(end - offset, 1 << 20),
                    )
                    if sent == 0:
                        break
                    offset += sent
                    self.faults.sent += sent
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


def send(base: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
    """One request to a server on loopback (``base``: its ``http://host:port``); a status of
    300 or more raises."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, path, body, headers)
        response = conn.getresponse()
        text = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {text[:200]!r}")
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3-compatible server on loopback; yields its endpoint URL. Its recorder (off
    until :class:`MotoRecorder` starts it) writes to a file of this process's own."""
    # Read when moto is first imported (here: the tests import it nowhere else).
    os.environ.setdefault(
        "MOTO_RECORDER_FILEPATH",
        os.path.join(tempfile.gettempdir(), f"pgingest-moto-requests-{os.getpid()}.jsonl"),
    )
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@dataclass(frozen=True)
class Request:
    """One request a server answered."""

    method: str
    path: str
    """Path and query string (``/bucket/key``, ``/bucket?list-type=2&prefix=...``)."""
    headers: dict[str, str]
    """Header names in lower case."""


class MotoRecorder:
    """moto's own request log (its recorder, driven over its HTTP API): the requests the
    server answered between :meth:`start` and :meth:`requests`."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def _call(self, action: str, method: str = "POST") -> str:
        parts = urlsplit(self.endpoint)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        try:
            conn.request(method, f"/moto-api/recorder/{action}")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def start(self) -> None:
        """Forget what was recorded, and record from now on."""
        self._call("reset-recording")
        self._call("start-recording")

    def requests(self) -> list[Request]:
        """What was recorded since :meth:`start` (recording stops)."""
        self._call("stop-recording")
        out = []
        for line in self._call("download-recording", "GET").splitlines():
            entry = json.loads(line)
            url = urlsplit(entry["url"])
            path = url.path + (f"?{url.query}" if url.query else "")
            headers = {k.lower(): str(v) for k, v in entry["headers"].items()}
            out.append(Request(entry["method"], path, headers))
        return out


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


# ------------------------------------------------------------------ Google Cloud Storage

_GCS_JSON_API = ("storage", "upload", "download", "b", "batch", "wipe", "")


def _gcs_handler() -> type[http.server.BaseHTTPRequestHandler]:
    """gcp-storage-emulator's request handler, plus the part of GCS's XML API that Rust's
    ``object_store`` (obstore) speaks and the emulator lacks.

    The emulator serves GCS's JSON API (buckets, uploads, listings, ``alt=media`` downloads);
    object_store's GCS client uses the XML API for objects and listings, of which the emulator
    answers only a GET, without the ETag and Last-Modified that object_store requires, and
    neither HEAD nor the bucket listing (``GET /BUCKET?list-type=2``). These three answer
    here from the emulator's own storage, as GCS's XML API documents them: the test objects
    are still created through the emulator's JSON API and kept by it.
    """
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.server import RequestHandler

    class Handler(RequestHandler):  # type: ignore[misc]
        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

        def _xml_target(self) -> tuple[str, str, dict[str, list[str]]] | None:
            url = urlsplit(self.path)
            bucket, _, name = url.path.lstrip("/").partition("/")
            if bucket in _GCS_JSON_API:
                return None
            return bucket, unquote(name), parse_qs(url.query)

        def do_HEAD(self) -> None:  # noqa: N802 - the handler protocol's name
            target = self._xml_target()
            if target is None or not target[1]:
                self.send_error(405)
                return
            self._object(target[0], target[1], body=False)

        def do_GET(self) -> None:  # noqa: N802 - the handler protocol's name
            target = self._xml_target()
            if target is None:
                super().do_GET()
            elif not target[1] and target[2].get("list-type") == ["2"]:
                self._listing(target[0], target[2].get("prefix", [""])[0])
            elif target[1]:
                self._object(target[0], target[1], body=True)
            else:
                self.send_error(400)

        def _object(self, bucket: str, name: str, *, body: bool) -> None:
            try:
                meta = self.storage.get_file_obj(bucket, name)
                data = self.storage.get_file(bucket, name) if body else b""
            except NotFound:
                self.send_error(404)
                return
            size = int(meta["size"])
            start, end = 0, size - 1
            ranged = self.headers.get("Range") if body else None
            if ranged:
                match = re.fullmatch(r"bytes=(\d+)-(\d*)", ranged.strip())
                if match is None or int(match.group(1)) >= size:
                    self.send_error(416)
                    return
                start = int(match.group(1))
                end = min(end, int(match.group(2))) if match.group(2) else end
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1 if body else size))
            self.send_header("ETag", f'"{meta["md5Hash"]}"')
            self.send_header("Last-Modified", _http_date(meta["updated"]))
            self.send_header("x-goog-generation", str(meta["generation"]))
            self.end_headers()
            if body:
                self.wfile.write(data[start : end + 1])

        def _listing(self, bucket: str, prefix: str) -> None:
            try:
                objects, _prefixes = self.storage.get_file_list(bucket, prefix or None)
            except NotFound:
                self.send_error(404)
                return
            entries = "".join(
                f"<Contents><Key>{escape(o['name'])}</Key><Size>{o['size']}</Size>"
                f"<LastModified>{o['updated']}</LastModified>"
                f"<ETag>&quot;{o['md5Hash']}&quot;</ETag></Contents>"
                for o in objects
            )
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><ListBucketResult>'
                f"<Name>{escape(bucket)}</Name><Prefix>{escape(prefix)}</Prefix>"
                f"<KeyCount>{len(objects)}</KeyCount>{entries}</ListBucketResult>"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _http_date(rfc3339: str) -> str:
    when = datetime.strptime(rfc3339, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return format_datetime(when, usegmt=True)


@dataclass
class GcsEmulator:
    """gcp-storage-emulator on loopback (see :func:`gcs_emulator`)."""

    url: str
    env: dict[str, str]
    """The variables that point pgingest (obstore) at it: a service-account file naming the
    emulator's URL, with OAuth switched off, as object_store's own tests do."""

    def create_bucket(self, name: str) -> None:
        """Create a bucket through the emulator's JSON API."""
        body = json.dumps({"name": name}).encode()
        send(
            self.url,
            "POST",
            "/storage/v1/b?project=test",
            body,
            {"Content-Type": "application/json"},
        )

    def put(self, bucket: str, name: str, body: bytes) -> None:
        """Upload an object through the emulator's JSON API (a new generation each time)."""
        path = f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={quote(name)}"
        send(self.url, "POST", path, body, {"Content-Type": "application/octet-stream"})


@contextmanager
def gcs_emulator(workdir: Path) -> Iterator[GcsEmulator]:
    """gcp-storage-emulator (in memory) on loopback, with the XML API of :func:`_gcs_handler`;
    its service-account file is written to ``workdir``."""
    from gcp_storage_emulator.storage import Storage

    storage = Storage(use_memory_fs=True)
    handler = functools.partial(_gcs_handler(), storage)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # type: ignore[arg-type]
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    account = workdir / "gcs-emulator-account.json"
    account.write_text(
        json.dumps(
            {
                "private_key": "",
                "private_key_id": "",
                "client_email": "",
                "gcs_base_url": url,
                "disable_oauth": True,
            }
        )
    )
    env = {"GOOGLE_SERVICE_ACCOUNT": str(account), "GOOGLE_ALLOW_HTTP": "true"}
    try:
        yield GcsEmulator(url, env)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# ------------------------------------------------------------------ Azure Blob Storage (azurite)

AZURITE_VERSION = "3.35.0"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, the same in every installation).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
_NPM_INSTALL_S = 300
_START_S = 30


def azurite_binary() -> Path:
    """``azurite-blob``, installed from npm into a per-user cache once (bounded by
    ``_NPM_INSTALL_S``): into a fresh folder, then renamed, so that two test sessions that
    install at once each end with a whole one."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pgingest-tests"
    home = cache / f"azurite-{AZURITE_VERSION}"
    binary = home / "node_modules" / ".bin" / "azurite-blob"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("the Azure tests need npm (Node.js) to install azurite")
    cache.mkdir(parents=True, exist_ok=True)
    fresh = Path(tempfile.mkdtemp(prefix="azurite-", dir=cache))
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(fresh),
             f"azurite@{AZURITE_VERSION}"],
            check=True, capture_output=True, timeout=_NPM_INSTALL_S,
        )  # fmt: skip
        try:
            fresh.rename(home)
        except OSError:  # another session's install landed first
            if not binary.exists():
                raise
    finally:
        shutil.rmtree(fresh, ignore_errors=True)
    return binary


@dataclass
class Azurite:
    """azurite's Blob service on loopback (see :func:`azurite`)."""

    url: str
    env: dict[str, str]
    """The variables that point pgingest (obstore) at it: object_store's emulator switch and
    URL; the account and its key are azurite's well-known ones."""

    def create_container(self, name: str) -> None:
        """Create a container (the Blob REST API, signed with the account's shared key)."""
        self._request("PUT", f"/{name}", query="restype=container")

    def put(self, container: str, name: str, body: bytes) -> None:
        """Upload a block blob (a new ETag each time)."""
        self._request("PUT", f"/{container}/{quote(name)}", body, {"x-ms-blob-type": "BlockBlob"})

    def _request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> None:
        ms = {
            "x-ms-date": format_datetime(datetime.now(UTC), usegmt=True),
            "x-ms-version": "2021-08-06",
            **(headers or {}),
        }
        content_type = "application/octet-stream"
        canonical_headers = "".join(f"{k}:{v}\n" for k, v in sorted(ms.items()))
        resource = f"/{AZURITE_ACCOUNT}/{AZURITE_ACCOUNT}{path}"
        if query:
            key, _, value = query.partition("=")
            resource += f"\n{key}:{value}"
        length = str(len(body)) if body else ""
        signed = "\n".join([method, "", "", length, "", content_type, "", "", "", "", "", "", ""])
        text = signed + canonical_headers + resource
        mac = hmac.new(base64.b64decode(AZURITE_KEY), text.encode(), hashlib.sha256)
        signature = base64.b64encode(mac.digest()).decode()
        target = f"/{AZURITE_ACCOUNT}{path}" + (f"?{query}" if query else "")
        auth = f"SharedKey {AZURITE_ACCOUNT}:{signature}"
        send(
            self.url, method, target, body,
            {**ms, "Content-Type": content_type, "Authorization": auth},
        )  # fmt: skip


@contextmanager
def azurite() -> Iterator[Azurite]:
    """azurite's Blob service (in memory) on loopback, in a process of its own."""
    port = free_port()
    process = subprocess.Popen(
        [str(azurite_binary()), "--inMemoryPersistence", "--blobHost", "127.0.0.1",
         "--blobPort", str(port), "--skipApiVersionCheck", "--silent"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + _START_S
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"azurite did not start on port {port} (exit status {process.poll()})"
                    ) from None
                time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        env = {
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": url,
            "AZURE_STORAGE_ACCOUNT_NAME": AZURITE_ACCOUNT,
        }
        yield Azurite(url, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


# ------------------------------------------------------------------ a server of its own


def _serve(root: Path) -> None:
    """Serve ``root`` until SIGTERM or SIGINT: print the base URL (one line), then, at the
    end, every request line seen and the bytes sent, as one JSON object (the benchmark's)."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with http_file_server(root) as (base, faults):
        print(base, flush=True)
        while not stop.wait(0.2):
            pass
        print(json.dumps({"requests": faults.requests, "sent": faults.sent}), flush=True)


if __name__ == "__main__":
    # python tests/remote_servers.py serve ROOT: the HTTP file server in a process of its own
    # (the benchmark's: one in the loader's process would take the loader's GIL from it).
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        sys.exit("usage: remote_servers.py serve ROOT")
    _serve(Path(sys.argv[2]))

"""Remote inputs: objects in S3 (and S3-compatible servers), GCS and Azure, and HTTP(S) URLs.

The layer is obstore (Rust's ``object_store``): one wheel without Python dependencies that
covers every store and HTTP with range requests, gives an object's ETag and version, and read
a 69 MB CSV over loopback HTTP in 0.10 s at 110 MB peak RSS where fsspec (with aiohttp) took
0.38 s at 162 MB; a 34 MB Parquet file by ranges in 0.16 s against 0.42 s (README, "Remote
inputs"). It is imported only when a remote path is seen: a local load never pays for it.

Paths: a remote input is known everywhere by its *display* URL, the URL without user info,
query string or fragment (a presigned URL's signature is a credential). The URL as given is
kept in this process only (:func:`register`) and used only to talk to the server.

Identity: an object's ETag (or version) and size stand in for a local file's mtime and size:
:func:`stat` returns them as an ``os.stat_result`` whose ``st_mtime_ns`` is a 63-bit digest of
the ETag (the version where there is no ETag), so the manifest's "same path, same mtime, same
size" check skips an unchanged object without reading it, and a new version (a new ETag) is a
changed file. A run takes an object's identity once: from the listing of its prefix or glob,
or from one HEAD (a single object), kept per display URL (:func:`known`) until the next
discovery of that URL. Every GET of the object is then conditional on that identity
(``If-Match`` its ETag, and its response's ETag compared): an object replaced after its
identity was taken is never read as a mix of two versions or recorded under the old identity;
its read fails with :class:`ObjectChangedError`, which forgets the identity, so the file's
retry (or the next run) takes the new one and loads the new version.

Faults: obstore's own retries are switched off; a timeout, a 5xx or a reset reaches pgingest
as a :class:`ConnectionResetError` (``ECONNRESET``), which the loader retries like a database
fault, with the same bounds (``pg.retry.retry``, resuming the file after its committed
batches).
"""

from __future__ import annotations

import errno
import fnmatch
import functools
import hashlib
import io
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

if TYPE_CHECKING:
    from obstore import GetOptions

REMOTE_SCHEMES = ("s3", "gs", "az", "abfs", "abfss", "http", "https")
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# Sequential reads ask for this much at a time (a Parquet column chunk is read by ranges).
_STREAM_CHUNK = 8 << 20
# A stream is one GET per window of this many bytes: a request's whole-response timeout
# (obstore's ``timeout``) then bounds one window, not a whole object loading for an hour.
_WINDOW = 64 << 20
# A read by ranges that finds its bytes in none of the ranges an open object keeps asks for this
# much from its position (its first read: only what it asks for, a footer or a format's magic).
# Parquet's column readers ask 1 MiB at a time, interleaved over a row group's columns: each
# was a GET of its own (701 for a 579 MiB file), where one 8 MiB range serves several
# columns' reads (81 GETs; reading that file over loopback HTTP took 6.1 s, now 2.0-3.3 s,
# 2.9 s from disk; 4 MiB ranges: 157 GETs, 2.5-3.7 s).
_READ_AHEAD = 8 << 20
# The ranges an open object keeps, newest last: 16 MiB of memory per open object. Loading that
# file, keeping 2 sent 1.17x its bytes in 142 GETs at 254-258 MB peak RSS (240 MB from disk);
# keeping 3: 1.04x, 126 GETs, 284 MB; 4: 1.01x, 114 GETs, 301 MB. Memory is the bound here.
_KEPT_RANGES = 2
# An object up to this size (with a strong ETag to key its bytes by) is read whole by its first
# GET, and its bytes are kept until its file's load ends: detection, the reader's first record,
# the type sample and the load each open it, which was 3-5 GETs of one small object (each a
# round trip: tens of ms on S3), one now. The same bound as a small local file's
# (pipeline.discover.SMALL_FILE_BYTES).
_SMALL_OBJECT = 1 << 20
# Bytes of small objects kept at most (files load in parallel; each lets go of its own when its
# load ends): the oldest are dropped first.
_KEPT_SMALL = 32 << 20

_lock = threading.Lock()
_given: dict[str, str] = {}
"""Display URL -> the URL as given (with its query string): this process only."""
_streamed: dict[str, str] = {}
"""Display URL -> the sha256 of the object's bytes, once a read passed all of them in order."""
_small: OrderedDict[ObjectInfo, memoryview] = OrderedDict()
"""A small object's version -> its bytes (read once by :meth:`_RemoteRaw._whole`), oldest first."""
_known: dict[str, ObjectInfo] = {}
"""Display URL -> the object's identity for the run: its listing's, or its first HEAD's (a HEAD
is a round trip to the store: tens of ms each, thousands of objects in a drop)."""


def is_remote(path: str) -> bool:
    """Whether ``path`` is a URL of a store or an HTTP server (not a local file)."""
    match = _SCHEME.match(path)
    return match is not None and match.group(1).lower() in REMOTE_SCHEMES


def redact(url: str) -> str:
    """``url`` without user info, query string and fragment: what is shown and stored."""
    if not is_remote(url):
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a port: nothing of it is shown
        port = None
    if port is not None:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme.lower(), host, parts.path, "", ""))


def register(url: str) -> str:
    """Remember the URL as given under its display URL (returned)."""
    shown = redact(url)
    if shown != url:
        with _lock:
            _given[shown] = url
    return shown


def _real(path: str) -> str:
    with _lock:
        return _given.get(path, path)


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a remote object's HEAD (or listing) says."""

    path: str
    size: int
    etag: str | None
    version: str | None


def _store_and_key(url: str) -> tuple[Any, str]:
    """The obstore store of ``url`` (with the standard credential chains) and its key."""
    from obstore.store import from_url

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    # A whole request (a range, a stream's window) within 300 s; a connection within 10 s.
    client: dict[str, Any] = {"timeout": "300s", "connect_timeout": "10s"}
    # pgingest retries (pg.retry, the database's bounds): none inside obstore.
    no_retry = {"max_retries": 0, "retry_timeout": timedelta(seconds=1)}
    if scheme in ("http", "https"):
        client["allow_http"] = True
        from obstore.store import HTTPStore

        return HTTPStore.from_url(url, client_options=client, retry_config=no_retry), ""  # type: ignore[arg-type]
    # The client options given here replace those object_store reads from the environment:
    # its ``<PROVIDER>_ALLOW_HTTP`` (an emulator or a server on plain HTTP) is honoured here.
    # (Azurite's switch, ``AZURE_STORAGE_USE_EMULATOR``, allows HTTP by itself.)
    if _is_true(os.environ.get(_ALLOW_HTTP.get(scheme, ""), "")) or (
        scheme == "s3" and os.environ.get("AWS_ENDPOINT_URL", "").startswith("http://")
    ):
        client["allow_http"] = True
    bucket_url = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    key = parts.path.lstrip("/")
    kwargs: dict[str, Any] = {"client_options": client, "retry_config": no_retry}
    if scheme == "s3":
        provider = _aws_profile_provider(
            os.environ.get("AWS_PROFILE"), bool(os.environ.get("AWS_ACCESS_KEY_ID"))
        )
        if provider is not None:
            kwargs["credential_provider"] = provider
        # The SDKs' AWS_ENDPOINT_URL (an S3-compatible server) and region variables.
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            kwargs["endpoint"] = endpoint
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if region:
            kwargs["region"] = region
    return from_url(bucket_url, **kwargs), key


_ALLOW_HTTP = {
    "s3": "AWS_ALLOW_HTTP",
    "gs": "GOOGLE_ALLOW_HTTP",
    "az": "AZURE_ALLOW_HTTP",
    "abfs": "AZURE_ALLOW_HTTP",
    "abfss": "AZURE_ALLOW_HTTP",
}
"""The variable that allows plain HTTP for a scheme's store (object_store's own names)."""


def _is_true(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@functools.cache
def _aws_profile_provider(profile: str | None, keys_in_env: bool) -> Any | None:
    """A boto3 credential provider when a profile is asked for (``AWS_PROFILE``) or no key is
    in the environment and boto3 is installed: it reads ``~/.aws/config`` and
    ``~/.aws/credentials`` as the AWS CLI does. ``None``: obstore's own chain (environment,
    web identity, instance metadata). Found once per process and profile: boto3's chain may
    ask the instance metadata service, which takes seconds where there is none."""
    if keys_in_env and not profile:
        return None
    try:
        import boto3
        from obstore.auth.boto3 import Boto3CredentialProvider
    except ImportError:
        return None
    try:
        session = boto3.Session(profile_name=profile)
        found = session.get_credentials()
    except Exception as exc:  # botocore's ProfileNotFound, a broken config file
        raise PermissionError(errno.EACCES, f"AWS profile {profile!r}: {exc}") from None
    if found is None:
        return None
    return Boto3CredentialProvider(session)


def _fault(path: str, exc: Exception) -> OSError:
    """An obstore error as the OSError the readers and the retry understand."""
    import obstore.exceptions as ox

    # The message may hold the URL as given: say only the kind of fault and the display URL.
    text = _scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, ObjectChangedError):
        return exc
    if isinstance(exc, ox.NotFoundError | FileNotFoundError):
        return FileNotFoundError(errno.ENOENT, "no such object", path)
    if isinstance(exc, ox.PermissionDeniedError | ox.UnauthenticatedError | PermissionError):
        return PermissionError(errno.EACCES, f"access denied ({text})", path)
    if isinstance(exc, ox.NotSupportedError | ox.InvalidPathError):
        return OSError(errno.EINVAL, text, path)
    return ConnectionResetError(errno.ECONNRESET, f"remote read failed: {text}", path)


_QUERY = re.compile(r"\?[^\s\"')]*")
_USERINFO = re.compile(r"://[^/@\s]*@")


def _bare(etag: str) -> str:
    """An ETag without its weak mark and quotes (a listing may give it without the quotes
    its HEAD and GET give)."""
    return etag.removeprefix("W/").strip('"')


def _scrub(text: str) -> str:
    """``text`` without any URL's query string or user info."""
    return _USERINFO.sub("://", _QUERY.sub("", text))


def head(path: str, *, fresh: bool = False) -> ObjectInfo:
    """The object's size, ETag and version: the run's (:func:`known`), else asked of the
    store with a HEAD (always when ``fresh``) and kept for the run.

    Raises:
        OSError: it cannot be reached (FileNotFoundError: there is none).
    """
    import obstore

    if not fresh:
        info = known(path)
        if info is not None:
            return info
    store, key = _store_and_key(_real(path))
    try:
        meta = obstore.head(store, key)
    except Exception as exc:
        raise _fault(path, exc) from None
    info = ObjectInfo(path, int(meta["size"]), meta.get("e_tag"), meta.get("version"))
    remember(info)
    return info


def known(path: str) -> ObjectInfo | None:
    """The identity the run took of the object at ``path`` (listing or HEAD), if any."""
    with _lock:
        return _known.get(path)


def remember(info: ObjectInfo) -> None:
    """Keep ``info`` as the object's identity for the run: its later HEADs are answered
    from it, and its reads are conditional on it."""
    with _lock:
        _known[info.path] = info


def forget(path: str) -> None:
    """Drop the identity kept for ``path``: the next :func:`head` asks the store. Discovery
    calls it for a URL it does not list (HTTP, an archive's member), so that each run takes
    the object's identity afresh."""
    with _lock:
        _known.pop(path, None)


class ObjectChangedError(OSError):
    """The object was replaced after the run took its identity (its ETag no longer matches)."""


def stat(path: str) -> os.stat_result:
    """The object as a stat result: its size, and a digest of its ETag (its version where
    there is no ETag) as mtime. A listing gives no version: the ETag alone is the object's
    identity wherever there is one, so a prefix's listing and a single object's HEAD (which
    gives the version of a versioned bucket's object) agree.

    Raises:
        OSError: it cannot be reached.
    """
    info = head(path)
    token = (f"{info.etag}\0" if info.etag else f"\0{info.version or ''}").encode()
    digest = int.from_bytes(hashlib.sha256(token).digest()[:8], "big") >> 1
    ino = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") >> 1
    return os.stat_result((0o100444, ino, 0, 1, 0, 0, info.size, 0, 0, 0), {"st_mtime_ns": digest})


def list_objects(url: str) -> list[ObjectInfo] | None:
    """The objects under a prefix (``s3://b/p/``) or matching a glob (``s3://b/p/*.csv``),
    sorted; ``None`` for a single object or a server that cannot list (HTTP).

    Raises:
        OSError: the store cannot be reached.
    """
    import obstore

    shown = redact(url)
    if urlsplit(shown).scheme in ("http", "https"):
        forget(shown)  # its first HEAD in this run takes its identity
        return None
    cut = _glob_cut(shown)
    prefix_url = shown if cut is None else shown[:cut]
    if cut is None and not shown.endswith("/"):
        # One object, or a "folder" named without its slash: its identity for the run.
        try:
            head(shown, fresh=True)
            return None
        except FileNotFoundError:
            prefix_url = shown + "/"
    store, prefix = _store_and_key(prefix_url)
    found: list[ObjectInfo] = []
    base = prefix_url[: len(prefix_url) - len(prefix)] if prefix else prefix_url.rstrip("/") + "/"
    try:
        for chunk in obstore.list(store, prefix=prefix or None):
            for meta in chunk:
                key = str(meta["path"])
                full = base + key
                if cut is not None and not _matches(full, shown):
                    continue
                found.append(
                    ObjectInfo(full, int(meta["size"]), meta.get("e_tag"), meta.get("version"))
                )
    except Exception as exc:
        raise _fault(shown, exc) from None
    for info in found:  # the run's identity of each object: no HEAD of its own
        remember(info)
    return sorted(found, key=lambda o: o.path)


def _glob_cut(url: str) -> int | None:
    """Where the prefix of a glob ends: after the slash before its first wildcard."""
    match = re.search(r"/[^/]*[*?\[]", url)
    return match.start() + 1 if match else None


def _matches(path: str, pattern: str) -> bool:
    """Glob match as for local paths: ``*`` and ``?`` within a segment, ``**`` across."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    regex = "".join(
        ".*"
        if p in ("**", "**/")
        else "[^/]*"
        if p == "*"
        else "[^/]"
        if p == "?"
        else fnmatch.translate(p)[4:-3]
        if "[" in p
        else re.escape(p)
        for p in parts
    )
    return re.fullmatch(regex, path) is not None


class _RemoteRaw(io.RawIOBase):
    """A remote object as a seekable raw file. Opened ``sequential`` (CSV, NDJSON, a hash, a
    workbook's copy), a read streams one GET from the position on; otherwise (Parquet's
    footer and column chunks, a zip's directory, a format's first bytes) by ranges: the first
    read asks for its bytes only, a later one for ``_READ_AHEAD`` bytes from its position,
    and the last ``_KEPT_RANGES`` ranges serve the reads that fall in them."""

    def __init__(self, path: str, size: int | None = None, *, sequential: bool = False) -> None:
        self._path = path
        self._sequential = sequential
        self._store, self._key = _store_and_key(_real(path))
        self._size = size
        self._info: ObjectInfo | None = None
        """The identity every GET is conditional on: the run's (taken at the first read)."""
        self._pos = 0
        self._stream: Iterator[Any] | None = None
        self._stream_pos = -1
        self._pending: bytes | memoryview = b""
        self._digest = hashlib.sha256()
        self._hashed_to = 0
        self._kept: list[tuple[int, memoryview]] = []
        """Ranges read ahead by ``_range`` (start, bytes), newest last."""
        self._ranged = False
        """Whether a read by ranges was made (the first asks for what it needs only)."""

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = self._identity().size
        return self._size

    def _identity(self) -> ObjectInfo:
        if self._info is None:
            self._info = head(self._path)
        return self._info

    def _get(self, start: int, end: int) -> Any:
        """A GET of bytes ``start`` to ``end`` (exclusive) of the version the run knows:
        ``If-Match`` its ETag (a weak one never matches: the response's ETag is compared
        instead), or that version where the store gives no ETag.

        Raises:
            ObjectChangedError: the object is another version now (forgotten: the file's
                retry takes the new identity).
        """
        import obstore
        import obstore.exceptions as ox

        info = self._identity()
        options: GetOptions = {"range": (start, end)}
        if info.etag and not info.etag.startswith("W/"):
            options["if_match"] = info.etag
        elif info.etag is None and info.version:
            options["version"] = info.version
        try:
            result = obstore.get(self._store, self._key, options=options)
        except ox.PreconditionError:
            raise self._changed() from None
        # A server that ignores If-Match still says which version it sent.
        sent = result.meta.get("e_tag")
        if info.etag and sent and _bare(sent) != _bare(info.etag):
            raise self._changed()
        return result

    def _changed(self) -> ObjectChangedError:
        forget(self._path)
        return ObjectChangedError(
            errno.ESTALE,
            "the object changed while it was read (its ETag is not the one the run took);"
            " nothing of the new version was mixed in, its next load reads it",
            self._path,
        )

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self.size + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        want = len(buffer)
        if want == 0 or self._pos >= self.size:
            return 0
        try:
            whole = self._whole()
            data = whole[self._pos : self._pos + want] if whole is not None else self._next(want)
        except StopIteration:
            data = b""
        except ObjectChangedError:
            self._stream = None
            raise
        except Exception as exc:
            self._stream = None
            raise _fault(self._path, exc) from None
        if len(data) > want:
            self._pending = data[want:]
            data = data[:want]
        n = len(data)
        buffer[:n] = data
        if self._pos == self._hashed_to and n:  # the bytes pass in order: hashed as they do
            self._digest.update(data)
            self._hashed_to += n
            if self._hashed_to == self.size:
                record_streamed(self._path, self._digest.hexdigest())
        self._pos += n
        if self._stream is not None:
            self._stream_pos = self._pos
        if n == 0 and self._pos < self.size:
            raise ConnectionResetError(
                errno.ECONNRESET, "remote read failed: the response ended early", self._path
            )
        return n

    def _next(self, want: int) -> bytes | memoryview:
        """Bytes from the position on: from the open stream, a new window's stream
        (sequential), or a range."""
        data: bytes | memoryview = b""
        if self._stream is not None and self._stream_pos == self._pos:
            data = self._pending or bytes(next(self._stream, b""))
            self._pending = b""
        if not data and self._sequential:
            # The next window from here, streamed (the last one ended where it should).
            end = min(self.size, self._pos + _WINDOW)
            result = self._get(self._pos, end)
            self._stream = iter(result.stream(min_chunk_size=1 << 20))
            self._stream_pos = self._pos
            data = bytes(next(self._stream, b""))
        elif not self._sequential:
            data = self._range(want)
            self._stream = None
        return data

    def _whole(self) -> memoryview | None:
        """A small object's bytes: kept from an earlier open of this version, else read by
        one GET and kept (``None``: a larger object, or one without a strong ETag, whose
        bytes nothing could key)."""
        info = self._identity()
        if info.size > _SMALL_OBJECT or not info.etag or info.etag.startswith("W/"):
            return None
        with _lock:
            kept = _small.get(info)
            if kept is not None:
                _small.move_to_end(info)
                return kept
        kept = memoryview(self._get(0, info.size).bytes())
        if len(kept) != info.size:
            raise ConnectionResetError(
                errno.ECONNRESET, "remote read failed: the response ended early", self._path
            )
        with _lock:
            _small[info] = kept
            total = sum(len(b) for b in _small.values())
            while total > _KEPT_SMALL and len(_small) > 1:
                total -= len(_small.popitem(last=False)[1])
        return kept

    def _range(self, want: int) -> memoryview:
        """Up to ``want`` bytes from the position: from a kept range, else from a GET of at
        least ``_READ_AHEAD`` bytes (``want`` only, for the object's first read), kept."""
        for start, block in reversed(self._kept):
            if start <= self._pos < start + len(block):
                return block[self._pos - start : self._pos - start + want]
        ahead = max(want, _READ_AHEAD) if self._ranged else want
        self._ranged = True
        # Up to the next kept range, not into it: a column read just before one (the row
        # group's reads interleave) asks for the gap only.
        end = min([self.size, self._pos + ahead, *(s for s, _ in self._kept if s > self._pos)])
        length = end - self._pos
        # The response's own buffer (no copy): a kept range is served by slices of it.
        block = memoryview(self._get(self._pos, self._pos + length).bytes())
        if len(block) > want:
            self._kept = [*self._kept[-(_KEPT_RANGES - 1) :], (self._pos, block)]
        return block[:want]

    def close(self) -> None:
        self._stream = None
        self._kept = []
        super().close()


def let_go(path: str) -> None:
    """Drop the bytes kept of the small object at ``path`` (its file's load ended)."""
    with _lock:
        for info in [i for i in _small if i.path == path]:
            del _small[info]


def record_streamed(path: str, sha256: str) -> None:
    """Remember the sha256 of an input whose bytes a read passed all of, in order."""
    with _lock:
        _streamed[path] = sha256


def streamed_sha256(path: str) -> str | None:
    """The sha256 of the remote object's bytes when a read in this process passed all of them
    in order (a CSV or NDJSON stream, a workbook's copy); ``None`` when it was read by ranges
    only (Parquet) or not at all. Taken once: the next load of the path reads it again."""
    with _lock:
        return _streamed.pop(path, None)


def open_remote(path: str, size: int | None = None, *, sequential: bool = False) -> IO[bytes]:
    """The object at ``path`` opened for reading (binary, buffered, seekable): streamed when
    ``sequential``, else read by ranges.

    Raises:
        OSError: it cannot be reached.
    """
    return io.BufferedReader(_RemoteRaw(path, size, sequential=sequential), buffer_size=1 << 20)

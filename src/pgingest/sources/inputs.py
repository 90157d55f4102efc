"""An input by its name: a local file, a remote object (:mod:`pgingest.sources.remote`), or a
member of a zip archive (local or remote), named ``<archive>.zip!/<member>``.

Every reader opens, stats and copies its file through here, so each kind of input is read the
same way by every format. A member of a zip archive is a file of its own: its identity is the
archive's (mtime or ETag, size) with the member's name, CRC and size; it is read through the
archive's directory (a remote archive by ranges), never extracted whole, except for a workbook,
which its reader needs as a file (a temporary copy, removed after the file's load).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import io
import os
import re
import tempfile
import threading
import zipfile
from typing import IO, Any

from pgingest.sources.remote import (
    is_remote,
    let_go,
    open_remote,
    record_streamed,
    redact,
    stat,
    streamed_sha256,
)

__all__ = [
    "MEMBER_MARK",
    "absolute",
    "archive_members",
    "getsize",
    "is_archive",
    "is_member",
    "is_remote",
    "is_virtual",
    "local_copy",
    "open_input",
    "real",
    "release",
    "split_member",
    "stat_input",
    "streamed_sha256",
]

MEMBER_MARK = "!/"
"""Between an archive's path and a member's name: ``data/drop.zip!/2024/a.csv``."""
_MEMBER = re.compile(r"^(.*?\.zip)!/(.+)$", re.IGNORECASE)
_COPY_CHUNK = 8 << 20

_lock = threading.Lock()
_copies: dict[str, str] = {}
"""Input -> its temporary local copy (workbooks), removed by :func:`release` or at exit."""


def split_member(path: str) -> tuple[str, str] | None:
    """``(archive, member)`` of a member's path; ``None`` for any other path."""
    match = _MEMBER.match(path)
    return (match.group(1), match.group(2)) if match else None


def is_member(path: str) -> bool:
    """Whether ``path`` names a member of a zip archive."""
    return split_member(path) is not None


def is_virtual(path: str) -> bool:
    """Whether ``path`` is no plain local file (readers open it with :func:`open_input`)."""
    return is_remote(path) or is_member(path)


def is_archive(path: str) -> bool:
    """Whether ``path`` names a zip archive itself (by its name)."""
    return path.lower().endswith(".zip") and not is_member(path)


def archive_members(archive: str) -> list[str]:
    """The paths of an archive's members that are files (directories and hidden files left
    out), in the archive's order.

    Raises:
        OSError: the archive cannot be read.
        zipfile.BadZipFile: it is no zip archive.
    """
    with open_input(archive) as handle, zipfile.ZipFile(handle) as zf:
        names = [
            info.filename
            for info in zf.infolist()
            if not info.is_dir()
            and not os.path.basename(info.filename).startswith((".", "~$"))
            and not info.filename.startswith("__MACOSX/")
        ]
    return [f"{archive}{MEMBER_MARK}{name}" for name in names]


class _Member(io.RawIOBase):
    """A member of an open archive; closes the archive and its file with itself, and records
    the member's sha256 when a read passed all of its bytes in order."""

    def __init__(self, path: str, stream: Any, archive: zipfile.ZipFile, under: IO[bytes]) -> None:
        self._path = path
        self._stream = stream
        self._archive = archive
        self._under = under
        self._size = int(archive.getinfo(split_member(path)[1]).file_size)  # type: ignore[index]
        self._digest = hashlib.sha256()
        self._hashed_to = 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return bool(self._stream.seekable())

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = int(self._stream.seek(offset, whence))
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        if self._pos == self._hashed_to and n:
            self._digest.update(data)
            self._hashed_to += n
            if self._hashed_to == self._size:
                record_streamed(self._path, self._digest.hexdigest())
        self._pos += n
        return n

    def close(self) -> None:
        try:
            self._stream.close()
            self._archive.close()
        finally:
            self._under.close()
            super().close()


def _open_member(path: str) -> IO[bytes]:
    archive, member = split_member(path)  # type: ignore[misc]
    under = open_input(archive)
    try:
        zf = zipfile.ZipFile(under)
        try:
            stream = zf.open(member)
        except KeyError:
            zf.close()
            raise FileNotFoundError(2, "no such member in the archive", path) from None
    except zipfile.BadZipFile as exc:
        under.close()
        raise OSError(22, f"not a zip archive: {exc}", archive) from None
    except BaseException:
        under.close()
        raise
    return io.BufferedReader(_Member(path, stream, zf, under), buffer_size=1 << 20)


def open_input(path: str, *, sequential: bool = False) -> IO[bytes]:
    """A local file, a remote object or an archive's member opened for binary reading (a
    remote object streamed from its start when ``sequential``, else read by ranges).

    Raises:
        OSError: it cannot be opened or reached.
    """
    if is_member(path):
        return _open_member(path)
    if is_remote(path):
        return open_remote(path, sequential=sequential)
    return open(path, "rb")


def stat_input(path: str) -> os.stat_result:
    """``os.stat`` of a local file; a remote object's size and ETag digest
    (:func:`pgingest.sources.remote.stat`); an archive member's size, and a digest of the
    archive's identity and the member's name and CRC as its mtime.

    Raises:
        OSError: a local file cannot be read.
        SourceError: a remote object or a member cannot be reached (caused by the OSError: a
            transient one is retried by the loader).
    """
    if not is_virtual(path):
        return os.stat(path)
    try:
        if is_member(path):
            return _member_stat(path)
        return stat(path)
    except (OSError, zipfile.BadZipFile) as exc:
        from pgingest.errors import SourceError

        text = getattr(exc, "strerror", None) or exc
        raise SourceError(f"{path}: cannot open: {text}", path=path) from exc


def _member_stat(path: str) -> os.stat_result:
    archive, member = split_member(path)  # type: ignore[misc]
    outer = stat_input(archive)
    with open_input(archive) as handle, zipfile.ZipFile(handle) as zf:
        try:
            info = zf.getinfo(member)
        except KeyError:
            raise FileNotFoundError(2, "no such member in the archive", path) from None
    token = f"{outer.st_size}\0{outer.st_mtime_ns}\0{member}\0{info.CRC}\0{info.file_size}"
    digest = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "big") >> 1
    ino = int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") >> 1
    return os.stat_result(
        (0o100444, ino, 0, 1, 0, 0, info.file_size, 0, 0, 0), {"st_mtime_ns": digest}
    )


def getsize(path: str) -> int:
    """The size of a local file, a remote object or a member (uncompressed).

    Raises:
        OSError: it cannot be read or reached.
    """
    if not is_virtual(path):
        return os.path.getsize(path)
    from pgingest.errors import SourceError

    try:
        return stat_input(path).st_size
    except SourceError as exc:
        raise OSError(str(exc)) from exc


def absolute(path: str) -> str:
    """The path as the manifest records it: a local file's absolute path, a remote object's
    display URL (a member: its archive's, with the member's name)."""
    parts = split_member(path)
    if parts is not None:
        return f"{absolute(parts[0])}{MEMBER_MARK}{parts[1]}"
    return redact(path) if is_remote(path) else os.path.abspath(path)


def real(path: str) -> str:
    """A key that is the same for two names of one input (symlinks resolved)."""
    parts = split_member(path)
    if parts is not None:
        return f"{real(parts[0])}{MEMBER_MARK}{parts[1]}"
    return redact(path) if is_remote(path) else os.path.realpath(path)


def local_copy(path: str) -> str:
    """A local path holding the input's bytes, for readers that need a file (workbooks): a
    local file itself; for a remote object or a member, a temporary copy, made once and
    removed by :func:`release` (after the file's load) or at exit."""
    if not is_virtual(path):
        return path
    with _lock:
        copy = _copies.get(path)
    if copy is not None and os.path.exists(copy):
        return copy
    suffix = os.path.splitext(path)[1]
    handle, copy = tempfile.mkstemp(prefix="pgingest-input-", suffix=suffix)
    try:
        with os.fdopen(handle, "wb") as out, open_input(path, sequential=True) as src:
            while block := src.read(_COPY_CHUNK):
                out.write(block)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(copy)
        raise
    with _lock:
        _copies[path] = copy
    return copy


def release(path: str) -> None:
    """Remove the temporary copy of ``path`` made for a reader, if any, and the bytes kept of
    a small remote object (its file's load ended)."""
    if is_remote(path):
        let_go(path)
    with _lock:
        copy = _copies.pop(path, None)
    if copy is not None:
        with contextlib.suppress(OSError):
            os.unlink(copy)


@atexit.register
def _remove_copies() -> None:
    for path in list(_copies):
        release(path)

"""A file's content hash: computed inline for small files, in the background for large ones.

The manifest knows a file by its sha256. For a large file the hash is computed while the
loader does something else: from the moment the run knows the file (before the driver is
imported, connected and the file claimed: :class:`BackgroundHash` in a daemon thread), or
alongside its batches. hashlib releases the GIL on large blocks, so the hash uses the core the
loader leaves idle: sha256 runs at about 1.5 GB/s here (SHA-NI), 0.24 CPU-s for the
benchmark's 367 MB CSV, which otherwise competed with the server's two COPY backends for the
same two cores.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import io
import os
import threading
from dataclasses import dataclass
from typing import cast

from pgingest.errors import HashAbandonedError
from pgingest.sources.inputs import open_input, stat_input

__all__ = ["BackgroundHash", "Fingerprint", "fingerprint"]

# Read into one reused buffer: no fresh pages per block. Large blocks keep the GIL hand-overs
# few (the read and the hash release it, and taking it back from a busy thread can take up to
# the 5 ms switch interval): 16 MiB hashed the benchmark's CSV in 0.48 s next to a busy
# thread, against 1.16 s with 4 MiB blocks, for the same 0.25 s of CPU.
_HASH_BLOCK = 16 << 20


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """A file's identity for the manifest: content hash and size."""

    sha256: str
    size: int


def fingerprint(path: str, stop: threading.Event | None = None) -> Fingerprint:
    """The sha256 and size of the file at ``path`` (its bytes as stored, compressed or not).

    Raises:
        OSError: the file cannot be read.
        HashAbandonedError: ``stop`` was set before the hash was done.
    """
    digest = hashlib.sha256()
    size = 0
    with cast("io.BufferedReader", open_input(path, sequential=True)) as handle:
        buffer = bytearray(min(_HASH_BLOCK, max(1, stat_input(path).st_size)))
        view = memoryview(buffer)
        while n := handle.readinto(buffer):
            if stop is not None and stop.is_set():
                raise HashAbandonedError(path)
            digest.update(view[:n])
            size += n
    return Fingerprint(digest.hexdigest(), size)


class BackgroundHash:
    """The fingerprint of one file, computed in a daemon thread started at once.

    Daemon, so that an interrupted run exits without waiting for the rest of a large file;
    :meth:`abandon` stops it at its next block when its result is no longer wanted.
    """

    def __init__(self, path: str) -> None:
        st = stat_input(path)
        self.path = path
        self.stat = (st.st_size, st.st_mtime_ns, st.st_ino)
        """(size, mtime in ns, inode) when the hash started: the file it is the hash of."""
        self._future: concurrent.futures.Future[Fingerprint] = concurrent.futures.Future()
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="hash").start()

    def _run(self) -> None:
        try:
            self._future.set_result(fingerprint(self.path, self._stop))
        except BaseException as exc:  # raised again to whoever waits for the result
            self._future.set_exception(exc)

    def of(self, st: os.stat_result) -> bool:
        """Whether this is the hash of the file as ``st`` describes it (not touched since)."""
        return self.stat == (st.st_size, st.st_mtime_ns, st.st_ino)

    def ready(self) -> str | None:
        """The sha256 when it is already computed, else ``None`` (never waits, never raises)."""
        if self._future.done() and self._future.exception() is None:
            return self._future.result().sha256
        return None

    async def sha256(self) -> str:
        """The sha256, once computed.

        Raises:
            OSError: the file could not be read.
        """
        return (await asyncio.wrap_future(self._future)).sha256

    def abandon(self) -> None:
        """Stop hashing at the next block: the result is not wanted (waiting for it raises)."""
        self._stop.set()

"""Keep the loader's resident memory flat.

A load allocates and frees batch-sized buffers from several threads for its whole length;
what the allocators keep for reuse, not the data in flight, made most of the peak. Measured
on the benchmark's 2-million-row Parquet file (peak RSS of the process):

- transparent huge pages (the kernel's ``madvise`` policy, asked for by the allocators) made
  whole 2 MB regions resident: 330-375 MB; off for the process (``PR_SET_THP_DISABLE``):
  270-310 MB;
- Arrow's default pool (mimalloc) keeps freed pages per thread: the system allocator with at
  most two glibc arenas holds 230-240 MB, with less client CPU (1.9 s instead of 2.0 s);
- glibc serves a large block by ``mmap`` and returns it on free, but after such a free it
  raises that threshold (up to 32 MiB): the buffers of an upsert's or merge's routed CSV
  batches (1-10 MB: Arrow columns, then their CSV text, from several threads) then come from
  the heap, whose freed space stays resident. A fixed 1 MiB threshold
  (:func:`map_large_buffers`, for those loads only) keeps them mapped: an upsert of the
  2-million-row CSV held 314-345 MB, now 204-208 MB (209 MB at 10 million rows: the peak is
  the batches in flight, not the file), for 1.4 s more system time (page faults of buffers
  mapped anew; 8.9 s -> 9.9 s of wall on this 2-core machine). A Parquet upsert holds
  256 MB without it (and would pay 0.9 s), an append 150-200 MB: they keep the sliding
  threshold.

None of this changes what is loaded; each step is skipped where the platform lacks it, and an
``ARROW_DEFAULT_MEMORY_POOL``, ``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` set by the
user wins.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

log = logging.getLogger("pgingest.memory")

_PR_SET_THP_DISABLE = 41
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD = 1 << 20
_done = False
_tuned = False


def limit_resident_memory() -> None:
    """Tune this process's allocators for streaming (once; see the module's docstring)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    disable_transparent_huge_pages()
    _mallopt("MALLOC_ARENA_MAX", _M_ARENA_MAX, 2)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        if "pyarrow" in sys.modules:
            import pyarrow as pa

            pa.set_memory_pool(pa.system_memory_pool())
        else:
            # Arrow reads this when it first needs its pool: importing pyarrow now only to
            # set it would delay the command's start by ~0.15 s (pyarrow and numpy).
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"


@functools.cache
def map_large_buffers() -> None:
    """Upserts and merges of CSV (once): allocate every block over 1 MiB by ``mmap``, returned to
    the system when freed (see the module's docstring)."""
    _mallopt("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def _mallopt(variable: str, parameter: int, value: int) -> None:
    """Set a glibc malloc parameter unless the user set its environment variable."""
    if not sys.platform.startswith("linux") or variable in os.environ:
        return
    try:
        ctypes.CDLL(None).mallopt(parameter, value)
    except (OSError, AttributeError) as exc:  # not glibc
        log.debug("cannot set %s: %s", variable, exc)


def disable_transparent_huge_pages() -> bool:
    """Turn transparent huge pages off for this process (Linux only; once); True if done."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError) as exc:  # no prctl: nothing to tune
        log.debug("cannot disable transparent huge pages: %s", exc)
        return False
    _done = True
    return True

"""Keep the loader's resident memory flat.

A load allocates and frees batch-sized buffers from several threads for its whole length;
what the allocators keep for reuse, not the data in flight, made most of the peak. Measured
on the benchmark's 2-million-row Parquet file (peak RSS of the process):

- transparent huge pages (the kernel's ``madvise`` policy, asked for by the allocators) made
  whole 2 MB regions resident: 330-375 MB; off for the process (``PR_SET_THP_DISABLE``):
  270-310 MB;
- Arrow's default pool (mimalloc) keeps freed pages per thread: the system allocator with at
  most two glibc arenas holds 230-240 MB, with less client CPU (1.9 s instead of 2.0 s).

None of this changes what is loaded; each step is skipped where the platform lacks it, and an
``ARROW_DEFAULT_MEMORY_POOL`` or ``MALLOC_ARENA_MAX`` set by the user wins.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger("pgingest.memory")

_PR_SET_THP_DISABLE = 41
_M_ARENA_MAX = -8
_done = False
_tuned = False


def limit_resident_memory() -> None:
    """Tune this process's allocators for streaming (once; see the module's docstring)."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    disable_transparent_huge_pages()
    if sys.platform.startswith("linux") and "MALLOC_ARENA_MAX" not in os.environ:
        try:
            ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 2)
        except (OSError, AttributeError) as exc:  # not glibc
            log.debug("cannot limit malloc arenas: %s", exc)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        if "pyarrow" in sys.modules:
            import pyarrow as pa

            pa.set_memory_pool(pa.system_memory_pool())
        else:
            # Arrow reads this when it first needs its pool: importing pyarrow now only to
            # set it would delay the command's start by ~0.15 s (pyarrow and numpy).
            os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "system"


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

"""The run's connection pool: one connection per batch worker of each file loading at once,
plus two, capped at what the server allows."""

from __future__ import annotations

import logging
from typing import Any

from pgingest.config import ConnectionSettings, LoadOptions
from pgingest.pg import connect
from pgingest.pipeline.context import RunEvents, workers_per_file

log = logging.getLogger("pgingest.run")


async def open_pool(
    settings: ConnectionSettings,
    options: LoadOptions,
    files: int,
    events: RunEvents,
    sessions: dict[str, str],
) -> tuple[Any, int, int | None]:
    """Open the run's pool for ``files`` files at once, each session started with
    ``sessions`` (keepalives, the run's name, the lock timeout).

    Each file holds one connection per batch worker (the first also holds its lock); of the
    two more, one is the run's own (holding the run's lock while it lives), one is free for
    what a file needs besides its workers (DDL, recording a failure). replace holds one more,
    with its tables' locks, for the whole run.

    Returns:
        The pool, the files loaded at once, and the batch workers per file when the server
        allows fewer connections than asked (else ``None``).
    """
    workers = workers_per_file(options)
    size = files * workers + 2 + (options.mode == "replace")
    pool = await connect.create_pool(
        settings,
        size,
        events.policy,
        lambda attempt, delay, exc: events.retrying(exc, attempt, delay, "", "", None),
        sessions,
    )

    async def probed() -> int | None:
        async with pool.acquire() as conn:
            capacity = await connect.connection_capacity(conn)
            connect.release_as_new(conn)  # (one SELECT: no reset's round trip needed)
            return capacity

    capacity = await events.with_retries(probed)
    if capacity is None or capacity >= size:
        return pool, files, None
    # Fewer batch workers per file first, then fewer files at once.
    files_at_once, cap, new_size = fit_pool(capacity, size, files, workers)
    message = (
        f"the server allows {capacity} more connection(s), not the {size} asked"
        f" ({min(options.concurrency, files_at_once)} file(s) x"
        f" {options.internal_concurrency} batch worker(s) + 2): loading {files_at_once}"
        f" file(s) at once with {cap} worker(s) each"
    )
    log.warning(message)
    events.reporter.message(f"warning: {message}")
    await pool.close()
    pool = await connect.create_pool(settings, new_size, events.policy, server_settings=sessions)
    return pool, files_at_once, cap


def fit_pool(capacity: int, size: int, files: int, workers: int) -> tuple[int, int, int]:
    """Fit ``files x workers + 2`` connections into ``capacity``: fewer batch workers per file
    first, then fewer files at once. Returns (files, workers, pool size)."""
    while files * workers + 2 > capacity and workers > 1:
        workers -= 1
    while files * workers + 2 > capacity and files > 1:
        files -= 1
    return files, workers, max(1, min(size, files * workers + 2, capacity))

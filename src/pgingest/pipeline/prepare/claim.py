"""Claim a file in the manifest: load it (new, changed, or resumed after its committed
batches), skip it (loaded, or another process has it), or hash it first when the table holds a
loaded file of the same size; and the options a resumed file keeps from its first claim."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from pgingest.config import LoadOptions
from pgingest.manifest import store
from pgingest.manifest.hashing import BackgroundHash, fingerprint
from pgingest.pipeline.context import FileTask, RunContext
from pgingest.pipeline.discover import SMALL_FILE_BYTES
from pgingest.sources.inputs import absolute, is_remote

AGAIN = "again: "
"""How a claim's reason starts when a file loaded before loads again (its rows were gone)."""


@dataclass(frozen=True)
class Claimed:
    """A claim and what was learned of the file's content on the way."""

    claim: store.Claim | None
    """``None``: another process still holds the file after ``--lock-wait``."""
    sha256: str | None
    """The content hash, when it was needed or cheap (a small file)."""
    hashing: BackgroundHash | None
    """The hash being computed in the background (a large file)."""


async def claim_file(
    ctx: RunContext,
    task: FileTask,
    conn: Any,
    stat: os.stat_result,
    *,
    table: str,
    chunking: dict[str, int],
    force: bool,
    keep_old_rows: bool,
    awaited: bool,
) -> Claimed:
    """Claim ``task``'s file on ``conn`` (which then holds the file's manifest lock).

    Args:
        table: the table the manifest records the file under (replace: the new table).
        chunking: how the file is cut into batches (a resumed file is cut the same way).
        force: load it even when it is loaded (``--force``, replace).
        keep_old_rows: a new version of the file leaves the old version's rows.
        awaited: later files share keys with it: when another process has it, wait for it
            (at most ``--lock-wait``).
    """
    path, options = task.path, task.options
    abspath = absolute(path)  # a remote object: its display URL
    # A large file's hash is computed in the background: started before the loader was
    # (the read-ahead's, for the run's first file) or from its claim on, and waited for
    # only where the manifest needs it. Hashing a small file costs less than a second
    # claim would.
    hashing = ctx.read_ahead.take_hash(path, stat) if ctx.read_ahead else None
    sha256: str | None = None
    if hashing is not None:
        sha256 = hashing.ready()
    elif stat.st_size <= SMALL_FILE_BYTES and not is_remote(path):
        # (A remote object is known by its ETag and size: an unchanged one is not read.)
        # An unreadable file is claimed all the same: its opening fails, recorded.
        with contextlib.suppress(OSError):
            sha256 = fingerprint(path).sha256

    async def claim_it(sha: str | None) -> store.Claim:
        began = time.perf_counter()
        async with ctx.stalls.guard(conn, f"the claim of {path}"):
            claim = await store.claim_file(
                conn,
                path=abspath,
                size=stat.st_size,
                mtime_ns=stat.st_mtime_ns,
                sha256=sha,
                schema=options.schema,
                table=table,
                fmt=None,
                run_id=ctx.run_id or 0,
                chunking=chunking,
                force=force,
                on_changed="append" if keep_old_rows else options.on_changed,
                lineage=options.lineage,
                owner=ctx.application_name,
            )
        ctx.events.stage("manifest", began)
        return claim

    if ctx.run_lock is not None:
        await ctx.run_lock.keep(ctx.events.with_retries)

    async def claimed() -> store.Claim:
        nonlocal hashing, sha256
        claim = await claim_it(sha256)
        if claim.action == "hash":
            # The table holds a loaded file of the same size: it may be this content.
            hashing = hashing or BackgroundHash(path)
            began = time.perf_counter()
            sha256 = await hashing.sha256()
            ctx.events.stage("manifest", began)
            again = claim.reason  # the first claim found its rows gone: say so
            claim = await claim_it(sha256)
            if again and claim.action == "load" and claim.reason == "new":
                claim.reason = again
        return claim

    try:
        claim: store.Claim | None = await claimed()
        if claim is not None and claim.held_elsewhere and awaited:
            # Later files share keys with this one: they come after it, whichever process
            # loads it.
            began = time.perf_counter()
            claim = await claim_after_holder(claimed, claim, conn, options.lock_wait)
            ctx.events.stage("wait", began)
    except BaseException:
        if hashing is not None:
            hashing.abandon()  # nobody waits for it
        raise
    return Claimed(claim, sha256, hashing)


async def claim_after_holder(
    claim_again: Callable[[], Awaitable[store.Claim]],
    claim: store.Claim,
    conn: Any,
    seconds: float,
) -> store.Claim | None:
    """A file another process is loading (``claim`` skipped it) that must be loaded before
    files after it: wait for that process (its lock on the file), at most ``seconds`` in all,
    then claim the file again: loaded by then, it is skipped; failed, or its process dead, it
    is this one's to load. ``None``: the other process still holds it after ``seconds``."""
    deadline = time.monotonic() + seconds
    while claim.held_elsewhere and claim.file_id is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not await store.wait_for_file(conn, claim.file_id, remaining):
            return None
        claim = await claim_again()
    return claim


def claimed_options(options: LoadOptions, chunking: dict[str, Any]) -> LoadOptions:
    """The file's options with the batch sizes of its first claim (a resumed file is cut into
    the same batches as before, whatever the options say now)."""
    batch_size = int(chunking.get("batch_size", options.batch_size))
    batch_bytes = int(chunking.get("batch_bytes", options.batch_bytes))
    if (batch_size, batch_bytes) == (options.batch_size, options.batch_bytes):
        return options  # (the common case: a copy would check every option again)
    return replace(options, batch_size=batch_size, batch_bytes=batch_bytes)

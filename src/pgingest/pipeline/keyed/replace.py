"""``--mode replace``: every table a run replaces is that run's alone (a session lock, held on
one connection from the start of the run to the swap); its files load into a new table that a
resumed or repeated run continues, or starts over; the swap puts the new table in place in
one transaction, which is also the only place its files are marked loaded, and waits for its
lock a few seconds at a time, so that readers never queue behind it for long.

A run that dies (SIGKILL, power cut) loses its lock with its connection: the next replace of
the table, or ``pgingest resume``, takes the table over. It continues the new table when every
file recorded in it is still given, unchanged (the files' committed batches are kept, files
already complete are not read again), and starts it over otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pgingest.config import LoadOptions, crash_point
from pgingest.errors import ConcurrentLoadError, PgIngestError, SourceError
from pgingest.manifest import replacement, store
from pgingest.model import FileResult, LoadReport
from pgingest.pg import citus, merge
from pgingest.pg.errors import classify, describe, is_driver_error, is_gone, is_retryable
from pgingest.pg.retry import RetryPolicy, retry
from pgingest.pipeline.job import Lease, quietly
from pgingest.sources.inputs import absolute, stat_input

log = logging.getLogger("pgingest.replace")

SWAP_RETRY_CLASSES = frozenset({"lock_not_available", "deadlock"})
"""Errors of a swap try after which it is tried again (its lock was not granted in time)."""


@dataclass(slots=True)
class Replacement:
    """A table being replaced, and the new table its files load into."""

    schema: str
    table: str
    new: str
    files: list[str] = field(default_factory=list)
    """The run's files of the table, as given."""
    ready: set[str] = field(default_factory=set)
    """Those whose rows are all in the new table (loaded by this run, or before it)."""

    @property
    def qualified(self) -> str:
        """``schema.table``."""
        return f"{self.schema}.{self.table}"


class _BusyError(PgIngestError):
    """Another process is loading files into the old table: the swap waits for them."""

    retryable = True


class Replacer:
    """The replaced tables of one run: taken in :meth:`prepare`, swapped in :meth:`finish`."""

    def __init__(self, options: LoadOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.tables: dict[str, Replacement] = {}
        """Qualified table -> its replacement."""
        self._say = say
        """Reports what :meth:`prepare` decided about an unfinished replacement (continued,
        started over), and :meth:`finish` about each table (swapped, kept, abandoned)."""
        self._lease: Lease | None = None
        """The connection holding the tables' locks."""
        self._run_id: int | None = None

    def new_table(self, qualified: str) -> str | None:
        """The new table the files of ``qualified`` load into (``None``: not replaced)."""
        found = self.tables.get(qualified)
        return found.new if found is not None else None

    def ready(self, qualified: str, path: str) -> None:
        """Every row of ``path`` is in the new table of ``qualified``."""
        found = self.tables.get(qualified)
        if found is not None:
            found.ready.add(path)

    # -- at the start of the run -------------------------------------------------------------

    async def prepare(
        self, pool: Any, run_id: int | None, files: Sequence[tuple[int, str, str]]
    ) -> dict[int, str]:
        """Take each table the files replace: its lock, and its new table (begun now, or the
        unfinished one a run that died left, continued or started over).

        Args:
            pool: the run's pool; one of its connections holds the locks until :meth:`close`.
            run_id: this run (``None``: a dry run, which takes nothing).
            files: ``(index, path, table)`` of each file.

        Returns:
            Errors of the files whose table cannot be replaced (views depend on it), by index.

        Raises:
            ConcurrentLoadError: another run replaces one of the tables; this run takes none.
        """
        schema = self.options.schema
        groups: dict[str, list[tuple[int, str]]] = {}
        for index, path, table in files:
            groups.setdefault(table, []).append((index, path))
        if self.options.dry_run or run_id is None:
            for table, entries in groups.items():
                new = merge.replacement_name(table, run_id or 0)
                found = Replacement(schema, table, new, [p for _, p in entries])
                self.tables[found.qualified] = found
            return {}
        failed: dict[int, str] = {}
        self._run_id = run_id
        self._lease = Lease(pool, await pool.acquire())
        try:
            for table in sorted(groups):  # the same order in every run: no lock cycles
                entries = groups[table]
                try:
                    found = await self._take(run_id, schema, table, [p for _, p in entries])
                except ConcurrentLoadError:
                    raise
                except PgIngestError as exc:
                    for index, _ in entries:
                        failed[index] = str(exc)
                    continue
                self.tables[found.qualified] = found
        except BaseException:
            await self.close()
            raise
        return failed

    async def _take(self, run_id: int, schema: str, table: str, paths: list[str]) -> Replacement:
        conn = self._conn()
        qualified = f"{schema}.{table}"
        citus.check_replace(await citus.table_distribution(conn, schema, table), qualified)
        if not await replacement.lock_table(conn, schema, table):
            who = await replacement.holder(conn, schema, table)
            raise ConcurrentLoadError(
                f"{qualified} is being replaced by {who}: a second --mode replace of a table is"
                " refused; run it again when that run has ended (if its process is gone but"
                " its server process is not, end that with pg_terminate_backend; then"
                " `pgingest resume` continues the replace)"
            )
        try:
            found = await replacement.pending(conn, schema, table)
            if found is None:
                async with conn.transaction():
                    new = await self._begin(conn, run_id, schema, table)
                return Replacement(schema, table, new, paths)
            why = await self._start_over_reason(conn, found, paths)
            if why is None:
                await replacement.take_over(conn, schema, table, run_id)
                self._tell(
                    f"{qualified}: continuing the replace of {qualified} begun by run"
                    f" {found.started_by} (run {found.run_id} stopped): its new table"
                    f" {found.new} keeps what was loaded"
                )
                return Replacement(schema, table, found.new, paths)
            async with conn.transaction():
                await merge.drop_replacement(conn, schema, found.new)
                await replacement.forget(
                    conn,
                    schema,
                    table,
                    found.new,
                    status="reverted",
                    error=f"its replace of {qualified} by run {found.run_id} was started over"
                    f" by run {run_id}: {why}",
                )
                new = await self._begin(conn, run_id, schema, table)
            self._tell(
                f"{qualified}: starting the replace of {qualified} over, as {why}: the new"
                f" table of run {found.run_id} is dropped"
            )
            return Replacement(schema, table, new, paths)
        except BaseException:
            await quietly(replacement.unlock_table(conn, schema, table))
            raise

    @staticmethod
    async def _begin(conn: Any, run_id: int, schema: str, table: str) -> str:
        """Inside a transaction: the new table (shaped like the old one; made by the first
        file when there is none) and its manifest row."""
        new = merge.replacement_name(table, run_id)
        await merge.create_replacement(conn, schema, table, new)
        await replacement.begin(conn, schema, table, new, run_id)
        return new

    async def _start_over_reason(
        self, conn: Any, found: replacement.Pending, paths: list[str]
    ) -> str | None:
        """Why an unfinished replacement cannot be continued (``None``: it can): a file it
        holds is not given now, or changed, or its new table is gone."""
        recorded = await replacement.files_in(conn, found.schema, found.new)
        why = await asyncio.to_thread(_changed, recorded, paths, found.run_id)
        if why is None and not await merge.table_exists(conn, found.schema, found.new):
            # Without an old table the first file makes the new one: gone only if it was.
            old = await merge.table_exists(conn, found.schema, found.table)
            if old or any(f.batches for f in recorded):
                why = f"its new table {found.new} is gone"
        return why

    # -- at the end of the run ---------------------------------------------------------------

    async def finish(self, report: LoadReport, run_id: int | None, status: str) -> None:
        """Swap each table's new content in when every one of its files is in it. When a file
        failed, drop the new table (the old one stays as it was). When the run was interrupted
        (or a file was not loaded), keep the new table for ``pgingest resume``. Then release
        the tables' locks."""
        try:
            if self.options.dry_run or run_id is None:
                return
            for _, found in sorted(self.tables.items()):
                results = [
                    f
                    for f in report.files
                    if f.path in found.files and f.table in (found.qualified, "")
                ]
                try:
                    await self._finish_one(found, results, report, run_id, status)
                except Exception as exc:  # the server gone, the lock lost: the next run decides
                    text = (
                        f"replace of {found.qualified} not finished ({type(exc).__name__}:"
                        f" {exc}); the old table is unchanged unless the swap committed:"
                        " `pgingest resume` continues it"
                    )
                    log.warning("%s", text)
                    _fail(results, text)
                    report.strategies[found.qualified] = text
                outcome = report.strategies.get(found.qualified)
                if outcome is not None:
                    self._tell(f"{found.qualified}: {outcome}")
        finally:
            await self.close()

    async def _finish_one(
        self,
        found: Replacement,
        results: list[FileResult],
        report: LoadReport,
        run_id: int,
        status: str,
    ) -> None:
        failed = [f for f in results if f.status == "failed"]
        missing = [p for p in found.files if p not in found.ready]
        if failed:
            await self._abandon(found, results, f"{failed[0].path} failed", report)
        elif status != "success":
            await self._keep(found, results, "the run was interrupted", report, False)
        elif missing:
            skipped = next((f for f in results if f.path == missing[0]), None)
            why = f" ({skipped.message})" if skipped is not None and skipped.message else ""
            await self._keep(found, results, f"{missing[0]} is not in it{why}", report, True)
        else:
            crash_point("replace-loaded")
            await self._swap(found, results, run_id, report)

    async def _abandon(
        self, found: Replacement, results: list[FileResult], why: str, report: LoadReport
    ) -> None:
        """Drop the new table; its files are failed in the manifest, and in the report."""
        qualified = found.qualified
        error = f"replace of {qualified} abandoned ({why}): the old table is kept"
        conn = await self._live_conn()
        async with conn.transaction():
            await merge.drop_replacement(conn, found.schema, found.new)
            await replacement.forget(
                conn, found.schema, found.table, found.new, status="failed", error=error
            )
        for f in results:
            if f.status == "loaded":
                f.status = "failed"
                f.error = (
                    f"replace of {qualified} abandoned (another of its files failed):"
                    " the old table is unchanged"
                )
        report.strategies[qualified] = "replace abandoned: the old table is kept"

    async def _keep(
        self,
        found: Replacement,
        results: list[FileResult],
        reason: str,
        report: LoadReport,
        fail: bool,
    ) -> None:
        """Leave the new table for ``pgingest resume``; say so in the manifest and the report
        (``fail``: the files' results too, so that the command fails)."""
        text = (
            f"replace of {found.qualified} not swapped in: {reason}; the old table is"
            f" unchanged and its new table {found.new} keeps the {len(found.ready)} file(s)"
            " loaded so far: `pgingest resume` continues it"
        )
        conn = await self._live_conn()
        await replacement.record(conn, found.schema, found.table, complete=False, error=text)
        report.strategies[found.qualified] = text
        if fail:
            _fail(results, text)

    async def _swap(
        self, found: Replacement, results: list[FileResult], run_id: int, report: LoadReport
    ) -> None:
        schema, table, new = found.schema, found.table, found.new
        timeout, tries = self.options.swap_lock_timeout, self.options.swap_tries
        conn = await self._live_conn()
        await replacement.record(conn, schema, table, complete=True, error=None)
        blocker = ""
        lost = False  # the last try lost its connection: its commit may have happened

        async def swap_once() -> None:
            nonlocal conn, blocker, lost
            if lost and await self._swapped_meanwhile(found):
                return
            lost = False
            try:
                conn = await self._live_conn()
                async with conn.transaction():
                    await merge.set_lock_timeout(conn, timeout)
                    if not await replacement.owned(conn, schema, table, run_id):
                        raise ConcurrentLoadError(
                            f"another run took the replace of {found.qualified} over"
                        )
                    loaded_into = await store.table_identity(conn, schema, new)
                    await merge.swap_in(conn, schema, table, new)
                    busy = await replacement.busy_files(conn, schema, table)
                    if busy:
                        raise _BusyError(f"files being loaded into it: {', '.join(busy)}")
                    # The one place a replace's files become loaded: with the swap, in its
                    # transaction, with the identity of the table they are in now.
                    await replacement.swapped(conn, schema, table, new, run_id)
                    await store.restamp_table(conn, schema, table, loaded_into)
                    crash_point("swap-before-commit")
            except _BusyError as exc:
                blocker = str(exc)
                raise
            except ConcurrentLoadError:
                raise
            except Exception as exc:
                if is_driver_error(exc) and classify(exc) in SWAP_RETRY_CLASSES:
                    holders = await merge.lock_holders(conn, schema, table)
                    blocker = "locks on it held by " + (", ".join(holders) or "another session")
                    raise _BusyError(blocker) from exc
                if is_retryable(exc, conn):
                    blocker = f"{classify(exc, conn)}: {exc}"
                    lost = True
                raise

        def retrying(attempt: int, delay: float, exc: BaseException) -> None:
            log.info("swap of %s, try %d of %d: %s", found.qualified, attempt, tries, blocker)

        try:
            # Each wait is long enough for the readers queued behind the try to get through.
            await retry(
                swap_once,
                RetryPolicy(max_retries=tries - 1, base=timeout, max_delay=timeout),
                retryable=lambda exc: (
                    isinstance(exc, _BusyError)
                    or (not isinstance(exc, ConcurrentLoadError) and is_retryable(exc, conn))
                ),
                on_retry=retrying,
            )
        except ConcurrentLoadError as exc:
            _fail(results, f"replace of {found.qualified} not swapped in: {exc}")
            report.strategies[found.qualified] = f"replace not swapped in: {exc}"
            return
        except Exception as exc:
            if lost and await self._swapped_meanwhile(found):
                pass  # the last try's commit happened: its reply was lost
            elif isinstance(exc, _BusyError) or is_retryable(exc, conn):
                log.info("swap of %s, try %d of %d: %s", found.qualified, tries, tries, blocker)
                await self._swap_failed(found, results, run_id, report, blocker)
                return
            else:  # e.g. no right to drop the old table: trying again will not help
                error = describe(exc, "the swap", conn)  # (in the pg layer's words)
                await self._abandon(found, results, f"the swap failed: {error}", report)
                _fail(results, f"replace of {found.qualified} failed at the swap: {error}")
                report.strategies[found.qualified] = "replace failed: the old table is kept"
                return
        crash_point("swap-committed")
        report.strategies[found.qualified] = (
            f"replaced atomically by {len(found.files)} file(s) loaded into a new table"
        )

    async def _swap_failed(
        self,
        found: Replacement,
        results: list[FileResult],
        run_id: int,
        report: LoadReport,
        blocker: str,
    ) -> None:
        options = self.options
        text = (
            f"could not swap the new table in for {found.qualified} in"
            f" {options.swap_tries} tries of {options.swap_lock_timeout:g} s ({blocker}); the"
            f" old table is unchanged and the complete new table {found.new} is kept:"
            f" `pgingest resume {run_id}` swaps it in"
        )
        conn = await self._live_conn()
        await replacement.record(conn, found.schema, found.table, complete=True, error=text)
        _fail(results, text)
        report.strategies[found.qualified] = f"replace not swapped in: {text}"

    async def _swapped_meanwhile(self, found: Replacement) -> bool:
        """After the connection was lost during the swap: whether its commit happened."""
        conn = await self._live_conn()
        pending = await replacement.pending(conn, found.schema, found.table)
        return pending is None or pending.new != found.new

    def _tell(self, message: str) -> None:
        log.info("%s", message)
        self._say(message)

    # -- the connection holding the locks ----------------------------------------------------

    def _conn(self) -> Any:
        if self._lease is None or self._lease.conn is None:
            raise PgIngestError("internal: the replaced tables' connection is not open")
        return self._lease.conn

    async def _live_conn(self) -> Any:
        """The locks' connection; when a fault cut it, a new one that takes the locks again.

        Raises:
            ConcurrentLoadError: another run took a table meanwhile.
        """
        lease = self._lease
        if lease is None:
            raise PgIngestError("internal: the replaced tables' connection is not open")
        if lease.conn is not None and not is_gone(lease.conn):
            return lease.conn
        await lease.renew()
        for found in self.tables.values():
            if not await replacement.lock_table(lease.conn, found.schema, found.table):
                raise ConcurrentLoadError(
                    f"{found.qualified}: its lock was lost with a connection and another run"
                    " holds it now"
                )
            if self._run_id is not None:  # the row names the session holding the lock
                await replacement.take_over(lease.conn, found.schema, found.table, self._run_id)
        return lease.conn

    async def close(self) -> None:
        """Release the tables' locks and their connection."""
        lease, self._lease = self._lease, None
        if lease is None:
            return
        conn = lease.conn
        if conn is not None and not is_gone(conn):
            for found in self.tables.values():
                await quietly(replacement.unlock_table(conn, found.schema, found.table))
        await lease.release()


def _changed(
    recorded: list[replacement.RecordedFile], paths: list[str], run_id: int | None
) -> str | None:
    """The first recorded file not given now, gone or changed (runs in a thread: stats)."""
    listed = {absolute(p) for p in paths}
    for f in recorded:
        if f.path not in listed:
            return f"{f.path} is not among the files given now"
        try:
            stat = stat_input(f.path)
        except (OSError, SourceError):
            return f"{f.path} is gone"
        if stat.st_size != f.size or stat.st_mtime_ns != f.mtime_ns:
            return f"{f.path} changed since run {run_id} loaded it"
    return None


def _fail(results: list[FileResult], error: str) -> None:
    """The table's files did not reach it: their results fail with ``error``."""
    for f in results:
        if f.status in ("loaded", "skipped"):
            f.status = "failed"
            f.error = error

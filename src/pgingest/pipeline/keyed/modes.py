"""What the load modes add to a run: keys and the schedule for upsert and merge, the staging
target of each file, ``--delete-missing``, and the table swap of ``replace``.

The run asks this object at a few points (before the files start, when a file is planned and
written, when the run ends); append needs none of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pgingest.config import LoadOptions
from pgingest.errors import PgIngestError
from pgingest.model import ARROW_FORMATS, FileResult, LoadReport
from pgingest.pg import citus, connect, ddl, merge
from pgingest.pipeline.discover import default_table_name
from pgingest.pipeline.job import FileJob
from pgingest.pipeline.keyed import route, schedule
from pgingest.pipeline.keyed.replace import Replacer
from pgingest.pipeline.prepare.plan import FilePlan
from pgingest.schema.infer import infer_pg_types
from pgingest.schema.names import LINEAGE_COLUMNS, normalize_names
from pgingest.schema.pgtypes import pg_type_for_arrow

if TYPE_CHECKING:
    from pgingest.sources import Source

log = logging.getLogger("pgingest.modes")

KEYED = ("upsert", "merge")


def infer_types(source: Source, options: LoadOptions) -> list[str]:
    """The column types a new table would get from this file (Parquet: its schema; CSV: the
    inference of its first rows, ``--types`` and ``--text`` applied)."""
    if source.info.format in ARROW_FORMATS:
        types = [pg_type_for_arrow(f.type) for f in source.sample(1).schema]
    elif options.text:
        types = ["text"] * len(source.column_names())
    else:
        skip = options.on_error == "skip"  # malformed records: rejects of the load
        types = infer_pg_types(source.sample(options.sample_rows, skip_bad_records=skip))
    names = normalize_names(source.column_names())
    return [options.types.get(n, t) for n, t in zip(names, types, strict=True)]


class Modes:
    """Per-run state of the load modes."""

    def __init__(self, options: LoadOptions, say: Callable[[str], None]) -> None:
        self.options = options
        self.keyed = options.mode in KEYED
        self.keys: dict[str, tuple[str, ...]] = {}
        """Qualified table -> its key (upsert, merge)."""
        self.unindexed: set[str] = set()
        """Tables whose key no unique index covers (merge with --pk): joined without one."""
        self.distributed: dict[str, citus.Distribution | None] = {}
        """Per existing target table of upsert/merge: how Citus distributes it (``None``:
        a plain table, or no Citus)."""
        self.schedule = schedule.Schedule()
        self.index_of: dict[str, int] = {}
        self.replace = Replacer(options, say)
        """The tables ``replace`` loads into new tables, and their swap."""
        self._awaited: set[int] = set()
        self._paths: list[str] = []
        self._unsettled: set[int] = set()
        """Files left to another process still loading them when this one stopped waiting
        (``--lock-wait``): the files that share keys with them must not load either."""
        self.estimates: dict[str, int | None] = {}
        self._inferred: dict[str, dict[str, str]] = {}

    # -- before the files start --------------------------------------------------------------

    async def prepare(
        self,
        files: Sequence[str],
        open_target: Callable[[int], Awaitable[tuple[Source, LoadOptions]]],
        pool: Any,
        run_id: int | None,
        table_of: Callable[[int], str],
    ) -> dict[int, FileResult]:
        """Resolve each table's key, check every file has it, summarize keys and schedule the
        files; take the tables of ``replace`` (their locks and new tables). Nothing is written
        to a target.

        Args:
            files: the run's files, in order.
            open_target: opens file ``i`` with its own options.
            pool: the run's pool.
            run_id: the run (``None``: dry run).
            table_of: the table file ``i`` loads into.

        Returns:
            Files that fail already (no key, key column missing, a table that cannot be
            replaced), by index.

        Raises:
            ConcurrentLoadError: another run replaces a table of this one.
        """
        options = self.options
        failed: dict[int, FileResult] = {}
        self.index_of = {path: i for i, path in enumerate(files)}
        self._paths = list(files)
        if options.mode == "append":
            return failed
        schema = options.schema
        if options.mode == "replace":
            tables = [(i, path, table_of(i)) for i, path in enumerate(files)]
            refused = await self.replace.prepare(pool, run_id, tables)
            for index, error in refused.items():
                table = f"{schema}.{tables[index][2]}"
                failed[index] = FileResult(files[index], table, "failed", error=error)
            return failed
        entries: list[schedule.FileKeys] = []
        summarize: list[tuple[schedule.FileKeys, Source, list[str], list[str], tuple[str, ...]]]
        summarize = []
        async with pool.acquire() as conn:
            if options.mode == "merge":
                merge.check_merge_supported(await connect.server_version(conn))
            for index, path in enumerate(files):
                table = options.table or ""
                source: Source | None = None
                try:
                    # Opened with the target's own options: a folder may name its table.
                    source, own = await open_target(index)
                    table = own.table or default_table_name(path)
                    qualified = f"{schema}.{table}"
                    if options.dry_run:
                        self.estimates[path] = await asyncio.to_thread(
                            schedule.estimate_rows, source
                        )
                    names = normalize_names(source.column_names())
                    existing = await ddl.table_columns(conn, schema, table)
                    key = self.keys.get(qualified)
                    if key is None:
                        key = await merge.resolve_key(
                            conn, schema, table, options.pk, options.mode, existing is not None
                        )
                        self.keys[qualified] = key
                        if existing is not None and not await merge.has_key_index(
                            conn, schema, table, key
                        ):
                            self.unindexed.add(qualified)
                    merge.check_key_columns(path, key, names, qualified)
                    if existing is not None:
                        if qualified not in self.distributed:
                            self.distributed[qualified] = await citus.table_distribution(
                                conn, schema, table
                            )
                        citus.check_key(self.distributed[qualified], key, qualified, options.mode)
                    entry = schedule.FileKeys(index, path, qualified)
                    entries.append(entry)
                    types = self._types(existing, names)
                    if types is None and not existing:
                        types = await self._new_table_types(qualified, source, names)
                    if types is not None:
                        summarize.append((entry, source, names, types, key))
                        source = None  # closed after summarizing
                except PgIngestError as exc:
                    failed[index] = FileResult(path, f"{schema}.{table}", "failed", error=str(exc))
                finally:
                    if source is not None:
                        source.close()
        if self.keyed:
            await self._summarize(entries, summarize)
            self.schedule = schedule.plan_schedule(
                entries, options.strategy, ranges_only=options.delete_missing
            )
            self._awaited = {i for waits in self.schedule.waits.values() for i in waits}
        return failed

    def _types(self, existing: list[Any] | None, names: list[str]) -> list[str] | None:
        """Table types of the file's columns (``None``: not known yet, or not all in it)."""
        if not existing:
            return None
        by_name = {c.name: c.pg_type for c in existing}
        if any(n not in by_name for n in names):
            return None  # the load reports the column mismatch
        return [by_name[n] for n in names]

    async def _new_table_types(
        self, qualified: str, source: Source, names: list[str]
    ) -> list[str] | None:
        """Types of a table the load will create, as the first of its files infers them:
        every file of the table hashes its keys as that one does (a file whose keys do not
        parse that way is not summarized, so it is ordered: never wrongly parallel)."""
        known = self._inferred.get(qualified)
        if known is None:
            known = dict(
                zip(names, await asyncio.to_thread(infer_types, source, self.options), strict=True)
            )
            self._inferred[qualified] = known
        if any(n not in known for n in names):
            return None
        return [known[n] for n in names]

    async def _summarize(
        self,
        entries: list[schedule.FileKeys],
        work: list[tuple[schedule.FileKeys, Source, list[str], list[str], tuple[str, ...]]],
    ) -> None:
        """Key summaries, only for tables that several files go to and only under ``auto``."""
        tables: dict[str, int] = {}
        for entry in entries:
            tables[entry.table] = tables.get(entry.table, 0) + 1
        wanted = [w for w in work if self.options.strategy == "auto" and tables[w[0].table] >= 2]

        async def summarize(item: Any, want_hashes: bool) -> None:
            entry, source, names, types, key = item
            try:
                entry.summary = await asyncio.to_thread(
                    schedule.summarize_keys, source, names, types, key, want_hashes
                )
            except PgIngestError as exc:  # a bad key: the load names it; order the file
                log.info("%s: keys not summarized: %s", entry.path, exc)
                entry.summary = None

        try:
            # Parquet statistics first (no data read): files whose key ranges are disjoint
            # from every other file's need no hash set.
            for item in wanted:
                await summarize(item, item[1].info.format != "parquet")
            for item in wanted:
                entry = item[0]
                if entry.summary is None or entry.summary.hashes is not None:
                    continue
                others = [e for e, *_ in wanted if e.table == entry.table and e is not entry]
                if any(
                    schedule.overlap(entry.summary, o.summary, ranges_only=True) for o in others
                ):
                    await summarize(item, True)
        finally:
            for _, source, *_rest in work:
                source.close()

    # -- per file ----------------------------------------------------------------------------

    def waits_for(self, index: int) -> set[int]:
        """Indices of the files this one waits for."""
        return self.schedule.waits.get(index, set())

    def is_awaited(self, path: str) -> bool:
        """Whether later files wait for this one (they share keys with it): then it must be
        loaded before them, by this process or another."""
        index = self.index_of.get(path)
        return index is not None and index in self._awaited

    def left_to_another(self, path: str, qualified: str) -> FileResult:
        """The result of a file that later files wait for, left to the process still loading
        it after ``--lock-wait``: failed, and so will be the files after it."""
        index = self.index_of.get(path)
        if index is not None:
            self._unsettled.add(index)
        return FileResult(
            path,
            qualified,
            "failed",
            error=f"{path}: not loaded: another pgingest process has been loading it for over"
            f" {self.options.lock_wait:g} s (--lock-wait), and later files that share keys"
            " with it must come after it; run again",
        )

    def blocked(self, index: int) -> FileResult | None:
        """The failed result of a file that must not load now: an earlier file it shares keys
        with was left to another process (loading this one could apply it before that one).
        ``None``: it may load."""
        earlier = sorted(e for e in self.waits_for(index) if e in self._unsettled)
        if not earlier:
            return None
        self._unsettled.add(index)
        path = self._paths[index]
        return FileResult(
            path,
            "",
            "failed",
            error=f"{path}: not loaded: it shares keys with {self._paths[earlier[0]]}, which"
            " another pgingest process is still loading; run again",
        )

    def load_table(self, table: str) -> str:
        """The table a file's rows go to: the replacement's new table under ``replace``."""
        if self.options.dry_run:
            return table
        return self.replace.new_table(f"{self.options.schema}.{table}") or table

    def create_extras(self, table: str) -> str:
        """Extra ``CREATE TABLE`` clauses: the key of a new upsert/merge target."""
        key = self.keys.get(f"{self.options.schema}.{table}")
        return merge.primary_key_sql(key) if key and self.keyed else ""

    def workers(self, path: str, default: int) -> int:
        """Batch workers of one file (one under ``--strategy sequential``)."""
        return 1 if self.schedule.single_worker else default

    def target(
        self,
        schema: str,
        table: str,
        columns: Sequence[str],
        types: Sequence[str],
        has_lineage: bool,
    ) -> merge.Target | None:
        """The staging target of a keyed file (``None`` for append and replace)."""
        if not self.keyed:
            return None
        key = self.keys.get(f"{schema}.{table}")
        if key is None:
            raise PgIngestError(f"internal: no key resolved for {schema}.{table}")
        return merge.Target(
            schema,
            table,
            tuple(columns),
            tuple(types),
            key,
            self.options.mode,
            has_lineage,
            indexed=f"{schema}.{table}" not in self.unindexed,
        )

    def routes(self, target: merge.Target, workers: int) -> int:
        """Workers the file's rows are routed to: one when the key's type cannot be hashed
        consistently (neither integer nor text)."""
        by_name = dict(zip(target.columns, target.types, strict=True))
        return workers if route.is_routable([by_name[k] for k in target.key]) else 1

    def describe(self, path: str, qualified: str) -> list[str]:
        """Dry-run lines: mode, key, strategy, estimated rows."""
        options = self.options
        lines = [f"  mode: {options.mode}"]
        if self.keyed:
            key = self.keys.get(qualified)
            lines[0] += f", key ({', '.join(key) if key else '?'})"
            if options.delete_missing:
                lines[0] += ", delete missing keys within the file's key range"
            index = self.index_of.get(path)
            word = self.schedule.per_file.get(index, "parallel") if index is not None else "?"
            waits = sorted(self.waits_for(index)) if index is not None else []
            lines.append(
                f"  strategy: {word}"
                + (
                    f" (waits for file(s) #{', #'.join(str(w + 1) for w in waits)})"
                    if waits
                    else ""
                )
            )
        if options.mode == "replace":
            lines[0] += ", into a new table swapped in at the end of the run"
        estimate = self.estimates.get(path)
        if estimate is not None:
            lines.append(f"  rows: ~{estimate:,} (estimated)")
        return lines

    async def keyed_plan(
        self,
        plan: FilePlan,
        conn: Any,
        job: FileJob,
        routes: int,
        existing: Sequence[str],
    ) -> FilePlan:
        """upsert/merge: ``plan`` with the file's staging target and routing (the key was
        checked before the run started); merge --delete-missing: with its key table too.
        ``existing``: the table's columns. Append and replace: ``plan`` as it is."""
        table = plan.table
        target = self.target(
            table.schema,
            table.name,
            plan.columns,
            plan.target_types,
            self.has_lineage(existing),
        )
        if target is None:
            return plan
        merge.check_key_columns(job.path, target.key, plan.columns, table.qualified)
        seen = None
        if self.options.delete_missing and job.file_id is not None:
            seen = await merge.prepare_seen(conn, target, job.file_id, not job.done_batches)
        return replace(plan, target=target, routes=self.routes(target, routes), seen=seen)

    @staticmethod
    def has_lineage(columns: Sequence[str]) -> bool:
        """Whether a table's columns include the lineage columns."""
        return all(c in columns for c in LINEAGE_COLUMNS)

    # -- after the files ---------------------------------------------------------------------

    async def finish_run(self, report: LoadReport, run_id: int | None, status: str) -> None:
        """``replace``: swap each table's new content in, or drop it, or keep it for
        ``pgingest resume`` (see :meth:`Replacer.finish`); release the tables' locks."""
        await self.replace.finish(report, run_id, status)

    async def close(self) -> None:
        """Release what the modes hold for the run (the replaced tables' locks)."""
        await self.replace.close()

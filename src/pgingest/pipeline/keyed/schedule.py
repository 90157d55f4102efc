"""Conflict-aware scheduling of files that upsert or merge into one table.

Each file's keys are summarized cheaply (the range of the first key column, from Parquet
statistics or one pass over the key columns, and a set of 64-bit key hashes); two files whose
ranges or hash sets are disjoint cannot touch the same row and load in parallel, a file that
shares keys with earlier files waits for them. The result is always that of loading the files
one after another in the order given.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from pgingest.model import ArrowChunk
from pgingest.pipeline.keyed.route import key_hashes, key_kind
from pgingest.sources.inputs import is_virtual, open_input

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from pgingest.sources import Source

MAX_SKETCH_KEYS = 4_000_000
"""Keys per file kept as a hash set (8 bytes each, 32 MB at most); a larger file's set is not
kept, and where its range overlaps another file's the two are taken to overlap."""
MAX_PAIRWISE_FILES = 500
"""Beyond this many files into one table, only key ranges are compared (the hash sets'
pairwise intersections would cost more than the ordering saves)."""
SCAN_BATCH_ROWS = 200_000


@dataclass(slots=True)
class KeySummary:
    """What is known about a file's keys."""

    rows: int | None = None
    low: Any = None
    """Smallest value of the first key column (``None``: unknown)."""
    high: Any = None
    hashes: np.ndarray | None = None
    """Sorted distinct key hashes; ``None``: unknown (too many keys, or not computed)."""


@dataclass(slots=True)
class FileKeys:
    """One file of a keyed load, as the scheduler sees it."""

    index: int
    path: str
    table: str
    summary: KeySummary | None = None
    """``None``: the keys could not be summarized (the file overlaps everything)."""


@dataclass(slots=True)
class Schedule:
    """Which files wait for which, how many workers each file gets, and why."""

    waits: dict[int, set[int]] = field(default_factory=dict)
    """File index -> indices of earlier files it must wait for."""
    single_worker: bool = False
    """``sequential``: one batch at a time in every file."""
    strategies: dict[str, str] = field(default_factory=dict)
    """Table -> the strategy chosen and why (reported)."""
    per_file: dict[int, str] = field(default_factory=dict)
    """File index -> its strategy in one word (``parallel``, ``ordered``, ``sequential``)."""


def _first_key_range(values: pa.Array, kind: str) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind == "int" and not pa.types.is_integer(values.type):
        values = pc.cast(pc.utf8_trim_whitespace(values), pa.int64())
    elif kind == "text" and not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    bounds = pc.min_max(values)
    return bounds["min"].as_py(), bounds["max"].as_py()


def _parquet_range(path: str, column: str, kind: str) -> tuple[Any, Any] | None:
    """The first key column's range from the row groups' statistics, without reading data."""
    import pyarrow.parquet as pq

    with open_input(path) as handle:
        meta = pq.read_metadata(handle)
    names = meta.schema.to_arrow_schema().names
    if column not in names:
        return None
    position = names.index(column)
    low = high = None
    for group in range(meta.num_row_groups):
        stats = meta.row_group(group).column(position).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo, hi = stats.min, stats.max
        if kind == "int" and not (isinstance(lo, int) and isinstance(hi, int)):
            return None
        if kind == "text":
            if isinstance(lo, bytes):
                lo, hi = lo.decode("utf-8", "replace"), cast("bytes", hi).decode("utf-8", "replace")
            if not isinstance(lo, str):
                return None
        low = lo if low is None or lo < low else low
        high = hi if high is None or hi > high else high
    return low, high


def summarize_keys(
    source: Source,
    columns: Sequence[str],
    target_types: Sequence[str],
    key: Sequence[str],
    want_hashes: bool = True,
) -> KeySummary | None:
    """Read a file's key columns once: range of the first key column and the key hash set.

    Runs in a worker thread. ``None`` when a key type cannot be summarized consistently
    (neither integer nor text: its text form may vary). Without ``want_hashes``, a Parquet
    file whose statistics give the range is not read at all (its hash set stays unknown).
    """
    import pyarrow as pa

    by_name = dict(zip(columns, target_types, strict=True))
    kinds = [key_kind(by_name[k]) for k in key]
    if any(kind is None for kind in kinds):
        return None
    kinds_ok = cast("list[str]", kinds)
    path = source.info.path
    raw_names = dict(zip(columns, source.column_names(), strict=True))
    rows = 0
    low = high = None
    if source.info.format == "parquet":
        import pyarrow.parquet as pq

        stats = _parquet_range(path, raw_names[key[0]], kinds_ok[0])
        if stats is not None:
            low, high = stats
            if not want_hashes:
                with open_input(path) as handle:
                    return KeySummary(int(pq.read_metadata(handle).num_rows), low, high, None)
        parquet = pq.ParquetFile(open_input(path) if is_virtual(path) else path)
        batches = (
            (b.rename_columns(list(key)), line)
            for b, line in _numbered(
                parquet.iter_batches(SCAN_BATCH_ROWS, columns=[raw_names[k] for k in key])
            )
        )
    else:
        chunks = source.chunks(batch_rows=SCAN_BATCH_ROWS, batch_bytes=64 << 20, raw=False)
        batches = (
            (
                cast("ArrowChunk", c).batch.rename_columns(list(columns)).select(list(key)),
                cast("ArrowChunk", c).first_line,
            )
            for c in chunks
        )
    try:
        return _scan(batches, key, kinds_ok, path, rows, low, high)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None  # keys that do not parse as the table's: the load names the bad row


def _scan(
    batches: Any, key: Sequence[str], kinds_ok: list[str], path: str, rows: int, low: Any, high: Any
) -> KeySummary:
    """One pass over the key columns: row count, first key column's range, key hashes."""
    import numpy as np

    parts: list[np.ndarray] = []
    too_many = False
    ranged = low is not None
    for batch, first_line in batches:
        rows += batch.num_rows
        if not batch.num_rows:
            continue
        if not ranged:
            lo, hi = _first_key_range(batch.column(0), kinds_ok[0])
            low = lo if low is None or lo < low else low
            high = hi if high is None or hi > high else high
        if not too_many:
            parts.append(np.unique(key_hashes(batch, key, kinds_ok, path, first_line)))
            if sum(len(p) for p in parts) > MAX_SKETCH_KEYS:
                too_many, parts = True, []
    hashes = None if too_many else np.unique(np.concatenate(parts)) if parts else np.zeros(0)
    return KeySummary(rows, low, high, hashes.astype(np.uint64) if hashes is not None else None)


def _numbered(batches: Any) -> Any:
    line = 1
    for batch in batches:
        yield batch, line
        line += batch.num_rows


def overlap(a: KeySummary | None, b: KeySummary | None, *, ranges_only: bool = False) -> bool:
    """Whether two files may share a key (``True`` when it cannot be ruled out).

    ``ranges_only``: compare the key ranges alone (merge ``--delete-missing`` deletes within a
    file's range, so a later file's key inside an earlier file's range conflicts with it).
    """
    import numpy as np

    if a is None or b is None:
        return True
    if a.rows == 0 or b.rows == 0:
        return False
    if a.low is not None and b.low is not None:
        try:
            if a.high < b.low or b.high < a.low:
                return False
        except TypeError:
            pass
        if ranges_only:
            return True
    elif ranges_only:
        return True
    if a.hashes is None or b.hashes is None:
        return True
    return bool(np.intersect1d(a.hashes, b.hashes, assume_unique=True).size)


def plan_schedule(
    files: Sequence[FileKeys], strategy: str, *, ranges_only: bool = False
) -> Schedule:
    """Order the files of a keyed load.

    Args:
        files: every file to load, in the order given (``index`` ascending).
        strategy: ``auto`` (wait only for earlier overlapping files of the same table),
            ``parallel`` (no waiting: the caller asserts the files' keys are disjoint),
            ``ordered`` (the files of a table one after another, tables in parallel) or
            ``sequential`` (one file at a time, one batch at a time: the reference load).
        ranges_only: see :func:`overlap`.

    Returns:
        The schedule.
    """
    schedule = Schedule(single_worker=strategy == "sequential")
    groups: dict[str, list[FileKeys]] = {}
    for f in files:
        groups.setdefault(f.table, []).append(f)
    if strategy == "sequential":
        for previous, f in itertools.pairwise(files):
            schedule.waits[f.index] = {previous.index}
    for table, group in groups.items():
        n = len(group)
        if strategy == "sequential":
            schedule.strategies[table] = f"sequential: {n} file(s) one after another, one batch"
            schedule.strategies[table] += " at a time (--strategy sequential)"
            for f in group:
                schedule.per_file[f.index] = "sequential"
            continue
        if n == 1:
            schedule.strategies[table] = "parallel: one file (its batches routed by key)"
            schedule.per_file[group[0].index] = "parallel"
            continue
        if strategy == "parallel":
            schedule.strategies[table] = f"parallel: {n} files at once (--strategy parallel)"
            for f in group:
                schedule.per_file[f.index] = "parallel"
            continue
        if strategy == "ordered":
            for previous, f in itertools.pairwise(group):
                schedule.waits[f.index] = {previous.index}
            schedule.strategies[table] = (
                f"ordered: {n} files one after another (--strategy ordered)"
            )
            for f in group:
                schedule.per_file[f.index] = "ordered"
            continue
        compare_hashes = n <= MAX_PAIRWISE_FILES and not ranges_only
        waiting = 0
        for j, later in enumerate(group):
            before = {
                earlier.index
                for earlier in group[:j]
                if overlap(earlier.summary, later.summary, ranges_only=not compare_hashes)
            }
            if before:
                schedule.waits[later.index] = before
                waiting += 1
            schedule.per_file[later.index] = "ordered" if before else "parallel"
        if waiting:
            schedule.strategies[table] = (
                f"ordered where keys overlap: {waiting} of {n} files wait for earlier files"
                " sharing keys with them, the others load in parallel"
            )
        else:
            schedule.strategies[table] = f"parallel: {n} files, their keys are disjoint"
    return schedule


def estimate_rows(source: Source) -> int | None:
    """Rows of a file: exact for Parquet (its footer), estimated for uncompressed CSV (the
    average record size of its first MiB); ``None`` for compressed CSV."""
    info = source.info
    if info.format == "parquet":
        import pyarrow.parquet as pq

        with open_input(info.path) as handle:
            return int(pq.read_metadata(handle).num_rows)
    if info.compression != "none":
        return None
    with open_input(info.path) as handle:
        head = handle.read(1 << 20)
    lines = head.count(b"\n") or 1
    if len(head) >= info.size:
        return max(0, lines - (1 if info.dialect and info.dialect.has_header else 0))
    return int(info.size * lines / len(head))

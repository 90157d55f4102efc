"""Key routing for upsert and merge: hash each row's key, send every key to one worker, in file
order, and mark the batches that repeat a key.

Workers then never touch the same key, so they need no locks against each other, and each
key's rows are applied in file order: the result is that of loading the file top to bottom,
whatever the number of workers. Everything here is vectorized (numpy, pyarrow compute).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING, NamedTuple, cast

from pgingest.config import LoadOptions
from pgingest.errors import RowError
from pgingest.model import ARROW_FORMATS, WORKBOOK_FORMATS, ArrowChunk, CsvDialect, Reject
from pgingest.pg import copy
from pgingest.pg.merge import STAGE_ORDINAL
from pgingest.pipeline.job import FileJob
from pgingest.pipeline.memory import map_large_buffers
from pgingest.pipeline.prepare.plan import LivePlan
from pgingest.pipeline.write.batches import ARROW_BATCH_BYTES, payloads
from pgingest.pipeline.write.payload import Payload, encode_shaped
from pgingest.pipeline.write.shape import (
    Shaped,
    align_batch,
    batch_to_csv,
    normalize_batch,
)
from pgingest.schema.evolution import canonical_type
from pgingest.schema.validate import markers_in

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from pgingest.sources import Source

_INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
_TEXT_TYPES = ("text", "character varying", "character", "varchar", "char", "citext", "name")

_POSITIONS = 1024
"""Distinct per-position weights of the string hash (positions repeat after this many)."""


class _Constants(NamedTuple):
    """splitmix64's constants (a cheap, well-mixing 64-bit finalizer) and the string hash's
    per-position weights, as numpy values."""

    golden: np.uint64
    mix1: np.uint64
    mix2: np.uint64
    weights: np.ndarray


@cache
def _constants() -> _Constants:
    """Made on first use: importing this module (every load does) does not import numpy."""
    import numpy as np

    golden = np.uint64(0x9E3779B97F4A7C15)
    mix1, mix2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
    weights = _mix(np.arange(1, _POSITIONS + 1, dtype=np.uint64) * golden, mix1, mix2)
    return _Constants(golden, mix1, mix2, weights | np.uint64(1))


def _mix(h: np.ndarray, mix1: np.uint64 | None = None, mix2: np.uint64 | None = None) -> np.ndarray:
    import numpy as np

    if mix1 is None or mix2 is None:
        mix1, mix2 = _constants().mix1, _constants().mix2
    with np.errstate(over="ignore"):
        h = h ^ (h >> np.uint64(30))
        h = h * mix1
        h = h ^ (h >> np.uint64(27))
        h = h * mix2
        mixed: np.ndarray = h ^ (h >> np.uint64(31))
        return mixed


def key_kind(pg_type: str) -> str | None:
    """How a key column of this table type is hashed: ``int`` (by value), ``text`` (by its
    characters) or ``None`` (any other type: its text form may vary, e.g. ``2024-1-1`` and
    ``2024-01-01``, so rows are not routed by it)."""
    t = canonical_type(pg_type)
    if t in _INTEGER_TYPES:
        return "int"
    if t.startswith(_TEXT_TYPES):
        return "text"
    return None


def is_routable(key_types: Sequence[str]) -> bool:
    """True when every key column can be hashed consistently (integer or text types)."""
    return all(key_kind(t) is not None for t in key_types)


def _int_hash(values: pa.Array) -> np.ndarray:
    import numpy as np

    data = values.to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    with np.errstate(over="ignore"):
        return _mix(data.view(np.uint64) + _constants().golden)


def _text_hash(values: pa.Array) -> np.ndarray:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_string(values.type):
        values = pc.cast(values, pa.string())
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    buffers = values.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=n + 1, offset=values.offset * 4)
    base, stop = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets).astype(np.int64)
    if stop == base:
        return _mix(lengths.astype(np.uint64) * _constants().golden)
    data = np.frombuffer(buffers[2], dtype=np.uint8)[base:stop].astype(np.uint64)
    starts = (offsets[:-1] - base).astype(np.int64)
    positions = np.arange(len(data), dtype=np.int64) - np.repeat(starts, lengths)
    with np.errstate(over="ignore"):
        weighted = (data + np.uint64(1)) * _constants().weights[positions % _POSITIONS]
        sums = np.zeros(n, dtype=np.uint64)
        filled = lengths > 0
        # Empty strings add nothing: the non-empty ones' starts delimit every segment.
        sums[filled] = np.add.reduceat(weighted, starts[filled])
        return _mix(sums ^ (lengths.astype(np.uint64) * _constants().golden))


def key_hashes(
    batch: pa.RecordBatch, key: Sequence[str], kinds: Sequence[str], path: str, first_line: int
) -> np.ndarray:
    """One 64-bit hash per row of the key columns' values (same key, same hash, in any file).

    Raises:
        RowError: a NULL in a key column, or an integer key that is not an integer.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    combined: np.ndarray | None = None
    for name, kind in zip(key, kinds, strict=True):
        column = batch.column(name)
        if column.null_count:
            row = int(pc.index(pc.is_null(column), True).as_py())
            raise RowError(
                f"{path}: line {first_line + row}, column {name}: NULL in key column"
                f" (the key of an upsert or merge cannot be NULL)",
                path=path,
                line=first_line + row,
                column=name,
            )
        if kind == "int":
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                column = _parse_ints(column, name, path, first_line)
            elif not pa.types.is_integer(column.type):
                try:  # a workbook's integral numbers arrive as float64
                    column = pc.cast(column, pa.int64())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    column = _parse_ints(pc.cast(column, pa.string()), name, path, first_line)
            h = _int_hash(column)
        else:
            h = _text_hash(column)
        with np.errstate(over="ignore"):
            combined = h if combined is None else _mix(combined * _constants().mix1 + h)
    return combined if combined is not None else np.zeros(batch.num_rows, dtype=np.uint64)


def _parse_ints(column: pa.Array, name: str, path: str, first_line: int) -> pa.Array:
    """CSV text of an integer key column as int64 (``007`` and ``7`` are one key)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    trimmed = pc.utf8_trim_whitespace(column)
    try:
        return pc.cast(trimmed, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        for row, value in enumerate(trimmed.to_pylist()):  # the failure path only
            try:
                int(value)
            except (TypeError, ValueError):
                raise RowError(
                    f"{path}: line {first_line + row}, column {name}: key value {value!r} is not"
                    " an integer",
                    path=path,
                    line=first_line + row,
                    column=name,
                    value=str(value),
                ) from None
        raise


def has_duplicates(hashes: np.ndarray) -> bool:
    """True when some hash repeats: the batch may hold a key twice (a collision only makes
    the apply take the last-occurrence path, which is right either way)."""
    import numpy as np

    return len(hashes) > 1 and len(np.unique(hashes)) < len(hashes)


def partition(hashes: np.ndarray, workers: int) -> list[np.ndarray]:
    """Row indices per worker, each in file order."""
    import numpy as np

    if workers == 1:
        return [np.arange(len(hashes))]
    part = (hashes >> np.uint64(33)) % np.uint64(workers)
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(workers + 1, dtype=np.uint64))
    return [order[bounds[w] : bounds[w + 1]] for w in range(workers)]


def _with_ordinal(batch: pa.RecordBatch, lines: np.ndarray) -> pa.RecordBatch:
    import pyarrow as pa

    return batch.append_column(pa.field(STAGE_ORDINAL, pa.int64()), pa.array(lines))


RoutedItem = tuple[int, int, Callable[[], Payload]]
"""(batch number in the manifest, worker, the function that encodes the batch)."""


def routed_batches(
    source: Source,
    columns: Sequence[str],
    target_types: Sequence[str],
    key: Sequence[str],
    workers: int,
    *,
    batch_rows: int,
    batch_bytes: int,
    done: frozenset[int] = frozenset(),
    warn: Callable[[str], None] | None = None,
    markers: frozenset[str] = frozenset(),
) -> Iterator[RoutedItem]:
    """The file's rows, routed: for each chunk read, one batch per worker that got rows.
    CSV columns in ``markers`` (typed, their sample holds ``NA``...) get NULL for those.

    Batch ``n * workers + w`` is chunk ``n``'s share for worker ``w``; batches committed before
    (``done``) are skipped, so a resumed file continues each worker where it stopped (with
    the same ``workers`` as the first attempt: the manifest keeps it with the chunking).

    Raises:
        RowError: a NULL key, or an integer key that is not an integer.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    path = source.info.path
    by_name = dict(zip(columns, target_types, strict=True))
    kinds = [key_kind(by_name[k]) or "text" for k in key]
    # Typed Arrow readers (and transformed sources) are shaped like Parquet; CSV is text.
    parquet = source.info.format in ARROW_FORMATS or not _is_text(source)
    if not parquet:  # text routed as CSV: keep its buffers from staying resident
        map_large_buffers()
    cache: list[copy.BinaryEncoder | None] = [None]
    types = [*target_types, "bigint"]
    chunks = source.chunks(batch_rows=batch_rows, batch_bytes=batch_bytes, raw=False)
    for number, raw in enumerate(chunks):
        chunk = cast("ArrowChunk", raw)  # raw=False: Arrow chunks
        json_columns: tuple[str, ...] = ()
        if parquet:
            shaped = normalize_batch(
                chunk.batch,
                columns,
                path,
                target_types,
                chunk.first_line,
                workbook=source.info.format in WORKBOOK_FORMATS,
                warn=warn,
            )
            batch = cast("pa.RecordBatch", shaped.batch)
            json_columns = shaped.json_columns
        else:
            batch = chunk.batch.rename_columns(list(columns))
            for name in markers:
                position = batch.schema.get_field_index(name)
                column = batch.column(position)
                found = markers_in(column)
                nulls = pa.nulls(len(column), column.type)
                batch = batch.set_column(position, name, pc.if_else(found, nulls, column))
        hashes = key_hashes(batch, key, kinds, path, chunk.first_line)
        lines = np.arange(chunk.first_line, chunk.first_line + batch.num_rows, dtype=np.int64)
        rejects = chunk.rejects  # rows the reader left out: recorded with the chunk's first part
        for worker, rows in enumerate(partition(hashes, workers)):
            index = number * workers + worker
            if not len(rows):
                continue
            first_part_rejects, rejects = rejects, ()
            if index in done:
                continue
            whole = len(rows) == batch.num_rows
            part = batch if whole else batch.take(pa.array(rows))
            part_lines = lines if whole else lines[rows]
            dedup = has_duplicates(hashes if whole else hashes[rows])

            def make(
                part: pa.RecordBatch = part,
                part_lines: np.ndarray = part_lines,
                dedup: bool = dedup,
                json_columns: tuple[str, ...] = json_columns,
                left_out: tuple[Reject, ...] = first_part_rejects,
            ) -> Payload:
                first = int(part_lines[0])
                staged = _with_ordinal(part, part_lines)
                if parquet:
                    aligned = align_batch(Shaped(staged, None, json_columns), types, path, first)
                    payload = encode_shaped(aligned, first, cache)
                else:
                    payload = Payload("csv", batch_to_csv(staged), first, "UTF8", CsvDialect())
                if left_out:
                    payload = replace(payload, rejects=(*payload.rejects, *left_out))
                return _annotated(payload, part_lines, dedup)

            yield index, worker, make


def _is_text(source: Source) -> bool:
    """Whether the source's chunks are CSV text columns (a transform may have typed them)."""
    from pgingest.sources.adapt import AdaptedSource

    return not isinstance(source, AdaptedSource)


def _annotated(payload: Payload, lines: np.ndarray, dedup: bool) -> Payload:
    return replace(payload, lines=lines, dedup=dedup)


def file_batches(
    source: Source,
    live: LivePlan,
    options: LoadOptions,
    job: FileJob,
    workers: int,
) -> Iterator[tuple[int, int, Payload | Callable[[], Payload]]]:
    """A file's batches for :func:`~pgingest.pipeline.write.file.write_file`, numbered, each
    with its worker: keyed (upsert, merge), routed by key, a route always to the same worker
    so that its batches stay in order; else all to one shared queue (worker 0)."""
    plan = live.current  # keyed: never widened while written (its errors are kept)
    target = plan.target
    if target is None:
        return (
            (index, 0, make)
            for index, make in payloads(source, live, options, job.done_batches, job.parse)
        )
    # Each worker's share of a chunk is about one Arrow batch.
    routes = plan.routes
    return (
        (index, route % workers, make)
        for index, route, make in routed_batches(
            source,
            plan.columns,
            plan.target_types,
            target.key,
            routes,
            batch_rows=options.batch_size * routes,
            batch_bytes=min(options.batch_bytes, ARROW_BATCH_BYTES) * routes,
            done=job.done_batches,
            warn=plan.warn,
            markers=frozenset(plan.marker_columns),
        )
    )

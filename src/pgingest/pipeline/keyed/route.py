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
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from pgingest.config import LoadOptions
from pgingest.errors import RowError
from pgingest.model import (
    ARROW_FORMATS,
    WORKBOOK_FORMATS,
    ArrowChunk,
    CsvChunk,
    CsvDialect,
    Reject,
    RowRecords,
)
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
    the apply take the last-occurrence path, which is right either way). Arrow's hash table
    (numpy's unique sorts: 11.6 ms for 50,000 hashes, this 1.9 ms)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return len(hashes) > 1 and len(pc.unique(pa.array(hashes))) < len(hashes)


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


RAW_ROUTES = True
"""A keyed CSV file is claimed to be routed from raw chunks (``raw_routes`` in its chunking).
Tests turn it off to claim a file as an older loader did, with the reader's Arrow batches."""
TYPED_ROUTES = True
"""Raw chunks are parsed into their column types where that is exact (tests turn it off to
compare with the text reading)."""

RoutedItem = tuple[int, int, Callable[[], Payload]]
"""(batch number in the manifest, worker, the function that encodes the batch)."""


class _Rows(NamedTuple):
    """One chunk's rows before routing: ``kind`` says how its parts are sent."""

    batch: pa.RecordBatch
    lines: np.ndarray
    """The file line of each row (the stage's ordinal, and the line a bad row is named by);
    counted in rows for the reader's batches and for typed chunks (which hold no bad row)."""
    rejects: tuple[Reject, ...]
    kind: str
    """``arrow`` (shaped like Parquet), ``typed`` (CSV parsed exactly: binary COPY as it is)
    or ``text`` (CSV text columns: written as CSV again)."""
    json_columns: tuple[str, ...] = ()
    records: RowRecords | None = None
    """``text`` rows read from raw chunks under ``--on-error skip`` (:class:`Spans`), NDJSON
    rows (their lines): each row's record as the file has it, for its reject."""


class Spans(NamedTuple):
    """Records of a chunk, as the file has them: row ``i`` is ``data[starts[i]:ends[i]]``."""

    data: bytes
    starts: np.ndarray
    ends: np.ndarray

    def take(self, rows: np.ndarray) -> Spans:
        """The records of ``rows`` (positions, or a mask)."""
        return Spans(self.data, self.starts[rows], self.ends[rows])

    def text(self, row: int) -> str:
        """Row ``row``'s record, for a reject."""
        from pgingest.sources.refused import decode_line

        return decode_line(self.data[int(self.starts[row]) : int(self.ends[row])], "utf-8")


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
    raw: bool = False,
    exact: bool = False,
    skip: bool = False,
) -> Iterator[RoutedItem]:
    """The file's rows, routed: for each chunk read, one batch per worker that got rows.
    CSV columns in ``markers`` (typed, their sample holds ``NA``...) get NULL for those.
    With ``skip`` (``--on-error skip``), a malformed record and a row whose key is NULL or
    not an integer are set aside (rejects of the chunk's first batch) instead of failing.

    Batch ``n * workers + w`` is chunk ``n``'s share for worker ``w``; batches committed before
    (``done``) are skipped, so a resumed file continues each worker where it stopped (with
    the same ``workers`` as the first attempt: the manifest keeps it with the chunking).

    CSV with ``raw`` is cut into the raw chunks of an append (else into the reader's Arrow
    batches of text: a file first claimed so is resumed so). A raw chunk is parsed into the
    column types where that parse is exact (``exact``, :mod:`pgingest.pipeline.write.typed`)
    and sent as binary COPY, like Parquet; any other chunk is read as text and written again.

    Raises:
        RowError: without ``skip``: a NULL key, an integer key that is not an integer, or
            (``raw``) a malformed record.
    """
    import numpy as np
    import pyarrow as pa

    path = source.info.path
    by_name = dict(zip(columns, target_types, strict=True))
    kinds = [key_kind(by_name[k]) or "text" for k in key]
    # Typed Arrow readers (and transformed sources) are shaped like Parquet; CSV is text.
    parquet = source.info.format in ARROW_FORMATS or not _is_text(source)
    if not parquet:  # text routed as CSV: keep its buffers from staying resident
        map_large_buffers()
    cache: list[copy.BinaryEncoder | None] = [None]
    types = [*target_types, "bigint"]
    if parquet:
        chunks = _shaped_rows(source, columns, target_types, batch_rows, batch_bytes, warn)
    elif raw:
        chunks = _raw_rows(
            source, columns, target_types, key, markers, exact, batch_rows, batch_bytes, skip
        )
    else:
        chunks = _text_rows(source, columns, markers, batch_rows, batch_bytes)
    for number, rows_of in enumerate(chunks):
        batch, lines, rejects = rows_of.batch, rows_of.lines, rows_of.rejects
        spans = rows_of.records
        first_line = int(lines[0]) if len(lines) else 1
        try:
            hashes = key_hashes(batch, key, kinds, path, first_line)
        except RowError:
            if not skip:
                raise
            batch, lines, rejects, spans = _without_bad_keys(
                batch, lines, rejects, spans, key, kinds, path
            )
            hashes = key_hashes(batch, key, kinds, path, first_line)
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
            part_spans = spans if whole or spans is None else spans.take(rows)
            dedup = has_duplicates(hashes if whole else hashes[rows])

            def make(
                part: pa.RecordBatch = part,
                part_lines: np.ndarray = part_lines,
                dedup: bool = dedup,
                kind: str = rows_of.kind,
                json_columns: tuple[str, ...] = rows_of.json_columns,
                left_out: tuple[Reject, ...] = first_part_rejects,
                records: RowRecords | None = part_spans,
            ) -> Payload:
                first = int(part_lines[0])
                staged = _with_ordinal(part, part_lines)
                if kind == "arrow":
                    shaped = Shaped(staged, None, json_columns)
                    try:
                        payload = encode_shaped(
                            align_batch(shaped, types, path, first), first, cache
                        )
                    except RowError as exc:  # a value wider than its column: it may widen
                        payload = Payload("arrow", b"", first, batch=staged, error=exc)
                elif kind == "typed":  # exact by construction: encoded as it is
                    encoder = cache[0]
                    if encoder is None or encoder.schema != staged.schema:
                        encoder = cache[0] = copy.BinaryEncoder(staged.schema)
                    payload = Payload("arrow", b"", first, batch=staged, encoder=encoder)
                else:
                    payload = Payload("csv", batch_to_csv(staged), first, "UTF8", CsvDialect())
                if left_out:
                    payload = replace(payload, rejects=(*payload.rejects, *left_out))
                if records is not None:  # (an Arrow row's too: its reject may be its line)
                    payload = replace(payload, records=records)
                return _annotated(payload, part_lines, dedup)

            yield index, worker, make
        if rejects and number * workers not in done:
            # No row of the chunk is left: its bad rows are recorded by an empty batch.
            empty = Payload("csv", b"", first_line, "UTF8", CsvDialect(), rejects=rejects)

            def make_empty(empty: Payload = empty) -> Payload:
                return _annotated(empty, np.zeros(0, np.int64), False)

            yield number * workers, 0, make_empty


def _shaped_rows(
    source: Source,
    columns: Sequence[str],
    target_types: Sequence[str],
    batch_rows: int,
    batch_bytes: int,
    warn: Callable[[str], None] | None,
) -> Iterator[_Rows]:
    """Arrow chunks (Parquet, workbooks, transformed sources) shaped for the table."""
    import numpy as np

    workbook = source.info.format in WORKBOOK_FORMATS
    for raw in source.chunks(batch_rows=batch_rows, batch_bytes=batch_bytes, raw=False):
        chunk = cast("ArrowChunk", raw)  # raw=False: Arrow chunks
        shaped = normalize_batch(
            chunk.batch,
            columns,
            source.info.path,
            target_types,
            chunk.first_line,
            workbook=workbook,
            warn=warn,
        )
        batch = cast("pa.RecordBatch", shaped.batch)
        lines = chunk.lines  # (NDJSON: blank and bad lines hold no row)
        if lines is None:
            lines = np.arange(chunk.first_line, chunk.first_line + batch.num_rows, dtype=np.int64)
        records = chunk.records  # (NDJSON: each row's line, for its reject)
        yield _Rows(batch, lines, chunk.rejects, "arrow", shaped.json_columns, records)


def _text_rows(
    source: Source,
    columns: Sequence[str],
    markers: frozenset[str],
    batch_rows: int,
    batch_bytes: int,
) -> Iterator[_Rows]:
    """The reader's Arrow chunks of CSV text (the cut of a file first claimed before raw
    chunks were routed: each row's line counted in rows)."""
    import numpy as np

    for raw in source.chunks(batch_rows=batch_rows, batch_bytes=batch_bytes, raw=False):
        chunk = cast("ArrowChunk", raw)  # raw=False: Arrow chunks
        batch = _markers_null(chunk.batch.rename_columns(list(columns)), markers)
        lines = np.arange(chunk.first_line, chunk.first_line + batch.num_rows, dtype=np.int64)
        yield _Rows(batch, lines, chunk.rejects, "text")


def _raw_rows(
    source: Source,
    columns: Sequence[str],
    target_types: Sequence[str],
    key: Sequence[str],
    markers: frozenset[str],
    exact: bool,
    batch_rows: int,
    batch_bytes: int,
    skip: bool,
) -> Iterator[_Rows]:
    """Raw CSV chunks, each parsed into the column types where that is exact (``exact``: a
    chunk of the file's own UTF-8 bytes, see :mod:`pgingest.pipeline.write.typed`), else as
    text columns (lines as the records start). Once a chunk is in doubt, the rest of the file
    is read as text, as the append's binary path does: a file whose odd values are spread
    through it would otherwise be parsed twice, chunk after chunk. With ``skip``, malformed
    records are the chunk's rejects.

    Raises:
        RowError: a malformed record (a wrong field count, a quote never closed), named by
            its line (without ``skip``).
    """
    import numpy as np

    from pgingest.pipeline.write.typed import parse_exact
    from pgingest.sources.refused import decode_line, parse_refused  # (imports pyarrow)

    path = source.info.path
    dialect = source.info.dialect or CsvDialect()
    for raw in source.chunks(batch_rows=batch_rows, batch_bytes=batch_bytes, raw=True):
        chunk = cast("CsvChunk", raw)  # raw=True: raw chunks
        if exact and chunk.lines is None and chunk.encoding == "UTF8":
            typed = parse_exact(chunk.data, dialect, target_types)
            # (a NULL key is named by its line: the text reading counts them)
            if typed is not None and not any(
                typed.column(columns.index(k)).null_count for k in key
            ):
                typed = typed.rename_columns(list(columns))
                first = chunk.first_line
                lines = np.arange(first, first + typed.num_rows, dtype=np.int64)
                yield _Rows(typed, lines, chunk.rejects, "typed")
                continue
            exact = False
        parsed = parse_refused(
            chunk.data, chunk.first_line, chunk.encoding, dialect, columns, list(columns)
        )
        if parsed is None:
            raise RowError(
                f"{path}: line {chunk.first_line}: records that cannot be read as the server"
                " reads them",
                path=path,
                line=chunk.first_line,
            )
        records = parsed.records
        rewritten = chunk.lines is not None and len(chunk.lines) == len(records)
        file_lines = chunk.lines if rewritten else records.lines
        rejects = chunk.rejects
        if parsed.reasons and not skip:
            bad = min(parsed.reasons)
            line = int(file_lines[bad])
            reason = parsed.reasons[bad]
            raise RowError(f"{path}: line {line}: {reason}", path=path, line=line)
        if parsed.reasons:
            starts, ends = records.starts, records.ends
            malformed = (
                Reject(
                    int(file_lines[i]),
                    None,
                    decode_line(parsed.data[starts[i] : ends[i]], "utf-8"),
                    reason,
                )
                for i, reason in parsed.reasons.items()
            )
            rejects = tuple(sorted((*rejects, *malformed), key=lambda r: r.line))
        if parsed.table is None:  # no record (the reader left every one out)
            yield _Rows(_empty_text_batch(columns), np.zeros(0, np.int64), rejects, "text")
            continue
        batch = _markers_null(_one_batch(parsed.table), markers)
        # Each row's record, for the reject a bad row becomes: only under --on-error skip.
        spans = Spans(parsed.data, records.starts, records.ends).take(parsed.kept) if skip else None
        yield _Rows(batch, file_lines[parsed.kept], rejects, "text", records=spans)


def _without_bad_keys(
    batch: pa.RecordBatch,
    lines: np.ndarray,
    rejects: tuple[Reject, ...],
    spans: Any,
    key: Sequence[str],
    kinds: Sequence[str],
    path: str,
) -> tuple[pa.RecordBatch, np.ndarray, tuple[Reject, ...], Any]:
    """``--on-error skip``, for a chunk whose keys do not all hash: the rows whose key
    :func:`key_hashes` refuses (NULL, or not an integer in an integer key) set aside, found by
    halves (a few hashings per bad row)."""
    import numpy as np
    import pyarrow as pa

    bad: dict[int, Reject] = {}
    for name, kind in zip(key, kinds, strict=True):
        column = batch.column(name)
        for row in _refused_keys(batch, name, kind, path, 0):
            if row in bad:
                continue
            value = column[row].as_py()
            reason = (
                "NULL in key column (the key of an upsert or merge cannot be NULL)"
                if value is None
                else f"key value {value!r} is not an integer"
            )
            if spans is not None:
                record = spans.text(row)
            else:  # an Arrow row: as CSV
                record = batch_to_csv(batch.slice(row, 1)).decode("utf-8").rstrip("\r\n")
            bad[row] = Reject(int(lines[row]), name, record, reason)
    keep = np.ones(batch.num_rows, np.bool_)
    keep[list(bad)] = False
    found = tuple(sorted((*rejects, *bad.values()), key=lambda r: r.line))
    kept_spans = spans.take(keep) if spans is not None else None
    return batch.filter(pa.array(keep)), lines[keep], found, kept_spans


def _refused_keys(batch: pa.RecordBatch, name: str, kind: str, path: str, offset: int) -> list[int]:
    """The rows (from ``offset``) whose ``name`` key :func:`key_hashes` refuses."""
    try:
        key_hashes(batch, [name], [kind], path, 1)
        return []
    except RowError:
        if batch.num_rows <= 1:
            return [offset]
    half = batch.num_rows // 2
    return [
        *_refused_keys(batch.slice(0, half), name, kind, path, offset),
        *_refused_keys(batch.slice(half), name, kind, path, offset + half),
    ]


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    """A table of one chunk's rows as one record batch (its columns' pieces combined)."""
    batches = table.combine_chunks().to_batches()
    return batches[0] if batches else _empty_text_batch(table.column_names)


def _empty_text_batch(columns: Sequence[str]) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.RecordBatch.from_arrays(
        [pa.array([], pa.string()) for _ in columns], names=list(columns)
    )


def _markers_null(batch: pa.RecordBatch, markers: frozenset[str]) -> pa.RecordBatch:
    """The text columns in ``markers`` with their missing-value markers (``NA``...) NULL."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in markers:
        position = batch.schema.get_field_index(name)
        column = batch.column(position)
        found = markers_in(column)
        nulls = pa.nulls(len(column), column.type)
        batch = batch.set_column(position, name, pc.if_else(found, nulls, column))
    return batch


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
    plan = live.current  # keyed: a wider table plans the file again (WidenedError)
    target = plan.target
    if target is None:
        return (
            (index, 0, make)
            for index, make in payloads(source, live, options, job.done_batches, job.parse)
        )
    from pgingest.pipeline.write.typed import exact_types  # (imports pyarrow)

    # Each worker's share of a chunk is about one Arrow batch.
    routes = plan.routes
    dialect = source.info.dialect or CsvDialect()
    raw = (
        job.raw_routes
        and not job.parse
        and plan.read_columns is None
        and dialect.escapechar is None
        and not options.null_strings
        and dialect.newline != "\r"
    )
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
            raw=raw,
            exact=TYPED_ROUTES and exact_types(plan),
            skip=options.on_error == "skip",
        )
    )

"""A file's plan and its batches: what is loaded where, read and encoded batch by batch.

The batch functions run in a worker thread (reading) and hand each batch over with the function
that encodes it, which the batch workers call in threads of their own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import cast

from pgingest.config import LoadOptions
from pgingest.errors import RowError
from pgingest.model import (
    ARROW_FORMATS,
    WORKBOOK_FORMATS,
    ArrowChunk,
    CsvChunk,
    CsvDialect,
    SourceInfo,
    TableSpec,
)
from pgingest.pg import copy, merge
from pgingest.pipeline.write.payload import Payload, encode_shaped
from pgingest.pipeline.write.shape import align_batch, batch_to_csv, normalize_batch
from pgingest.sources import CsvOptions, Source
from pgingest.sources.adapt import AdaptedSource

# Below this size a file is detected and hashed in the event loop's thread: a thread hop costs
# more than the work, and with thousands of small files the hops add up.
SMALL_FILE_BYTES = 1 << 20
# Raw CSV chunks of this size keep two COPY streams busy without holding much memory
# (4 MiB measured best for two streams on a 2-core machine; 16 MiB was 10% slower).
RAW_CHUNK_BYTES = 4 << 20
# Decoded Arrow batches (Parquet) of this size: what the Parquet reader and the allocators keep
# grows with the batch (2M-row benchmark file: 50,000-row batches of 6.5 MB peaked at 280-310
# MB, 20,000 rows at 230-240 MB), while the per-batch cost (a transaction, a manifest row)
# stays small at a few MB.
ARROW_BATCH_BYTES = 4 << 20


@dataclass(slots=True)
class FilePlan:
    """What will happen to one file."""

    info: SourceInfo
    table: TableSpec
    create: bool
    columns: list[str]
    """The file's columns that are loaded, in file order."""
    target_types: list[str]
    """Their types in the table (updated when the table widens during the load)."""
    read_columns: list[str] | None = None
    """All the file's columns, when some are left out (``--on-new-column ignore``)."""
    fixed: frozenset[str] = frozenset()
    """Columns with declared types (never widened)."""
    changes: list[str] = field(default_factory=list)
    """Schema changes this file caused."""
    datestyle: str | None = None
    """``DateStyle`` the server reads the file's dates with (``ISO, DMY``), if not the default."""
    target: merge.Target | None = None
    """upsert/merge: where the staged batches go, and how."""
    routes: int = 1
    """upsert/merge: workers the rows are routed to by key."""
    seen: str | None = None
    """merge --delete-missing: the file's key table."""
    warnings: list[str] = field(default_factory=list)
    """What planning and loading decided that the user should know (for the file's result)."""
    marker_columns: set[str] = field(default_factory=set)
    """Typed columns whose missing-value markers (``NA``, ``NULL``...) load as NULL: their
    batches are read client-side before COPY (found in the sample, or in a refused batch)."""

    def warn(self, text: str) -> None:
        """Note a warning once (batch workers call it from their threads)."""
        with _WARNINGS_LOCK:
            if text not in self.warnings:
                self.warnings.append(text)


_WARNINGS_LOCK = threading.Lock()


def csv_options(options: LoadOptions) -> CsvOptions:
    """The CSV reading options of ``options`` (flags left unset are sniffed)."""
    return CsvOptions(
        header=options.header,
        names=options.headers,
        null_strings=options.null_strings,
        delimiter=options.delimiter,
        quotechar=options.quote,
        escape=options.escape,
        encoding=options.encoding,
        skip_bad_rows=options.on_error == "skip",
    )


def payloads(
    source: Source,
    plan: FilePlan,
    options: LoadOptions,
    done: frozenset[int],
    parse: bool = False,
) -> Iterator[tuple[int, Payload | Callable[[], Payload]]]:
    """Read the file's batches, numbered, skipping those already committed (runs in a worker
    thread). Each comes with the function that encodes it, which the batch workers call in
    threads of their own: pgpq releases the GIL, so two workers encode on two cores."""
    for index, make in enumerate(batches(source, plan, options, parse)):
        if index not in done:
            yield index, make


def batches(
    source: Source, plan: FilePlan, options: LoadOptions, parse: bool = False
) -> Iterator[Payload | Callable[[], Payload]]:
    """The file's batches in order: ready payloads (raw CSV), or functions that encode them
    (skipped batches never are)."""
    info = source.info
    path = info.path
    if info.format in ARROW_FORMATS or isinstance(source, AdaptedSource):
        cache: list[copy.BinaryEncoder | None] = [None]
        header = dict(zip(source.column_names(), plan.read_columns or plan.columns, strict=False))
        batch_bytes = min(options.batch_bytes, ARROW_BATCH_BYTES)
        workbook = info.format in WORKBOOK_FORMATS
        if workbook:
            # A sheet is read whole: smaller batches would save no memory, only add commits.
            batch_bytes = options.batch_bytes
        for chunk in source.chunks(batch_rows=options.batch_size, batch_bytes=batch_bytes):
            chunk = cast("ArrowChunk", chunk)  # the Parquet reader yields Arrow chunks

            def encode(chunk: ArrowChunk = chunk) -> Payload:
                batch = chunk.batch
                if plan.read_columns is not None:
                    batch = batch.rename_columns(plan.read_columns).select(plan.columns)
                shaped = normalize_batch(
                    batch,
                    plan.columns,
                    path,
                    plan.target_types,
                    chunk.first_line,
                    workbook=workbook,
                    warn=plan.warn,
                )
                # the reader's rejects, named by the table's column, not the header
                rejects = tuple(
                    replace(r, column=header.get(r.column, r.column) if r.column else None)
                    for r in chunk.rejects
                )
                try:
                    aligned = align_batch(shaped, plan.target_types, path, chunk.first_line)
                except RowError as exc:  # a value wider than its column: the table may widen
                    return Payload(
                        "arrow",
                        b"",
                        chunk.first_line,
                        batch=shaped.batch,
                        error=exc,
                        rejects=rejects,
                    )
                payload = encode_shaped(aligned, chunk.first_line, cache)
                return replace(payload, rejects=rejects) if rejects else payload

            yield encode
        return
    dialect = info.dialect or CsvDialect()
    raw = (
        not parse
        and plan.read_columns is None
        and dialect.escapechar is None
        and not options.null_strings
        and dialect.newline != "\r"
    )
    if raw:
        for chunk in source.chunks(
            batch_rows=options.batch_size,
            batch_bytes=min(options.batch_bytes, RAW_CHUNK_BYTES),
            raw=True,
        ):
            chunk = cast("CsvChunk", chunk)  # raw=True yields raw chunks
            yield Payload(
                "csv",
                chunk.data,
                chunk.first_line,
                chunk.encoding,
                dialect,
                lines=chunk.lines,
                rejects=chunk.rejects,
            )
        return
    for chunk in source.chunks(
        batch_rows=options.batch_size, batch_bytes=options.batch_bytes, raw=False
    ):
        chunk = cast("ArrowChunk", chunk)  # raw=False yields Arrow chunks

        def to_csv(chunk: ArrowChunk = chunk) -> Payload:
            batch = chunk.batch.rename_columns(plan.read_columns or plan.columns)
            if plan.read_columns is not None:
                batch = batch.select(plan.columns)
            return Payload(
                "csv",
                batch_to_csv(batch),
                chunk.first_line,
                "UTF8",
                CsvDialect(),
                rejects=chunk.rejects,
            )

        yield to_csv

"""A file's batches: read and encoded batch by batch, as its plan says.

The batch functions run in a worker thread (reading) and hand each batch over with the function
that encodes it, which the batch workers call in threads of their own.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, cast

from pgingest.config import LoadOptions
from pgingest.errors import RowError
from pgingest.model import (
    ARROW_FORMATS,
    WORKBOOK_FORMATS,
    ArrowChunk,
    CsvChunk,
    CsvDialect,
)
from pgingest.pg import copy
from pgingest.pipeline.prepare.plan import LivePlan
from pgingest.pipeline.write.payload import Payload, encode_shaped
from pgingest.pipeline.write.shape import align_batch, batch_to_csv, normalize_batch
from pgingest.sources import Source
from pgingest.sources.adapt import AdaptedSource
from pgingest.sources.small import SmallCsvSource

# Raw CSV chunks of this size keep two COPY streams busy without holding much memory
# (4 MiB measured best for two streams on a 2-core machine; 16 MiB was 10% slower).
RAW_CHUNK_BYTES = 4 << 20
# Decoded Arrow batches (Parquet) of this size: what the Parquet reader and the allocators keep
# grows with the batch (2M-row benchmark file: 50,000-row batches of 6.5 MB peaked at 280-310
# MB, 20,000 rows at 230-240 MB), while the per-batch cost (a transaction, a manifest row)
# stays small at a few MB.
ARROW_BATCH_BYTES = 4 << 20
BINARY_CSV: bool | None = None
"""Parse CSV client-side for binary COPY where that is exact (:mod:`pgingest.pipeline.write.typed`):
``None`` where it can win (:func:`binary_csv_pays`), ``True``/``False`` always/never (the
tests load one file through both paths and compare)."""
BINARY_CSV_MIN_CORES = 4
"""Cores this process may use for binary CSV to pay. The client's parse and encode of a row
cost about what binary COPY saves the server (benchmark file, 1M rows: +1.1 s of client CPU,
-1.0 s of server CPU): on 2 cores shared with the server (the benchmark machine) binary was
no faster (0.98-0.99x of the text path, medians of per-round ratios; 0.78x in the quietest
round); with cores to spare, the parse runs beside the server's COPY instead of in its place,
on pyarrow's threads too (not measured: no such machine here)."""


def payloads(
    source: Source,
    live: LivePlan,
    options: LoadOptions,
    done: frozenset[int],
    parse: bool = False,
) -> Iterator[tuple[int, Payload | Callable[[], Payload]]]:
    """Read the file's batches, numbered, skipping those already committed (runs in a worker
    thread). Each comes with the function that encodes it, which the batch workers call in
    threads of their own: pgpq releases the GIL, so two workers encode on two cores."""
    for index, make in enumerate(batches(source, live, options, parse)):
        if index not in done:
            yield index, make


def batches(
    source: Source, live: LivePlan, options: LoadOptions, parse: bool = False
) -> Iterator[Payload | Callable[[], Payload]]:
    """The file's batches in order: ready payloads (raw CSV), or functions that encode them
    (skipped batches never are) with the plan current when they do (a column may have
    widened meanwhile)."""
    plan = live.current  # (its columns stay; their types may widen)
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
                plan = live.current
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
                numbered: dict[str, Any] = {}
                if chunk.records is not None:  # (NDJSON) each row's line is known
                    import numpy as np

                    lines = chunk.lines
                    if lines is None:
                        lines = np.arange(
                            chunk.first_line, chunk.first_line + batch.num_rows, dtype=np.int64
                        )
                    numbered = {"lines": lines, "records": chunk.records, "numbered": True}
                try:
                    aligned = align_batch(shaped, plan.target_types, path, chunk.first_line)
                except RowError as exc:  # a value wider than its column: the table may widen
                    return Payload(
                        "arrow",
                        b"",
                        chunk.first_line,
                        batch=shaped.batch,
                        error=_on_its_line(exc, chunk),
                        rejects=rejects,
                        **numbered,
                    )
                payload = encode_shaped(aligned, chunk.first_line, cache)
                return (
                    replace(payload, rejects=rejects, **numbered)
                    if rejects or numbered
                    else payload
                )

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
        # Binary COPY where the client's parse is exact (pipeline.write.typed), chunk by
        # chunk: a chunk read again client-side (lines set) or not in UTF-8 goes as text.
        # The chunks are cut alike either way, so a resumed file's batches are the same.
        # Not a file read in Python (sources.small) unless forced: its load would import
        # pyarrow for a parse the server does in no time.
        typed = binary_csv_pays() and (BINARY_CSV is True or not isinstance(source, SmallCsvSource))
        if typed:  # (typed imports pyarrow)
            from pgingest.pipeline.write.typed import TypedState, is_typed_file, typed_payload

            typed = is_typed_file(plan)
            state = TypedState(threads=BINARY_CSV is None)  # chosen for spare cores: use them
        for chunk in source.chunks(
            batch_rows=options.batch_size,
            batch_bytes=min(options.batch_bytes, RAW_CHUNK_BYTES),
            raw=True,
        ):
            chunk = cast("CsvChunk", chunk)  # raw=True yields raw chunks
            text = Payload(
                "csv",
                chunk.data,
                chunk.first_line,
                chunk.encoding,
                dialect,
                lines=chunk.lines,
                rejects=chunk.rejects,
            )
            if typed and chunk.lines is None and chunk.encoding == "UTF8":
                yield functools.partial(typed_payload, text, live, state)
            else:
                yield text
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


def _on_its_line(error: RowError, chunk: ArrowChunk) -> RowError:
    """A row error counted from the chunk's first line, named by the row's file line (NDJSON:
    blank and bad lines hold no row)."""
    if chunk.lines is None or error.line is None:
        return error
    row = error.line - chunk.first_line
    if not 0 <= row < len(chunk.lines):
        return error
    line = int(chunk.lines[row])
    message = str(error).replace(f"line {error.line}", f"line {line}", 1)
    return RowError(message, path=error.path, line=line, column=error.column, value=error.value)


def binary_csv_pays() -> bool:
    """Whether CSV chunks go as binary COPY (where exact): :data:`BINARY_CSV` if set, else
    whether this process may use :data:`BINARY_CSV_MIN_CORES` cores or more."""
    if BINARY_CSV is not None:
        return BINARY_CSV
    return len(os.sched_getaffinity(0)) >= BINARY_CSV_MIN_CORES

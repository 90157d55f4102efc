"""COPY into a table: raw CSV bytes as ``FORMAT csv``, Arrow batches as binary COPY (pgpq).

Nothing here loops over rows or values: CSV bytes pass through untouched (the server parses
them), and Arrow batches are encoded by pgpq's Rust encoder.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

import pgpq
from pgpq import encoders as pgpq_encoders
from pgpq import schema as pgpq_schema

from pgingest.model import CsvChunk, CsvDialect

if TYPE_CHECKING:
    import pyarrow as pa


async def copy_csv(
    conn: Any, schema: str, table: str, columns: Sequence[str], chunk: CsvChunk, dialect: CsvDialect
) -> int:
    """COPY one raw CSV chunk (whole records, no header) into the table; return rows copied."""
    status = await conn.copy_to_table(
        table,
        schema_name=schema,
        columns=list(columns),
        source=memoryview(chunk.data),  # bytes would be taken for a path
        format="csv",
        delimiter=dialect.delimiter,
        quote=dialect.quotechar,
        escape=dialect.escapechar,
        encoding=chunk.encoding,
    )
    return _rows(status)


# Encoded bytes per piece of a binary COPY stream: small enough that a batch is never held
# encoded in full (the driver copies each piece once more), large enough to keep the per-piece
# overhead (a thread hop, a CopyData message) negligible.
PIECE_BYTES = 2 << 20


async def copy_arrow(
    conn: Any,
    schema: str,
    table: str,
    columns: Sequence[str],
    batch: pa.RecordBatch,
    encoder: BinaryEncoder,
) -> int:
    """COPY one Arrow batch as binary, encoding it piece by piece as the stream goes out.

    pgpq releases the GIL, so the pieces are encoded in a worker thread while the event loop
    sends the previous one. Returns the rows copied.
    """
    rows = batch.num_rows
    per_row = max(1, batch.nbytes // max(rows, 1))
    step = max(1_000, PIECE_BYTES // per_row)

    async def pieces() -> AsyncIterator[bytes]:
        enc = encoder.new_stream()
        yield enc.write_header()
        for offset in range(0, rows, step):
            yield await asyncio.to_thread(enc.write_batch, batch.slice(offset, step))
        yield enc.finish()

    status = await conn.copy_to_table(
        table, schema_name=schema, columns=list(columns), source=pieces(), format="binary"
    )
    return _rows(status)


def _rows(status: str | None) -> int:
    return int(status.split()[-1]) if status else 0


class BinaryEncoder:
    """Encodes Arrow batches of one schema to PostgreSQL binary COPY payloads."""

    def __init__(self, schema: pa.Schema, json_columns: Sequence[str] = ()) -> None:
        """Build the encoder; ``json_columns`` are string columns sent as ``jsonb``."""
        encoders: dict[str, Any] = {}
        for field in schema:
            if field.name in json_columns:
                builder = (
                    pgpq_encoders.LargeStringEncoderBuilder
                    if field.type == "large_string"
                    else pgpq_encoders.StringEncoderBuilder
                )
                encoders[field.name] = builder.new_with_output(field, pgpq_schema.Jsonb())
            else:
                encoders[field.name] = pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(field)
        self._encoders = encoders
        self.schema = schema

    def new_stream(self) -> Any:
        """A pgpq encoder for one COPY stream (header, batches, trailer; then it is finished):
        each batch is its own COPY, so each gets a fresh one from the cached builders."""
        return pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(self.schema, self._encoders)

    def encode(self, batch: pa.RecordBatch) -> bytes:
        """One complete binary COPY payload (header, rows, trailer) for ``batch``."""
        enc = self.new_stream()
        return b"".join((enc.write_header(), enc.write_batch(batch), enc.finish()))

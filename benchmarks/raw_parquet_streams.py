"""A floor for pgingest's Parquet load: the file's batches as binary COPY, minus pgingest.

The Parquet file is read in batches of 50,000 rows (pgingest's default batch size), each
encoded by pgpq in a worker thread and sent as one ``COPY ... FROM STDIN (FORMAT binary)`` in
its own transaction, over two asyncpg connections, then the table is ``ANALYZE``d as pgingest
does after a load that changed much of a table: pgingest's Parquet path without detection,
inference, hashing, the manifest or lineage. The benchmark's ``raw_parquet_2streams_analyze``
case runs it into the benchmark's table (whose column types are the file's).

Usage: python benchmarks/raw_parquet_streams.py FILE.parquet DSN TABLE
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pgpq
import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 50_000
STREAMS = 2


def encode(encoder: pgpq.ArrowToPostgresBinaryEncoder, batch: pa.RecordBatch) -> bytes:
    """One complete binary COPY payload (header, rows, trailer) for ``batch``."""
    return b"".join((encoder.write_header(), encoder.write_batch(batch), encoder.finish()))


async def main(path: str, dsn: str, table: str) -> None:
    parquet = pq.ParquetFile(path)
    schema = parquet.schema_arrow
    builders = {f.name: pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(f) for f in schema}
    names = [f.name for f in schema]
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=STREAMS)

    def next_payload(batches: Iterator[pa.RecordBatch]) -> bytes | None:
        batch = next(batches, None)
        if batch is None:
            return None
        encoder = pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(schema, builders)
        return encode(encoder, batch)

    async def produce() -> None:
        batches = parquet.iter_batches(batch_size=BATCH_ROWS)
        while (payload := await asyncio.to_thread(next_payload, batches)) is not None:
            await queue.put(payload)
        for _ in range(STREAMS):
            await queue.put(None)

    async def consume(conn: asyncpg.Connection) -> None:
        while (payload := await queue.get()) is not None:
            async with conn.transaction():
                await conn.copy_to_table(
                    table, source=_chunks(payload), columns=names, format="binary"
                )

    conns = await asyncio.gather(*(asyncpg.connect(dsn) for _ in range(STREAMS)))
    try:
        await asyncio.gather(produce(), *(consume(conn) for conn in conns))
        await conns[0].execute(f"ANALYZE {table}")
    finally:
        await asyncio.gather(*(conn.close() for conn in conns))


async def _chunks(payload: bytes) -> AsyncIterator[bytes]:
    yield payload


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))

"""Baseline for the manifest's cost: what pgingest does for a CSV file, minus pgingest.

The file's data rows are cut into 4 MiB chunks at line ends and sent raw, each chunk one
``COPY ... FROM STDIN (FORMAT csv)`` in its own transaction, over two asyncpg connections:
pgingest's CSV hot path without detection, hashing, the manifest or lineage. The benchmark's
``raw_csv_2streams`` case runs it; ``pgingest_csv_no_lineage`` minus this is the bookkeeping's
price. (The file must not hold line breaks inside quoted fields: the benchmark's does not.)
With ``analyze`` it ends with the ``ANALYZE`` pgingest runs after a load that changed much of a
table (``raw_csv_2streams_analyze``): the least any loader owes for that file on this path.

Usage: python benchmarks/raw_streams.py FILE.csv DSN TABLE [analyze]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import asyncpg

CHUNK_BYTES = 4 << 20
STREAMS = 2


def chunks(path: str) -> Iterator[bytes]:
    """The data rows in ~CHUNK_BYTES pieces ending at a line end (the header dropped)."""
    with open(path, "rb") as handle:
        handle.readline()
        carry = b""
        while block := handle.read(CHUNK_BYTES):
            data = carry + block
            cut = data.rfind(b"\n") + 1
            carry = data[cut:]
            if cut:
                yield data[:cut]
        if carry:
            yield carry


async def main(path: str, dsn: str, table: str, analyze: bool) -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1)

    async def produce() -> None:
        iterator = chunks(path)
        while (data := await asyncio.to_thread(next, iterator, None)) is not None:
            await queue.put(data)
        for _ in range(STREAMS):
            await queue.put(None)

    async def consume() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            while (data := await queue.get()) is not None:
                async with conn.transaction():
                    await conn.copy_to_table(table, source=_reader(data), format="csv")
        finally:
            await conn.close()

    await asyncio.gather(produce(), *(consume() for _ in range(STREAMS)))
    if analyze:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"ANALYZE {table}")
        finally:
            await conn.close()


async def _reader(data: bytes) -> Iterator[bytes]:  # type: ignore[misc]
    yield data


if __name__ == "__main__":
    path, dsn, table = sys.argv[1:4]
    asyncio.run(main(path, dsn, table, analyze=sys.argv[4:5] == ["analyze"]))

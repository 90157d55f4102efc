"""upsert and merge, inside a batch's transaction: the batch COPYed into the connection's staging
table, then applied to the target."""

from __future__ import annotations

from typing import Any, cast

from pgingest.model import CsvChunk, CsvDialect
from pgingest.pg import copy, merge
from pgingest.pipeline.write.payload import Payload


async def apply_staged(
    conn: Any, target: merge.Target, payload: Payload, seen: str | None, more: bool
) -> int:
    """upsert/merge, inside the batch's transaction: COPY the batch into the connection's
    staging table and apply it to the target. Returns the rows staged (the file's rows).
    ``more``: other batches follow in the same transaction (``--txn file``), so the staging
    table is emptied here rather than by the commit."""
    await merge.ensure_stage(conn, target)
    if payload.kind == "arrow":
        encoder = cast("copy.BinaryEncoder", payload.encoder)
        rows = await copy.copy_arrow(
            conn, "pg_temp", target.stage, target.copy_columns, payload.batch, encoder
        )
    else:
        chunk = CsvChunk(payload.data, payload.first_line, payload.encoding)
        dialect = cast("CsvDialect", payload.dialect)
        rows = await copy.copy_csv(
            conn, "pg_temp", target.stage, target.copy_columns, chunk, dialect
        )
    await merge.apply_stage(conn, target, payload.dedup, seen)
    if more:
        await merge.clear_stage(conn, target)
    return int(rows)

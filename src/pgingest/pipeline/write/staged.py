"""upsert and merge, inside a batch's transaction: the batch COPYed into the connection's staging
table, then applied to the target."""

from __future__ import annotations

from typing import Any, cast

from pgingest.model import CsvChunk, CsvDialect
from pgingest.pg import copy, merge
from pgingest.pg.errors import copy_position, is_driver_error, translate
from pgingest.pipeline.write.payload import Payload


async def apply_staged(
    conn: Any, target: merge.Target, payload: Payload, path: str, seen: str | None, more: bool
) -> int:
    """upsert/merge, inside the batch's transaction: COPY the batch into the connection's
    staging table and apply it to the target. Returns the rows staged (the file's rows).
    ``more``: other batches follow in the same transaction (``--txn file``), so the staging
    table is emptied here rather than by the commit."""
    await merge.ensure_stage(conn, target)
    try:
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
    except Exception as exc:
        # A routed batch's rows are not consecutive lines: name the file's line.
        position = copy_position(exc) if is_driver_error(exc) else None
        if position is not None and payload.lines is not None:
            line = int(payload.lines[min(position.line, len(payload.lines)) - 1])
            raise translate(exc, path=path, first_line=line - position.line + 1) from exc
        raise
    await merge.apply_stage(conn, target, payload.dedup, seen)
    if more:
        await merge.clear_stage(conn, target)
    return int(rows)

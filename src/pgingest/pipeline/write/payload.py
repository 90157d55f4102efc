"""A batch ready for COPY, and how a shaped Arrow batch becomes one (binary or CSV text)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pgingest.errors import PgIngestError, RowError
from pgingest.model import CsvDialect, Reject, RowRecords
from pgingest.pg import copy
from pgingest.pipeline.write.shape import Shaped, batch_to_csv

log = logging.getLogger("pgingest.run")


@dataclass(frozen=True, slots=True)
class Payload:
    """One batch ready for COPY: CSV bytes, or an Arrow batch with its binary encoder (encoded
    piece by piece while it is sent, so a batch is never held twice in memory)."""

    kind: str  # "csv" | "arrow"
    data: bytes
    first_line: int
    encoding: str = "UTF8"
    dialect: CsvDialect | None = None
    batch: Any = None
    encoder: copy.BinaryEncoder | None = None
    rejects: tuple[Reject, ...] = ()
    """Bad rows of this batch (set aside by ``--on-error skip``, or values the reader loaded
    as NULL), recorded in ``pgingest.rejects`` in the batch's transaction."""
    lines: Any = None
    """The file line of each row: of a routed batch (upsert, merge), to name a bad row's line,
    or of the records left in ``data`` once bad rows were taken out."""
    record_ends: Any = None
    """Where each record of ``data`` ends, once bad rows were taken out (else ``None``)."""
    error: RowError | None = None
    """The Arrow batch does not fit the table's types (``batch`` is not aligned yet)."""
    dedup: bool = False
    """The batch may repeat a key: apply only each key's last occurrence."""
    records: RowRecords | None = None
    """Each row's record as the file has it, for the reject a bad row becomes: of a routed
    batch of CSV text rows, or of an NDJSON batch (its lines)."""
    numbered: bool = False
    """``lines`` names each row's file line from the start, as a routed batch's do (an
    NDJSON batch's rows): a batch whose bad rows were taken out has ``record_ends`` set."""

    @property
    def nbytes(self) -> int:
        """Input bytes this batch stands for (for Arrow batches: their size in memory)."""
        return len(self.data) if self.kind == "csv" else int(self.batch.nbytes)


def encode_shaped(
    shaped: Shaped, first_line: int, cache: list[copy.BinaryEncoder | None]
) -> Payload:
    """A payload for a shaped batch: binary COPY with the cached encoder (rebuilt when the
    schema changes), or CSV text when binary COPY cannot carry a column."""
    if shaped.csv is not None:
        return Payload("csv", shaped.csv, first_line, "UTF8", CsvDialect())
    if shaped.batch is None:
        raise PgIngestError("internal: a shaped batch holds neither CSV nor Arrow data")
    encoder = cache[0]
    if encoder is None or encoder.schema != shaped.batch.schema:
        try:
            encoder = copy.BinaryEncoder(shaped.batch.schema, shaped.json_columns)
        except (RuntimeError, TypeError, ValueError) as exc:
            # An Arrow type the binary encoder lacks: send text, the server casts it.
            log.debug("binary COPY cannot encode %s (%s): sending CSV", shaped.batch.schema, exc)
            return Payload("csv", batch_to_csv(shaped.batch), first_line, "UTF8", CsvDialect())
        cache[0] = encoder
    return Payload("arrow", b"", first_line, batch=shaped.batch, encoder=encoder)

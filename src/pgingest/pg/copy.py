"""COPY into a table: raw CSV bytes as ``FORMAT csv``, Arrow batches as binary COPY (pgpq).

Nothing here loops over rows or values: CSV bytes pass through untouched (the server parses
them), and Arrow batches are encoded by pgpq's Rust encoder.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pgingest.errors import ConnectionLostError, UnreadableNoticeError
from pgingest.model import CsvChunk, CsvDialect
from pgingest.pg.arrays import is_timestamptz_list, timestamptz_arrays
from pgingest.pg.errors import is_gone
from pgingest.schema.names import quote_ident
from pgingest.schema.pgtypes import is_list_type

if TYPE_CHECKING:
    import pyarrow as pa


_DATESTYLES = frozenset({"ISO, DMY", "ISO, MDY"})


def _datestyle_sql(datestyle: str | None) -> str:
    """``SET LOCAL datestyle`` for the transaction's COPY (one of ``_DATESTYLES``), to send
    ahead of it in its query string; empty without one."""
    if datestyle is None:
        return ""
    if datestyle not in _DATESTYLES:
        raise ValueError(f"unknown datestyle {datestyle!r}")
    return f"SET LOCAL datestyle = '{datestyle}'; "


def _csv_options(dialect: CsvDialect, encoding: str | None) -> list[str]:
    """The options of a ``FORMAT csv`` COPY of ``dialect`` (quoted literals)."""
    options = [
        "FORMAT csv",
        f"DELIMITER {_literal(dialect.delimiter)}",
        f"QUOTE {_literal(dialect.quotechar)}",
    ]
    if dialect.escapechar is not None:
        options.append(f"ESCAPE {_literal(dialect.escapechar)}")
    if encoding is not None:
        options.append(f"ENCODING {_literal(encoding)}")
    return options


async def _copy_in(conn: Any, sql: str, data: bytes | memoryview) -> str:
    """asyncpg's COPY-in primitive, given the statement (its ``copy_to_table`` builds its
    own: nothing can go ahead of it, and it has no ``ON_ERROR``); returns the status.

    A pool's proxy passes a private name on to its connection as it is, and has none once the
    loss of that connection detached it (noticed between two statements): that is a lost
    connection, as a public method's "released back to the pool" is, not an unknown error.
    """
    try:
        copy_in = conn._copy_in
    except AttributeError:
        if not is_gone(conn):  # (the connection is asked, as everywhere)
            raise
        raise ConnectionLostError("connection lost before the COPY") from None
    status: str = await copy_in(sql, data, None)
    return status


def _copy_from_stdin(schema: str, table: str, columns: Sequence[str], options: list[str]) -> str:
    cols = ", ".join(quote_ident(c) for c in columns)
    return (
        f"COPY {quote_ident(schema)}.{quote_ident(table)} ({cols}) FROM STDIN"
        f" ({', '.join(options)})"
    )


async def copy_csv(
    conn: Any,
    schema: str,
    table: str,
    columns: Sequence[str],
    chunk: CsvChunk,
    dialect: CsvDialect,
    datestyle: str | None = None,
    *,
    opening: str = "",
) -> int:
    """COPY one raw CSV chunk (whole records, no header) into the table; return rows copied.

    ``datestyle`` (``ISO, DMY`` or ``ISO, MDY``, inside a transaction) tells the server how
    to read dates such as ``01/02/2026``, for this transaction only. ``opening``: statements
    to send ahead of the COPY in its query string (a batch's ``BEGIN``: see
    :mod:`pgingest.pg.transaction`).
    """
    options = _csv_options(dialect, chunk.encoding)
    sql = opening + _datestyle_sql(datestyle) + _copy_from_stdin(schema, table, columns, options)
    status = await _copy_in(conn, sql, memoryview(chunk.data))
    return _rows(status)


@dataclass(frozen=True, slots=True)
class SkippedRow:
    """A row the server skipped (``ON_ERROR ignore``): its line in the stream, column, why."""

    line: int
    column: str | None
    value: str
    reason: str


_SKIP_NOTICE_SOURCE = "CopyFromTextLikeOneRow"
_SKIP_NOTICE = re.compile(r'at line (\d+) for column "(.*)": "(.*)"$', re.S)
_ENCODINGS = frozenset(
    {
        "UTF8",
        "WIN1252",
        "LATIN1",
        "WIN1250",
        "WIN1251",
        "LATIN2",
        "LATIN9",
        "WIN1253",
        "ISO_8859_7",
        "WIN1254",
        "LATIN5",
        "WIN1255",
        "ISO_8859_8",
    }
)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def copy_csv_skipping(
    conn: Any,
    schema: str,
    table: str,
    columns: Sequence[str],
    chunk: CsvChunk,
    dialect: CsvDialect,
    datestyle: str | None = None,
) -> tuple[int, list[SkippedRow]]:
    """PostgreSQL 17+: COPY one raw CSV chunk with ``ON_ERROR ignore, LOG_VERBOSITY
    verbose``: a value its column's type cannot read skips its row, and the server says which
    (a notice per row, with the line and column in its context). Malformed records (a field
    too many) still fail the COPY.

    Returns:
        The rows copied, and the rows skipped.
    """
    if chunk.encoding not in _ENCODINGS or dialect.escapechar is not None:
        raise ValueError("copy_csv_skipping takes raw chunks of a known encoding")
    options = [*_csv_options(dialect, chunk.encoding), "ON_ERROR ignore", "LOG_VERBOSITY verbose"]
    sql = _datestyle_sql(datestyle) + _copy_from_stdin(schema, table, columns, options)
    notices: list[Any] = []

    def listen(_conn: Any, message: Any) -> None:
        notices.append(message)

    conn.add_log_listener(listen)
    try:
        # (names quoted, options from closed sets or quoted literals)
        status = await _copy_in(conn, sql, memoryview(chunk.data))
        await asyncio.sleep(0)  # notices are delivered through the event loop
    finally:
        conn.remove_log_listener(listen)
    skipped = []
    for notice in notices:
        if getattr(notice, "server_source_function", None) != _SKIP_NOTICE_SOURCE:
            continue
        # The notice has no structured line field: its (English) message holds it. Another
        # server language cannot be read, so the caller sets the rows aside itself.
        match = _SKIP_NOTICE.search(str(getattr(notice, "message", "")))
        if match is None:
            raise UnreadableNoticeError(str(getattr(notice, "message", notice)))
        line, column, value = int(match.group(1)), match.group(2), match.group(3)
        reason = f"invalid input for column {column}: {value!r} (skipped by the server)"
        skipped.append(SkippedRow(line, column, value, reason))
    return _rows(status), skipped


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

    loop = asyncio.get_running_loop()

    async def pieces(protocol: Any) -> AsyncIterator[bytes]:
        enc = encoder.new_stream()
        yield enc.write_header()
        # The next piece is encoded while the driver sends this one (and waits for the socket
        # to drain): encoding and sending overlap instead of taking turns. One piece at a time
        # in the encoder, which is not safe to share between threads.
        offsets = iter(range(0, rows, step))
        pending = _encode_next(loop, enc, batch, offsets, step)
        while pending is not None:
            piece = await pending
            if protocol is not None and not protocol.is_connected():
                return  # lost: the stream ends, and the driver raises the loss it recorded
            pending = _encode_next(loop, enc, batch, offsets, step)
            yield piece
        yield enc.finish()

    with writer_woken_on_loss(conn) as protocol:
        status = await conn.copy_to_table(
            table,
            schema_name=schema,
            columns=list(columns),
            source=pieces(protocol),
            format="binary",
        )
    return _rows(status)


@contextlib.contextmanager
def writer_woken_on_loss(conn: Any) -> Iterator[Any]:
    """Around a COPY that the driver writes in steps (from an iterator, or records): should
    the connection be lost, wake the driver if it waits for the socket to drain. Yields the
    driver's protocol (``is_connected()``), or ``None``.

    asyncpg waits for that (``writing_allowed``) before it writes the next piece, and a lost
    connection never sets the event again: a COPY whose session the server ended while the
    socket was full (``pg_terminate_backend``, a restart) waited for the stall monitor (60 s
    by default). Woken, it ends the stream and raises the loss, and the batch is retried at
    once. A pool's proxy is detached from its connection once that is lost: what must outlive
    the loss is taken from the connection itself.
    """
    raw = getattr(conn, "_con", None) or conn
    protocol = getattr(raw, "_protocol", None)

    def wake(_conn: Any) -> None:
        allowed = getattr(protocol, "writing_allowed", None)
        if isinstance(allowed, asyncio.Event):
            allowed.set()

    raw.add_termination_listener(wake)
    try:
        yield protocol
    finally:
        raw.remove_termination_listener(wake)


def _encode_next(
    loop: asyncio.AbstractEventLoop, enc: Any, batch: pa.RecordBatch, offsets: Any, step: int
) -> asyncio.Future[bytes] | None:
    """Start encoding the batch's next slice in a worker thread (``None`` after the last)."""
    offset = next(offsets, None)
    if offset is None:
        return None
    return loop.run_in_executor(None, enc.write_batch, batch.slice(offset, step))


def _rows(status: str | None) -> int:
    return int(status.split()[-1]) if status else 0


class BinaryEncoder:
    """Encodes Arrow batches of one schema to PostgreSQL binary COPY payloads."""

    def __init__(self, schema: pa.Schema, json_columns: Sequence[str] = ()) -> None:
        """Build the encoder; ``json_columns`` are string columns (or lists of strings) sent
        as ``jsonb`` (``jsonb[]``). A list of timestamps with a time zone is sent as
        ``timestamptz[]`` (see :mod:`pgingest.pg.arrays`)."""
        import pgpq
        import pyarrow as pa
        from pgpq import encoders as pgpq_encoders

        encoders: dict[str, Any] = {}
        fields = []
        for field in schema:
            if is_timestamptz_list(field.type):
                field = field.with_type(pa.large_binary())  # its array_send bytes, as they are
                encoders[field.name] = pgpq_encoders.LargeBinaryEncoderBuilder(field)
            elif field.name in json_columns:
                encoders[field.name] = _jsonb_encoder(field)
            else:
                encoders[field.name] = pgpq.ArrowToPostgresBinaryEncoder.infer_encoder(field)
            fields.append(field)
        self._encoders = encoders
        self._sent_schema = pa.schema(fields)
        self._payloads = tuple(
            i for i, field in enumerate(schema) if is_timestamptz_list(field.type)
        )
        self.schema = schema

    def new_stream(self) -> Any:
        """A pgpq encoder for one COPY stream (header, batches, trailer; then it is finished):
        each batch is its own COPY, so each gets a fresh one from the cached builders."""
        import pgpq

        stream = pgpq.ArrowToPostgresBinaryEncoder.new_with_encoders(
            self._sent_schema, self._encoders
        )
        return _Stream(stream, self) if self._payloads else stream

    def prepare(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` as pgpq is given it: its ``timestamptz[]`` columns as their bytes."""
        import pyarrow as pa

        if not self._payloads:
            return batch
        columns = list(batch.columns)
        for i in self._payloads:
            columns[i] = timestamptz_arrays(columns[i])
        return pa.RecordBatch.from_arrays(columns, schema=self._sent_schema)

    def encode(self, batch: pa.RecordBatch) -> bytes:
        """One complete binary COPY payload (header, rows, trailer) for ``batch``."""
        enc = self.new_stream()
        return b"".join((enc.write_header(), enc.write_batch(batch), enc.finish()))


class _Stream:
    """A pgpq stream given batches through :meth:`BinaryEncoder.prepare`."""

    def __init__(self, stream: Any, encoder: BinaryEncoder) -> None:
        self._stream = stream
        self._encoder = encoder

    def write_header(self) -> bytes:
        header: bytes = self._stream.write_header()
        return header

    def write_batch(self, batch: pa.RecordBatch) -> bytes:
        data: bytes = self._stream.write_batch(self._encoder.prepare(batch))
        return data

    def finish(self) -> bytes:
        trailer: bytes = self._stream.finish()
        return trailer


def _jsonb_encoder(field: pa.Field) -> Any:
    """pgpq's encoder of a string column, or a list of strings, as ``jsonb`` (``jsonb[]``:
    its elements say so, as the server checks)."""
    import pyarrow as pa
    from pgpq import encoders
    from pgpq import schema as pgpq_schema

    def strings(field: pa.Field) -> Any:
        builder = (
            encoders.LargeStringEncoderBuilder
            if field.type == "large_string"
            else encoders.StringEncoderBuilder
        )
        return builder.new_with_output(field, pgpq_schema.Jsonb())

    if is_list_type(field.type):
        lists = (
            encoders.LargeListEncoderBuilder
            if pa.types.is_large_list(field.type)
            else encoders.ListEncoderBuilder
        )
        return lists.new_with_inner(field, strings(field.type.value_field))
    return strings(field)

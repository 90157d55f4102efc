"""Read CSV/TSV files: column names, a text sample, and streams of raw or Arrow chunks.

Raw chunks are whole records cut from the byte stream with vectorized scans (no per-row
Python), ready for ``COPY ... (FORMAT csv)``: each is checked for what COPY would read
otherwise than Python's ``csv`` module, and such a chunk is read client-side and written again
(:mod:`pgingest.sources.repair`). Arrow chunks come from pyarrow's streaming CSV reader, every
column as text, fed through a stream that decodes the file to UTF-8. The file's encoding is
decided once (:mod:`pgingest.sources.encoding`).
"""

from __future__ import annotations

import io
from collections.abc import Generator, Iterator
from dataclasses import replace
from typing import IO, TYPE_CHECKING

from pgingest.errors import ConfigError, RecordFormatError, RowError, SourceError
from pgingest.model import ArrowChunk, Chunk, CsvChunk, CsvDialect, Reject, SourceInfo
from pgingest.sources.base import (
    DECODE_FALLBACK,
    PG_ENCODINGS,
    CsvOptions,
    Utf8Stream,
    line_at,
    normalize_encoding,
    one_line,
    open_stream,
    read_block,
)
from pgingest.sources.detect import decode_sample, reader_for
from pgingest.sources.encoding import decide, describe, scan_file
from pgingest.sources.records import python_records
from pgingest.sources.repair import (
    BadRecord,
    Marks,
    copy_misreads,
    is_utf8,
    record_end_after,
    repair_chunk,
)

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["CsvSource", "read_typed_records"]

READ_BYTES = 2 << 20
"""Largest single read (2 MiB): a block still in cache while it is scanned and copied runs
about 1.5x faster here than 8 MiB blocks; still few enough reads for full disk speed."""
MAX_RECORD_BYTES = 256 << 20
"""A record longer than this (256 MiB) is taken for an unterminated quote, not data."""
ARROW_BLOCK_BYTES = 2 << 20
"""pyarrow's CSV block size (2 MiB: 8 MiB held ~120 MB while sampling 50,000 rows, for no
speed gain); grown when a record does not fit in one block."""
_MAX_ARROW_BLOCK = 1 << 30
_READ_AHEAD_BLOCKS = 3
"""Blocks read ahead of the parser: pyarrow's own prefetch (32 blocks) would hold 64 MB."""
_HEAD_BYTES = 256 << 10
_ESTIMATE_BYTES = 16 << 10
_SLACK_BYTES = 64 << 10
"""Read past a chunk's size, so that the record it ends in is usually complete."""
_BOM = b"\xef\xbb\xbf"


class CsvSource:
    """A delimited text file opened for reading (see :class:`pgingest.sources.Source`)."""

    def __init__(self, info: SourceInfo, options: CsvOptions) -> None:
        """Read the file's first record to learn its columns.

        Raises:
            SourceError: no dialect in ``info``, the first record cannot be read, or more
                names were given than the file has columns.
        """
        if info.dialect is None:
            raise SourceError(f"{info.path}: no CSV dialect; detect the file first", path=info.path)
        header = options.header
        self._has_header = header if header is not None else info.dialect.has_header
        self._forced = normalize_encoding(options.encoding) if options.encoding else None
        self._encoding = self._forced or normalize_encoding(info.dialect.encoding)
        self._settled = self._forced is not None or info.dialect.encoding_settled
        self.warnings: list[str] = []
        """What the reader decided that the user should know (an encoding other than UTF-8,
        bytes that are not in the file's encoding), one line each."""
        if self._forced is None and info.dialect.encoding_note:
            self.warnings.append(info.dialect.encoding_note)
        self._dialect: CsvDialect = replace(
            info.dialect, has_header=self._has_header, encoding=self._encoding
        )
        self.info = replace(info, dialect=self._dialect)
        """What detection found, with the options given here applied."""
        self._path = info.path
        self._options = options
        self._quote = info.dialect.quotechar.encode("ascii")
        self._newline = b"\r" if info.dialect.newline == "\r" else b"\n"
        fields, record_start, record_end, lines_before, header_lines = self._read_first_record()
        self._data_offset = record_end if self._has_header else record_start
        self._first_line = 1 + lines_before + (header_lines if self._has_header else 0)
        self._names = self._make_names(fields)
        self._marks = Marks()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing stays open between calls (each stream closes itself); kept for the protocol."""

    def column_names(self) -> list[str]:
        """Return the column names: the header's, the given names, or ``col_1``, ``col_2``..."""
        return list(self._names)

    # -- first record -------------------------------------------------------------------------

    def _read_first_record(self) -> tuple[list[str], int, int, int, int]:
        """Find the first record: its fields, start and end offsets (BOM and blank lines
        before it skipped), the blank lines before it, and the physical lines it spans."""
        stream = open_stream(self._path, self.info.compression)
        try:
            head = read_block(stream, _HEAD_BYTES, self._path)
            start = len(_BOM) if head.startswith(_BOM) else 0
            skipped = 0
            for _ in range(self._dialect.skip_lines):  # a sep= hint line
                line_end = head.find(self._newline, start)
                if line_end < 0:
                    break
                start, skipped = line_end + 1, skipped + 1
            eof = False
            while True:
                body = head[start:]
                record_start = start + len(body) - len(body.lstrip(b"\r\n"))
                end = self._first_record_end(head, record_start, eof)
                if end >= 0 or eof or len(head) - start > MAX_RECORD_BYTES:
                    break
                more = read_block(stream, max(len(head), _HEAD_BYTES), self._path)
                eof = not more
                head += more
        finally:
            stream.close()
        if end < 0 and eof:
            end = len(head)
        if end < 0:
            raise RowError(
                f"{self._path}: line 1: first record longer than {MAX_RECORD_BYTES >> 20} MiB",
                path=self._path,
                line=1,
            )
        record = head[record_start:end]
        text = decode_sample(record, self._encoding)
        d = self._dialect
        fields = next(reader_for(text, d.delimiter, d.quotechar, d.escapechar), [])
        lines_before = skipped + head.count(self._newline, start, record_start)
        return fields, record_start, end, lines_before, record.count(self._newline)

    def _first_record_end(self, data: bytes, start: int, eof: bool) -> int:
        """Offset just past the record starting at ``start``, as Python's ``csv`` module reads
        it (the reference the data records are read by), or -1 when ``data`` may end inside it.

        A quote opens a quoted field only at a field's start, so the stray quote of
        ``id,"a "b"`` does not run the header on to the end of the file. Backslash-escaped
        quotes are cut by quote parity, as the data records are.
        """
        d = self._dialect
        if d.escapechar is not None:
            return _first_record_end(data, start, self._newline, self._quote)
        line_end = min(
            (at for at in (data.find(b"\n", start), data.find(b"\r", start)) if at >= 0),
            default=-1,
        )
        if line_end == len(data) - 1 and data.endswith(b"\r") and not eof:
            return -1  # its \n may be in the next block
        if line_end >= 0 and self._quote not in data[start:line_end]:
            # No quote on the line (the usual header): it ends there, for every reading (and a
            # small file's load imports no numpy).
            return line_end + (2 if data[line_end : line_end + 2] == b"\r\n" else 1)
        cut = python_records(
            data[start:],
            1,
            delimiter=d.delimiter,
            quote=d.quotechar,
            newline="\r" if d.newline == "\r" else "\n",
            final=eof,
        )
        if not len(cut.records):
            return -1
        if cut.records.broken[0]:
            raise RecordFormatError(
                f"{self._path}: line {1 + data.count(self._newline, 0, start)}: "
                "unterminated quoted field in the first record",
                path=self._path,
                line=1 + data.count(self._newline, 0, start),
            )
        return start + int(cut.records.ends[0])

    def _make_names(self, fields: list[str]) -> list[str]:
        width = len(fields)
        given = list(self._options.names or ())
        if len(given) > width:
            raise SourceError(
                f"{self._path}: {len(given)} column names given, but the file has {width} columns",
                path=self._path,
            )
        if given:
            # Named columns first, the rest by position: the header's names, or col_N.
            rest = fields[len(given) :] if self._has_header else []
            rest += [f"col_{i}" for i in range(len(given) + len(rest) + 1, width + 1)]
            return given + rest
        if self._has_header:
            return fields
        return [f"col_{i}" for i in range(1, width + 1)]

    # -- raw chunks ---------------------------------------------------------------------------

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """Stream the data records (header excluded) in bounded-memory chunks.

        Args:
            batch_rows: rows per chunk (raw chunks estimate it from the average record size).
            batch_bytes: bytes per chunk, roughly.
            raw: yield :class:`CsvChunk` raw bytes for ``COPY ... (FORMAT csv)``; else
                :class:`ArrowChunk` batches of text columns.

        Returns:
            An iterator of chunks; raw chunks always hold whole records, which COPY reads as
            Python's ``csv`` module reads the file: the file's bytes, or (``lines`` set) the
            records written again in UTF-8, every value quoted.

        Raises:
            ConfigError: ``raw`` with backslash-escaped quotes (the quote-parity cut does not
                hold for them); use ``raw=False``.
            RowError: a record the reader cannot load (a NUL byte, bytes not in the file's
                encoding, a wrong field count in a chunk read client-side) unless
                ``skip_bad_rows``, or a malformed row (raw=False), naming the line.
            SourceError: the file cannot be read or decompressed.
        """
        if batch_rows < 1 or batch_bytes < 1:
            raise ConfigError("batch_rows and batch_bytes must be positive")
        if not raw:
            return self._arrow_chunks(batch_rows, batch_bytes)
        if self._dialect.escapechar is not None:
            raise ConfigError(
                f"{self._path}: quotes escaped with {self._dialect.escapechar!r} cannot be "
                "passed through raw; read with raw=False"
            )
        return self._raw_chunks(batch_rows, batch_bytes)

    def _raw_chunks(self, batch_rows: int, batch_bytes: int) -> Iterator[CsvChunk]:
        """Chunks of whole records. Each chunk is checked for what COPY would read otherwise
        than Python's ``csv`` module; such a chunk is read client-side and written again
        (:mod:`pgingest.sources.repair`), the others go as they are."""
        nl = self._newline
        target = batch_bytes
        # a small first read, to estimate the record size before choosing the chunk size
        want = max(1, min(_ESTIMATE_BYTES, target // 2))
        estimated = False
        line = self._first_line
        data = b""
        offset = self._data_offset  # of data's first byte in the (decompressed) file
        eof = False
        seekable = self.info.compression == "none"
        stream = open_stream(self._path, self.info.compression)
        try:
            read_block(stream, self._data_offset, self._path)  # the BOM, the header
            while True:
                if not eof and want > 0:
                    block = read_block(stream, want, self._path)
                    eof = len(block) < want
                    data = data + block if data else block
                if not estimated and (eof or data.count(nl)):
                    # batch_rows as bytes, from the first read's average record size
                    estimated = True
                    newlines = data.count(nl)
                    if newlines:
                        target = max(1, min(batch_bytes, batch_rows * len(data) // newlines))
                    if len(data) < target + _SLACK_BYTES and not eof:
                        want = target + _SLACK_BYTES - len(data)
                        continue
                if eof and data.endswith((nl + nl, b"\r\n\r\n")):
                    # trailing blank lines: COPY would read them as rows with missing columns
                    data = data.rstrip(b"\r\n")
                    if data:
                        data += b"\r\n" if self._dialect.newline == "\r\n" else nl
                if not data or (eof and len(data) <= 2 and not data.strip(b"\r\n")):
                    return
                marks = self._marks.mark(data, self._dialect.quotechar, nl)
                end = record_end_after(data, marks, target)
                if eof and end < 0:
                    end = len(data)  # the last record, without a line break
                # No record end as COPY pairs quotes: one stray quote runs COPY's quoted
                # section to the end of what was read; Python's reading decides where the
                # records end (the chunk is then read client-side).
                stray = end < 0
                chunk = None
                if end >= 0 or data.find(nl) >= 0:
                    chunk, end = self._checked_chunk(
                        data, marks, len(data) if stray else end, line, eof, offset, stray
                    )
                if chunk is None:  # a record (as Python reads it) runs past what was read
                    if len(data) > MAX_RECORD_BYTES:
                        raise RecordFormatError(
                            f"{self._path}: line {line}: record longer than "
                            f"{MAX_RECORD_BYTES >> 20} MiB (unterminated quote?)",
                            path=self._path,
                            line=line,
                        )
                    want = max(len(data), _SLACK_BYTES)
                    continue
                line += marks.lines(end)
                offset += end
                if seekable and not eof:
                    # read the rest again from the file (in the page cache): cheaper than
                    # copying it to the front of the next read
                    stream.seek(offset)
                    data = b""
                else:
                    data = data[end:]
                want = target + _SLACK_BYTES - len(data)
                yield chunk
                if eof and not data:
                    return
        finally:
            stream.close()

    def _checked_chunk(
        self,
        data: bytes,
        marks: Marks,
        end: int,
        line: int,
        eof: bool,
        offset: int,
        repair: bool = False,
    ) -> tuple[CsvChunk | None, int]:
        """The chunk of ``data[:end]`` for COPY, and where it ends: as it is, or read the way
        Python does and written again when COPY would misread it or it holds bytes that are
        not in the file's encoding (it may then end elsewhere: ``None`` when no record is
        complete). ``offset``: where ``data`` starts in the file; ``repair``: read it
        client-side in any case."""
        d = self._dialect
        not_utf8 = False
        if self._forced is None and not data.isascii():
            if not self._settled:
                self.settle_encoding(offset)
            not_utf8 = self._encoding == "utf-8" and not is_utf8(data, end)
        if not (repair or not_utf8) and not copy_misreads(
            data, marks, end, delimiter=d.delimiter, quote=d.quotechar, newline=d.newline
        ):
            return self._raw_chunk(data[:end] if end < len(data) else data, line), end
        repaired = repair_chunk(
            data,
            line,
            width=len(self._names),
            delimiter=d.delimiter,
            quote=d.quotechar,
            newline="\r" if d.newline == "\r" else "\n",
            encoding=self._encoding,
            final=eof,
        )
        if not repaired.end:
            return None, 0
        rejects = self._bad_records(repaired.bad)
        first = int(repaired.lines[0]) if len(repaired.lines) else line
        chunk = CsvChunk(repaired.data, first, "UTF8", lines=repaired.lines, rejects=rejects)
        return chunk, repaired.end

    def _raw_chunk(self, data: bytes, line: int) -> CsvChunk:
        """A chunk as it is, named by the file's encoding (UTF-8 ones were checked)."""
        return CsvChunk(data=data, first_line=line, encoding=PG_ENCODINGS[self._encoding])

    def settle_encoding(self, offset: int) -> str:
        """Decide the encoding of a file whose first non-ASCII bytes are at ``offset`` (all
        before reads the same in every encoding), on the evidence of the rest of the file;
        return it.

        Raises:
            SourceError: the file cannot be read.
        """
        if not self._settled:
            found = scan_file(self._path, self.info.compression, offset)
            self._encoding = decide(found, self._path, self.info.compression) or "utf-8"
            self._settled = True
            note = describe(found, self._encoding)
            if note:
                self.warnings.append(note)
        return self._encoding

    def _bad_records(self, bad: tuple[BadRecord, ...]) -> tuple[Reject, ...]:
        """Records the reader cannot load: the first one fails the file, or (when bad rows
        are skipped) each becomes a reject holding its bytes."""
        if bad and not self._options.skip_bad_rows:
            first = bad[0]
            raise RowError(
                f"{self._path}: line {first.line}: {first.reason}", path=self._path, line=first.line
            )
        return tuple(_reject(record, self._encoding) for record in bad)

    # -- Arrow chunks -------------------------------------------------------------------------

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """Return the first ``max_rows`` data rows, every column as ``pa.string()``.

        An unquoted empty field and the ``null_strings`` are null; a quoted empty field is "".

        Raises:
            RowError: a malformed row or a NUL byte among the rows read.
            SourceError: the file cannot be read.
        """
        import pyarrow as pa

        batches: list[pa.RecordBatch] = []
        rows = 0
        if max_rows > 0:
            chunks = self._arrow_chunks(max_rows, 1 << 62, skip_bad_records)
            try:
                for chunk in chunks:
                    batches.append(chunk.batch.slice(0, max_rows - rows))
                    rows += batches[-1].num_rows
                    if rows >= max_rows:
                        break
            finally:
                chunks.close()
        return pa.Table.from_batches(batches, schema=self._schema())

    def _schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(name, pa.string()) for name in self._names])

    def _arrow_chunks(
        self, batch_rows: int, batch_bytes: int, skip_bad: bool = False
    ) -> Generator[ArrowChunk, None, None]:
        import pyarrow as pa

        schema = self._schema()
        pending: list[pa.RecordBatch] = []
        pending_rows = pending_bytes = 0
        line = self._first_line
        rejects: list[Reject] = []
        for batch, bad in self._arrow_batches(skip_bad):
            rejects += bad
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=schema)
            while batch.num_rows:
                piece = batch.slice(0, batch_rows - pending_rows)
                batch = batch.slice(piece.num_rows)
                pending.append(piece)
                pending_rows += piece.num_rows
                pending_bytes += piece.nbytes
                if pending_rows >= batch_rows or pending_bytes >= batch_bytes:
                    chunk = _concat(pending, schema)
                    yield ArrowChunk(chunk, first_line=line, rejects=tuple(rejects))
                    line += pending_rows
                    pending, pending_rows, pending_bytes, rejects = [], 0, 0, []
        if pending_rows or rejects:
            yield ArrowChunk(_concat(pending, schema), first_line=line, rejects=tuple(rejects))

    def _arrow_batches(
        self, skip_bad: bool = False
    ) -> Iterator[tuple[pa.RecordBatch, list[Reject]]]:
        """Record batches of the data rows (internal column names), records of any size, and
        the rows left out of each; ``skip_bad`` (a sample) leaves out records of a wrong field
        count and does not check quotes. Bad rows skipped (``skip_bad_rows``): rows holding
        bytes that are not UTF-8 are left out too."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        internal = [f"f{i}" for i in range(len(self._names))]
        d = self._dialect
        parse = pacsv.ParseOptions(
            delimiter=d.delimiter,
            quote_char=d.quotechar,
            double_quote=d.escapechar is None,
            escape_char=d.escapechar or False,
            newlines_in_values=True,
            invalid_row_handler=(lambda _row: "skip") if skip_bad else None,
        )
        convert = pacsv.ConvertOptions(
            column_types=dict.fromkeys(internal, pa.string()),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=["", *self._options.null_strings],
        )
        done = 0
        block = ARROW_BLOCK_BYTES
        while True:
            stream = Utf8Stream(
                self.info,
                self._data_offset,
                self._encoding,
                self._newline,
                quote=self._quote if d.escapechar is None else None,
                delimiter=d.delimiter.encode("ascii"),
                max_ahead=_READ_AHEAD_BLOCKS,
                drop_nul=skip_bad,
                settle=None if self._settled else self.settle_encoding,
                replace_invalid=skip_bad or self._options.skip_bad_rows,
            )
            reader = None
            try:
                try:
                    reader = pacsv.open_csv(
                        stream,
                        read_options=pacsv.ReadOptions(
                            column_names=internal, block_size=block, use_threads=False
                        ),
                        parse_options=parse,
                        convert_options=convert,
                    )
                except pa.ArrowInvalid:
                    if not stream.has_data:
                        return  # no data rows: header only, or blank lines
                    raise
                skip = done  # rows already yielded, when read again with larger blocks
                for batch in reader:
                    stream.consumed()
                    if skip:
                        drop = min(skip, batch.num_rows)
                        batch, skip = batch.slice(drop), skip - drop
                    if not skip_bad:
                        self._check_quotes(stream)
                    bad: list[Reject] = []
                    if stream.replaced and not skip_bad and batch.num_rows:
                        batch, bad = self._without_invalid(batch, self._first_line + done)
                    if batch.num_rows or bad:
                        done += batch.num_rows + len(bad)
                        yield batch, bad
                if not skip_bad:
                    self._check_quotes(stream)
                return
            except pa.ArrowInvalid as exc:
                if "straddl" in str(exc) and block < _MAX_ARROW_BLOCK:
                    block *= 4  # a record longer than a block: read again with larger blocks
                    continue
                raise self._row_error(exc, self._first_line + done) from exc
            finally:
                stream.release()
                if reader is not None:
                    reader.close()  # stop pyarrow's read-ahead before closing its input
                stream.close()

    def _without_invalid(
        self, batch: pa.RecordBatch, first_line: int
    ) -> tuple[pa.RecordBatch, list[Reject]]:
        """The rows of a batch without those holding bytes that were not UTF-8 (read as
        U+FFFD), and a reject for each (its line counted in rows, as this path does)."""
        import pyarrow.compute as pc

        flagged = None
        for column in batch.columns:
            found = pc.fill_null(pc.match_substring(column, "\ufffd"), False)
            flagged = found if flagged is None else pc.or_(flagged, found)
        if flagged is None or not pc.any(flagged).as_py():
            return batch, []
        rows = [i for i, bad in enumerate(flagged.to_pylist()) if bad]
        rejects = [
            Reject(
                first_line + i,
                None,
                self._dialect.delimiter.join(
                    v or "" for v in batch.slice(i, 1).to_pylist()[0].values()
                ),
                "invalid byte sequence for encoding UTF8",
            )
            for i in rows
        ]
        return batch.filter(pc.invert(flagged)), rejects

    def _check_quotes(self, stream: Utf8Stream) -> None:
        """Refuse a quoted field left open at the end, which pyarrow would accept."""
        offset = stream.unterminated_quote()
        if offset is not None:
            line = line_at(self.info, self._newline, offset)
            raise RowError(
                f"{self._path}: line {line}: unterminated quoted field", path=self._path, line=line
            )

    def _row_error(self, exc: Exception, near: int) -> RowError:
        """Wrap pyarrow's parse error, with the line found by re-reading the file."""
        found = self._find_bad_record()
        line = found if found is not None else near
        return RowError(f"{self._path}: line {line}: {one_line(exc)}", path=self._path, line=line)

    def _find_bad_record(self) -> int | None:
        """Line of the first record whose field count is not the header's (error path only)."""
        width = len(self._names)
        consumed = 0

        def lines(text: IO[str]) -> Iterator[str]:
            nonlocal consumed
            for physical in text:
                consumed += 1
                yield physical

        stream = open_stream(self._path, self.info.compression)
        try:
            read_block(stream, self._data_offset, self._path)
            text = io.TextIOWrapper(
                stream, encoding=self._encoding, errors=DECODE_FALLBACK, newline=""
            )
            d = self._dialect
            previous = 0
            for row in reader_for(lines(text), d.delimiter, d.quotechar, d.escapechar):
                if row and len(row) != width:
                    return self._first_line + previous
                previous = consumed
        except (SourceError, ValueError):
            return None
        finally:
            stream.close()
        return None


def _reject(record: BadRecord, encoding: str) -> Reject:
    """A reject for a record the reader left out: its text, and its bytes when the text cannot
    hold them (bytes not in the encoding, a NUL byte)."""
    raw = record.raw.rstrip(b"\r\n")
    try:
        text = raw.decode(encoding)
        exact = "\x00" not in text
    except UnicodeDecodeError:
        text, exact = raw.decode(encoding, errors="backslashreplace"), False
    text = text.replace("\x00", "\\x00")
    return Reject(record.line, None, text, record.reason, None if exact else bytes(raw))


def _concat(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    import pyarrow as pa

    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches, schema=schema).combine_chunks().to_batches()[0]


def _first_record_end(data: bytes, start: int, newline: bytes, quote: bytes) -> int:
    """Offset just past the record starting at ``start`` (its newline outside quotes, quotes
    escaped by a backslash not counted), or -1."""
    escaped = b"\\" + quote
    pos, parity = start, 0
    while (end := data.find(newline, pos)) >= 0:
        parity ^= (data.count(quote, pos, end) - data.count(escaped, pos, end)) & 1
        if not parity:
            return end + 1
        pos = end + 1
    return -1


TYPED_BLOCK_BYTES = 1 << 20
"""pyarrow's block size when a raw chunk is parsed into typed columns (1 MiB: as fast as
larger blocks, one chunk's records held once more at most)."""


def read_typed_records(
    data: bytes,
    dialect: CsvDialect,
    types: list[pa.DataType],
    *,
    true_values: list[str],
    false_values: list[str],
    threads: bool = False,
) -> pa.RecordBatch:
    """Parse whole CSV records (a raw chunk: no header, no BOM) into one batch of the given
    column types with pyarrow's reader, on the calling thread unless ``threads``: a file's
    batch workers parse their chunks side by side, and pyarrow's own threads cost twice the
    CPU (benchmark file: 0.17 s against 0.07 s of CPU per 40 MB), worth it only on cores the
    server does not need.

    An unquoted empty field is NULL, a quoted one is ``""`` (an error for a column that is
    not a string), as COPY reads them. Blank lines are kept (they are rows, or errors).

    Args:
        data: the records' bytes, UTF-8.
        dialect: delimiter and quote (quotes escaped by doubling them).
        types: the Arrow type of each column, in order.
        true_values: the spellings read as true in boolean columns (exactly these).
        false_values: the spellings read as false.
        threads: parse blocks on pyarrow's thread pool too.

    Returns:
        The records as one batch (columns ``f0``, ``f1``...).

    Raises:
        pyarrow.ArrowInvalid: a record of another field count, a value its type does not
            read, or bytes that are not UTF-8.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = [f"f{i}" for i in range(len(types))]
    quote = dialect.quotechar
    table = pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(
            column_names=names, block_size=TYPED_BLOCK_BYTES, use_threads=threads
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=dialect.delimiter,
            quote_char=quote,
            double_quote=True,
            escape_char=False,
            # Splitting blocks at any line break is faster; only valid without quoted ones.
            newlines_in_values=quote.encode("ascii") in data,
            ignore_empty_lines=False,
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict(zip(names, types, strict=True)),
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            null_values=[""],
            true_values=true_values,
            false_values=false_values,
        ),
    )
    schema = pa.schema([pa.field(n, t) for n, t in zip(names, types, strict=True)])
    batches = table.to_batches()
    return _concat(batches, schema) if batches else pa.RecordBatch.from_pylist([], schema=schema)

"""The reader contract: CSV reading options, the ``Source`` protocol, and opening a file's bytes.

Everything here is shared by detection and the format readers: it decompresses transparently
and maps text encodings to their PostgreSQL names. Nothing here knows about the database.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol, cast

from pgingest.errors import ConfigError, RowError, SourceError
from pgingest.model import Chunk, Compression, SourceInfo
from pgingest.sources.inputs import is_virtual, open_input

if TYPE_CHECKING:
    import pyarrow as pa
    from _typeshed import WriteableBuffer


__all__ = [
    "DECODE_FALLBACK",
    "PG_ENCODINGS",
    "CsvOptions",
    "ExcelOptions",
    "Source",
    "Utf8Stream",
    "complete_utf8",
    "line_at",
    "normalize_encoding",
    "one_line",
    "open_stream",
    "read_block",
    "read_errors",
]

PG_ENCODINGS: dict[str, str] = {
    "utf-8": "UTF8",
    "cp1252": "WIN1252",
    "latin-1": "LATIN1",
    "cp1250": "WIN1250",
    "cp1251": "WIN1251",
    "iso8859-2": "LATIN2",
    "iso8859-15": "LATIN9",
    "koi8-r": "KOI8R",
    "cp1253": "WIN1253",
    "iso8859-7": "ISO_8859_7",
    "cp1254": "WIN1254",
    "iso8859-9": "LATIN5",
    "cp1255": "WIN1255",
    "iso8859-8": "ISO_8859_8",
}
"""Python codec name -> PostgreSQL client encoding. UTF-8 and single-byte encodings only: their
bytes never hide a quote or newline inside a character, so raw CSV bytes stay splittable."""

_CODEC_ALIASES = {"iso8859-1": "latin-1"}


def normalize_encoding(name: str) -> str:
    """Return the canonical codec name of a supported text encoding.

    Args:
        name: any Python spelling, e.g. ``"UTF8"``, ``"latin1"``, ``"windows-1252"``.

    Returns:
        A key of :data:`PG_ENCODINGS`, e.g. ``"utf-8"``.

    Raises:
        ConfigError: the encoding is unknown or not supported for CSV loading.
    """
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise ConfigError(f"unknown encoding {name!r}") from None
    canonical = _CODEC_ALIASES.get(canonical, canonical)
    if canonical not in PG_ENCODINGS:
        supported = ", ".join(PG_ENCODINGS)
        raise ConfigError(f"unsupported encoding {name!r}; use one of: {supported}")
    return canonical


@dataclass(frozen=True, slots=True)
class CsvOptions:
    """How to read delimited text; every field left ``None`` is detected from the content."""

    header: bool | None = None
    """Whether row 1 is a header; ``None`` sniffs it."""
    names: tuple[str, ...] | None = None
    """Column names (``--headers a,b,c``): replace the header's names, or name a headerless
    file's columns. Fewer names than columns: the first ones are named, the rest keep the
    header's names (``col_N`` without a header)."""
    null_strings: tuple[str, ...] = ()
    """Unquoted values read as NULL, besides the unquoted empty field."""
    delimiter: str | None = None
    """Force the field delimiter (one character); ``None`` sniffs it."""
    quotechar: str | None = None
    """Force the quote character (one character); ``None`` sniffs it (``"`` or ``'``)."""
    escape: str | None = None
    """Force how quotes are escaped inside quoted fields: ``"double"`` (RFC 4180) or
    ``"backslash"``; ``None`` sniffs it."""
    encoding: str | None = None
    """Force the text encoding; ``None`` detects UTF-8, cp1252 or latin-1."""
    skip_bad_rows: bool = False
    """Records the reader itself cannot load (a wrong field count in a chunk it reads
    client-side, bytes not in the file's encoding, a NUL byte) are left out and reported in
    the chunk's ``rejects``; else the first one raises :class:`RowError`."""

    def __post_init__(self) -> None:
        if self.delimiter is not None and (
            len(self.delimiter) != 1 or self.delimiter in '\r\n"' or ord(self.delimiter) > 127
        ):
            raise ConfigError(f"delimiter must be one ASCII character, got {self.delimiter!r}")
        if self.quotechar is not None and (
            len(self.quotechar) != 1
            or self.quotechar in "\r\n"
            or self.quotechar == self.delimiter
            or ord(self.quotechar) > 127
        ):
            raise ConfigError(
                f"quote must be one ASCII character other than the delimiter, got"
                f" {self.quotechar!r}"
            )
        if self.escape not in (None, "double", "backslash"):
            raise ConfigError(f"escape must be double or backslash, got {self.escape!r}")
        if self.encoding is not None:
            normalize_encoding(self.encoding)
        if self.names is not None:
            if not all(isinstance(n, str) for n in self.names):
                raise ConfigError("column names must be strings")
            object.__setattr__(self, "names", tuple(self.names))  # a list from a caller
        object.__setattr__(self, "null_strings", tuple(self.null_strings))


@dataclass(frozen=True, slots=True)
class ExcelOptions:
    """Which sheet to read and where its header is."""

    sheet: str | int | None = None
    """A sheet name, or its 1-based position; ``None``: the first sheet. ``"all"`` is resolved
    by the loader (one source per sheet, or :attr:`all_sheets`)."""
    header_row: int | None = None
    """The header's row number in the sheet (1-based, as the spreadsheet shows it); ``None``:
    the first row as wide as the table."""
    all_sheets: bool = False
    """Read every non-empty sheet into one table, with a ``sheet`` column naming each row's."""


class Source(Protocol):
    """An opened data file: its column names, a sample, and a stream of chunks.

    CSV/TSV raw chunks (:class:`~pgingest.model.CsvChunk`) hold whole records, never the
    header (so COPY must not be given ``HEADER``), without BOM, in the file's delimiter and
    quote: ``COPY ... (FORMAT csv, DELIMITER, QUOTE)`` from ``info.dialect``, with the
    chunk's ``encoding`` as client encoding; COPY reads them as Python's ``csv`` module reads
    the file (a chunk it would misread is written again, its ``lines`` set). Arrow chunks of
    CSV have every column as text.
    """

    info: SourceInfo
    """The detected file, with the reading options applied (e.g. a forced header)."""

    def column_names(self) -> list[str]:
        """Return the column names as written in the file (not normalized).

        A headerless CSV file's columns are ``col_1``, ``col_2``...; names given in
        :class:`CsvOptions` replace the first ones.
        """
        ...

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """Return the first ``max_rows`` data rows.

        CSV: every column ``pa.string()``; an unquoted empty field and the ``null_strings``
        are null, a quoted empty field is ``""``. Parquet: typed as in the file.
        ``skip_bad_records`` leaves out CSV records with a wrong field count or an unclosed
        quote instead of raising (for inference while bad rows are set aside).

        Raises:
            RowError: a malformed row (CSV) among the rows read.
            SourceError: the file cannot be read.
        """
        ...

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """Stream the whole file in chunks of about ``batch_rows`` rows or ``batch_bytes``.

        Memory stays bounded whatever the file size. ``raw`` yields CSV bytes for CSV/TSV
        (Parquet always yields Arrow). ``first_line`` is the 1-based line (CSV) or row
        (Parquet) of the chunk's first record.

        Raises:
            ConfigError: ``raw`` for a CSV whose quotes are backslash-escaped.
            RowError: a NUL byte or a malformed row, naming the line.
            SourceError: the file cannot be read or decompressed.
        """
        ...

    def close(self) -> None:
        """Release the file handles."""
        ...


def one_line(exc: BaseException) -> str:
    """Return an exception's message on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def read_errors() -> tuple[type[Exception], ...]:
    """Return the exception types a decompressing read can raise on corrupt input."""
    import zstandard

    return (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError, zstandard.ZstdError)


class _Closing(io.RawIOBase):
    """A decompressing reader over a stream it closes with itself (``GzipFile(fileobj=)``
    leaves its file open)."""

    def __init__(self, reader: IO[bytes], under: IO[bytes]) -> None:
        self._reader = reader
        self._under = under

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._reader.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def read(self, size: int = -1) -> bytes:
        return self._reader.read(size)

    def close(self) -> None:
        try:
            self._reader.close()
        finally:
            self._under.close()
            super().close()


def open_stream(path: str, compression: Compression) -> IO[bytes]:
    """Open a file for binary reading, decompressing it on the fly.

    Args:
        path: the file.
        compression: as detected from the file's magic bytes.

    Returns:
        A readable binary stream of the decompressed content; the caller closes it.

    Raises:
        SourceError: the file cannot be opened.
    """
    try:
        if is_virtual(path):  # a remote object (streamed) or an archive's member (sources.inputs)
            raw = open_input(path, sequential=True)
            if compression == "gzip":
                return cast(
                    "IO[bytes]",
                    _Closing(cast("IO[bytes]", gzip.GzipFile(fileobj=raw, mode="rb")), raw),
                )
            if compression == "bz2":
                return cast("IO[bytes]", _Closing(cast("IO[bytes]", bz2.BZ2File(raw, "rb")), raw))
            if compression == "xz":
                return cast("IO[bytes]", _Closing(cast("IO[bytes]", lzma.LZMAFile(raw, "rb")), raw))
        if compression == "gzip":
            return cast("IO[bytes]", gzip.open(path, "rb"))
        if compression == "bz2":
            return cast("IO[bytes]", bz2.open(path, "rb"))
        if compression == "xz":
            return cast("IO[bytes]", lzma.open(path, "rb"))
        if compression == "zstd":
            import zstandard

            reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(
                open_input(path, sequential=True),
                read_across_frames=True,
                closefd=True,
            )
            return reader
        return open_input(path, sequential=True)
    except OSError as exc:
        raise SourceError(f"{path}: cannot open: {exc.strerror or exc}", path=path) from exc


def read_block(stream: IO[bytes], size: int, path: str) -> bytes:
    """Read ``size`` bytes (fewer only at the end of the stream).

    Decompressing readers may return short reads; this loops until the block is full.

    Raises:
        SourceError: the file is unreadable or its compressed data is corrupt.
    """
    try:
        data = stream.read(size)
        if len(data) >= size or not data:
            return data
        parts = [data]
        got = len(data)
        while got < size:
            more = stream.read(size - got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)
    except read_errors() as exc:
        raise SourceError(f"{path}: cannot read: {one_line(exc)}", path=path) from exc


DECODE_FALLBACK = "pgingest.cp1252"
"""Codec error handler: bytes invalid in the file's encoding decode as cp1252 (latin-1 where
cp1252 leaves them undefined), so one stray byte never stops a load."""
_CP1252_UNDEFINED = frozenset(b"\x81\x8d\x8f\x90\x9d")


def _decode_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    text = "".join(chr(b) if b in _CP1252_UNDEFINED else bytes((b,)).decode("cp1252") for b in bad)
    return text, exc.end


codecs.register_error(DECODE_FALLBACK, _decode_fallback)


def line_at(info: SourceInfo, newline: bytes, offset: int) -> int:
    """Return the 1-based line of a byte offset in the decompressed file (re-reads it: for errors).

    Raises:
        SourceError: the file cannot be read.
    """
    stream = open_stream(info.path, info.compression)
    lines, left = 1, offset
    try:
        while left > 0:
            block = read_block(stream, min(8 << 20, left), info.path)
            if not block:
                break
            lines += block.count(newline)
            left -= len(block)
    finally:
        stream.close()
    return lines


class Utf8Stream(io.RawIOBase):
    """A file's bytes from an offset, decompressed and decoded to UTF-8: what pyarrow reads.

    A NUL byte, which PostgreSQL text cannot hold, raises :class:`RowError` naming its line.
    It also notes where an unterminated quoted field starts, which pyarrow accepts at the end.
    """

    def __init__(
        self,
        info: SourceInfo,
        skip: int,
        encoding: str,
        newline: bytes,
        quote: bytes | None = None,
        delimiter: bytes = b",",
        max_ahead: int | None = None,
        drop_nul: bool = False,
        settle: Callable[[int], str] | None = None,
        replace_invalid: bool = False,
    ) -> None:
        """Open the file.

        Args:
            info: the file.
            skip: decompressed bytes to drop first (BOM, header).
            encoding: the file's codec name (see :func:`normalize_encoding`).
            newline: the line break byte, to name the line of a NUL byte.
            quote: the quote byte, to find an unterminated quoted field (``None``: do not).
            delimiter: the delimiter byte (a quote after it opens a field).
            max_ahead: blocks that may be read ahead of those the consumer has taken
                (:meth:`consumed`); ``None``: no limit. pyarrow's streaming CSV reader
                prefetches 32 blocks in a background thread, which this keeps in check.
            drop_nul: leave NUL bytes out instead of raising (a sample read while bad rows
                are skipped: the loader sets those rows aside).
            settle: called with the offset of the first non-ASCII bytes when the encoding is
                not decided yet; returns the file's encoding.
            replace_invalid: bytes that are not UTF-8 (in a UTF-8 file) become U+FFFD and are
                counted in :attr:`replaced`, instead of raising :class:`RowError`.
        """
        super().__init__()
        self._info = info
        self._raw = open_stream(info.path, info.compression)
        self._skip = skip
        self._encoding = encoding
        self._newline = newline
        self._quote = quote
        self._field_starts = (b"", delimiter, b"\n", b"\r")
        self._offset = 0
        self._carry = b""
        self._buffer = memoryview(b"")
        self._quotes_odd = False
        self._last_byte = b""
        self._last_quote: tuple[int, bool] | None = None
        self._max_ahead = max_ahead
        self._drop_nul = drop_nul
        self._settle = settle
        self._replace_invalid = replace_invalid
        self.replaced = 0
        """Byte sequences that were not UTF-8, replaced by U+FFFD (``replace_invalid``)."""
        self._ahead = 0
        self._released = False
        self._turn = threading.Condition()
        self.has_data = False
        """Whether anything but line breaks was read (pyarrow refuses an empty file)."""
        self.at_eof = False
        """Whether the whole file was read."""

    def readable(self) -> bool:
        """Always True."""
        return True

    def consumed(self) -> None:
        """Note that the consumer took one block's worth of data: one more may be read."""
        with self._turn:
            self._ahead = max(0, self._ahead - 1)
            self._turn.notify_all()

    def release(self) -> None:
        """Stop reading: a waiting or later :meth:`read` returns end of file at once (call it
        before closing a reader that prefetches in another thread)."""
        with self._turn:
            self._released = True
            self._turn.notify_all()

    def close(self) -> None:
        """Close the underlying file."""
        self.release()
        if not self.closed:
            self._raw.close()
        super().close()

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Read into a writable buffer."""
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, size: int | None = -1) -> bytes:
        """Return up to ``size`` bytes of UTF-8; ``b""`` at the end."""
        if size is None or size < 0:
            size = 8 << 20
        if not self._buffer:
            if self._max_ahead is not None and not self._wait_turn():
                return b""
            block = self._next_block(max(size, 64 << 10))
            if len(block) <= size:
                return block
            self._buffer = memoryview(block)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return bytes(out)

    def _wait_turn(self) -> bool:
        """Wait until a block may be read ahead; False once released."""
        with self._turn:
            while not self._released and self._ahead >= (self._max_ahead or 0):
                self._turn.wait()
            self._ahead += 1
            return not self._released

    def unterminated_quote(self) -> int | None:
        """Offset of the quote that opens a field never closed, once the whole file is read.

        With quotes doubled inside fields, an odd number of quotes means the last one opens
        a field that runs to the end; it counts when it is at the start of a field.
        """
        if self.at_eof and self._quotes_odd and self._last_quote and self._last_quote[1]:
            return self._last_quote[0]
        return None

    def _next_block(self, size: int) -> bytes:
        path = self._info.path
        while True:
            raw = read_block(self._raw, size, path)
            if not raw or not self._skip:
                break
            taken = min(self._skip, len(raw))
            raw, self._skip, self._offset = raw[taken:], self._skip - taken, self._offset + taken
            if raw:
                break
        if not raw:
            self.at_eof = True
            carry, self._carry = self._carry, b""
            if carry and not self._replace_invalid:
                line = line_at(self._info, self._newline, self._offset - len(carry))
                raise RowError(
                    f"{path}: line {line}: invalid byte sequence for encoding UTF8 at the end",
                    path=path,
                    line=line,
                )
            self.replaced += bool(carry)
            return carry.decode("utf-8", errors="replace").encode("utf-8")
        if b"\x00" in raw and self._drop_nul:
            raw = raw.replace(b"\x00", b"")
        if b"\x00" in raw:
            line = line_at(self._info, self._newline, self._offset + raw.find(b"\x00"))
            raise RowError(
                f"{path}: line {line}: NUL byte (not allowed in PostgreSQL text)",
                path=path,
                line=line,
            )
        if self._quote is not None:
            self._note_quotes(raw, self._quote)
        self._offset += len(raw)
        if self._carry:
            raw, self._carry = self._carry + raw, b""
        if not self.has_data and raw.strip(b"\r\n"):
            self.has_data = True
        if raw.isascii():
            return raw
        if self._settle is not None:
            self._encoding = self._settle(self._offset - len(raw))
            self._settle = None
        if self._encoding != "utf-8":
            return raw.decode(self._encoding, errors=DECODE_FALLBACK).encode("utf-8")
        # keep a character cut by the block boundary for the next block
        keep = complete_utf8(raw)
        raw, self._carry = raw[:keep], raw[keep:]
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if not self._replace_invalid:
                where = self._offset - len(raw) - len(self._carry) + exc.start
                line = line_at(self._info, self._newline, where)
                bad = raw[exc.start : exc.end].hex(" ")
                raise RowError(
                    f"{path}: line {line}: invalid byte sequence for encoding UTF8: 0x{bad}",
                    path=path,
                    line=line,
                ) from None
            text = raw.decode("utf-8", errors="replace")
            self.replaced += text.count("\ufffd") - raw.count(b"\xef\xbf\xbd")
            return text.encode("utf-8")
        return raw

    def _note_quotes(self, raw: bytes, quote: bytes) -> None:
        count = raw.count(quote)
        if count:
            self._quotes_odd ^= bool(count & 1)
            at = raw.rfind(quote)
            before = raw[at - 1 : at] if at else self._last_byte
            self._last_quote = (self._offset + at, before in self._field_starts)
        self._last_byte = raw[-1:]


def complete_utf8(data: bytes) -> int:
    """Length of ``data`` without a UTF-8 character cut at its end."""
    n = len(data)
    for back in range(1, min(4, n) + 1):
        byte = data[n - back]
        if byte < 0x80:
            return n
        if byte >= 0xC0:
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return n if back >= need else n - back
    return n

"""Read a small, plain CSV file in Python: its text sample and its one raw chunk, without
pyarrow or numpy (whose import costs more than loading such a file).

Only a file every reader agrees on is read this way: ASCII or settled UTF-8 bytes, the file's
own line breaks, no blank line, no NUL byte or backslash, every quote opening or closing a
field, every record as wide as the header. Then PostgreSQL's COPY, Python's ``csv`` module and
pyarrow's reader see the same fields, and a quote tells a quoted empty string from an
unquoted empty field (NULL). Anything else, and any option that needs the full reader, goes
to :class:`~pgingest.sources.csv.CsvSource` as before: the check may refuse what is fine,
never accept what is not.
"""

from __future__ import annotations

from collections.abc import Iterator

from pgingest.model import Chunk, CsvChunk, SourceInfo
from pgingest.sources.base import PG_ENCODINGS, CsvOptions, open_stream, read_block
from pgingest.sources.csv import CsvSource

__all__ = ["SMALL_CSV_BYTES", "SmallCsvSource"]

SMALL_CSV_BYTES = 64 << 10
"""Largest file read this way (64 KiB): a few hundred rows, parsed in Python in about a
millisecond, where importing pyarrow and numpy costs a tenth of a second."""

Records = tuple[list[list[str]], set[tuple[int, int]]]
"""A text's records (their fields' text) and the (record, field) places of the fields that
were quoted: a quoted empty string is text, an unquoted empty field NULL."""


class SmallCsvSource(CsvSource):
    """A small CSV file (see the module's docstring); the full reader's behaviour wherever
    this one does not apply."""

    def __init__(self, info: SourceInfo, options: CsvOptions) -> None:
        """Open the file (see :class:`CsvSource`).

        Raises:
            SourceError: as :class:`CsvSource`.
        """
        super().__init__(info, options)
        self._read = False
        self._plain: tuple[bytes, Records] | None = None
        """The data's bytes and records once read (``None``: not a plain file)."""

    def _read_plain(self) -> tuple[bytes, Records] | None:
        """The data's bytes (header excluded, trailing blank lines cut as the raw reader
        cuts them) and its records, or ``None`` when the file is not plain."""
        if self._read:
            return self._plain
        self._read = True
        d = self._dialect
        if (
            self.info.compression != "none"
            or self.info.size > SMALL_CSV_BYTES
            or d.escapechar is not None
            or d.newline not in ("\n", "\r\n")
            or len(d.delimiter) != 1
            or len(d.quotechar) != 1
        ):
            return None
        stream = open_stream(self._path, self.info.compression)
        try:
            read_block(stream, self._data_offset, self._path)
            data = read_block(stream, SMALL_CSV_BYTES + 1, self._path)
        finally:
            stream.close()
        nl = d.newline.encode("ascii")
        if len(data) > SMALL_CSV_BYTES:
            return None
        if data.endswith(nl + nl):  # trailing blank lines, as the raw reader cuts them
            data = data.rstrip(b"\r\n") + nl
        if not data.isascii() and (self._encoding != "utf-8" or not self._settled):
            return None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if text.startswith("\ufeff"):
            return None  # pyarrow's reader would take it for a second byte order mark
        records = _records(text, d.delimiter, d.quotechar, d.newline)
        if records is None or not set(map(len, records[0])) <= {len(self._names)}:
            return None
        self._plain = (data, records)
        return self._plain

    def text_sample(self, max_rows: int) -> list[list[str | None]] | None:
        """The first ``max_rows`` data rows as :meth:`sample` reads them, one list of values
        per column (``None`` for NULL), or ``None`` when the file is not plain.

        Raises:
            SourceError: the file cannot be read.
        """
        plain = self._read_plain()
        if plain is None:
            return None
        nulls = frozenset(self._options.null_strings) | {""}
        records, quoted = plain[1]
        rows = records[: max(max_rows, 0)]
        if not rows:
            return [[] for _ in self._names]
        if not quoted:
            return [
                [None if value in nulls else value for value in column]
                for column in zip(*rows, strict=True)
            ]
        return [
            [
                None if value in nulls and (i, j) not in quoted else value
                for i, value in enumerate(column)
            ]
            for j, column in enumerate(zip(*rows, strict=True))
        ]

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """The data as one raw chunk of the file's bytes when the file is plain and fits
        one chunk; else :meth:`CsvSource.chunks`."""
        plain = self._read_plain() if raw else None
        if plain is None or len(plain[1][0]) >= batch_rows or len(plain[0]) > batch_bytes:
            return super().chunks(batch_rows=batch_rows, batch_bytes=batch_bytes, raw=raw)
        data, (records, _quoted) = plain
        if not records:
            return iter(())
        encoding = PG_ENCODINGS[self._encoding]
        return iter([CsvChunk(data=data, first_line=self._first_line, encoding=encoding)])


def _records(text: str, delimiter: str, quote: str, newline: str) -> Records | None:
    """The records of ``text`` (whole records, each ended by ``newline`` but maybe the last),
    or ``None`` when a reader could take it otherwise than COPY: a quote that neither opens
    nor closes a field, a blank line, a line break of another style outside quotes, a NUL
    byte or a backslash (COPY's ``\\.`` end marker)."""
    if "\x00" in text or "\\" in text:
        return None
    if quote not in text:
        return _unquoted_records(text, delimiter, newline)
    records: list[list[str]] = []
    quoted: set[tuple[int, int]] = set()
    record: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text.startswith(newline, i) and not record:
            return None  # a blank line
        if text.startswith(quote, i):
            close = i + 1
            parts = []
            while True:
                end = text.find(quote, close)
                if end < 0:
                    return None  # an unterminated quote
                parts.append(text[close:end])
                if text.startswith(quote, end + 1):  # a doubled quote
                    parts.append(quote)
                    close = end + 2
                    continue
                break
            quoted.add((len(records), len(record)))
            value, i = "".join(parts), end + 1
        else:
            stop = i
            while stop < n and text[stop] != delimiter and not text.startswith(newline, stop):
                stop += 1
            value = text[i:stop]
            if quote in value or "\r" in value or "\n" in value:
                return None  # a bare quote, or a line break of another style
            i = stop
        record.append(value)
        if i >= n:
            records.append(record)
            break
        if text[i] == delimiter:
            i += 1
            if i >= n:
                record.append("")
                records.append(record)
            continue
        if not text.startswith(newline, i):
            return None  # a closing quote not followed by a field's end
        records.append(record)
        record = []
        i += len(newline)
    return records, quoted


def _unquoted_records(text: str, delimiter: str, newline: str) -> Records | None:
    """:func:`_records` of a text without quotes: its lines split at the delimiter."""
    breaks = text.count(newline)
    if text.count("\n") != breaks or text.count("\r") != (breaks if newline == "\r\n" else 0):
        return None  # a line break of another style
    lines = text.split(newline)
    if lines[-1] == "":
        lines.pop()  # the last record's line break
    if "" in lines:
        return None  # a blank line
    return [line.split(delimiter) for line in lines], set()

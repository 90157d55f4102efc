"""Find out what a file is from its content: Parquet or delimited text, compression, CSV dialect.

The CSV sniffer scores each candidate delimiter by how consistently it splits a sample into
the same number of fields (quotes respected), then guesses quoting, escaping, line endings,
encoding and whether row 1 is a header.
"""

from __future__ import annotations

import csv as pycsv
import io
import json
import re
import sys
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Literal, get_args

from pgingest.errors import ConfigError, SourceError
from pgingest.model import Compression, CsvDialect, Format, FormatOption, SourceInfo
from pgingest.sources.base import (
    CsvOptions,
    complete_utf8,
    normalize_encoding,
    one_line,
    open_stream,
    read_block,
)
from pgingest.sources.encoding import decide, describe, evidence, scan_file
from pgingest.sources.inputs import is_virtual, open_input, stat_input

__all__ = ["decode_sample", "detect", "reader_for", "sniff_dialect"]

SAMPLE_BYTES = 256 << 10
"""Decompressed bytes read to sniff a CSV dialect (256 KiB: thousands of typical rows)."""
_SNIFF_ROWS = 1000
"""Records parsed per candidate dialect when scoring; enough to see irregular rows, still fast."""
_TYPE_ROWS = 50
"""Records whose cells are classified (number, date, text) for the type score and header test
(50: a tie-breaker and a header vote need few rows; with thousands of small files the
classification was the largest per-file cost)."""

_MAGIC: tuple[tuple[bytes, Compression], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
_PARQUET_MAGIC = b"PAR1"
_UTF8_BOM = b"\xef\xbb\xbf"
_SEP_HINT = re.compile(r'"?sep=([^\r\n"])"?[ \t]*(?:\r\n|\n|\r)', re.IGNORECASE)
_DELIMITERS = (",", "\t", ";", "|")
"""Candidate delimiters, in order of preference when two score the same."""

_NUMBER = re.compile(
    r"[-+]?(?:\d+|\d{1,3}(?:[,.' ]\d{3})+)?(?:[.,]\d+)?(?:[eE][-+]?\d+)?%?", re.ASCII
)
_DATE = re.compile(
    r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?\s*(?:Z|[-+]\d{2}(?::?\d{2})?)?"
    r"|\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?",
    re.ASCII,
)
_DIGIT = re.compile(r"\d", re.ASCII)
_BOOLEANS = frozenset({"true", "false"})
_TYPED_STARTS = frozenset("0123456789+-.,eEtTfF")
"""The first characters of what ``_NUMBER``, ``_DATE`` or ``_BOOLEANS`` can match."""
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\v\x1b")
_CONTROLS_MIN = 16
"""Fewer control characters than this do not make a sample binary (a short line of text
can hold a few, and 5% of a tiny file is one or two)."""


def detect(path: str, fmt: FormatOption = "auto", csv: CsvOptions | None = None) -> SourceInfo:
    """Detect a file's format, compression and (for CSV/TSV) dialect from its content.

    Args:
        path: the file to inspect.
        fmt: ``"auto"`` decides from the content; ``"csv"``/``"tsv"``/``"parquet"`` force the
            format (``"tsv"`` forces a tab delimiter; ``"parquet"`` still checks the magic bytes).
        csv: forced CSV settings (header, delimiter, encoding); the rest is sniffed.

    Returns:
        What was found, for :func:`pgingest.sources.open_source`.

    Raises:
        SourceError: the file is missing, empty, binary, a corrupt Parquet file, or not the
            forced format.
        ConfigError: ``fmt`` is unknown or contradicts the CSV options.
    """
    if fmt not in get_args(FormatOption):
        choices = ", ".join(get_args(FormatOption))
        raise ConfigError(f"unknown format {fmt!r}; use one of: {choices}")
    options = csv if csv is not None else CsvOptions()
    if fmt == "tsv" and options.delimiter not in (None, "\t"):
        raise ConfigError(f"format tsv means a tab delimiter, not {options.delimiter!r}")
    try:
        size = stat_input(path).st_size
        with open_input(path) as fh:
            head = fh.read(8)
    except OSError as exc:
        raise SourceError(f"{path}: cannot open: {exc.strerror or exc}", path=path) from exc
    if size == 0:
        raise SourceError(f"{path}: file is empty", path=path)
    compression: Compression = next(
        (name for magic, name in _MAGIC if head.startswith(magic)), "none"
    )

    if compression == "none" and head.startswith(_PARQUET_MAGIC):
        if fmt in ("csv", "tsv"):
            raise SourceError(f"{path}: is a Parquet file, not {fmt}", path=path)
        _check_parquet(path)
        return SourceInfo(path=path, format="parquet", size=size)
    if fmt == "parquet":
        what = f"{compression}-compressed" if compression != "none" else "no PAR1 magic bytes"
        raise SourceError(f"{path}: not a Parquet file ({what})", path=path)
    if fmt == "auto" and compression == "none" and _ends_like_parquet(path, size):
        raise SourceError(
            f"{path}: corrupt Parquet file: it ends with the PAR1 magic bytes but does not"
            " start with them",
            path=path,
        )
    if compression == "none" and head.startswith((_ZIP_MAGIC, _OLE_MAGIC)):
        workbook = _workbook_format(path, head)
        if fmt not in ("auto", "excel"):
            what = f"a {workbook} workbook" if workbook else "a zip archive"
            raise SourceError(f"{path}: is {what}, not {fmt}", path=path)
        if workbook is None:
            raise SourceError(
                f"{path}: is a zip archive, not a workbook, CSV/TSV, NDJSON or Parquet", path=path
            )
        return SourceInfo(path=path, format=workbook, size=size)
    if fmt == "excel":
        raise SourceError(f"{path}: not a workbook (no zip or OLE signature)", path=path)
    if fmt == "auto" and compression == "none" and path.lower().endswith(_WORKBOOK_SUFFIXES):
        # A download that saved an error page, or a CSV renamed: a workbook's name is a
        # claim about the content, so a mismatch is the user's to resolve.
        raise SourceError(
            f"{path}: named like a workbook but holds {_what_text_is(path)}, not a workbook;"
            " --format csv loads it as delimited text",
            path=path,
        )
    if fmt == "auto" and compression == "none" and path.lower().endswith(_PARQUET_SUFFIXES):
        # As for workbooks: the name claims Parquet, so a corrupt file must not load as a
        # one-column CSV of garbage; a CSV that is only misnamed loads with --format csv.
        raise SourceError(
            f"{path}: named like a Parquet file but holds {_what_text_is(path)}, not Parquet"
            " (no PAR1 magic bytes): a corrupt file, or --format csv (or ndjson) loads it as"
            " text",
            path=path,
        )

    stream = open_stream(path, compression)
    try:
        sample = read_block(stream, SAMPLE_BYTES + 1, path)
    finally:
        stream.close()
    at_eof = len(sample) <= SAMPLE_BYTES
    sample = sample[:SAMPLE_BYTES]
    suffix = f" after {compression} decompression" if compression != "none" else ""
    if not sample:
        raise SourceError(f"{path}: file is empty{suffix}", path=path)
    if compression != "none" and sample.startswith(_PARQUET_MAGIC):
        raise SourceError(
            f"{path}: compressed Parquet is not supported; decompress it first", path=path
        )
    suffixes = {x.lower() for x in Path(path).suffixes}
    named_json = not _JSON_SUFFIXES.isdisjoint(suffixes)
    named_lines = not _LINES_SUFFIXES.isdisjoint(suffixes)
    text = sample.lstrip(b"\xef\xbb\xbf \t\r\n")
    is_array = text.startswith(b"[")
    # An array of objects ([{...) is JSON whatever the file's name: no CSV starts so. A line
    # holding an array ([1, 2]) is a bad line of JSON lines, not an array document.
    as_json = fmt == "ndjson" or (fmt == "auto" and named_json)
    document = _OBJECTS.match(text) or (as_json and _is_json_document(text))
    if is_array and fmt in ("ndjson", "auto") and document:
        raise SourceError(
            f"{path}: is a JSON array; pgingest reads JSON lines (one object per line)",
            path=path,
        )
    # A file named as JSON lines is read as such, also when its first line is a bad one.
    if fmt == "ndjson" or (fmt == "auto" and (named_lines or _is_ndjson(sample))):
        return SourceInfo(path=path, format="ndjson", size=size, compression=compression)
    if fmt == "tsv":
        options = replace(options, delimiter="\t")
    settled, note = True, ""
    if options.encoding is None and not sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        _check_text(sample.removeprefix(_UTF8_BOM), path)  # (before reading a binary file)
        found = evidence(sample[: complete_utf8(sample)] if not at_eof else sample)
        if found.invalid and not at_eof:  # the sample is not enough: the whole file decides
            found = scan_file(path, compression)
        encoding = decide(found, path, compression) or "utf-8"
        settled, note = not found.ascii, describe(found, encoding)
        options = replace(options, encoding=encoding)
    dialect = sniff_dialect(sample, at_eof=at_eof, path=path, options=options)
    dialect = replace(dialect, encoding_settled=settled, encoding_note=note)
    is_tsv = fmt == "tsv" or (fmt == "auto" and dialect.delimiter == "\t")
    return SourceInfo(
        path=path,
        format="tsv" if is_tsv else "csv",
        size=size,
        compression=compression,
        dialect=dialect,
    )


_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ENCRYPTED_OOXML = "EncryptionInfo".encode("utf-16-le")
"""An OLE directory entry of an encrypted (password-protected) xlsx/xlsb workbook."""
_ODS_MIME = b"application/vnd.oasis.opendocument.spreadsheet"


def _workbook_format(path: str, head: bytes) -> Format | None:
    """The workbook kind of a zip or OLE file; ``None`` for a zip that is no workbook.

    Raises:
        SourceError: a password-protected or corrupt workbook.
    """
    if head.startswith(_OLE_MAGIC):
        try:
            with open_input(path) as fh:
                directory = fh.read(1 << 20)
        except OSError as exc:
            raise SourceError(f"{path}: cannot open: {exc.strerror or exc}", path=path) from exc
        if _ENCRYPTED_OOXML in directory:
            raise SourceError(
                f"{path}: the workbook is password-protected (encrypted): save it without a"
                " password to load it",
                path=path,
            )
        return "xls"
    try:
        with open_input(path) as fh, zipfile.ZipFile(fh) as archive:
            names = set(archive.namelist())
            mimetype = archive.read("mimetype")[:64] if "mimetype" in names else b""
    except (zipfile.BadZipFile, OSError, KeyError) as exc:
        if path.lower().endswith(_WORKBOOK_SUFFIXES):
            raise SourceError(f"{path}: corrupt workbook: {one_line(exc)}", path=path) from exc
        return None
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "xl/workbook.bin" in names:
        return "xlsb"
    if mimetype.startswith(_ODS_MIME) or ("content.xml" in names and path.lower().endswith(".ods")):
        return "ods"
    if path.lower().endswith(_WORKBOOK_SUFFIXES):
        raise SourceError(f"{path}: corrupt workbook: no workbook part in the archive", path=path)
    return None


_WORKBOOK_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".xlsb", ".ods")
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


def _ends_like_parquet(path: str, size: int) -> bool:
    """A local file that ends with Parquet's footer magic (``PAR1``): a Parquet file whose
    start is lost. Not asked of a remote object (one more request for every file)."""
    if is_virtual(path) or size < len(_PARQUET_MAGIC):
        return False
    try:
        with open_input(path) as fh:
            fh.seek(size - len(_PARQUET_MAGIC))
            return bool(fh.read(len(_PARQUET_MAGIC)) == _PARQUET_MAGIC)
    except OSError:
        return False  # (reading it as text will say what is wrong)


def _what_text_is(path: str) -> str:
    """What a file that is no workbook holds, in a few words, from its first bytes."""
    try:
        with open_input(path) as fh:
            head = fh.read(4096)
    except OSError:
        return "something else"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:1024]:
        return "an HTML page (a web page or a download's error page)"
    if text.startswith(b"<?xml"):
        return "XML (an XML spreadsheet or another document)"
    if text.startswith((b"{", b"[")):
        return "JSON"
    if b"\x00" in head:
        return "binary data"
    if not text:
        return "blank text"
    return "plain text (CSV or TSV?)"


_JSON_SUFFIXES = frozenset((".json", ".ndjson", ".jsonl"))
_OBJECTS = re.compile(rb"\[\s*\{")
"""A JSON array of objects, as its first bytes show it."""


_LINES_SUFFIXES = frozenset((".ndjson", ".jsonl"))


def _is_ndjson(sample: bytes) -> bool:
    """JSON lines: the first non-blank line is one JSON object."""
    text = sample.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"{"):
        return False
    line = text.split(b"\n", 1)[0]
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
    except RecursionError:
        return True  # an object nested deeper than Python reads: the reader names its line


def _is_json_document(text: bytes) -> bool:
    """Whether the first line does not hold a whole JSON value (a document spread over
    lines, as an indented array is)."""
    line = text.split(b"\n", 1)[0]
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return True
    return False


def _check_parquet(path: str) -> None:
    """Read the Parquet footer; wrap pyarrow's complaint about a corrupt file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with open_input(path) as fh:
            pq.read_metadata(fh)
    except (pa.ArrowException, OSError) as exc:
        raise SourceError(f"{path}: corrupt Parquet file: {one_line(exc)}", path=path) from exc


def sniff_dialect(
    sample: bytes, *, at_eof: bool, path: str, options: CsvOptions | None = None
) -> CsvDialect:
    """Guess the CSV dialect of the first bytes of a (decompressed) file.

    Args:
        sample: the file's first bytes.
        at_eof: True when ``sample`` is the whole file (else its last line may be cut).
        path: the file, for messages.
        options: forced settings that override what would be sniffed.

    Returns:
        The dialect: delimiter, quote, escape, header, encoding and line ending.

    Raises:
        SourceError: the sample is binary, UTF-16, or holds no data.
    """
    options = options if options is not None else CsvOptions()
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise SourceError(f"{path}: {_UTF16}", path=path)
    sample = sample.removeprefix(_UTF8_BOM)
    _check_text(sample, path)
    if not at_eof:
        cut = max(sample.rfind(b"\n"), sample.rfind(b"\r"))
        if cut > 0:
            sample = sample[: cut + 1]
    if options.encoding is not None:
        encoding = normalize_encoding(options.encoding)
    else:
        encoding = _detect_encoding(sample)
    text = decode_sample(sample, encoding)
    if not text.strip():
        raise SourceError(f"{path}: file is empty (blank lines only)", path=path)

    newline = _newline_of(text)
    skip_lines = 0
    hint = _SEP_HINT.match(text)
    if hint is not None:  # Excel's "sep=;" first line names the delimiter; it is not data
        skip_lines = 1
        text = text[hint.end() :]
        if options.delimiter is None:
            options = replace(options, delimiter=hint.group(1))
        if not text.strip():
            raise SourceError(f"{path}: file is empty (only a sep= line)", path=path)
    delimiter, quotechar = _sniff_delimiter(
        text, options.delimiter, truncated=not at_eof, quote=options.quotechar
    )
    if options.escape is not None:
        escapechar = "\\" if options.escape == "backslash" else None
    else:
        escapechar = _sniff_escape(text, delimiter, quotechar)
    if options.header is not None:
        has_header = options.header
    else:
        rows = list(islice(_records(text, delimiter, quotechar, escapechar), _TYPE_ROWS + 1))
        if not at_eof and len(rows) > 1:
            rows.pop()
        has_header = _sniff_header(rows)
    return CsvDialect(
        delimiter=delimiter,
        quotechar=quotechar,
        escapechar=escapechar,
        has_header=has_header,
        encoding=encoding,
        newline=newline,
        skip_lines=skip_lines,
    )


def _utf16_without_bom(sample: bytes) -> bool:
    """Whether the sample is UTF-16 text without its BOM: a NUL on every other byte (after
    each ASCII character in little-endian, before it in big-endian), none on the others."""
    head = sample[:_UTF16_PROBE]
    even, odd = head[0::2], head[1::2]
    for zeros, chars in ((odd, even), (even, odd)):
        if len(zeros) >= 8 and zeros.count(0) * 10 >= len(zeros) * 9 and 0 not in chars:
            return True
    return False


_UTF16_PROBE = 4096
_UTF16 = "UTF-16 text is not supported; convert it to UTF-8"


def _check_text(sample: bytes, path: str) -> None:
    """Refuse a sample that is binary: NUL bytes in numbers, or control characters making
    more than 5% of what lies outside quoted fields (inside them they are a field's text,
    however many: a tiny CSV of one such field is still CSV), at least ``_CONTROLS_MIN``;
    UTF-16 text without its BOM is named as such."""
    if _utf16_without_bom(sample):
        raise SourceError(f"{path}: {_UTF16}", path=path)
    nul = sample.find(b"\x00")
    binary = sample.count(b"\x00") * 1000 > len(sample)
    if not binary:
        outside = b"".join(sample.split(b'"')[0::2])  # (random bytes: about half of them)
        controls = len(outside) - len(outside.translate(None, _CONTROL))
        binary = controls >= _CONTROLS_MIN and controls * 20 > len(outside)
    if binary:
        where = ""
        if nul >= 0:
            line = sample.count(b"\n", 0, nul) + 1
            where = f" (NUL byte at line {line})"
        raise SourceError(
            f"{path}: binary content{where}: not CSV/TSV, Parquet, a workbook or NDJSON", path=path
        )


def _detect_encoding(sample: bytes) -> str:
    """The encoding the sample's evidence says (see :mod:`pgingest.sources.encoding`; a
    character cut at the end is fine)."""
    return decide(evidence(sample[: complete_utf8(sample)])) or "utf-8"


def decode_sample(data: bytes, encoding: str) -> str:
    """Decode bytes that may end in the middle of a character; never fail."""
    if encoding == "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
                return data[: exc.start].decode("utf-8", errors="replace")
            return data.decode("utf-8", errors="replace")
    return data.decode(encoding, errors="replace")


def _newline_of(text: str) -> Literal["\n", "\r\n", "\r"]:
    first_lf = text.find("\n")
    first_cr = text.find("\r")
    if first_cr >= 0 and (first_lf < 0 or first_cr < first_lf - 1):
        return "\r"
    if first_lf > 0 and first_cr == first_lf - 1:
        return "\r\n"
    return "\n"


def reader_for(
    text: str | Iterable[str], delimiter: str, quotechar: str, escapechar: str | None
) -> Iterator[list[str]]:
    """Parse text (a string, or lines read with ``newline=""``) with Python's csv module.

    Lenient like PostgreSQL (``strict=False``) and allowing large fields.
    """
    _allow_large_fields()
    return pycsv.reader(
        io.StringIO(text, newline="") if isinstance(text, str) else text,
        delimiter=delimiter,
        quotechar=quotechar,
        escapechar=escapechar,
        doublequote=escapechar is None,
        strict=False,
    )


def _records(
    text: str, delimiter: str, quotechar: str, escapechar: str | None
) -> Iterator[list[str]]:
    """Non-blank records of the text."""
    return filter(None, reader_for(text, delimiter, quotechar, escapechar))


def _allow_large_fields() -> None:
    # The csv module refuses fields over 128 KiB by default; a sampled field can be larger.
    if pycsv.field_size_limit() < (1 << 30):
        pycsv.field_size_limit(min(sys.maxsize, (1 << 31) - 1))


def _sniff_delimiter(
    text: str, forced: str | None, *, truncated: bool, quote: str | None = None
) -> tuple[str, str]:
    """Pick the delimiter and quote that split the sample most consistently."""
    delimiters = (forced,) if forced is not None else _DELIMITERS
    quotes: tuple[str, ...] = ('"', "'") if "'" in text else ('"',)
    if quote is not None:
        quotes = (quote,)
    candidates = [(d, q) for q in quotes for d in delimiters]
    present = [c for c in candidates if c[0] in text]
    if present == candidates[:1]:
        return present[0]  # the default, and the only one that could split: no parse needed
    splits = [_split(text, d, q, None, truncated=truncated) for d, q in candidates]
    # Most samples split into columns one way only: the others score 0 whatever their cells.
    if sum(split is not None for split in splits) <= 1:
        return next(
            (c for c, split in zip(candidates, splits, strict=True) if split), candidates[0]
        )
    best: tuple[float, int] = (-1.0, 0)
    choice = candidates[0]
    for rank, (candidate, split) in enumerate(zip(candidates, splits, strict=True)):
        score = _weigh(split, candidate[0]) if split is not None else 0.0
        if (score, -rank) > best:
            best = (score, -rank)
            choice = candidate
    return choice


def _score(
    text: str, delimiter: str, quotechar: str, escapechar: str | None, *, truncated: bool
) -> float:
    """Consistency of field counts, weighted by how clean the resulting cells look."""
    split = _split(text, delimiter, quotechar, escapechar, truncated=truncated)
    return _weigh(split, delimiter) if split is not None else 0.0


def _split(
    text: str, delimiter: str, quotechar: str, escapechar: str | None, *, truncated: bool
) -> tuple[list[list[str]], float] | None:
    """The sample's first records split this way and the share of them of the commonest
    width; ``None`` when that width is under two columns (or the split fails): no score."""
    if delimiter not in text:  # every record one field wide (and no need to parse it)
        return None
    try:
        rows = list(islice(_records(text, delimiter, quotechar, escapechar), _SNIFF_ROWS + 1))
    except pycsv.Error:
        return None
    if truncated and len(rows) > 1:
        rows.pop()
    if not rows:
        return None
    counts = Counter(map(len, rows))
    width, frequency = max(counts.items(), key=lambda item: (item[1], item[0]))
    if width < 2:
        return None
    return rows, frequency / len(rows)


def _weigh(split: tuple[list[list[str]], float], delimiter: str) -> float:
    """The consistency of a split, weighted by how clean its cells look: typed, or free of
    the other delimiters."""
    rows, consistency = split
    others = [d for d in _DELIMITERS if d != delimiter]
    cells = [cell for row in rows[:_TYPE_ROWS] for cell in row]
    clean = sum(1 for cell in cells if _kind(cell) != "text" or not any(o in cell for o in others))
    return consistency * (0.7 + 0.3 * clean / len(cells))


def _sniff_escape(text: str, delimiter: str, quotechar: str) -> str | None:
    r"""Backslash when ``\"`` escapes quotes inside fields, else None (doubled quotes)."""
    if "\\" + quotechar not in text:
        return None
    d, q = re.escape(delimiter), re.escape(quotechar)
    escaped = len(re.findall(rf"(?<!\\)\\{q}(?![{d}\r\n]|$)", text))
    doubled = len(re.findall(rf"(?<=[^{d}\r\n{q}]){q}{q}(?=[^{d}\r\n{q}])", text))
    with_backslash = _score(text, delimiter, quotechar, "\\", truncated=True)
    with_doubling = _score(text, delimiter, quotechar, None, truncated=True)
    if with_backslash > with_doubling or (with_backslash == with_doubling and escaped > doubled):
        return "\\"
    return None


def _kind(value: str) -> Literal["empty", "typed", "text"]:
    """Classify a cell: empty, number/date/boolean-looking, or other text."""
    value = value.strip()
    if not value:
        return "empty"
    if value.isdigit() and value.isascii():  # (cheap: the commonest typed cell)
        return "typed"
    if value[0] not in _TYPED_STARTS:  # (cheap: most text cells end here)
        return "text"
    if (
        (_NUMBER.fullmatch(value) and _DIGIT.search(value))
        or _DATE.fullmatch(value)
        or value.lower() in _BOOLEANS
    ):
        return "typed"
    return "text"


def _mostly_typed(column: list[str]) -> bool:
    """Whether at least 90% of the (non-empty) values look typed; stops at the 10% that
    do not."""
    untyped = 0
    for value in column:
        if _kind(value) != "typed":
            untyped += 1
            if untyped * 10 > len(column):
                return False
    return True


def _family(value: str) -> Literal["date", "boolean", "number"]:
    """What a typed cell (see :func:`_kind`) is."""
    value = value.strip()
    if _DATE.fullmatch(value):
        return "date"
    if value.lower() in _BOOLEANS:
        return "boolean"
    return "number"


def _one_family(column: list[str]) -> str | None:
    """The family (see :func:`_family`) of at least 90% of a typed column's values, if any."""
    counts: dict[str, int] = {}
    for value in column:
        if _kind(value) == "typed":
            name = _family(value)
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return None
    family = max(counts, key=counts.__getitem__)
    return family if counts[family] * 10 >= len(column) * 9 else None


def _sniff_header(rows: list[list[str]]) -> bool:
    """Is row 1 a header? Text above typed columns says yes, and so does a typed value of
    another kind (a number above booleans, a date above numbers: ``id,100022`` above
    ``id1,TRUE``); typed values of the column's kind say no."""
    if not rows:
        return True
    first, data = rows[0], rows[1:]
    first_kinds = [_kind(value) for value in first]
    data_votes = 0
    for j, kind in enumerate(first_kinds):
        if kind == "empty":  # no vote either way
            continue
        column = [row[j] for row in data if j < len(row) and row[j].strip()]
        if column and _mostly_typed(column):
            if kind == "text":
                return True  # one header vote decides
            family = _one_family(column)
            if family is not None and family != _family(first[j]):
                return True
            data_votes += 1
    if data_votes:
        return False
    # No typed column to compare against: a number or date in row 1 means data,
    # and when everything is text, a header is the likelier case.
    return "typed" not in first_kinds

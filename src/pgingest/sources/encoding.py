"""Decide a text file's encoding on the evidence of the whole file, once.

A file is UTF-8 unless it is consistently not: a few bytes that are not UTF-8 in a file of
valid UTF-8 characters make their rows bad rows; a single-byte encoding is chosen only when at
least four in five of the file's non-ASCII sequences are not UTF-8. Which one is named by
charset-normalizer among those PostgreSQL takes (cp1252, latin-1, cp1250, cp1251, ISO 8859-2
and -15, KOI8-R), cp1252 winning a tie. One decoding per file: a table never holds rows of one
file decoded two ways.

Measured (``benchmarks/detection.py``, 33 files: five languages in UTF-8 and their single-byte
encodings, UTF-8 with stray bytes, late cp1252): UTF-8 else cp1252 on the first 256 KiB (the
rule before) 22 right; charset-normalizer alone 24 (it calls a UTF-8 file with one stray byte
ISO 8859-10, and Spanish cp1252 cp1250); this module 33.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgingest.model import Compression
from pgingest.sources.base import complete_utf8, normalize_encoding, open_stream, read_block

__all__ = ["Evidence", "decide", "describe", "evidence", "scan_file"]

SINGLE_BYTE_FACTOR = 4
"""A single-byte encoding needs more than this many invalid UTF-8 sequences per valid one."""
_SCAN_BYTES = 8 << 20
_CP1252_HOLES = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
_REPLACEMENT = "\ufffd"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What some bytes say about UTF-8."""

    valid: int = 0
    """Valid multi-byte UTF-8 characters."""
    invalid: int = 0
    """Byte sequences that are not UTF-8."""
    holes: bool = False
    """A byte cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) is there."""
    lines: bytes = b""
    """Lines holding non-ASCII bytes (the first ``_NAMING_BYTES``), to name a single-byte
    encoding by."""

    def __add__(self, other: Evidence) -> Evidence:
        lines = self.lines
        if len(lines) < _NAMING_BYTES and other.lines:
            lines = (lines + b"\n" + other.lines)[:_NAMING_BYTES] if lines else other.lines
        return Evidence(
            self.valid + other.valid,
            self.invalid + other.invalid,
            self.holes or other.holes,
            lines,
        )

    @property
    def ascii(self) -> bool:
        """Nothing but ASCII: every encoding reads it the same."""
        return not (self.valid or self.invalid)


def evidence(data: bytes) -> Evidence:
    """Count the valid multi-byte UTF-8 characters and the invalid sequences of ``data``."""
    if data.isascii():
        return Evidence()
    text = data.decode("utf-8", errors="replace")
    invalid = text.count(_REPLACEMENT) - data.count(b"\xef\xbf\xbd")
    non_ascii = len(text) - len(data.translate(None, _HIGH))  # characters less ASCII bytes
    holes = any(data.find(bytes((b,))) >= 0 for b in _CP1252_HOLES) if invalid else False
    lines = b""
    if invalid:
        lines = b"\n".join(line for line in data.split(b"\n") if not line.isascii())
    return Evidence(non_ascii - invalid, invalid, holes, lines[:_NAMING_BYTES])


_HIGH = bytes(range(128, 256))
_NAMING_BYTES = 256 << 10
"""Bytes of non-ASCII lines charset-normalizer names a single-byte encoding from."""
_NAMING_MIN = 32
"""Fewer non-ASCII sequences than this say too little to name a language's encoding by: the
Western one is taken (a lone 0x81 is not Cyrillic)."""
_CANDIDATES = ["cp1252", "latin_1", "cp1250", "cp1251", "iso8859_2", "iso8859_15", "koi8_r"]
"""Single-byte encodings PostgreSQL takes as client encodings, cp1252 first (ties)."""


def scan_file(path: str, compression: Compression, offset: int = 0) -> Evidence:
    """The evidence of a (decompressed) file from ``offset`` to its end, read in blocks (a
    character cut by a block's end is carried to the next).

    Raises:
        SourceError: the file cannot be read.
    """
    stream = open_stream(path, compression)
    total = Evidence()
    carry = b""
    try:
        read_block(stream, offset, path)
        while True:
            block = read_block(stream, _SCAN_BYTES, path)
            if not block:
                break
            block = carry + block
            keep = complete_utf8(block)
            block, carry = block[:keep], block[keep:]
            total = total + evidence(block)
        if carry:
            total = total + evidence(carry)
    finally:
        stream.close()
    return total


def decide(found: Evidence) -> str | None:
    """The file's encoding on its evidence: ``utf-8`` or a single-byte one (see
    :data:`pgingest.sources.base.PG_ENCODINGS`); ``None`` when it is all ASCII."""
    if found.ascii:
        return None
    if found.invalid > SINGLE_BYTE_FACTOR * found.valid:
        return _single_byte(found)
    return "utf-8"


def _single_byte(found: Evidence) -> str:
    """Which single-byte encoding the non-ASCII lines are in: charset-normalizer's best
    among :data:`_CANDIDATES` (cp1252, then latin-1, when it finds others as good)."""
    fallback = "latin-1" if found.holes else "cp1252"
    if found.invalid < _NAMING_MIN or not found.lines:
        return fallback
    from charset_normalizer import from_bytes

    # The file is known not to be UTF-8: every candidate that decodes it is ranked (by how
    # messy its text reads), however messy (the default threshold dropped a Polish cp1250
    # file's every candidate).
    matches = from_bytes(found.lines, cp_isolation=_CANDIDATES, threshold=1.0)
    best = matches.best()
    if best is None:
        return fallback
    tied: set[str] = set()  # as good as the best, or decoding to the very same text
    for match in matches:
        if (match.chaos, match.coherence) == (best.chaos, best.coherence):
            tied.update(match.could_be_from_charset)
    name = next((c for c in _CANDIDATES[:2] if c in tied), best.encoding)
    return normalize_encoding(name)


def describe(found: Evidence, encoding: str) -> str:
    """Why the file is read in ``encoding``, for a warning (``""`` for plain UTF-8)."""
    if encoding == "utf-8":
        if not found.invalid:
            return ""
        return (
            f"read as UTF-8 ({found.valid:,} UTF-8 characters); {found.invalid:,} byte"
            f" sequence(s) that are not UTF-8 make their rows bad rows"
        )
    return (
        f"read as {encoding}: {found.invalid:,} of its non-ASCII sequences are not UTF-8"
        f" ({found.valid:,} are); --encoding utf-8 would make those rows bad rows"
    )

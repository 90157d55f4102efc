"""Decide a text file's encoding on the evidence of the whole file, once.

A file is UTF-8 unless it is consistently not: a few bytes that are not UTF-8 in a file of
valid UTF-8 characters make their rows bad rows; a single-byte encoding (cp1252, or latin-1
when the file holds bytes cp1252 leaves undefined) is chosen only when at least four in five
of the file's non-ASCII sequences are not UTF-8. One decoding per file: a table never holds
rows of one file decoded two ways.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgingest.model import Compression
from pgingest.sources.base import complete_utf8, open_stream, read_block

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

    def __add__(self, other: Evidence) -> Evidence:
        return Evidence(
            self.valid + other.valid, self.invalid + other.invalid, self.holes or other.holes
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
    return Evidence(non_ascii - invalid, invalid, holes)


_HIGH = bytes(range(128, 256))


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
    """The file's encoding on its evidence: ``utf-8``, ``cp1252`` or ``latin-1``; ``None``
    when it is all ASCII (any will do)."""
    if found.ascii:
        return None
    if found.invalid > SINGLE_BYTE_FACTOR * found.valid:
        return "latin-1" if found.holes else "cp1252"
    return "utf-8"


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

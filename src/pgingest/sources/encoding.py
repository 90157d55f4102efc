"""Decide a text file's encoding on the evidence of the whole file, once.

A file is UTF-8 unless it is consistently not: a few bytes that are not UTF-8 in a file of
valid UTF-8 characters make their rows bad rows; a single-byte encoding is chosen only when at
least four in five of the file's non-ASCII sequences are not UTF-8. Which one, among those
PostgreSQL takes (Latin: cp1252, latin-1, ISO 8859-15, cp1250, ISO 8859-2, cp1254, ISO 8859-9;
else cp1251, KOI8-R, cp1253, ISO 8859-7, cp1255, ISO 8859-8), the file's bytes say: an
encoding that makes one of them a control, unassigned, box-drawing or ``¤`` character is out;
words without an ASCII letter mean another script than Latin; charset-normalizer ranks the
readings left. cp1252 wins a tie among Latin encodings, as always, but no guess is made
between cp1252 and Turkish cp1254, between near-tied readings in another script, or for
GBK, Big5 or Shift-JIS text, even a few words of it (which a single-byte encoding would read
as ``±±¾©``): the file fails naming its line and ``--encoding``. One decoding per file: a
table never holds rows of one file decoded two ways.

Measured (``benchmarks/detection.py``, 33 files: five languages in UTF-8 and their single-byte
encodings, UTF-8 with stray bytes, late cp1252): UTF-8 else cp1252 on the first 256 KiB (the
rule before) 22 right; charset-normalizer alone 24 (it calls a UTF-8 file with one stray byte
ISO 8859-10, and Spanish cp1252 cp1250); this module 33. Counting the non-ASCII bytes adds
about 3% to the scan of a cp1252 file (157 against 153 ms per 8 MiB block).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from pgingest.errors import SourceError
from pgingest.model import Compression
from pgingest.sources.base import complete_utf8, normalize_encoding, open_stream, read_block

__all__ = [
    "Evidence",
    "decide",
    "describe",
    "evidence",
    "first_line_with",
    "scan_file",
]

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
    counts: tuple[int, ...] = ()
    """How often each byte 0x80-0xFF occurs (128 counts; empty when no part of the file read
    so far is other than UTF-8): which characters a single-byte encoding would make."""

    def __add__(self, other: Evidence) -> Evidence:
        lines = self.lines
        if len(lines) < _NAMING_BYTES and other.lines:
            lines = (lines + b"\n" + other.lines)[:_NAMING_BYTES] if lines else other.lines
        counts = self.counts or other.counts
        if self.counts and other.counts:
            counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return Evidence(
            self.valid + other.valid,
            self.invalid + other.invalid,
            self.holes or other.holes,
            lines,
            counts,
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
    counts: tuple[int, ...] = ()
    if invalid:
        import numpy as np

        lines = b"\n".join(line for line in data.split(b"\n") if not line.isascii())
        high = np.frombuffer(data.translate(None, _LOW), np.uint8)  # (far fewer bytes)
        counts = tuple(np.bincount(high, minlength=256)[128:].tolist())
    return Evidence(non_ascii - invalid, invalid, holes, lines[:_NAMING_BYTES], counts)


_HIGH = bytes(range(128, 256))
_LOW = bytes(range(128))
_NAMING_BYTES = 256 << 10
"""Bytes of non-ASCII lines charset-normalizer names a single-byte encoding from."""
_NAMING_MIN = 32
"""Fewer non-ASCII sequences than this say too little to name a language's encoding by: the
Western one is taken (a lone 0x81 is not Cyrillic)."""
_LATIN = ("cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp1254", "iso8859_9")
"""Single-byte encodings of Latin-script languages PostgreSQL takes, cp1252 first (ties)."""
_OTHER_SCRIPTS = ("cp1251", "koi8_r", "cp1253", "iso8859_7", "cp1255", "iso8859_8")
"""Cyrillic, Greek and Hebrew single-byte encodings PostgreSQL takes."""
_TURKISH = frozenset({"cp1254", "iso8859_9"})
_FOREIGN_SHARE = 0.5
"""A file whose non-ASCII words (more than this share of them) hold no ASCII letter is not in
a Latin script: French or Polish words mix accented and plain letters (``café``)."""
_CHAOS_MARGIN = 0.01
_COHERENCE_MARGIN = 0.2
"""In a script other than Latin, two readings whose charset-normalizer mess (chaos) and
language fit (coherence, 0..1) are this close are a tie: the fit is noise there (four Greek
names fit Bulgarian better than Greek; Hebrew fits Serbian better than Hebrew)."""


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


class _UndecidedError(Exception):
    """Why a file's encoding cannot be decided: two or more single-byte encodings read it as
    well as each other into other text (``encodings``), or it is multi-byte text
    (``multi_byte``); ``needles``: the file's bytes that make it so."""

    def __init__(self, needles: bytes, encodings: list[str], multi_byte: str = "") -> None:
        super().__init__(multi_byte or ", ".join(encodings))
        self.needles = needles
        self.encodings = encodings[:3]
        self.multi_byte = multi_byte

    def message(self, path: str, line: int | None, byte: int | None) -> str:
        """One line: the file, the line, why, and what to do."""
        where = f"line {line}: " if line is not None else ""
        names = [normalize_encoding(e) for e in self.encodings]
        flags = " or ".join(f"--encoding {n}" for n in names)
        if self.multi_byte and names:
            return (
                f"{path}: {where}encoding ambiguous: too few non-ASCII bytes to tell"
                f" {self.multi_byte} text (a multi-byte encoding pgingest does not load:"
                f" convert the file to UTF-8) from {' or '.join(names)}; say which with {flags}"
            )
        if self.multi_byte:
            return (
                f"{path}: {where}reads as {self.multi_byte} text, a multi-byte encoding"
                " pgingest does not load; convert the file to UTF-8"
            )
        one = bytes((byte if byte is not None else self.needles[0],))
        readings = ", ".join(
            f"{one.decode(e)!r} in {n}" for e, n in zip(self.encodings, names, strict=True)
        )
        return (
            f"{path}: {where}encoding ambiguous: byte 0x{one.hex().upper()} reads {readings};"
            f" say which with {flags}"
        )


def _ambiguous(encodings: list[str], present: bytes) -> _UndecidedError:
    """Two or more encodings read the file as well as each other, into other text."""
    first, second = encodings[0], encodings[1]
    differ = bytes(b for b in present if bytes((b,)).decode(first) != bytes((b,)).decode(second))
    return _UndecidedError(differ, encodings)


def decide(
    found: Evidence, path: str | None = None, compression: Compression = "none"
) -> str | None:
    """The file's encoding on its evidence: ``utf-8`` or a single-byte one (see
    :data:`pgingest.sources.base.PG_ENCODINGS`); ``None`` when it is all ASCII.

    Args:
        found: the file's evidence.
        path: the file, for an error to name it and its line (read again to find the line).
        compression: how ``path`` is compressed.

    Raises:
        SourceError: the file is consistently not UTF-8 and two single-byte encodings read it
            as well as each other into other text, or it is multi-byte text (GBK, Big5,
            Shift-JIS): no guess is made; the error names the line and what to do.
    """
    if found.ascii:
        return None
    try:
        if found.invalid <= SINGLE_BYTE_FACTOR * found.valid:
            if found.invalid and found.valid < _NAMING_MIN:  # a few characters say little
                multi_byte = _multi_byte(found.lines)
                if multi_byte is not None:
                    raise _UndecidedError(_present(found), ["utf-8"], multi_byte.names)
            return "utf-8"
        return _single_byte(found)
    except _UndecidedError as undecided:
        line, byte = None, None
        if path:
            line, byte = first_line_with(path, compression, undecided.needles)
        message = undecided.message(path or "the file", line, byte)
        raise SourceError(message, path=path) from None


def _single_byte(found: Evidence) -> str:
    """Which single-byte encoding the file is in.

    Encodings that would make a byte of the file a control character, an unassigned one, a
    box-drawing one or ``¤`` (which ISO 8859-15 replaced by ``€`` for want of use) are out.
    The file's words say which script it is in (Latin, or not: words with no ASCII letter);
    the encodings of that script that read the file differently are ranked by
    charset-normalizer (mess, then language fit), after those reading it with combining
    marks after no letter and (outside a Latin script) those reading it as mostly capitals
    are left out. In a Latin script a tie goes to cp1252 (then latin-1), as it always did,
    except between cp1252 and Turkish cp1254 (which differ in six letters no statistics
    tell apart); in another script a near tie is no guess
    either: both raise :class:`_UndecidedError`, as does multi-byte text, and a few words
    that GBK, Big5 or Shift-JIS read as CJK text. Too few non-ASCII sequences to name a
    language by (:data:`_NAMING_MIN`) take the Western encoding in Latin words only.
    """
    fallback = "latin-1" if found.holes else "cp1252"
    if not found.lines or not found.counts:
        return fallback
    present = _present(found)
    multi_byte = _multi_byte(found.lines)
    if multi_byte is not None and multi_byte.many:
        raise _UndecidedError(present, [], multi_byte.names)
    script = _OTHER_SCRIPTS if _foreign_words(found.lines) else _LATIN
    readings: dict[str, list[str]] = {}  # the text of the file's bytes -> encodings reading it
    for encoding in script:
        text = _as_text(present, encoding)
        if text is not None and not _stray_marks(found.lines, text, encoding):
            readings.setdefault(text, []).append(encoding)
    if multi_byte is not None:  # a few words that may be CJK: no guess either way
        raise _UndecidedError(present, [group[0] for group in readings.values()], multi_byte.names)
    if found.invalid < _NAMING_MIN and script is _LATIN:
        return fallback
    if not readings:
        if script is _LATIN:
            return fallback  # control bytes (latin-1), as before
        raise _ambiguous(list(script), present)
    if len(readings) == 1:
        return normalize_encoding(next(iter(readings.values()))[0])
    encodings = [group[0] for group in readings.values()]
    if script is not _LATIN:
        encodings = _mostly_lowercase(encodings, present, found.counts)
    tied = _rank(encodings, found.lines, margins=script is not _LATIN)
    if script is _LATIN:
        western = next((c for c in _LATIN[:2] if c in tied), None)
        turkish = next((c for c in tied if c in _TURKISH), None)
        if western is not None and turkish is not None:
            raise _ambiguous([western, turkish], present)
        return normalize_encoding(western or tied[0])
    if len(tied) > 1:
        raise _ambiguous(tied, present)
    return normalize_encoding(tied[0])


_MULTI_BYTE = {"gbk": "GBK", "big5": "Big5", "shift_jis": "Shift-JIS"}
_MULTI_BYTE_MIN = 20
"""Distinct two-byte characters that make multi-byte text whatever its words look like:
single-byte text almost never decodes as GBK, Big5 or Shift-JIS (an accented letter before a
space is no character of theirs), but a few pairs may (English cp1252 with only
``don\u2019t``, ``it\u2019s``: 0x92 then a letter)."""


@dataclass(frozen=True, slots=True)
class _MultiByte:
    """The multi-byte encodings the non-ASCII lines may be text in (``GBK or Shift-JIS``),
    and whether they read as many distinct two-byte characters (else as a few words of CJK
    text: a short Chinese or Japanese file, or as well a few Cyrillic words of even length)."""

    names: str
    many: bool


def _present(found: Evidence) -> bytes:
    """The bytes 0x80-0xFF the file holds."""
    return bytes(0x80 + i for i, n in enumerate(found.counts) if n)


def _multi_byte(lines: bytes) -> _MultiByte | None:
    """The multi-byte encodings (GBK, Big5, Shift-JIS) that decode the non-ASCII lines into
    at least :data:`_MULTI_BYTE_MIN` distinct two-byte characters, or into words none of
    which holds an ASCII letter (a Latin file's accented letters stand in words of ASCII
    ones, which a two-byte reading keeps: ``M\u00fcller`` is no CJK word)."""
    whole = lines if len(lines) < _NAMING_BYTES else lines[: lines.rfind(b"\n") + 1] or lines
    many, few = [], []
    for encoding, name in _MULTI_BYTE.items():
        try:
            text = whole.decode(encoding)
        except UnicodeDecodeError:
            continue
        wide = {c for c in text if not c.isascii() and len(c.encode(encoding)) == 2}
        if len(wide) >= _MULTI_BYTE_MIN:
            many.append(name)
        elif wide and _no_latin_words(text):
            few.append(name)
    if many:
        return _MultiByte(" or ".join(many), many=True)
    return _MultiByte(" or ".join(few), many=False) if few else None


def _no_latin_words(text: str) -> bool:
    """Whether no word of ``text`` that holds a letter other than ASCII holds an ASCII one."""
    words = [w for w in _TEXT_WORD.findall(text) if not w.isascii()]
    return bool(words) and not any(_ASCII_LETTER_TEXT.search(w) for w in words)


_TEXT_WORD = re.compile(r"[^\W\d_]+")
_ASCII_LETTER_TEXT = re.compile(r"[A-Za-z]")


def _as_text(present: bytes, encoding: str) -> str | None:
    """The characters ``encoding`` reads the file's non-ASCII bytes as, or ``None`` when it
    cannot be the file's encoding (see :func:`_single_byte`)."""
    try:
        text = present.decode(encoding)
    except UnicodeDecodeError:
        return None
    for char in text:
        if char == "\u00a4" or "\u2500" <= char <= "\u259f":
            return None
        if unicodedata.category(char)[0] == "C":
            return None
    return text


def _stray_marks(lines: bytes, present: str, encoding: str) -> bool:
    """Whether ``encoding`` reads ``lines`` with a combining mark (a Hebrew point, in cp1255)
    after no letter: Cyrillic capitals read as cp1255 are points at the start of words.
    ``present``: the characters it reads the file's non-ASCII bytes as."""
    marks = "".join(c for c in present if unicodedata.category(c)[0] == "M")
    if not marks:
        return False
    letters = "".join(c for c in present if unicodedata.category(c)[0] in "LM")
    stray = re.compile(f"(?<![A-Za-z{re.escape(letters)}])[{re.escape(marks)}]")
    return stray.search(lines.decode(encoding, errors="replace")) is not None


def _mostly_lowercase(encodings: list[str], present: bytes, counts: tuple[int, ...]) -> list[str]:
    """The encodings whose reading of the file is about as lowercase as the most lowercase
    one's: text is mostly lowercase, and KOI8-R and cp1251 swap the cases of Cyrillic (each
    reads the other's text as capitals, which charset-normalizer ranks as high)."""
    shares: dict[str, float] = {}  # (a caseless script, Hebrew, has none)
    for encoding in encodings:
        lower = upper = 0
        for byte, char in zip(present, present.decode(encoding), strict=True):
            if char.islower():
                lower += counts[byte - 0x80]
            elif char.isupper():
                upper += counts[byte - 0x80]
        if lower + upper:
            shares[encoding] = lower / (lower + upper)
    most = max(shares.values(), default=0.0)
    return [e for e in encodings if shares.get(e, most) >= most - _CASE_MARGIN]


_CASE_MARGIN = 0.3
"""Readings less lowercase than the most lowercase one by more than this share are not the
file's."""


def _foreign_words(lines: bytes) -> bool:
    """Whether most words holding non-ASCII bytes hold no ASCII letter (not a Latin script)."""
    words = [w for w in _WORD.findall(lines) if not w.isascii()]
    foreign = sum(1 for w in words if len(w) > 1 and not _ASCII_LETTER.search(w))
    return foreign > len(words) * _FOREIGN_SHARE


_WORD = re.compile(rb"[A-Za-z\x80-\xff]+")
_ASCII_LETTER = re.compile(rb"[A-Za-z]")


def _rank(encodings: list[str], lines: bytes, margins: bool) -> list[str]:
    """The encodings whose reading of ``lines`` charset-normalizer finds best, and those as
    good (as close as the margins, with ``margins``), in the order given."""
    from charset_normalizer import from_bytes

    # The file is known not to be UTF-8: every candidate that decodes it is ranked (by how
    # messy its text reads), however messy (the default threshold dropped a Polish cp1250
    # file's every candidate).
    matches = from_bytes(lines, cp_isolation=encodings, threshold=1.0)
    scores: dict[str, tuple[float, float]] = {}
    for match in matches:
        for name in match.could_be_from_charset:
            scores.setdefault(name, (match.chaos, match.coherence))
    if not scores:
        return encodings[:1]
    chaos, coherence = min(scores.values(), key=lambda s: (s[0], -s[1]))
    chaos_margin, coherence_margin = (_CHAOS_MARGIN, _COHERENCE_MARGIN) if margins else (0, 0)
    return [
        e
        for e in encodings
        if e in scores
        and scores[e][0] <= chaos + chaos_margin
        and scores[e][1] >= coherence - coherence_margin
    ]


def first_line_with(
    path: str, compression: Compression, needles: bytes
) -> tuple[int | None, int | None]:
    """The line of the file's first byte among ``needles`` (an error's line), and that byte;
    ``(None, None)`` when there is none.

    Raises:
        SourceError: the file cannot be read.
    """
    import numpy as np

    wanted = np.frombuffer(needles, np.uint8)
    stream = open_stream(path, compression)
    line = 1
    try:
        while block := read_block(stream, _SCAN_BYTES, path):
            found = np.flatnonzero(np.isin(np.frombuffer(block, np.uint8), wanted))
            if len(found):
                at = int(found[0])
                return line + block.count(b"\n", 0, at), block[at]
            line += block.count(b"\n")
    finally:
        stream.close()
    return None, None


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

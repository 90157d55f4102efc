"""The encoding decision on a file's evidence (no database)."""

from __future__ import annotations

import pytest

from pgingest.sources.encoding import Evidence, decide, describe, evidence, scan_file

WORDS = "zażółć gęślą jaźń źdźbło łódź świat mąka ćma żółw"


def test_evidence_counts_valid_characters_and_invalid_sequences() -> None:
    found = evidence("café, ünïcode 日本 ".encode() + b"\xe9 \xed\xa0\x80 \xef\xbf\xbd")
    # U+FFFD written in the file is valid; a surrogate is three invalid bytes to Python
    assert (found.valid, found.invalid) == (6, 4)
    assert evidence(b"plain").ascii


@pytest.mark.parametrize(
    ("found", "encoding"),
    [
        (Evidence(), None),
        (Evidence(valid=1000, invalid=1), "utf-8"),  # a stray byte: bad rows, not cp1252
        (Evidence(valid=10, invalid=40), "utf-8"),  # not four in five... exactly four: UTF-8
        (Evidence(valid=10, invalid=41), "cp1252"),
        (Evidence(valid=0, invalid=1), "cp1252"),
        (Evidence(valid=0, invalid=1, holes=True), "latin-1"),
    ],
)
def test_utf8_unless_consistently_not(found: Evidence, encoding: str | None) -> None:
    assert decide(found) == encoding


@pytest.mark.parametrize(
    ("encoding", "words"),
    [
        ("cp1250", WORDS),
        ("iso8859-2", WORDS),
        ("cp1251", "привет мир съешь же ещё этих мягких французских булок"),
        ("koi8-r", "привет мир съешь же ещё этих мягких французских булок"),
        ("cp1252", "niño año señor acción corazón pingüino mañana árbol"),
    ],
)
def test_a_single_byte_encoding_is_named_by_its_language(
    encoding: str, words: str, tmp_path
) -> None:
    data = "".join(f"{i},{words}\n" for i in range(50)).encode(encoding)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    found = scan_file(str(path), "none")
    assert found == evidence(data)
    assert decide(found) == encoding


def test_the_decision_is_said() -> None:
    assert describe(Evidence(valid=5), "utf-8") == ""
    assert "bad rows" in describe(Evidence(valid=500, invalid=2), "utf-8")
    assert describe(Evidence(invalid=3), "cp1252").startswith("read as cp1252")

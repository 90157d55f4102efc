"""The encoding decision on a file's evidence (no database)."""

from __future__ import annotations

import pytest

from pgingest.errors import SourceError
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


GREEK = "Αθήνα Θεσσαλονίκη Πάτρα Ηράκλειο Λάρισα Βόλος Ιωάννινα Καβάλα Χανιά Ρόδος"


def decided(tmp_path, text: str, encoding: str, rows: int = 40) -> str | None:
    data = ("id,name\n" + "".join(f"{i},{text} {i}\n" for i in range(rows))).encode(encoding)
    path = tmp_path / "f.csv"
    path.write_bytes(data)
    return decide(scan_file(str(path), "none"), str(path))


@pytest.mark.parametrize(
    ("text", "encoding", "reads"),
    [
        # 0xA4 is the euro sign in ISO 8859-15, the unused currency sign in cp1252
        ("Prix 12 € TTC, crème brûlée, cœur", "iso8859-15", "iso8859-15"),
        (GREEK, "iso8859-7", "cp1253"),  # (cp1253 reads these bytes the same)
        (GREEK, "cp1253", "cp1253"),
        # what loaded before loads the same: cp1252 with only apostrophes inside words
        ("don\u2019t it\u2019s we\u2019ll you\u2019re I\u2019m", "cp1252", "cp1252"),
        ("Straße Müller “größe” – 5 €", "cp1252", "cp1252"),
    ],
)
def test_the_bytes_name_the_encoding(tmp_path, text: str, encoding: str, reads: str) -> None:
    assert decided(tmp_path, text, encoding) == reads
    assert text.encode(encoding).decode(reads) == text


@pytest.mark.parametrize(
    ("text", "encoding", "says"),
    [
        # six letters tell Turkish cp1254 from cp1252 (Ý Þ for İ Ş), and nothing else does
        ("İstanbul Şişli Beşiktaş Üsküdar", "cp1254", "--encoding cp1252 or --encoding cp1254"),
        # a few Greek names read as well as Cyrillic
        ("Λεωνιδας", "iso8859-7", "--encoding cp1251 or --encoding cp1253"),
        ("台灣的國家有很多美麗的城市和鄉村人民生活幸福快樂學習工作努力發展經濟", "big5", "Big5"),
        ("我们的国家有很多美丽的城市和乡村人民生活幸福快乐学习工作努力发展经济", "gbk", "GBK"),
    ],
)
def test_ambiguous_bytes_fail_naming_the_line_and_the_flag(
    tmp_path, text: str, encoding: str, says: str
) -> None:
    with pytest.raises(SourceError) as caught:
        decided(tmp_path, text, encoding)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'f.csv'}: line 2: ")
    assert says in message
    assert "\n" not in message

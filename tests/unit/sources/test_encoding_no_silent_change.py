"""A file's encoding is read right or not at all: property tests of the encoding decision.

Files of a few to a few dozen rows of real words, in the single-byte encodings of Cyrillic,
Greek and Hebrew, in the multi-byte encodings of Chinese and Japanese (which pgingest does not
load) and in Western cp1252: whatever the decision, it never reads the file into other text.
It names an encoding that decodes the file to the text written, or it fails in one line naming
the file, its line and what to do; the rows of a file read as UTF-8 that are not UTF-8 are bad
rows. One ambiguity is no error: bytes that are valid UTF-8 are read as UTF-8 (a few Chinese
characters in GBK can be: 学校 is ``D1 A7 D0 A3``, UTF-8's ``ѧУ``). Before, a short Chinese,
Japanese or Russian file was loaded as cp1252 or latin-1 text such as ``±±¾©`` for 北京, and
two rows of Russian as Hebrew.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgingest.errors import SourceError
from pgingest.sources.encoding import decide, scan_file

RUSSIAN = "Москва Петербург улица дом река мир привет завод школа город весна книга рыба хлеб окно"
GREEK = "Αθήνα Πάτρα θάλασσα ήλιος σπίτι δρόμος νερό βιβλίο πόλη φίλος"
HEBREW = "שלום ירושלים בית ספר מים עיר חבר דרך"
CHINESE = "北京 上海 中国 城市 人民 学校 工作 朋友 天气 电话"
TAIWANESE = "台北 臺灣 學校 城市 朋友 電話 天氣 人民"
JAPANESE = "東京 大阪 京都 日本 さくら カタカナ こんにちは 会社 駅 東京、日本。"
WESTERN = "café Müller Straße niño crème über garçon déjà façade Ångström señor Zürich"

LANGUAGES = [
    ("cp1251", RUSSIAN),
    ("koi8-r", RUSSIAN),
    ("cp1253", GREEK),
    ("iso8859-7", GREEK),
    ("cp1255", HEBREW),
    ("iso8859-8", HEBREW),
    ("gbk", CHINESE),
    ("big5", TAIWANESE),
    ("shift_jis", JAPANESE),
    ("cp1252", WESTERN),
]


@st.composite
def files(draw: st.DrawFn) -> tuple[str, str]:
    """An encoding and a CSV text of words of its language (ids and ASCII words between)."""
    encoding, vocabulary = draw(st.sampled_from(LANGUAGES))
    words = vocabulary.split()
    word = st.one_of(st.sampled_from(words), st.sampled_from(["Nr", "ok", "x", "2024"]))
    rows = draw(
        st.lists(st.lists(word, min_size=1, max_size=3).map(" ".join), min_size=1, max_size=40)
    )
    return encoding, "id,name\n" + "".join(f"{i},{row}\n" for i, row in enumerate(rows))


def decided(path: Path, text: str, encoding: str) -> str | None:
    path.write_bytes(text.encode(encoding))
    return decide(scan_file(str(path), "none"), str(path))


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(written=files())
@example(written=("gbk", "id,name\n1,北京\n2,上海\n"))
@example(written=("shift_jis", "id,name\n1,東京、日本\n2,大阪。\n"))
@example(written=("big5", "id,name\n1,台北\n"))
@example(written=("cp1251", "id,name\n1,Москва\n"))
def test_the_encoding_is_read_right_or_not_at_all(tmp_path: Path, written: tuple[str, str]) -> None:
    encoding, text = written
    path = tmp_path / "f.csv"
    try:
        reads = decided(path, text, encoding)
    except SourceError as refused:
        message = str(refused)
        assert message.startswith(f"{path}: line ")
        assert "\n" not in message
        assert "--encoding" in message or "convert the file to UTF-8" in message
        return
    if reads is None:  # nothing but ASCII: every encoding reads it the same
        assert text.isascii()
        return
    data = text.encode(encoding)
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    else:  # bytes that are UTF-8 are read as UTF-8 (GBK's 学校 is also UTF-8's ѧУ)
        assert reads == "utf-8"
        return
    if reads == "utf-8":  # each line not UTF-8 is a bad row (refused); the others are read
        for line, original in zip(data.split(b"\n"), text.split("\n"), strict=True):
            with contextlib.suppress(UnicodeDecodeError):
                assert line.decode("utf-8") == original
        return
    assert data.decode(reads) == text


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("id,name\n1,北京\n2,上海\n", "gbk"),  # was cp1252: ±±¾©
        ("id,name\n1,東京、日本\n2,大阪。\n", "shift_jis"),  # was latin-1, C1 controls
        ("id,name\n1,台北\n", "big5"),  # was cp1252: ¥x¥_
        ("id,name\n1,Москва\n2,Санкт-Петербург\n", "cp1251"),  # was cp1252: Ìîñêâà
    ],
)
def test_a_few_words_of_another_script_are_no_western_guess(
    tmp_path: Path, text: str, encoding: str
) -> None:
    with pytest.raises(SourceError, match=r"line 2: .*(--encoding|convert the file to UTF-8)"):
        decided(tmp_path / "f.csv", text, encoding)


def test_a_few_western_words_still_read_as_cp1252(tmp_path: Path) -> None:
    assert decided(tmp_path / "f.csv", "id,name\n1,Müller\n2,café\n", "cp1252") == "cp1252"


def test_two_rows_of_russian_are_not_read_as_hebrew(tmp_path: Path) -> None:
    # Found by the property test: cp1255 read the capitals as Hebrew points before no letter
    text = "id,name\n0,Москва улица\n1,Петербург Петербург Петербург\n"
    with pytest.raises(SourceError, match="--encoding cp1251 or --encoding cp1253"):
        decided(tmp_path / "f.csv", text, "cp1251")

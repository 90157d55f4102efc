"""A file's encoding is decided on the whole file's evidence and never mixed within a table: a
UTF-8 file with a few stray bytes is UTF-8 and those rows are bad rows; a single-byte encoding
is chosen only for a file that is consistently not UTF-8, and the output says so."""

from __future__ import annotations

from pathlib import Path

import pytest

ROWS = 20_000


def utf8_file(path: Path, bad_line: int, bad: bytes) -> Path:
    """``id,name`` rows of UTF-8 ``café``, the row at file line ``bad_line`` holding ``bad``."""
    lines = [b"id,name"] + [b"%d,caf\xc3\xa9 %d" % (i, i) for i in range(2, ROWS + 2)]
    lines[bad_line - 1] = b"%d,bad " % bad_line + bad
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize(
    ("bad", "bad_line"),
    [
        (b"\xe9", 500),  # a cp1252 e-acute, inside the sniffed sample
        (b"\xed\xa0\x80", 500),  # a lone surrogate: not UTF-8 for Python nor PostgreSQL
        (b"\xe9", 19_000),  # past the sample
    ],
)
def test_utf8_file_with_stray_bytes_is_utf8_and_their_rows_are_bad_rows(
    tmp_path, load, db, bad, bad_line
):
    src = utf8_file(tmp_path / "stray.csv", bad_line, bad)
    stop = load(src, text=True)
    assert not stop.ok
    assert f"line {bad_line}" in stop.failed[0].error
    assert "UTF8" in stop.failed[0].error
    skip = load(src, text=True, on_error="skip", force=True)
    assert skip.ok, skip.failed
    assert skip.files[0].rejects == 1
    assert skip.files[0].rows == ROWS - 1
    # one decoding: no row read as cp1252 (mojibake "cafÃ©")
    assert db.val("SELECT count(*) FROM stray WHERE name LIKE 'caf\u00e9 %'") == ROWS - 1
    reject = db.fetch("SELECT line, raw_bytes FROM pgingest.rejects ORDER BY id DESC LIMIT 1")
    assert reject[0]["line"] == bad_line
    assert reject[0]["raw_bytes"] == b"%d,bad " % bad_line + bad


def test_utf8_file_with_a_stray_byte_in_the_client_side_path(tmp_path, load, db):
    # --null-string sends the file through the client-side (Arrow) reader
    src = utf8_file(tmp_path / "arrow.csv", 700, b"\xe9")
    stop = load(src, text=True, null_strings=("NA",))
    assert not stop.ok
    assert "line 700" in stop.failed[0].error
    skip = load(src, text=True, null_strings=("NA",), on_error="skip", force=True)
    assert skip.ok, skip.failed
    assert skip.files[0].rejects == 1
    assert db.val("SELECT count(*) FROM arrow WHERE name LIKE 'caf\u00e9 %'") == ROWS - 1


def test_a_file_ascii_at_first_then_cp1252_is_read_as_cp1252_throughout(tmp_path, load, db):
    head = b"".join(b"%d,plain %d\n" % (i, i) for i in range(30_000))  # past the sample
    tail = b"".join(b"%d,caf\xe9 \x80%d\n" % (i, i) for i in range(30_000, 30_100))
    src = tmp_path / "late.csv"
    src.write_bytes(b"id,name\n" + head + tail)
    report = load(src, text=True)
    assert report.ok, report.failed
    assert db.val("SELECT count(*) FROM late WHERE name LIKE 'caf\u00e9 \u20ac%'") == 100
    assert any("read as cp1252" in w for w in report.files[0].warnings), report.files[0].warnings


def test_cp1252_file_with_an_accidental_utf8_pair_stays_cp1252(tmp_path, load, db):
    # "Straße“" in cp1252 ends in DF 93, a valid two-byte UTF-8 sequence
    rows = b"".join(b"%d,caf\xe9 %d\n" % (i, i) for i in range(200)) + b"200,Stra\xdf\x93\n"
    src = tmp_path / "german.csv"
    src.write_bytes(b"id,name\n" + rows)
    report = load(src, text=True)
    assert report.ok, report.failed
    assert db.val("SELECT name FROM german WHERE id = '200'") == "Stra\u00df\u201c"
    assert db.val("SELECT count(*) FROM german WHERE name LIKE 'caf\u00e9 %'") == 200
    assert any("cp1252" in w for w in report.files[0].warnings)


def test_plain_utf8_says_nothing(tmp_path, load, db):
    src = tmp_path / "plain.csv"
    src.write_bytes("id,name\n1,café\n2,日本\n".encode())
    report = load(src, text=True)
    assert report.ok
    assert report.files[0].warnings == []


@pytest.mark.parametrize(
    ("encoding", "words"),
    [
        ("cp1251", "привет мир съешь же ещё этих мягких французских булок"),
        ("koi8-r", "привет мир съешь же ещё этих мягких французских булок"),
        ("cp1250", "zażółć gęślą jaźń źdźbło łódź świat mąka ćma żółw"),
        ("cp1252", "niño año señor acción corazón pingüino mañana árbol café"),
    ],
)
def test_a_single_byte_file_is_read_in_its_own_encoding(tmp_path, load, db, encoding, words):
    text = "id,words\n" + "".join(f"{i},{words} {i}\n" for i in range(300))
    src = tmp_path / "single.csv"
    src.write_bytes(text.encode(encoding))
    report = load(src, text=True)
    assert report.ok, report.failed
    assert db.val("SELECT words FROM single WHERE id = '7'") == f"{words} 7"
    assert any(f"read as {encoding}" in w for w in report.files[0].warnings)


def test_an_upsert_keeps_a_row_of_stray_bytes_as_a_reject(tmp_path, load, db):
    src = utf8_file(tmp_path / "keyed.csv", 900, b"\xe9")
    report = load(src, mode="upsert", pk=("id",), on_error="skip")
    assert report.ok, report.failed
    assert report.files[0].rejects == 1
    assert db.count("keyed") == ROWS - 1
    assert (
        db.val(
            "SELECT count(*) FROM pgingest.rejects r JOIN pgingest.files f"
            " ON f.id = r.file_id WHERE f.path = $1",
            str(src),
        )
        == 1
    )


def test_a_latin9_file_keeps_its_euro_signs(tmp_path, load, db):
    # 0xA4 is € in ISO 8859-15; cp1252 (chosen before) read it as the currency sign ¤
    rows = "".join(f"{i},Prix {i} € TTC crème brûlée\n" for i in range(50))
    src = tmp_path / "prix.csv"
    src.write_bytes(("id,txt\n" + rows).encode("iso8859-15"))
    report = load(src, text=True)
    assert report.ok, report.failed
    assert db.val("SELECT count(*) FROM prix WHERE txt LIKE 'Prix % € TTC crème brûlée'") == 50
    assert any("read as iso8859-15" in w for w in report.files[0].warnings)


def test_a_greek_file_is_read_as_greek(tmp_path, load, db):
    text = "Αθήνα Θεσσαλονίκη Πάτρα Ηράκλειο Λάρισα"
    src = tmp_path / "greek.csv"
    src.write_bytes(("id,name\n" + "".join(f"{i},{text}\n" for i in range(20))).encode("iso8859-7"))
    report = load(src, text=True)
    assert report.ok, report.failed
    assert db.val("SELECT count(*) FROM greek WHERE name = $1", text) == 20


def test_an_ambiguous_encoding_fails_the_file_and_encoding_decides(tmp_path, cli, db):
    # Turkish cp1254 and cp1252 differ only in letters no statistics tell apart: no guess
    rows = "".join(f"{i},İstanbul Şişli {i}\n" for i in range(40))
    src = tmp_path / "tr.csv"
    src.write_bytes(("id,name\n" + rows).encode("cp1254"))
    code, out, err = cli("load", str(src), "--table", "tr", "--text")
    assert code == 1
    assert f"{src}: line 2: encoding ambiguous" in out + err
    assert "--encoding cp1254" in out + err
    assert db.val(f"SELECT to_regclass('{db.schema}.tr')") is None  # nothing loaded
    code, out, err = cli("load", str(src), "--table", "tr", "--text", "--encoding", "cp1254")
    assert code == 0, out + err
    assert db.val(f'SELECT name FROM "{db.schema}".tr WHERE id = $1', "0") == "İstanbul Şişli 0"


def test_a_short_chinese_file_fails_instead_of_loading_as_cp1252(tmp_path, cli, db):
    # 北京 in GBK read as cp1252 is ±±¾©: the file loaded with exit 0 and changed every name
    src = tmp_path / "cities.csv"
    src.write_bytes("id,name\n1,北京\n2,上海\n".encode("gbk"))
    code, out, err = cli("load", str(src), "--table", "cities")
    assert code == 1
    assert f"{src}: line 2: encoding ambiguous" in out + err
    assert "convert the file to UTF-8" in out + err
    assert db.val(f"SELECT to_regclass('{db.schema}.cities')") is None  # nothing loaded
    src.write_bytes("id,name\n1,北京\n2,上海\n".encode())
    code, out, err = cli("load", str(src), "--table", "cities")
    assert code == 0, out + err
    assert db.val(f'SELECT name FROM "{db.schema}".cities WHERE id = 1') == "北京"

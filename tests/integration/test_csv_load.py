"""CSV/TSV loading against a real PostgreSQL: types, dialects, encodings, names, edge files."""

from __future__ import annotations

import bz2
import datetime as dt
import decimal
import gzip
import lzma
from pathlib import Path

import zstandard

D = decimal.Decimal


def write(path: Path, text: str, encoding: str = "utf-8", newline: str = "\n") -> Path:
    path.write_bytes(text.replace("\n", newline).encode(encoding))
    return path


def test_types_are_inferred_and_values_round_trip(tmp_path, load, db):
    src = write(
        tmp_path / "typed.csv",
        "id,big,exact,ratio,ok,day,at,at_tz,label\n"
        "1,9000000000,12345678901234567890.5,1.5,true,2026-01-31,2026-01-31 10:20:30.123456,"
        '2026-01-31T10:20:30+02:00,"héllo, ""world"""\n'
        '2,-5,0.1,-2e3,false,2000-02-29,2000-02-29 00:00:00,2000-02-29 00:00:00Z,"multi\nline"\n'
        "3,,,,,,,,\n"
        '4,7,3,0,t,1999-12-31,1999-12-31T23:59:59,1999-12-31 23:59:59-05:30,""\n',
    )
    report = load(src)
    assert report.ok, report.failed
    assert db.types("typed") == {
        "id": "integer",
        "big": "bigint",
        "exact": "numeric",
        "ratio": "double precision",
        "ok": "boolean",
        "day": "date",
        "at": "timestamp without time zone",
        "at_tz": "timestamp with time zone",
        "label": "text",
    }
    rows = db.rows("typed", "id")
    assert rows[0][:7] == (
        1,
        9000000000,
        D("12345678901234567890.5"),
        1.5,
        True,
        dt.date(2026, 1, 31),
        dt.datetime(2026, 1, 31, 10, 20, 30, 123456),
    )
    assert rows[0][7] == dt.datetime(2026, 1, 31, 8, 20, 30, tzinfo=dt.UTC)
    assert rows[0][8] == 'héllo, "world"'
    assert rows[1][8] == "multi\nline"
    assert rows[1][3] == -2000.0
    assert rows[2] == (3, None, None, None, None, None, None, None, None)
    assert rows[3][8] == ""  # a quoted empty field is an empty string, not NULL


def test_leading_zeros_stay_text_and_null_differs_from_empty(tmp_path, load, db):
    src = write(tmp_path / "zips.csv", 'zip,code,note\n00123,1,a\n02134,2,""\n10001,3,\n')
    assert load(src).ok
    assert db.types("zips") == {"zip": "text", "code": "integer", "note": "text"}
    assert db.rows("zips", "code") == [("00123", 1, "a"), ("02134", 2, ""), ("10001", 3, None)]


def test_a_sign_and_a_negative_zero_are_no_part_of_the_number(tmp_path, load, db):
    # README: the number survives inference, not its spelling (unlike 007's leading zeros)
    src = tmp_path / "signs.csv"
    src.write_text("id,n,x\n1,+5,0.12345678901234567890\n2,-0,-0.0\n3,3,1.5\n")
    report = load(src)
    assert report.ok, report.failed
    assert db.types("signs") == {"id": "integer", "n": "integer", "x": "numeric"}
    assert db.rows("signs") == [
        (1, 5, decimal.Decimal("0.12345678901234567890")),
        (2, 0, decimal.Decimal("0.0")),
        (3, 3, decimal.Decimal("1.5")),
    ]


def test_crlf_bom_and_cp1252(tmp_path, load, db):
    crlf = write(tmp_path / "crlf.csv", '\ufeffname,n\nJosé,1\n"a\nb",2\n', newline="\r\n")
    legacy = write(tmp_path / "legacy.csv", "name,n\ncafé – crème,1\nNaïve,2\n", encoding="cp1252")
    assert load([crlf, legacy]).ok
    assert db.data_columns("crlf") == ["name", "n"]
    assert db.rows("crlf", "n") == [("José", 1), ("a\r\nb", 2)]
    assert db.rows("legacy", "n") == [("café – crème", 1), ("Naïve", 2)]


def test_latin1_stray_byte_does_not_crash(tmp_path, load, db):
    src = tmp_path / "stray.csv"
    src.write_bytes(b"name,n\nok,1\nbad \x81 byte \xe9,2\n")
    assert load(src).ok
    assert db.count("stray") == 2


def test_dialects_tsv_semicolon_pipe(tmp_path, load, db):
    tsv = write(tmp_path / "tabbed.tsv", 'a\tb\n1\tx y\n2\t"q\tq"\n')
    semi = write(tmp_path / "semi.csv", "a;b\n1;x,y\n2;z\n")
    pipe = write(tmp_path / "piped.txt", "a|b\n1|x;y\n2|z\n")
    assert load([tsv, semi, pipe]).ok
    assert db.rows("tabbed", "a") == [(1, "x y"), (2, "q\tq")]
    assert db.rows("semi", "a") == [(1, "x,y"), (2, "z")]
    assert db.rows("piped", "a") == [(1, "x;y"), (2, "z")]


def test_compressed_csv(tmp_path, load, db):
    text = b"a,b\n1,x\n2,y\n"
    (tmp_path / "g.csv.gz").write_bytes(gzip.compress(text))
    (tmp_path / "b.csv.bz2").write_bytes(bz2.compress(text))
    (tmp_path / "x.csv.xz").write_bytes(lzma.compress(text))
    (tmp_path / "z.csv.zst").write_bytes(zstandard.ZstdCompressor().compress(text))
    assert load(tmp_path).ok
    for table in ("g", "b", "x", "z"):
        assert db.rows(table, "a") == [(1, "x"), (2, "y")]


def test_headerless_file_with_headers_option(tmp_path, load, db):
    src = write(tmp_path / "nohead.csv", "1,2026-01-01,alpha\n2,2026-01-02,beta\n")
    assert load(src, headers=("id", "day", "word"), header=False).ok
    assert db.data_columns("nohead") == ["id", "day", "word"]
    assert db.rows("nohead", "id") == [
        (1, dt.date(2026, 1, 1), "alpha"),
        (2, dt.date(2026, 1, 2), "beta"),
    ]


def test_headers_override_and_sniffed_headerless(tmp_path, load, db):
    src = write(tmp_path / "renamed.csv", "A,B\n1,2\n")
    assert load(src, headers=("x", "y")).ok
    assert db.rows("renamed") == [(1, 2)]
    bare = write(tmp_path / "bare.csv", "1,2.5,2026-01-01\n2,3.5,2026-01-02\n")
    assert load(bare).ok
    assert db.data_columns("bare") == ["col_1", "col_2", "col_3"]
    assert db.count("bare") == 2


def test_names_are_normalized_deduplicated_and_shortened(tmp_path, load, db):
    long = "A very long column name " * 3  # 72 characters
    src = write(
        tmp_path / "Names File.csv", f'Café Name,café name,,"{long}","{long}x"\n1,2,3,4,5\n'
    )
    assert load(src).ok
    cols = db.data_columns("names_file")
    assert cols[:3] == ["cafe_name", "cafe_name_2", "col_3"]
    assert all(len(c.encode()) <= 63 for c in cols)
    assert len(set(cols)) == 5
    assert db.rows("names_file") == [(1, 2, 3, 4, 5)]


def test_header_only_file_creates_empty_table(tmp_path, load, db):
    src = write(tmp_path / "only_header.csv", "a,b,c\n")
    report = load(src)
    assert report.ok
    assert db.data_columns("only_header") == ["a", "b", "c"]
    assert db.count("only_header") == 0


def test_two_megabyte_field(tmp_path, load, db):
    big = "x" * (2 << 20)
    src = write(tmp_path / "wide.csv", f'id,blob\n1,"{big}"\n2,small\n')
    assert load(src).ok
    assert db.val("SELECT length(blob) FROM wide WHERE id = 1") == 2 << 20


def test_text_option_and_types_override(tmp_path, load, db):
    src = write(tmp_path / "ov.csv", "a,b,c\n1,2.50,2026-01-01\n")
    assert load(src, text=True, table="all_text").ok
    assert set(db.types("all_text").values()) == {"text"}
    assert load(src, types={"b": "numeric(12,2)"}, table="typed").ok
    assert db.types("typed")["b"] == "numeric(12,2)"
    assert db.rows("typed") == [(1, D("2.50"), dt.date(2026, 1, 1))]


def test_null_string_marker(tmp_path, load, db):
    src = write(tmp_path / "nulls.csv", 'a,b\n1,NA\n2,""\n3,\n4,x\n')
    assert load(src, null_strings=("NA",)).ok
    assert db.rows("nulls", "a") == [(1, None), (2, ""), (3, None), (4, "x")]


def test_value_that_does_not_fit_later_batch_names_line_column_value(tmp_path, load, db):
    lines = ["n,label"] + [f"{i},row{i}" for i in range(1, 301)]
    lines[250] = "oops,row250"  # file line 251
    src = write(tmp_path / "late.csv", "\n".join(lines) + "\n")
    report = load(src, sample_rows=100, batch_size=50)
    assert not report.ok
    error = report.failed[0].error
    assert "late.csv" in error
    assert "line 251" in error
    assert "column n" in error
    assert "oops" in error


def test_nul_byte_is_a_clear_error(tmp_path, load, db):
    src = tmp_path / "nul.csv"
    src.write_bytes(b"a,b\n1,x\n2,y\x00z\n")
    report = load(src)
    assert not report.ok
    assert "line 3" in report.failed[0].error


def test_load_into_existing_typed_table(tmp_path, load, db):
    db.execute(
        f'CREATE TABLE "{db.schema}".target (id bigint, amount numeric(12,2), note varchar(20))'
    )
    src = write(tmp_path / "t.csv", "id,amount,note\n1,10.50,a\n2,3,b\n")
    assert load(src, table="target").ok
    assert db.rows("target", "id") == [(1, D("10.50"), "a"), (2, D("3.00"), "b")]
    extra = write(tmp_path / "extra.csv", "id,amount,surprise\n1,2,3\n")
    report = load(extra, table="target", on_new_column="fail", tolerant=True)
    assert not report.ok
    assert "surprise" in report.failed[0].error
    assert "surprise" not in db.types("target")


def test_excel_sep_hint_line(tmp_path, load, db):
    src = tmp_path / "excel.csv"
    src.write_bytes(b"\xef\xbb\xbfsep=;\r\nid;name\r\n1;x,y\r\n2;z\r\n")
    assert load(src).ok
    assert db.data_columns("excel") == ["id", "name"]
    assert db.rows("excel", "id") == [(1, "x,y"), (2, "z")]
    bad = tmp_path / "excel_bad.csv"
    bad.write_text("sep=|\nid|v\n1|a\n", encoding="utf-8")
    report = load(bad, types={"v": "integer"})
    assert not report.ok
    assert "line 3, column v" in report.failed[0].error  # the hint line counts as a line


def test_a_header_of_numbers_above_booleans_is_a_header(tmp_path, load, db):
    # frictionless numeric-labels.csv: taken for data, the columns typed boolean failed
    src = write(tmp_path / "labels.csv", "id,100022,10011\nid1,TRUE,FALSE\nid2,TRUE,TRUE\n")
    report = load(src)
    assert report.ok, report.failed
    assert db.data_columns("labels") == ["id", "_100022", "_10011"]
    assert db.rows("labels") == [("id1", True, False), ("id2", True, True)]

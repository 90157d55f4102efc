"""CSV fidelity against a real PostgreSQL: what a file holds arrives as Python's ``csv`` module
reads it, byte for byte (``--text``), where PostgreSQL's own CSV parser would read it otherwise.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest


def python_rows(data: bytes, encoding: str = "utf-8") -> list[list[str]]:
    """The reference: what Python's csv module reads (blank lines are no rows)."""
    text = data.decode(encoding)
    return [row for row in csv.reader(io.StringIO(text, newline=""), strict=False) if row]


def loaded(db, table: str, columns: list[str]) -> list[list[str | None]]:
    names = ", ".join(f'"{c}"' for c in columns)
    rows = db.fetch(f'SELECT {names} FROM "{db.schema}"."{table}" ORDER BY _pgingest_file_id, ctid')
    return [list(r) for r in rows]


def load_text(tmp_path: Path, load, db, name: str, data: bytes, **options):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(data)
    report = load(path, text=True, **options)
    return report


@pytest.mark.parametrize(
    ("name", "data"),
    [
        # the file: COPY opened a quoted section at the first inch mark and merged
        # three lines into one row
        ("inches", b'id,item,n\n1,5" pipe,3\n2,bolt,4\n3,7" tube,5\n'),
        # two such quotes in one field: COPY dropped both and kept the line
        ("geo", b"id,where\n1,37\xc2\xb036'37.8\"N 121\xc2\xb02'17.9\"W\n2,x\n"),
        # a quote after a quoted field's closing quote, and one inside a quoted field
        ("after_close", b'id,v\n1,"ab"c"d\n2,"he said "hi" ok"\n3,plain\n'),
        # an inch mark at the end of a field, then a quoted field on the next line
        ("end_mark", b'id,v\n1,12"\n2,"a,b"\n3,"c\nd"\n'),
        # the same with CRLF line breaks
        ("crlf", b'id,item,n\r\n1,5" pipe,3\r\n2,bolt,4\r\n3,7" tube,5\r\n'),
    ],
)
def test_quotes_that_do_not_open_a_field_arrive_as_python_reads_them(
    tmp_path, load, db, name, data
):
    report = load_text(tmp_path, load, db, name, data)
    assert report.ok, report.failed
    expected = python_rows(data)
    header, body = expected[0], expected[1:]
    assert loaded(db, name, header) == body
    assert report.files[0].rows == len(body)


@pytest.mark.parametrize(
    ("name", "data", "header"),
    [
        # an uneven quote in the header: its quote-parity end ran the header to the end of
        # the file, and the load said "0 rows" with exit 0
        ("header_quote", b'id,"a "b"\n1,2\n3,4\n', ["id", "a_b"]),
        ("one_column", b'"Pedro "the"\n"Pedro "the" legend"\n"Pedro "the"\n', ["pedro_the"]),
        ("header_quote_crlf", b'id,"a "b"\r\n1,2\r\n3,4\r\n', ["id", "a_b"]),
    ],
)
def test_a_stray_quote_in_the_header_ends_it_as_python_reads_it(
    tmp_path, load, db, name, data, header
):
    report = load_text(tmp_path, load, db, name, data)
    assert report.ok, report.failed
    body = python_rows(data)[1:]
    assert db.data_columns(name) == header
    assert loaded(db, name, header) == body
    assert report.files[0].rows == len(body) == 2


def test_a_header_quote_never_closed_fails_the_file_naming_its_line(tmp_path, load, db):
    report = load_text(tmp_path, load, db, "open_header", b'\n"a,b\n1,2\n')
    assert not report.ok
    assert "line 2: unterminated quoted field" in report.failed[0].error


def test_a_line_holding_only_the_end_of_data_marker_is_data(tmp_path, load, db):
    # PostgreSQL before 18 ends COPY's data at a line holding only \. (PostgreSQL 15 loaded
    # one row of these three and said nothing)
    data = b"v\na\n\\.\nb\n"
    assert load_text(tmp_path, load, db, "marker", data, header=True).ok
    assert loaded(db, "marker", ["v"]) == [["a"], ["\\."], ["b"]]


def test_blank_lines_are_no_rows_in_a_one_column_file(tmp_path, load, db):
    # COPY reads a blank line of a one-column file as a NULL row; Python's csv reads no row
    data = b"v\na\n\nb\n\n\nc\n"
    assert load_text(tmp_path, load, db, "blank", data).ok
    assert loaded(db, "blank", ["v"]) == [["a"], ["b"], ["c"]]


def test_quoted_empty_is_empty_text_and_unquoted_empty_is_null(tmp_path, load, db):
    data = b'id,a,b\n1,"",\n2,,""\n3,5" x,""\n'
    assert load_text(tmp_path, load, db, "empties", data).ok
    assert loaded(db, "empties", ["id", "a", "b"]) == [
        ["1", "", None],
        ["2", None, ""],
        ["3", '5" x', ""],
    ]


def test_a_carriage_return_alone_ends_a_record_as_in_python(tmp_path, load, db):
    data = b"id,v\n1,a\r2,b\n3,c\n"
    assert load_text(tmp_path, load, db, "lone_cr", data).ok
    assert loaded(db, "lone_cr", ["id", "v"]) == python_rows(data)[1:]


def test_nul_byte_row_stops_the_file_or_is_a_reject_with_its_bytes(tmp_path, load, db):
    # (a file holding more NUL bytes than one in a thousand is binary, refused as a whole)
    rest = b"".join(b"%d,v%d\n" % (i, i) for i in range(4, 2000))
    data = b'id,v\n1,a\n2,b\x00c\n3,5" d\n' + rest
    stop = load_text(tmp_path, load, db, "nul", data)
    assert not stop.ok
    assert "line 3" in stop.failed[0].error
    assert "NUL" in stop.failed[0].error
    skip = load_text(tmp_path, load, db, "nul", data, on_error="skip", force=True)
    assert skip.ok, skip.failed
    assert skip.files[0].rejects == 1
    assert loaded(db, "nul", ["id", "v"])[:3] == [["1", "a"], ["3", '5" d'], ["4", "v4"]]
    reject = db.fetch("SELECT line, raw, raw_bytes FROM pgingest.rejects ORDER BY id DESC LIMIT 1")
    assert reject[0]["line"] == 3
    assert reject[0]["raw_bytes"] == b"2,b\x00c"


def test_a_value_refused_in_a_rewritten_chunk_names_the_file_line(tmp_path, load, db):
    # the chunk is written again (a stray quote); a value its column refuses must still be
    # reported at its line in the file, past a multi-line value and a blank line
    data = b'id,v\n1,"a\nb"\n\n2,5" x\n3,y\nnope,z\n'
    (tmp_path / "w.csv").write_bytes(data)
    report = load(tmp_path / "w.csv", types={"id": "integer"})
    assert not report.ok
    assert "line 7" in report.failed[0].error, report.failed[0].error
    assert "column id" in report.failed[0].error

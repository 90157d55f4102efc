"""Cutting a raw CSV chunk into records, the way PostgreSQL's COPY reads it."""

from __future__ import annotations

from pgingest.sources.records import split_records


def records(data: bytes, first_line: int = 2, **kw):
    r = split_records(data, first_line, **kw)
    return [
        (int(line), int(fields), bool(broken), data[s:e])
        for s, e, line, fields, broken in zip(
            r.starts, r.ends, r.lines, r.fields, r.broken, strict=True
        )
    ]


def test_records_lines_and_fields():
    data = b'1,"a\nb",x\n\n2,"q,""q"""\n3,c,d,e\n4,z'
    assert records(data) == [
        (2, 3, False, b'1,"a\nb",x\n'),
        (5, 2, False, b'2,"q,""q"""\n'),
        (6, 4, False, b"3,c,d,e\n"),
        (7, 2, False, b"4,z"),
    ]


def test_an_unclosed_quote_breaks_only_its_line():
    data = b'1,a\n2,"never closed\n3,b\n4,"c"\n'
    assert records(data, 10) == [
        (10, 2, False, b"1,a\n"),
        (11, 2, True, b'2,"never closed\n'),
        (12, 2, False, b"3,b\n"),
        (13, 2, False, b'4,"c"\n'),
    ]


def test_crlf_tabs_and_no_field_count():
    data = b"a\tb\r\nc\td\r\n\r\n"
    assert records(data, 1, delimiter="\t") == [
        (1, 2, False, b"a\tb\r\n"),
        (2, 2, False, b"c\td\r\n"),
    ]
    assert records(data, 1, delimiter="\t", count_fields=False)[0][1] == 0
    assert records(b"") == []

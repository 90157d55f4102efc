"""Raw CSV chunks that COPY reads exactly as Python's ``csv`` module reads the file: the check
for what COPY would misread, the client-side repair, the Python-semantics record splitter and
the reader end to end, on bytes, against a model of COPY's parser (no database)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csv_strategies import Written, csv_files, python_read
from pgcsv_model import CopyError, copy_read
from pgingest.errors import RowError
from pgingest.sources import CsvOptions, Source
from pgingest.sources.records import python_records
from pgingest.sources.refused import copy_lines
from pgingest.sources.repair import (
    Marks,
    _end_marker,
    copy_misreads,
    record_end_after,
    repair_chunk,
)

Open = Callable[..., Source]
PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def body(written: Written) -> bytes:
    """The records after the header (and the BOM)."""
    data = written.data.removeprefix(b"\xef\xbb\xbf")
    return data[data.index(written.newline.encode()) + len(written.newline) :]


def normalized(rows: list[list[str | None]]) -> list[list[str]]:
    """NULL and "" are the same to Python's csv module."""
    return [["" if v is None else v for v in row] for row in rows]


@PROPERTY
@given(written=csv_files())
def test_chunks_the_check_passes_are_read_by_copy_as_by_python(written: Written) -> None:
    data = body(written)
    marks = Marks().mark(data, written.quote)
    if copy_misreads(
        data,
        marks,
        len(data),
        delimiter=written.delimiter,
        quote=written.quote,
        newline=written.newline,
    ):
        return
    expected = [row for _line, row in python_read(data, written.delimiter, written.quote)]
    assert normalized(copy_read(data, written.delimiter, written.quote)) == expected


@PROPERTY
@given(written=csv_files())
def test_repaired_chunks_are_read_by_copy_as_python_reads_the_original(written: Written) -> None:
    data = body(written)
    repaired = repair_chunk(
        data,
        2,
        width=written.width,
        delimiter=written.delimiter,
        quote=written.quote,
        newline="\n",
    )
    assert repaired.end == len(data)
    rows = python_read(data, written.delimiter, written.quote)
    good = [(line + 1, row) for line, row in rows if len(row) == written.width]
    bad_lines = [line + 1 for line, row in rows if len(row) != written.width]
    assert normalized(copy_read(repaired.data, written.delimiter, written.quote)) == [
        row for _line, row in good
    ]
    assert repaired.lines.tolist() == [line for line, _row in good]
    assert [b.line for b in repaired.bad] == bad_lines


@PROPERTY
@given(written=csv_files())
def test_python_records_cut_records_as_the_csv_module_does(written: Written) -> None:
    data = body(written)
    cut = python_records(data, 2, delimiter=written.delimiter, quote=written.quote)
    rows = python_read(data, written.delimiter, written.quote)
    records = cut.records
    assert len(records) == len(rows)
    assert records.lines.tolist() == [line + 1 for line, _row in rows]
    assert records.fields.tolist() == [len(row) for _line, row in rows]
    for start, end, (_line, row) in zip(records.starts, records.ends, rows, strict=True):
        alone = python_read(data[start:end], written.delimiter, written.quote)
        assert [r for _l, r in alone] == [row]


@PROPERTY
@given(written=csv_files(), batch_bytes=st.integers(1, 300), data=st.data())
def test_raw_chunks_of_the_reader_are_read_by_copy_as_python_reads_the_file(
    opened: Open, written: Written, batch_bytes: int, data: st.DataObject
) -> None:
    options = CsvOptions(
        header=True,
        delimiter=written.delimiter,
        quotechar=written.quote,
        escape="double",
        skip_bad_rows=True,
    )
    name = data.draw(st.sampled_from(["f.csv", "f.txt"]))
    source = opened(written.data, name, options)
    rows = python_read(written.data, written.delimiter, written.quote, file=True)[1:]
    width = written.width
    got: list[tuple[int, list[str]]] = []
    rejected: list[int] = []
    for chunk in source.chunks(batch_bytes=batch_bytes, raw=True):
        text = chunk.data.decode("utf-8")
        try:
            read = copy_read(text.encode(), written.delimiter, written.quote)
        except CopyError:
            pytest.fail(f"COPY would refuse a chunk: {chunk.data!r}")
        lines = (
            chunk.lines.tolist()
            if chunk.lines is not None
            else [chunk.first_line + n for n in _copy_line_offsets(chunk.data, written)]
        )
        got += [(line, row) for line, row in zip(lines, normalized(read), strict=True)]
        rejected += [r.line for r in chunk.rejects]
    assert [row for _line, row in got if len(row) == width] == [
        row for _line, row in rows if len(row) == width
    ]
    # a record of another width COPY refuses (a clean chunk), or the reader set aside
    assert sorted([line for line, row in got if len(row) != width] + rejected) == [
        line for line, row in rows if len(row) != width
    ]
    assert [line for line, row in got if len(row) == width] == [
        line for line, row in rows if len(row) == width
    ]


def _copy_line_offsets(data: bytes, written: Written) -> list[int]:
    """Lines after the chunk's first on which each of its records starts."""
    from pgingest.model import CsvDialect

    records, _numbers = copy_lines(
        data, CsvDialect(delimiter=written.delimiter, quotechar=written.quote)
    )
    return [int(line) - 1 for line in records.lines]


@pytest.mark.parametrize(
    ("data", "misread"),
    [
        (b'1,"a,b",3\n2,"x""y",4\n', False),
        (b'1,"",\n', False),
        (b'1,"a\r\nb"\n', False),  # a CR inside quotes
        (b'1,5" pipe,3\n2,bolt,4\n3,7" tube,5\n', True),
        (b'1,12"\n2,x\n', True),  # an inch mark at a field's end
        (b'a,"b"c\n', True),  # text after a closing quote
        (b'a,b""c\n', True),  # a doubled quote in an unquoted field
        (b"a\n\nb\n", True),  # a blank line
        (b"\na\n", True),  # a blank line first
        (b"a\n\\.\nb\n", True),  # the end-of-data marker
        (b"a\n\\.", True),
        (b"a\n\\.x\n", False),
        (b"a\rb\n", True),  # a CR alone ends a record in Python
        (b"a,b\x00c\n", True),  # a NUL byte
        (b'a,"b\n', True),  # a quote never closed
    ],
)
def test_what_copy_would_misread(data: bytes, misread: bool) -> None:
    marks = Marks().mark(data, '"')
    assert copy_misreads(data, marks, len(data), delimiter=",", quote='"', newline="\n") is misread
    if not misread:
        assert normalized(copy_read(data)) == [r for _l, r in python_read(data, ",", '"')]


@pytest.mark.parametrize(
    ("data", "misread"),
    [
        (b"a,b\r\nc,d\r\n", False),
        (b"a,b\nc,d\r\n", True),  # an LF alone in a CRLF file
        (b"a,b\r\n\r\nc,d\r\n", True),  # a blank line
        (b'a,"x\ny"\r\n', False),  # an LF alone inside quotes
    ],
)
def test_what_copy_would_misread_in_a_crlf_file(data: bytes, misread: bool) -> None:
    marks = Marks().mark(data, '"')
    assert (
        copy_misreads(data, marks, len(data), delimiter=",", quote='"', newline="\r\n") is misread
    )


def test_record_end_after_skips_line_breaks_inside_quotes() -> None:
    data = b'1,"a\nb"\n2,x\n3,"y\n'
    marks = Marks().mark(data, '"')
    assert record_end_after(data, marks, 1) == 8
    assert record_end_after(data, marks, 9) == 12
    assert record_end_after(data, marks, 13) == 12  # the last one that ends
    assert record_end_after(b'1,"open\n', Marks().mark(b'1,"open\n', '"'), 1) == -1


def test_repair_reads_the_issues_file_as_python_does() -> None:
    data = b'1,5" pipe,3\n2,bolt,4\n3,7" tube,5\n'
    repaired = repair_chunk(data, 2, width=3)
    assert repaired.data == b'"1","5"" pipe","3"\n"2","bolt","4"\n"3","7"" tube","5"\n'
    assert repaired.lines.tolist() == [2, 3, 4]
    assert repaired.bad == ()


def test_repair_keeps_null_apart_from_the_empty_string() -> None:
    repaired = repair_chunk(b'a,,""\n', 1, width=3)
    assert repaired.data == b'"a",,""\n'
    assert copy_read(repaired.data) == [["a", None, ""]]


def test_repair_sets_aside_bad_records_with_their_lines_and_bytes() -> None:
    data = b'1,a\n2,b,extra\n3,c\x00d\n4,caf\xe9\n5,"never closed\n6,f\n'
    repaired = repair_chunk(data, 10, width=2)
    assert copy_read(repaired.data) == [["1", "a"], ["6", "f"]]
    assert repaired.lines.tolist() == [10, 15]
    assert [(b.line, b.raw, b.reason.split(" (")[0]) for b in repaired.bad] == [
        (11, b"2,b,extra\n", "3 fields, expected 2"),
        (12, b"3,c\x00d\n", "NUL byte"),
        (13, b"4,caf\xe9\n", "invalid byte sequence for encoding UTF8: 0xe9"),
        (14, b'5,"never closed\n', "unterminated quoted field"),
    ]


def test_repair_decodes_a_single_byte_encoding() -> None:
    repaired = repair_chunk(b'1,caf\xe9 5"\n', 1, width=2, encoding="cp1252")
    assert repaired.data.decode("utf-8") == '"1","café 5"""\n'


def test_repair_stops_before_a_record_not_complete_yet() -> None:
    data = b'1,5" a\n2,"open\nstill'
    repaired = repair_chunk(data, 1, width=2, final=False)
    assert repaired.end == 7
    assert repaired.lines.tolist() == [1]


def test_python_records_break_only_the_line_of_a_quote_never_closed() -> None:
    cut = python_records(b'1,a\n2,"open\n3,c\n', 1)
    assert cut.records.lines.tolist() == [1, 2, 3]
    assert cut.records.broken.tolist() == [False, True, False]


def test_copy_lines_count_as_the_server_does() -> None:
    from pgingest.model import CsvDialect

    # COPY counts a quoted LF only after it has seen the first line end (measured on 15, 18)
    _records, numbers = copy_lines(b'"a\nb\nc",1\nx,y\n"p\nq",2\nz,w\n', CsvDialect())
    assert numbers.tolist() == [1, 2, 4, 5]
    _records, numbers = copy_lines(b'"a\r\nb",1\r\nx,y\r\n', CsvDialect(newline="\r\n"))
    assert numbers.tolist() == [2, 3]


@PROPERTY
@given(written=csv_files())
def test_copy_lines_from_known_record_ends_are_copy_lines(written: Written) -> None:
    # (A batch its bad rows were taken out of knows its record ends: the count of its lines
    # may skip the cut when no line break is inside a value; never may it differ.)
    from pgingest.model import CsvDialect

    data = body(written)
    dialect = CsvDialect(
        delimiter=written.delimiter, quotechar=written.quote, newline=written.newline
    )
    records, numbers = copy_lines(data, dialect)
    known, known_numbers = copy_lines(data, dialect, records.ends)
    assert known_numbers.tolist() == numbers.tolist()
    assert known.starts.tolist() == records.starts.tolist()
    assert known.ends.tolist() == records.ends.tolist()


def test_reader_fails_on_a_bad_record_unless_skipping(opened: Open) -> None:
    data = b'a,b\n1,5" x\n2,y,z\n3,w\n'
    with pytest.raises(RowError, match="line 3: 3 fields, expected 2"):
        list(opened(data).chunks(raw=True))
    source = opened(data, "skip.csv", CsvOptions(skip_bad_rows=True))
    chunks = list(source.chunks(raw=True))
    assert [r.line for c in chunks for r in c.rejects] == [3]
    assert np.concatenate([c.lines for c in chunks]).tolist() == [2, 4]


def test_one_stray_quote_does_not_make_the_rest_of_the_file_one_record(opened: Open) -> None:
    # COPY's quote pairing would run from the inch mark to the end of the file: the reader
    # must cut the chunks where Python's reading ends records, and repair that chunk only
    rows = b"".join(b'%d,"name %d",%d\n' % (i, i, i) for i in range(2, 20_000))
    data = b'a,b,c\n1,5" pipe,3\n' + rows
    chunks = list(opened(data).chunks(batch_bytes=4096, raw=True))
    assert len(chunks) > 20
    assert max(len(c.data) for c in chunks) < 128 << 10  # a chunk and what was read past it
    assert [i for i, c in enumerate(chunks) if c.lines is not None] == [0]
    read = [row for c in chunks for row in copy_read(c.data)]
    assert read[0] == ["1", '5" pipe', "3"]
    assert len(read) == 19_999


@pytest.mark.parametrize("data", [b"\xef\xbb\xbf\r\n", b"\xef\xbb\xbfb\n"])
def test_a_record_that_is_a_bom_is_written_again_as_it_is(data: bytes) -> None:
    """Found by the property above: a chunk whose first value starts with U+FEFF came out of
    the repair as 8 KiB of NUL bytes (pyarrow's parser, given a block shorter than the input
    plus the BOM kept before it, read the value from memory it did not own)."""
    repaired = repair_chunk(data, 2, width=1, newline="\n")
    assert copy_read(repaired.data) == [[data.decode("utf-8").rstrip("\r\n")]]
    assert repaired.lines.tolist() == [2]


def _end_marker_by_search(data: bytes) -> bool:
    """The reference: a ``\\.`` after a line break (or first) and before one (or last)."""
    at = data.find(b"\\.")
    while at >= 0:
        if (at == 0 or data[at - 1] in b"\r\n") and data[at + 2 : at + 3] in (b"", b"\r", b"\n"):
            return True
        at = data.find(b"\\.", at + 2)
    return False


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40).map(lambda b: bytes(b"\\.\n\ra,"[x % 6] for x in b)))
def test_the_end_marker_is_found_as_a_search_finds_it(data: bytes) -> None:
    arr = np.frombuffer(data, np.uint8)
    assert _end_marker(arr) is _end_marker_by_search(data)

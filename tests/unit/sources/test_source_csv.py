"""CSV reading: column names, the text sample, Arrow chunks and their errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa
import pytest

import pgingest.sources.csv as csv_module
from pgingest.errors import RowError, SourceError
from pgingest.model import ArrowChunk
from pgingest.sources import CsvOptions, Source

Open = Callable[..., Source]


def arrow_chunks(source: Source, **kwargs: Any) -> list[ArrowChunk]:
    chunks = list(source.chunks(raw=False, **kwargs))
    assert all(isinstance(chunk, ArrowChunk) for chunk in chunks)
    return [chunk for chunk in chunks if isinstance(chunk, ArrowChunk)]


def test_sample_is_all_text(opened: Open) -> None:
    source = opened("id,amount,day\n1,2.5,2024-01-01\n2,3,2024-01-02\n")
    table = source.sample()
    assert table.column_names == ["id", "amount", "day"]
    assert all(field.type == pa.string() for field in table.schema)
    assert table.to_pydict() == {
        "id": ["1", "2"],
        "amount": ["2.5", "3"],
        "day": ["2024-01-01", "2024-01-02"],
    }


def test_quotes_embedded_delimiter_newline_and_doubled_quotes(opened: Open) -> None:
    source = opened('a,b\n"x, y","line1\nline2"\n"say ""hi""",z\n')
    assert source.sample().to_pydict() == {
        "a": ["x, y", 'say "hi"'],
        "b": ["line1\nline2", "z"],
    }


def test_quoted_empty_is_empty_string_unquoted_empty_is_null(opened: Open) -> None:
    source = opened('a,b,c\n1,,""\n')
    assert source.sample().to_pydict() == {"a": ["1"], "b": [None], "c": [""]}


def test_null_strings(opened: Open) -> None:
    options = CsvOptions(null_strings=("NULL", "\\N"))
    source = opened('a,b,c\nNULL,\\N,"NULL"\n', csv=options)
    assert source.sample().to_pydict() == {"a": [None], "b": [None], "c": ["NULL"]}


def test_crlf(opened: Open) -> None:
    source = opened(b'a,b\r\n1,"x\r\ny"\r\n2,z\r\n')
    assert source.sample().to_pydict() == {"a": ["1", "2"], "b": ["x\r\ny", "z"]}


def test_lone_cr(opened: Open) -> None:
    source = opened(b"a,b\r1,x\r2,y\r")
    assert source.sample().to_pydict() == {"a": ["1", "2"], "b": ["x", "y"]}


def test_bom_stripped_from_names(opened: Open) -> None:
    source = opened(b"\xef\xbb\xbfid,name\n1,caf\xc3\xa9\n")
    assert source.column_names() == ["id", "name"]
    assert source.sample().to_pydict() == {"id": ["1"], "name": ["café"]}


def test_cp1252_decoded(opened: Open) -> None:
    source = opened(b"name,price\ncaf\xe9,\x80 3\n")
    assert source.sample().to_pydict() == {"name": ["café"], "price": ["€ 3"]}


def test_latin1_decoded(opened: Open) -> None:
    source = opened(b"name\nab\x81c\n\xe9\n")
    assert source.sample().column("name").to_pylist() == ["ab\x81c", "é"]


def test_utf8_file_with_stray_byte_past_the_sample(opened: Open) -> None:
    rows = b"".join(b"%d,caf\xc3\xa9\n" % i for i in range(30_000))
    source = opened(b"id,name\n" + rows + b"99,bad\xe9\n")
    assert source.info.dialect is not None
    assert source.info.dialect.encoding == "utf-8"
    with pytest.raises(RowError, match="line 30002: invalid byte sequence for encoding UTF8"):
        source.sample(max_rows=100_000)
    # while bad rows are skipped the sample reads on (the row is set aside by the loader)
    names = source.sample(max_rows=100_000, skip_bad_records=True).column("name").to_pylist()
    assert names[0] == "café"
    assert names[-1] == "bad\ufffd"


def test_utf8_characters_across_read_blocks(opened: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    # an odd-length header puts every two-byte character across the 64 KiB reads
    text = "id\n" + "".join(f"{'é' * 1000}\n" for _ in range(300))
    source = opened(text)
    values = source.sample().column("id").to_pylist()
    assert len(values) == 300
    assert set(values) == {"é" * 1000}


def test_headerless_names(opened: Open) -> None:
    source = opened("1,2024-01-01,x\n2,2024-01-02,y\n")
    assert source.column_names() == ["col_1", "col_2", "col_3"]
    assert source.sample().num_rows == 2


def test_names_override_header(opened: Open) -> None:
    source = opened("a,b\n1,2\n", csv=CsvOptions(names=("x", "y")))
    assert source.column_names() == ["x", "y"]
    assert source.sample().to_pydict() == {"x": ["1"], "y": ["2"]}


def test_partial_names(opened: Open) -> None:
    source = opened("1,2,3\n4,5,6\n", csv=CsvOptions(header=False, names=("x",)))
    assert source.column_names() == ["x", "col_2", "col_3"]
    assert source.sample().num_rows == 2


def test_too_many_names(opened: Open) -> None:
    with pytest.raises(SourceError, match="3 column names given"):
        opened("a,b\n1,2\n", csv=CsvOptions(names=("x", "y", "z")))


def test_raw_names_kept(opened: Open) -> None:
    source = opened("Id, Name ,,Id\n1,2,3,4\n")
    assert source.column_names() == ["Id", " Name ", "", "Id"]
    table = source.sample()
    assert table.column_names == ["Id", " Name ", "", "Id"]
    assert table.num_rows == 1


def test_header_with_embedded_newline(opened: Open) -> None:
    source = opened('"first\nname",b\n1,2\n3,4\n', csv=CsvOptions(header=True))
    assert source.column_names() == ["first\nname", "b"]
    chunks = arrow_chunks(source)
    assert chunks[0].first_line == 3
    raw = list(source.chunks())
    assert raw[0].first_line == 3


def test_header_only(opened: Open) -> None:
    source = opened("a,b,c\n")
    assert source.column_names() == ["a", "b", "c"]
    assert list(source.chunks()) == []
    assert list(source.chunks(raw=False)) == []
    table = source.sample()
    assert table.num_rows == 0
    assert table.schema == pa.schema([("a", pa.string()), ("b", pa.string()), ("c", pa.string())])


def test_header_only_without_newline(opened: Open) -> None:
    source = opened("a,b")
    assert source.column_names() == ["a", "b"]
    assert list(source.chunks()) == []
    assert source.sample().num_rows == 0


def test_sample_max_rows(opened: Open) -> None:
    source = opened("n\n" + "".join(f"{i}\n" for i in range(1000)))
    table = source.sample(max_rows=10)
    assert table.column("n").to_pylist() == [str(i) for i in range(10)]
    assert source.sample(max_rows=0).num_rows == 0


def test_two_megabyte_field(opened: Open) -> None:
    big = "x" * (2 << 20)
    source = opened(f'id,text\n1,"{big}"\n2,small\n')
    assert source.sample().column("text").to_pylist() == [big, "small"]
    raw = b"".join(chunk.data for chunk in source.chunks(batch_bytes=1 << 16))  # type: ignore[union-attr]
    assert raw == f'1,"{big}"\n2,small\n'.encode()


def test_record_longer_than_arrow_block(opened: Open, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_module, "ARROW_BLOCK_BYTES", 1 << 10)
    big = "y" * 5000
    rows = [f"{i},short\n" for i in range(200)]
    source = opened("id,text\n" + "".join(rows) + f"200,{big}\n" + "201,end\n")
    chunks = arrow_chunks(source, batch_rows=50)
    ids = [value for chunk in chunks for value in chunk.batch.column("id").to_pylist()]
    assert ids == [str(i) for i in range(202)]
    assert chunks[-1].batch.column("text").to_pylist()[-2:] == [big, "end"]


def test_arrow_chunks_rebatched(opened: Open) -> None:
    source = opened("n,s\n" + "".join(f"{i},v{i}\n" for i in range(1000)))
    chunks = arrow_chunks(source, batch_rows=300)
    assert [chunk.batch.num_rows for chunk in chunks] == [300, 300, 300, 100]
    assert [chunk.first_line for chunk in chunks] == [2, 302, 602, 902]
    assert chunks[0].batch.schema.names == ["n", "s"]


def test_arrow_chunks_headerless_first_line(opened: Open) -> None:
    source = opened("".join(f"{i},{i * 2}\n" for i in range(10)))
    chunks = arrow_chunks(source, batch_rows=4)
    assert [chunk.first_line for chunk in chunks] == [1, 5, 9]


def test_backslash_escaped_quotes(opened: Open) -> None:
    source = opened('id,text\n1,"say \\"hi\\""\n2,"a \\"b\\" c"\n')
    assert source.sample().to_pydict() == {"id": ["1", "2"], "text": ['say "hi"', 'a "b" c']}


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("a,b\n1,2\n3,4\n5\n6,7\n", 4),
        ('a,b\n1,"x\ny"\n3,4\n5,6,7\n', 5),
        ('a,b\n1,2\n3,"unterminated\n4,5\n', 3),
    ],
)
def test_malformed_row_names_line(opened: Open, data: str, line: int) -> None:
    source = opened(data, csv=CsvOptions(header=True))
    with pytest.raises(RowError) as caught:
        list(source.chunks(raw=False))
    error = caught.value
    assert error.line == line
    assert f"line {line}" in str(error)
    assert error.path is not None
    assert error.path in str(error)
    assert "\n" not in str(error)


def test_malformed_row_in_sample(opened: Open) -> None:
    source = opened("a,b\n1,2\n3,4,5\n")
    with pytest.raises(RowError, match="line 3"):
        source.sample()


def test_nul_byte_in_arrow_mode_names_line(opened: Open) -> None:
    rows = "".join(f"{i},value {i}\n" for i in range(20_000))
    source = opened(b"a,b\n" + rows.encode() + b"x,\x00\n")
    with pytest.raises(RowError, match="NUL") as caught:
        list(source.chunks(raw=False))
    assert caught.value.line == 20_002


def test_blank_lines_skipped_in_arrow_mode(opened: Open) -> None:
    source = opened("a,b\n1,2\n\n3,4\n\n\n")
    assert source.sample().to_pydict() == {"a": ["1", "3"], "b": ["2", "4"]}


def test_context_manager(opened: Open) -> None:
    source = opened("a\n1\n")
    with source as same:  # type: ignore[attr-defined]
        assert same.column_names() == ["a"]

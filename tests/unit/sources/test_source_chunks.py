"""Raw CSV chunks: whole records, exact first lines, per-chunk encodings, bounded sizes."""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pgingest.errors import ConfigError, RowError, SourceError
from pgingest.model import CsvChunk
from pgingest.sources import CsvOptions, Source, detect, open_source

Open = Callable[..., Source]


def raw_chunks(source: Source, **kwargs: Any) -> list[CsvChunk]:
    chunks = list(source.chunks(**kwargs))
    assert all(isinstance(chunk, CsvChunk) for chunk in chunks)
    return [chunk for chunk in chunks if isinstance(chunk, CsvChunk)]


def check_chunks(data: bytes, chunks: list[CsvChunk], header: bool = True) -> None:
    """Chunks concatenate to the data minus the header, each starts a record on its line."""
    body = data.split(b"\n", 1)[1] if header else data
    assert b"".join(chunk.data for chunk in chunks) == body
    offset = len(data) - len(body)
    for chunk in chunks:
        assert chunk.first_line == data.count(b"\n", 0, offset) + 1
        rows = list(csv.reader(io.StringIO(chunk.data.decode(), newline="")))
        assert rows, "a chunk holds at least one record"
        assert chunk.data.endswith(b"\n") or offset + len(chunk.data) == len(data)
        offset += len(chunk.data)


field = st.text(alphabet='ab,"\n\r x', max_size=12)
record = st.lists(field, min_size=3, max_size=3)


def quote(value: str) -> str:
    if any(c in value for c in ',"\r\n') or value.startswith(" "):
        return '"' + value.replace('"', '""') + '"'
    return value


def to_csv(rows: list[list[str]]) -> bytes:
    lines = [",".join(quote(value) for value in row) + "\n" for row in [["a", "b", "c"], *rows]]
    return "".join(lines).encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(record, min_size=1, max_size=40), batch_bytes=st.integers(1, 200))
def test_chunks_never_split_a_record(rows: list[list[str]], batch_bytes: int) -> None:
    data = to_csv(rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "data.csv")
        Path(path).write_bytes(data)
        options = CsvOptions(header=True, delimiter=",")
        source = open_source(detect(path, csv=options), options)
        chunks = raw_chunks(source, batch_bytes=batch_bytes)
    check_chunks(data, chunks)
    text = b"".join(chunk.data for chunk in chunks).decode()
    assert list(csv.reader(io.StringIO(text, newline=""))) == rows


def test_many_small_chunks_with_quoted_newlines(opened: Open) -> None:
    rows = [[str(i), f'line {i}\nsecond, "quoted"\nthird', "x" * (i % 7)] for i in range(500)]
    data = to_csv(rows)
    source = opened(data)
    chunks = raw_chunks(source, batch_bytes=300)
    assert len(chunks) > 50
    check_chunks(data, chunks)


def test_first_line_counts_physical_lines(opened: Open) -> None:
    data = b'a,b\n1,"x\ny\nz"\n2,w\n3,"p\nq"\n4,v\n'
    chunks = raw_chunks(opened(data), batch_bytes=1)
    assert [chunk.data for chunk in chunks] == [b'1,"x\ny\nz"\n', b"2,w\n", b'3,"p\nq"\n', b"4,v\n"]
    assert [chunk.first_line for chunk in chunks] == [2, 5, 6, 8]


def test_batch_rows_bounds_chunks(opened: Open) -> None:
    data = b"n,s\n" + b"".join(b"%05d,abcdefghij\n" % i for i in range(10_000))
    chunks = raw_chunks(opened(data), batch_rows=1000)
    assert 5 <= len(chunks) <= 25
    assert all(chunk.data.count(b"\n") <= 2000 for chunk in chunks)
    check_chunks(data, chunks)


def test_default_sizes_one_chunk_for_small_file(opened: Open) -> None:
    chunks = raw_chunks(opened(b"a,b\n1,2\n3,4\n"))
    assert [(chunk.data, chunk.first_line, chunk.encoding) for chunk in chunks] == [
        (b"1,2\n3,4\n", 2, "UTF8")
    ]


def test_headerless_first_line_is_1(opened: Open) -> None:
    chunks = raw_chunks(opened(b"1,2\n3,4\n"))
    assert chunks[0].first_line == 1
    assert chunks[0].data == b"1,2\n3,4\n"


def test_crlf(opened: Open) -> None:
    data = b'a,b\r\n1,"x\r\ny"\r\n2,z\r\n'
    chunks = raw_chunks(opened(data), batch_bytes=1)
    assert [chunk.data for chunk in chunks] == [b'1,"x\r\ny"\r\n', b"2,z\r\n"]
    assert [chunk.first_line for chunk in chunks] == [2, 4]


def test_lone_cr(opened: Open) -> None:
    chunks = raw_chunks(opened(b"a,b\r1,x\r2,y\r"), batch_bytes=1)
    assert [chunk.data for chunk in chunks] == [b"1,x\r", b"2,y\r"]
    assert [chunk.first_line for chunk in chunks] == [2, 3]


def test_bom_and_leading_blank_lines_removed(opened: Open) -> None:
    chunks = raw_chunks(opened(b"\xef\xbb\xbf\n\na,b\n1,2\n"))
    assert [(chunk.data, chunk.first_line) for chunk in chunks] == [(b"1,2\n", 4)]


def test_no_final_newline(opened: Open) -> None:
    chunks = raw_chunks(opened(b"a,b\n1,2\n3,4"), batch_bytes=1)
    assert [chunk.data for chunk in chunks] == [b"1,2\n", b"3,4"]


def test_trailing_blank_lines_dropped(opened: Open) -> None:
    chunks = raw_chunks(opened(b"a,b\n1,2\n3,4\n\n\n"))
    assert b"".join(chunk.data for chunk in chunks) == b"1,2\n3,4\n"


def test_one_encoding_for_every_chunk(opened: Open) -> None:
    data = b"name\n" + b"plain\n" * 50 + b"caf\xe9\n" + b"plain\n" * 50
    source = opened(data)
    assert source.info.dialect is not None
    assert source.info.dialect.encoding == "cp1252"
    chunks = raw_chunks(source, batch_bytes=64)
    assert len(chunks) > 2
    assert {chunk.encoding for chunk in chunks} == {"WIN1252"}


def test_latin1_chunk(opened: Open) -> None:
    chunks = raw_chunks(opened(b"name\nab\x81c\n"))
    assert [chunk.encoding for chunk in chunks] == ["LATIN1"]


def test_utf8_chunk_with_non_ascii(opened: Open) -> None:
    chunks = raw_chunks(opened("name\ncafé\n"))
    assert [(chunk.data, chunk.encoding) for chunk in chunks] == [("café\n".encode(), "UTF8")]


def test_stray_byte_in_utf8_file_is_a_bad_row(opened: Open) -> None:
    good = "é,1\n".encode() * 100_000  # beyond the sniffed sample: detected as UTF-8
    data = b"a,b\n" + good + b"caf\xe9,2\n" + good
    with pytest.raises(RowError, match="line 100002: invalid byte sequence for encoding UTF8"):
        raw_chunks(opened(data))
    source = opened(data, "skip.csv", CsvOptions(skip_bad_rows=True))
    chunks = raw_chunks(source)
    assert {chunk.encoding for chunk in chunks} == {"UTF8"}
    assert b"".join(chunk.data for chunk in chunks).decode().count("é") == 200_000
    rejects = [r for chunk in chunks for r in chunk.rejects]
    assert [(r.line, r.raw, r.raw_bytes) for r in rejects] == [(100002, "caf\\xe9,2", b"caf\xe9,2")]


def test_forced_encoding_names_every_chunk(opened: Open) -> None:
    chunks = raw_chunks(opened(b"a\nx\n", csv=CsvOptions(encoding="latin-1")))
    assert [chunk.encoding for chunk in chunks] == ["LATIN1"]


def test_nul_byte_names_line(opened: Open) -> None:
    rows = b"".join(b"%d,value\n" % i for i in range(20_000))
    source = opened(b"a,b\n" + rows + b"x,\x00\n")
    with pytest.raises(RowError, match="line 20002") as caught:
        raw_chunks(source, batch_bytes=4096)
    assert caught.value.line == 20_002


def test_backslash_escaping_refuses_raw(opened: Open) -> None:
    source = opened(b'id,t\n1,"a \\"b\\" c"\n2,"\\"x\\""\n')
    assert source.info.dialect is not None
    assert source.info.dialect.escapechar == "\\"
    with pytest.raises(ConfigError, match="raw=False"):
        source.chunks()
    assert sum(chunk.batch.num_rows for chunk in source.chunks(raw=False)) == 2  # type: ignore[union-attr]


def test_bad_batch_sizes(opened: Open) -> None:
    with pytest.raises(ConfigError):
        opened("a\n1\n").chunks(batch_rows=0)


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_decompression_is_transparent(opened: Open, compression: str) -> None:
    rows = [[str(i), f"text {i}\nwith newline", "é"] for i in range(3000)]
    data = to_csv(rows)
    source = opened(COMPRESSORS[compression](data), name="data.csv.compressed")
    assert source.info.compression == compression
    assert source.column_names() == ["a", "b", "c"]
    chunks = raw_chunks(source, batch_bytes=10_000)
    assert len(chunks) > 5
    check_chunks(data, chunks)
    assert source.sample().num_rows == 3000
    arrow = list(source.chunks(raw=False, batch_rows=1000))
    assert [chunk.batch.num_rows for chunk in arrow] == [1000, 1000, 1000]  # type: ignore[union-attr]


def test_zstd_multiple_frames(opened: Open) -> None:
    compressor = zstandard.ZstdCompressor()
    data = compressor.compress(b"a,b\n1,2\n") + compressor.compress(b"3,4\n")
    chunks = raw_chunks(opened(data, name="x.zst"))
    assert b"".join(chunk.data for chunk in chunks) == b"1,2\n3,4\n"


def test_truncated_gzip_is_source_error(opened: Open) -> None:
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 200_000)
    source = opened(data[: len(data) // 2], name="cut.csv.gz")
    with pytest.raises(SourceError, match="cannot read"):
        raw_chunks(source)

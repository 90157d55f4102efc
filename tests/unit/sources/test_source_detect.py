"""Detection from content: formats, compression, CSV dialect, encodings, refusals."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from pgingest.errors import ConfigError, SourceError
from pgingest.sources import CsvOptions, detect
from pgingest.sources.detect import SAMPLE_BYTES

Write = Callable[..., str]

TABLE = "id{d}name{d}amount{d}day\n1{d}ann{d}1.5{d}2024-01-01\n2{d}bob{d}2.25{d}2024-01-02\n"


@pytest.mark.parametrize(
    ("delimiter", "fmt"), [(",", "csv"), (";", "csv"), ("\t", "tsv"), ("|", "csv")]
)
def test_sniffs_delimiter(write: Write, delimiter: str, fmt: str) -> None:
    info = detect(write(TABLE.format(d=delimiter)))
    assert info.format == fmt
    assert info.compression == "none"
    assert info.dialect is not None
    assert info.dialect.delimiter == delimiter
    assert info.dialect.has_header is True
    assert info.dialect.encoding == "utf-8"
    assert info.dialect.newline == "\n"


def test_delimiter_inside_quotes_does_not_fool_the_sniffer(write: Write) -> None:
    rows = ["a;b;c\n"] + [f'{i};"x, y, z, {i}";"1,5"\n' for i in range(20)]
    info = detect(write("".join(rows)))
    assert info.dialect is not None
    assert info.dialect.delimiter == ";"


def test_semicolon_file_with_decimal_commas(write: Write) -> None:
    info = detect(write("1,5;2,5\n3,5;4,25\n7,0;8,5\n"))
    assert info.dialect is not None
    assert info.dialect.delimiter == ";"


def test_single_quote_as_quotechar(write: Write) -> None:
    data = "id,text\n1,'a, b'\n2,'c, d'\n3,'e, f'\n"
    info = detect(write(data))
    assert info.dialect is not None
    assert info.dialect.quotechar == "'"
    assert info.dialect.delimiter == ","


def test_apostrophes_keep_double_quote(write: Write) -> None:
    info = detect(write("id,name\n1,O'Brien\n2,D'Arcy, Jr\n3,x\n"))
    assert info.dialect is not None
    assert info.dialect.quotechar == '"'


def test_backslash_escape_detected(write: Write) -> None:
    data = 'id,text\n1,"say \\"hi\\" now"\n2,"a \\"b\\" c"\n'
    info = detect(write(data))
    assert info.dialect is not None
    assert info.dialect.escapechar == "\\"


def test_doubled_quotes_are_default_escaping(write: Write) -> None:
    info = detect(write('id,text\n1,"say ""hi"" now"\n2,"C:\\dir\\"\n'))
    assert info.dialect is not None
    assert info.dialect.escapechar is None


@pytest.mark.parametrize(("newline", "expected"), [(b"\r\n", "\r\n"), (b"\r", "\r"), (b"\n", "\n")])
def test_newline_style(write: Write, newline: bytes, expected: str) -> None:
    data = newline.join([b"a,b", b"1,2", b"3,4", b""])
    info = detect(write(data))
    assert info.dialect is not None
    assert info.dialect.newline == expected


def test_bom_noted_as_utf8(write: Write) -> None:
    info = detect(write(b"\xef\xbb\xbfa,b\n1,2\n"))
    assert info.dialect is not None
    assert info.dialect.encoding == "utf-8"


def test_cp1252(write: Write) -> None:
    info = detect(write(b"name,price\ncaf\xe9,\x80 3\n"))
    assert info.dialect is not None
    assert info.dialect.encoding == "cp1252"


def test_latin1_when_cp1252_cannot_decode(write: Write) -> None:
    info = detect(write(b"name,x\nab\x81c,1\n"))
    assert info.dialect is not None
    assert info.dialect.encoding == "latin-1"


def test_utf8_character_cut_by_sample_end(write: Write) -> None:
    # no newline in the sample, and the sample ends with the first byte of a character
    data = b"xab,c" + "é".encode() * SAMPLE_BYTES + b"\n"
    assert data[SAMPLE_BYTES - 1] == 0xC3
    info = detect(write(data))
    assert info.dialect is not None
    assert info.dialect.encoding == "utf-8"


def test_forced_encoding_and_delimiter(write: Write) -> None:
    info = detect(write("a;b\n1;2\n"), csv=CsvOptions(delimiter="|", encoding="latin1"))
    assert info.dialect is not None
    assert info.dialect.delimiter == "|"
    assert info.dialect.encoding == "latin-1"


@pytest.mark.parametrize(
    ("data", "header"),
    [
        ("id,name,when\n1,ann,2024-01-01\n2,bob,2024-02-01\n", True),
        ("1,ann,2024-01-01\n2,bob,2024-02-01\n", False),
        ("1.5,2,3\n4,5,6\n", False),
        ("name,city\nann,paris\nbob,rome\n", True),
        ("name,city\n", True),
        ("1,2,3\n", False),
        (",a,b\n0,1,2\n1,3,4\n", True),
        ("ann,paris,1\nbob,rome,2\n", False),
        # a header of numbers above booleans (frictionless numeric-labels.csv), or of dates
        # above numbers: a value of another kind than its column's is a name
        ("id,100022,100025\nid1,TRUE,FALSE\nid2,TRUE,TRUE\n", True),
        ("region,2024-01-01,2024-02-01\nnorth,12,13\nsouth,14,15\n", True),
        # row 1 of the column's kind is data
        ("id1,TRUE,FALSE\nid2,TRUE,TRUE\n", False),
        ("7,2024-01-01,true\n8,2024-02-01,false\n", False),
    ],
)
def test_header_sniffing(write: Write, data: str, header: bool) -> None:
    info = detect(write(data))
    assert info.dialect is not None
    assert info.dialect.has_header is header


def test_forced_header(write: Write) -> None:
    info = detect(write("1,2\n3,4\n"), csv=CsvOptions(header=True))
    assert info.dialect is not None
    assert info.dialect.has_header is True


def test_fmt_tsv_forces_tab(write: Write) -> None:
    info = detect(write("a,b\tc\n1,2\t3\n"), fmt="tsv")
    assert info.format == "tsv"
    assert info.dialect is not None
    assert info.dialect.delimiter == "\t"


def test_fmt_csv_keeps_csv_format_for_tabs(write: Write) -> None:
    info = detect(write("a\tb\n1\t2\n"), fmt="csv")
    assert info.format == "csv"
    assert info.dialect is not None
    assert info.dialect.delimiter == "\t"


def test_fmt_tsv_with_other_delimiter_is_config_error(write: Write) -> None:
    with pytest.raises(ConfigError):
        detect(write("a,b\n"), fmt="tsv", csv=CsvOptions(delimiter=","))


def test_unknown_format(write: Write) -> None:
    with pytest.raises(ConfigError):
        detect(write("a,b\n"), fmt="xlsx")  # type: ignore[arg-type]


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


@pytest.mark.parametrize("compression", sorted(COMPRESSORS))
def test_compression_by_magic(write: Write, compression: str) -> None:
    data = TABLE.format(d=";").encode()
    info = detect(write(COMPRESSORS[compression](data), name="no_suffix"))
    assert info.compression == compression
    assert info.format == "csv"
    assert info.dialect is not None
    assert info.dialect.delimiter == ";"


def test_parquet_by_magic(tmp_path: Path) -> None:
    path = str(tmp_path / "data.csv")  # the name lies; the content decides
    pq.write_table(pa.table({"a": [1, 2]}), path)
    info = detect(path)
    assert info.format == "parquet"
    assert info.dialect is None
    assert info.size == os.path.getsize(path)


def test_corrupt_parquet(write: Write) -> None:
    path = write(b"PAR1" + b"\x15\x00garbage" * 10, name="bad.parquet")
    with pytest.raises(SourceError, match="corrupt Parquet") as caught:
        detect(path)
    assert path in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.path == path


def test_truncated_parquet(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(SourceError, match="corrupt Parquet"):
        detect(str(path))


@pytest.mark.parametrize("name", ["missingmagicatfront.parquet", "no_suffix"])
def test_parquet_that_lost_its_first_bytes_is_corrupt_parquet_whatever_its_name(
    write: Write, name: str
) -> None:
    # duckdb's test/sql/copy/parquet/broken/missingmagicatfront.parquet: it loaded as a CSV
    # of one garbage column and no rows.
    path = write(b"RJIOJWRIOJQWriojqrqwJRWPAR1", name=name)
    with pytest.raises(SourceError) as caught:
        detect(path)
    message = str(caught.value)
    assert message == (
        f"{path}: corrupt Parquet file: it ends with the PAR1 magic bytes but does not start"
        " with them"
    )
    assert detect(path, fmt="csv").format == "csv"  # forced: the user's word


@pytest.mark.parametrize("name", ["data.parquet", "DATA.PQ", "x.parq"])
def test_text_named_like_parquet_is_refused_unless_forced(write: Write, name: str) -> None:
    path = write("a,b\n1,2\n", name=name)
    with pytest.raises(SourceError) as caught:
        detect(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: named like a Parquet file but holds plain text")
    assert "--format csv" in message
    assert "\n" not in message
    assert detect(path, fmt="csv").format == "csv"
    assert detect(write("a,b\n1,2\n", name="data.parquet.csv")).format == "csv"


def test_forced_parquet_needs_magic(write: Write) -> None:
    with pytest.raises(SourceError, match="not a Parquet file"):
        detect(write("a,b\n1,2\n"), fmt="parquet")


def test_parquet_forced_as_csv_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "x.parquet")
    pq.write_table(pa.table({"a": [1]}), path)
    with pytest.raises(SourceError, match="Parquet"):
        detect(path, fmt="csv")


def test_compressed_parquet_is_refused(tmp_path: Path, write: Write) -> None:
    path = tmp_path / "x.parquet"
    pq.write_table(pa.table({"a": [1]}), path)
    with pytest.raises(SourceError, match="compressed Parquet"):
        detect(write(gzip.compress(path.read_bytes()), name="x.parquet.gz"))


def test_binary_file(write: Write) -> None:
    data = bytes(range(256)) * 64
    with pytest.raises(SourceError, match="binary") as caught:
        detect(write(data, name="blob.bin"))
    assert "blob.bin" in str(caught.value)


def test_mostly_control_characters_is_binary(write: Write) -> None:
    with pytest.raises(SourceError, match="binary"):
        detect(write(b"\x01\x02\x03\x04,\x05\x06\n" * 100))


def test_control_characters_inside_a_quoted_field_are_text(write: Write) -> None:
    # Found by hypothesis (the round-trip property): a tiny file whose one text field is two
    # unit separators was "binary content" (2 of 30 bytes are control characters).
    info = detect(write(b'rn,big_1,text_2\n0,,"x\x1f\x1f"\n'))
    assert info.format == "csv"


def test_a_few_control_characters_in_a_short_file_are_text(write: Write) -> None:
    assert detect(write(b"a,b\n1,\x1f\x1e\n")).format == "csv"


def test_control_characters_outside_quotes_of_random_bytes_are_binary(write: Write) -> None:
    data = bytes(b for b in range(1, 256) if b != 0x22) * 8 + b'"' * 3
    with pytest.raises(SourceError, match="binary"):
        detect(write(data))


def test_nul_in_small_file_names_line(write: Write) -> None:
    with pytest.raises(SourceError, match="line 3"):
        detect(write(b"a,b\n1,2\n3,\x00\n"))


def test_zip_archive(write: Write) -> None:
    with pytest.raises(SourceError, match="zip"):
        detect(write(b"PK\x03\x04" + b"\x00" * 100, name="book.xlsx"))


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_refused(write: Write, codec: str) -> None:
    # with its BOM or without (then it was "binary content (NUL byte at line 1)")
    with pytest.raises(SourceError, match="UTF-16 text is not supported; convert it to UTF-8"):
        detect(write("id,name\n1,café\n2,北京\n".encode(codec)))


def test_empty_file(write: Write) -> None:
    path = write(b"", name="empty.csv")
    with pytest.raises(SourceError, match="file is empty") as caught:
        detect(path)
    assert str(caught.value) == f"{path}: file is empty"


def test_empty_after_decompression(write: Write) -> None:
    with pytest.raises(SourceError, match="empty"):
        detect(write(gzip.compress(b""), name="empty.csv.gz"))


def test_blank_lines_only(write: Write) -> None:
    with pytest.raises(SourceError, match="empty"):
        detect(write("\n\r\n\n"))


def test_corrupt_gzip(write: Write) -> None:
    data = gzip.compress(TABLE.format(d=",").encode() * 100)
    with pytest.raises(SourceError, match="cannot read"):
        detect(write(data[:30] + b"\xff" * 40))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot open"):
        detect(str(tmp_path / "nope.csv"))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        detect(str(tmp_path))


@pytest.mark.parametrize(
    "options",
    [
        {"delimiter": ";;"},
        {"delimiter": "\n"},
        {"encoding": "utf-16"},
        {"encoding": "no-such-codec"},
    ],
)
def test_bad_csv_options(options: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        CsvOptions(**options)  # type: ignore[arg-type]


def test_package_imports_no_driver_schema_or_pyarrow() -> None:
    code = (
        "import sys, pgingest.sources; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('asyncpg', 'pyarrow') "
        "or m.startswith('pgingest.schema')]; "
        "sys.exit(str(bad) if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_public_api() -> None:
    import pgingest.sources as sources

    assert sources.__all__ == sorted(sources.__all__)
    assert set(sources.__all__) == {"CsvOptions", "Source", "detect", "open_source"}


words = st.text(alphabet="abcdefghij ", min_size=1, max_size=8).map(str.strip).filter(bool)
cells = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    words,
    words.map(lambda w: f'"{w}, {w}"'),  # a quoted value holding a comma
)


@settings(max_examples=100, deadline=None)
@given(
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    width=st.integers(2, 6),
    data=st.data(),
)
def test_sniffer_finds_the_delimiter_of_generated_tables(
    delimiter: str, width: int, data: st.DataObject
) -> None:
    names = [f"col{i}" for i in range(width)]
    rows = data.draw(
        st.lists(st.lists(cells, min_size=width, max_size=width), min_size=3, max_size=30)
    )
    numeric_column = data.draw(st.integers(0, width - 1))
    for row in rows:
        row[numeric_column] = str(len(row[0]))
    text = "\n".join(delimiter.join(row) for row in [names, *rows]) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_text(text)
        info = detect(str(path))
    assert info.dialect is not None
    assert info.dialect.delimiter == delimiter
    assert info.dialect.has_header is True


def test_excel_sep_hint_names_the_delimiter_and_is_skipped() -> None:
    from pgingest.sources.detect import sniff_dialect

    for first in (b"sep=;\r\n", b'"sep=;"\n', b"SEP=;\n"):
        d = sniff_dialect(first + b"id;name\n1;x,y\n2;z\n", at_eof=True, path="x.csv")
        assert d.delimiter == ";"
        assert d.skip_lines == 1
        assert d.has_header
    plain = sniff_dialect(b"id,name\n1,x\n", at_eof=True, path="y.csv")
    assert plain.skip_lines == 0

"""The small-file reader reads what the full reader reads, or declines: its text sample equals
the Arrow sample value for value (NULL and "" told apart), and its one raw chunk is the bytes
the full reader would send to COPY unrepaired; on random files, malformed ones included."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from csv_strategies import Written, csv_files
from pgcsv_model import copy_read
from pgingest.errors import RowError
from pgingest.model import CsvChunk
from pgingest.sources import CsvOptions, Source, detect
from pgingest.sources.csv import CsvSource
from pgingest.sources.small import SMALL_CSV_BYTES, SmallCsvSource

PROPERTY = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _options(written: Written, nulls: tuple[str, ...] = ()) -> CsvOptions:
    return CsvOptions(
        header=True,
        delimiter=written.delimiter,
        quotechar=written.quote,
        escape="double",
        null_strings=nulls,
    )


def _both(write: Callable[..., str], written: Written, options: CsvOptions) -> tuple[Source, ...]:
    info = detect(write(written.data), csv=options)
    return SmallCsvSource(info, options), CsvSource(info, options)


@PROPERTY
@given(written=csv_files(), nulls=st.sampled_from([(), ("NA",), ("a", "")]))
def test_the_text_sample_is_the_arrow_sample(
    write: Callable[..., str], written: Written, nulls: tuple[str, ...]
) -> None:
    small, full = _both(write, written, _options(written, nulls))
    assert isinstance(small, SmallCsvSource)
    columns = small.text_sample(1000)
    if columns is None:
        return  # declined: the full reader reads it
    table = full.sample(1000)
    assert columns == [table.column(i).to_pylist() for i in range(table.num_columns)]


@PROPERTY
@given(written=csv_files())
def test_the_raw_chunk_is_what_the_full_reader_sends_unrepaired(
    write: Callable[..., str], written: Written
) -> None:
    small, full = _both(write, written, _options(written))
    assert isinstance(small, SmallCsvSource)
    try:
        theirs = [c for c in full.chunks(raw=True) if isinstance(c, CsvChunk)]
    except RowError:  # a record the full reader refuses: the small reader must not read it
        assert small.text_sample(1) is None
        return
    if any(c.lines is not None or c.rejects for c in theirs):
        # the full reader rewrote or set aside records: the small reader must not read it
        assert small.text_sample(1) is None
        return
    ours = [c for c in small.chunks(raw=True) if isinstance(c, CsvChunk)]
    assert b"".join(c.data for c in ours) == b"".join(c.data for c in theirs)
    assert [c.first_line for c in ours[:1]] == [c.first_line for c in theirs[:1]]
    assert {c.encoding for c in ours} <= {c.encoding for c in theirs}
    assert all(c.lines is None and not c.rejects for c in ours)


@pytest.mark.parametrize(
    ("data", "plain"),
    [
        (b"a,b\n1,x\n", True),
        (b'a,b\n1,"x, ""y"""\n2,\n', True),
        (b"a,b\r\n1,x\r\n", True),
        (b"a,b\n1,x", True),  # no final line break
        (b"a,b\n1,x\n\n\n", True),  # trailing blank lines, cut as the full reader cuts them
        (b'a,b\n1,x"y\n', False),  # a quote inside an unquoted field
        (b'a,b\n1,"x"y\n', False),  # text after a closing quote
        (b"a,b\n1,x\n\n2,y\n", False),  # a blank line
        (b"a,b\n1,x\r\n", False),  # a CR in an LF file
        (b"a,b\n1,x\\.\n", False),  # a backslash (COPY's end marker)
        (b"a,b\n1\n", False),  # a record narrower than the header
        (b"a,b\n1,\xe9\n", False),  # not UTF-8
        (b'a,b\n1,"x\n', False),  # an unterminated quote
    ],
)
def test_what_the_small_reader_reads(write: Callable[..., str], data: bytes, plain: bool) -> None:
    options = CsvOptions(header=True)
    source = SmallCsvSource(detect(write(data), csv=options), options)
    assert (source.text_sample(10) is not None) == plain


def test_quoted_empty_is_text_and_unquoted_empty_is_null(write: Callable[..., str]) -> None:
    options = CsvOptions(header=True)
    source = SmallCsvSource(detect(write(b'a,b,c\n"",,x\n'), csv=options), options)
    assert source.text_sample(10) == [[""], [None], ["x"]]
    (chunk,) = source.chunks(raw=True)
    assert isinstance(chunk, CsvChunk)
    assert copy_read(chunk.data) == [["", None, "x"]]


def test_larger_files_and_small_batches_take_the_full_reader(write: Callable[..., str]) -> None:
    options = CsvOptions(header=True)
    rows = b"".join(b"%d,x\n" % i for i in range(10))
    source = SmallCsvSource(detect(write(b"a,b\n" + rows), csv=options), options)
    assert len(list(source.chunks(raw=True, batch_rows=3))) > 1
    big = b"a,b\n" + b"1,x\n" * (SMALL_CSV_BYTES // 4 + 1)
    large = SmallCsvSource(detect(write(big, "big.csv"), csv=options), options)
    assert large.text_sample(10) is None

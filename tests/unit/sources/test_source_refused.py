"""Reading a refused CSV batch client-side: the malformed records it finds are the ones COPY
would refuse, and the quick reading of a batch of one-line records finds what cutting the
records first finds."""

from __future__ import annotations

import csv
import io
from unittest import mock

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from csv_strategies import TEXT
from pgcsv_model import copy_read
from pgingest.model import CsvDialect
from pgingest.sources import refused
from pgingest.sources.refused import Parsed, copy_lines, parse_refused
from pgingest.sources.repair import Marks, copy_misreads

PROPERTY = settings(max_examples=300, deadline=None)


@PROPERTY
@given(
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    newline=st.sampled_from(["\n", "\r\n"]),
    width=st.integers(1, 4),
    rows=st.lists(st.lists(TEXT, min_size=1, max_size=5), max_size=20),
    broken=st.booleans(),
    include=st.booleans(),
)
def test_the_records_found_malformed_are_those_copy_refuses(
    delimiter: str, newline: str, width: int, rows: list[list[str]], broken: bool, include: bool
) -> None:
    records = [_written(row, delimiter, newline) for row in rows]
    data = b"".join(records)
    marks = Marks().mark(data, '"')
    if copy_misreads(data, marks, len(data), delimiter=delimiter, quote='"', newline=newline):
        return  # the reader sends such a chunk written again (a CR inside a value, "\.")
    widths = [len(row) for row in copy_read(data, delimiter)]
    expected = {i: f"{n} fields, expected {width}" for i, n in enumerate(widths) if n != width}
    if broken:  # a quote never closed (at the end: a later quote would close it)
        data += f'7{delimiter}"never closed{newline}'.encode()
        expected[len(records)] = "unterminated quoted field"
    event("one line each" if data.count(b"\n") == len(records) + broken else "values on lines")
    columns = [f"c{i}" for i in range(width)]
    dialect = CsvDialect(delimiter=delimiter, newline=newline)  # type: ignore[arg-type]

    parsed = parse_refused(data, 2, "UTF8", dialect, columns, columns[:1] if include else [])

    assert parsed is not None
    assert parsed.reasons == expected
    assert parsed.kept.tolist() == [i for i in range(len(widths) + broken) if i not in expected]
    if include and len(parsed.kept):
        assert parsed.table is not None
    if parsed.table is not None:
        assert include
        assert parsed.table.num_rows == len(parsed.kept)


@st.composite
def batches(draw: st.DrawFn) -> tuple[bytes, CsvDialect, int]:
    """A batch of records of varied widths, as the reader may send it or not: a blank line, a
    quote never closed, a byte not UTF-8, a BOM first."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = (
        TEXT.map(lambda t: t.replace("\r", "").replace("\n", "")) if draw(st.booleans()) else TEXT
    )
    rows = draw(st.lists(st.lists(text, min_size=1, max_size=5), max_size=20))
    records = [_written(row, delimiter, newline) for row in rows]
    for odd in draw(st.lists(st.sampled_from(["blank", "open", "not utf-8", "bom"]), max_size=2)):
        at = draw(st.integers(0, len(records)))
        if odd == "blank":
            records.insert(at, newline.encode())
        elif odd == "open":
            records.insert(at, f'7{delimiter}"open{newline}'.encode())
        elif odd == "not utf-8":
            records.insert(at, b"\xff" + _written(["x"], delimiter, newline))
        else:
            records.insert(0, b"\xef\xbb\xbf" + _written(["x"], delimiter, newline))
    dialect = CsvDialect(delimiter=delimiter, newline=newline)  # type: ignore[arg-type]
    return b"".join(records), dialect, draw(st.integers(1, 4))


@PROPERTY
@given(batch=batches(), include=st.sampled_from(["none", "first", "all"]))
def test_one_line_records_are_read_as_when_cut_first(
    batch: tuple[bytes, CsvDialect, int], include: str
) -> None:
    data, dialect, width = batch
    columns = [f"c{i}" for i in range(width)]
    wanted = {"none": [], "first": columns[:1], "all": columns}[include]

    with mock.patch.object(refused, "LINE_RECORDS", False):
        cut_first = parse_refused(data, 2, "UTF8", dialect, columns, wanted)
    quick = parse_refused(data, 2, "UTF8", dialect, columns, wanted)

    lined = refused._line_records(data, 2, dialect, columns, wanted)
    event("one line each" if lined is not None else "cut first")
    assert _seen(quick) == _seen(cut_first)


@PROPERTY
@given(batch=batches())
@example(batch=(b'"a\rb"\n', CsvDialect(), 1))  # COPY counts that CR as a line
def test_copy_lines_told_the_record_ends_are_those_found_by_cutting(
    batch: tuple[bytes, CsvDialect, int],
) -> None:
    data, dialect, _width = batch
    records, numbers = copy_lines(data, dialect)

    told, told_numbers = copy_lines(data, dialect, records.ends)

    assert told.starts.tolist() == records.starts.tolist()
    assert told.ends.tolist() == records.ends.tolist()
    assert told_numbers.tolist() == numbers.tolist()


def _seen(parsed: Parsed | None) -> object:
    """What a reading tells its caller: the records kept (bytes and lines), the malformed ones
    and why, the values."""
    if parsed is None:
        return None
    records = parsed.records
    kept = [
        (parsed.data[records.starts[i] : records.ends[i]], int(records.lines[i]))
        for i in parsed.kept
    ]
    reasons = {
        (parsed.data[records.starts[i] : records.ends[i]], int(records.lines[i])): reason
        for i, reason in parsed.reasons.items()
    }
    table = None if parsed.table is None else parsed.table.to_pylist()
    return kept, reasons, table


def _written(row: list[str], delimiter: str, newline: str) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, delimiter=delimiter, lineterminator=newline).writerow(row)
    return out.getvalue().encode()


def test_a_cr_alone_is_no_line_end_to_the_quick_reading() -> None:
    # found by the property above: pyarrow ends a record at the CR, so that it counted as
    # many records as lines while the first line break was inside a value
    data = b'"\n",\r0\n'
    columns = ["c0"]
    assert refused._line_records(data, 2, CsvDialect(), columns, []) is None


def test_a_value_starting_with_a_bom_is_kept() -> None:
    data = b"\xef\xbb\xbfx\na,b\n"
    parsed = parse_refused(data, 2, "UTF8", CsvDialect(), ["c0"], ["c0"])
    assert parsed is not None
    assert parsed.reasons == {1: "2 fields, expected 1"}
    assert parsed.table is not None
    assert parsed.table.column("c0").to_pylist() == ["\ufeffx"]

"""The text of typed values (sources/celltext.py): the shortest form that reads back."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from pgingest.sources.celltext import to_text


def test_numbers() -> None:
    values = pa.array([7.0, 2.5, 0.1, 1e20, -0.0, 1e-7, None, 2.0**53, 2.0**53 + 2])
    assert to_text(values).to_pylist() == [
        "7", "2.5", "0.1", "1e+20", "0", "1e-07", None, "9007199254740992", "9007199254740994",
    ]  # fmt: skip


def test_a_large_fraction_is_written_out_not_in_exponent_form() -> None:
    # Found by the workbook property test: Arrow wrote 1.692735327661875e+11.
    assert to_text(pa.array([169273532766.1875])).to_pylist() == ["169273532766.1875"]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_every_float_reads_back(value: float) -> None:
    (text,) = to_text(pa.array([value])).to_pylist()
    assert float(text) == value
    assert len(text) <= len(repr(value))


def test_workbook_datetimes_dates_times_and_booleans() -> None:
    stamps = pa.array(
        [dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 2, 3, 4, 5, 780000),
         dt.datetime(1899, 12, 31, 10, 30), None],
        pa.timestamp("ms"),
    )  # fmt: skip
    assert to_text(stamps, workbook=True).to_pylist() == [
        "2024-01-02", "2024-01-02 03:04:05.78", "10:30:00", None,
    ]  # fmt: skip
    assert to_text(pa.array([True, False, None]), workbook=True).to_pylist() == [
        "TRUE", "FALSE", None,
    ]  # fmt: skip
    assert to_text(pa.array([True])).to_pylist() == ["true"]


def test_durations_as_interval_text() -> None:
    values = pa.array([3_723_000, 172_805_000, 1_500, -60_000, None], pa.duration("ms"))
    assert to_text(values).to_pylist() == ["1:02:03", "48:00:05", "0:00:01.5", "-0:01:00", None]
    nanos = pa.array([1_500], pa.duration("ns"))
    assert to_text(nanos).to_pylist() == ["0:00:00.0000015"]


def test_nanosecond_timestamps_keep_every_digit() -> None:
    value = 1_704_067_200_123_456_789
    assert to_text(pa.array([value], pa.timestamp("ns"))).to_pylist() == [
        "2024-01-01 00:00:00.123456789"
    ]
    assert to_text(pa.array([3_723_000_000_001], pa.time64("ns"))).to_pylist() == [
        "01:02:03.000000001"
    ]

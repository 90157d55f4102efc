"""The text of a typed value: the shortest form that reads back to the same value.

Used where a typed column must become text: a workbook column whose cells mix kinds, and any
column bound for a ``text`` column (``--text``, ``--types c=text``, a text column of the
table). Integers without ``.0``, floats in their shortest round-trip form, ISO dates, times
and timestamps (every digit of the unit, nanoseconds included; a workbook's without trailing
zeros in the fraction, its datetime at midnight written as its date, one on Excel's day zero
as its time of day), durations as ``[-]H:MM:SS[.f]`` (PostgreSQL
reads that as an interval), booleans as a workbook shows them (``TRUE``/``FALSE``) or as
PostgreSQL writes them (``true``/``false``). Vectorized with pyarrow, except durations.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


__all__ = ["duration_text", "to_text"]

_INTEGER_TEXT_LIMIT = 1e16
"""An integral double below this is written as an integer (``9007199254740994``); from it
on, the float's shortest form is shorter (``1e+16``, ``1e+20``), as Python's ``repr``."""
_EXCEL_DAY_ZERO = (-25568, -25569)
"""1899-12-31 and 1899-12-30 in days since 1970: a workbook's time of day has this date."""
_MS_PER_DAY = 86_400_000


def to_text(array: pa.Array | pa.ChunkedArray, *, workbook: bool = False) -> pa.Array:
    """Return ``array``'s values as text (NULL stays NULL).

    Args:
        array: a column of any scalar Arrow type.
        workbook: the values come from a spreadsheet: booleans are ``TRUE``/``FALSE`` and a
            datetime at midnight is written as its date, one on day zero as its time.

    Returns:
        A ``string`` array of the same length.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    t = array.type
    if pa.types.is_dictionary(t):
        return to_text(array.dictionary_decode(), workbook=workbook)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return array.cast(pa.string())
    if pa.types.is_null(t):
        return pa.nulls(len(array), pa.string())
    if isinstance(t, pa.UuidType):  # its canonical text, not its 16 bytes
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], pa.string())
    if pa.types.is_boolean(t):
        true, false = ("TRUE", "FALSE") if workbook else ("true", "false")
        return pc.if_else(array, pa.scalar(true), pa.scalar(false))
    if pa.types.is_floating(t):
        return _float_text(array)
    if pa.types.is_timestamp(t):
        return _timestamp_text(array, workbook=workbook)
    if pa.types.is_time(t):
        text = array.cast(pa.string())
        return _trim_fraction(text) if workbook else text
    if pa.types.is_duration(t):
        return duration_text(array)
    return array.cast(pa.string())


def _float_text(array: pa.Array) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    values = array.cast(pa.float64())
    finite = pc.fill_null(pc.is_finite(values), False)
    integral = pc.and_(
        finite,
        pc.and_(
            pc.equal(pc.floor(values), values),
            pc.less(pc.abs(values), _INTEGER_TEXT_LIMIT),
        ),
    )
    integral = pc.fill_null(integral, False)
    as_int = pc.if_else(integral, values, 0.0).cast(pa.int64()).cast(pa.string())
    text = pc.if_else(integral, as_int, values.cast(pa.string()))
    tiny = pc.and_(pc.less(pc.abs(values), 1e-4), pc.not_equal(values, 0.0))
    scientific = pc.fill_null(pc.or_(pc.match_substring(text, "e"), tiny), False)
    if not pc.any(scientific).as_py():
        return text
    # Arrow writes 169273532766.1875 as 1.692735327661875e+11 and 1e-05 as 0.00001: Python's
    # repr is the shorter (exponents from 16 up and below -4), for these few values.
    cells = text.to_pylist()
    for i in pc.indices_nonzero(scientific).to_pylist():
        cells[i] = repr(values[i].as_py())
    return pa.array(cells, pa.string())


def _trim_fraction(text: pa.Array) -> pa.Array:
    """``10:30:00.000`` -> ``10:30:00``, ``04:05:06.780`` -> ``04:05:06.78``."""
    import pyarrow.compute as pc

    text = pc.replace_substring_regex(text, r"(\.\d*[1-9])0+$", r"\1")
    out: pa.Array = pc.replace_substring_regex(text, r"\.0+$", "")
    return out


def _timestamp_text(array: pa.Array, *, workbook: bool) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if not workbook:
        # Every digit of the unit (nanoseconds: nine), a time zone's instant in UTC with Z
        # (Arrow writes another zone's local time with an offset cut to minutes: Tokyo's
        # +09:18:59 of year 1 as +0918, 59 s off).
        if array.type.tz is not None:
            array = array.cast(pa.timestamp(array.type.unit, "UTC"))
        out: pa.Array = array.cast(pa.string())
        return out
    text = _trim_fraction(pc.strftime(array, "%Y-%m-%d %H:%M:%S"))
    ms = pc.cast(pc.cast(array, pa.timestamp("ms")), pa.int64())
    day = pc.floor(pc.divide(pc.cast(ms, pa.float64()), float(_MS_PER_DAY)))
    time_ms = pc.subtract(ms, pc.multiply(pc.cast(day, pa.int64()), _MS_PER_DAY))
    date_only = pc.utf8_slice_codeunits(text, 0, 10)
    time_only = pc.utf8_slice_codeunits(text, 11)
    day_zero = pc.is_in(day, pa.array(_EXCEL_DAY_ZERO, pa.float64()))
    text = pc.if_else(pc.equal(time_ms, 0), date_only, text)
    return pc.if_else(pc.and_(day_zero, pc.not_equal(time_ms, 0)), time_only, text)


def duration_text(array: pa.Array) -> pa.Array:
    """Durations as ``[-]H:MM:SS[.fraction]`` (hours past 24 kept: ``49:00:05``), which
    PostgreSQL reads as an interval."""
    import pyarrow as pa

    unit = array.type.unit
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    digits = len(str(per_second)) - 1
    out: list[str | None] = []
    for value in array.cast(pa.int64()).to_pylist():  # durations are rare: a Python pass
        if value is None:
            out.append(None)
            continue
        sign = "-" if value < 0 else ""
        seconds, fraction = divmod(abs(value), per_second)
        minutes, second = divmod(seconds, 60)
        hours, minute = divmod(minutes, 60)
        text = f"{sign}{hours}:{minute:02d}:{second:02d}"
        if fraction:
            text += "." + f"{fraction:0{digits}d}".rstrip("0")
        out.append(text)
    return pa.array(out, pa.string())

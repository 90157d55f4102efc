"""Raw CSV chunks parsed client-side into typed Arrow batches for binary COPY, where that parse
gives exactly the values PostgreSQL's input functions would read from the text.

The server parsing CSV text is what limits a text COPY stream; binary input costs it about
half the CPU, and the client as much again (so it is taken only with cores to spare:
:func:`pgingest.pipeline.write.batches.binary_csv_pays`). A file goes this way only when
every column's type is one whose client-side parse is exact (:func:`is_typed_file`); each
chunk is then parsed by pyarrow in the batch worker's thread, and any doubt sends that chunk
as the text it is (the server decides, the failure path recovers as for any text chunk):

- text: the field's bytes (UTF-8 checked), NULL only for an unquoted empty field.
- integer, bigint: pyarrow reads decimal digits (an optional ``-``, spaces around) as the
  server does, and refuses values out of the column's range; it also reads ``0x1F``, which
  PostgreSQL 15 refuses and 16 reads: a chunk holding ``0x`` goes as text.
- double precision: both round correctly; NaN and infinity must be spelled as inference
  allows, and a zero or infinity that is an underflow or overflow (PostgreSQL refuses those)
  sends the chunk as text.
- date: ``YYYY-MM-DD`` only (every ``DateStyle`` reads it alike); pyarrow reads year 0 as 1
  BC, PostgreSQL refuses it: a chunk holding a date before 0001-01-01 goes as text.
- timestamp, timestamptz: only values of inference's own patterns (``2026-01-02 03`` is a
  timestamp to pyarrow and an error to PostgreSQL), with a UTC offset for timestamptz.
- boolean: only the spellings of :data:`TRUE_VALUES` and :data:`FALSE_VALUES`.
- numeric(p,s), p <= 38: the column's scale is every value's, so a decimal128 of that scale
  is exact; a value with more decimals (the server would round it) and NaN or infinity are
  refused by pyarrow, and a value of more than p digits (which pyarrow would take, where the
  server reports an overflow) sends the chunk as text.

numeric without a scale (pgpq would send one scale for the column, the text keeps each
value's, ``1.50`` as ``1.50``), slash dates (``DateStyle``), the other types, missing-value
markers, files not in UTF-8, and chunks read again client-side
(:mod:`pgingest.sources.repair`) keep the text path.

upsert and merge parse every chunk client-side in any case (its rows are routed by key, see
:func:`pgingest.pipeline.keyed.route.routed_batches`): there the exact parse costs the client
no more than reading the values as text and writing them again, so they take it on any number
of cores.
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc

from pgingest.model import CsvDialect
from pgingest.pg import copy
from pgingest.pipeline.prepare.plan import FilePlan, LivePlan
from pgingest.pipeline.write.payload import Payload
from pgingest.schema.evolution import canonical_type
from pgingest.schema.infer import _SPECIAL
from pgingest.schema.pgtypes import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    INTEGER,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
)
from pgingest.sources.csv import read_typed_records
from pgingest.textforms import LOCAL_TEMPORAL, ZONED_TIMESTAMP

_READ_AS_TEXT = (DOUBLE, TIMESTAMP, TIMESTAMPTZ)
"""Types read as strings first, checked, then cast (their parse alone accepts too much)."""

ARROW_TYPES: Final[dict[str, pa.DataType]] = {
    TEXT: pa.string(),
    INTEGER: pa.int32(),
    BIGINT: pa.int64(),
    DOUBLE: pa.float64(),
    DATE: pa.date32(),
    TIMESTAMP: pa.timestamp("us"),
    TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    BOOLEAN: pa.bool_(),
}
"""The column types a CSV file may be parsed client-side for, and the Arrow type of each."""


def _spellings(*words: str) -> list[str]:
    return [v for w in words for v in dict.fromkeys((w, w.title(), w.upper()))]


TRUE_VALUES: Final = _spellings("true", "t", "yes", "y", "on", "1")
"""Spellings of true both pyarrow (exactly these) and PostgreSQL's ``boolin`` read as true."""
FALSE_VALUES: Final = _spellings("false", "f", "no", "n", "off", "0")
"""Spellings of false read as false by both."""

_NUMERIC = re.compile(r"numeric\((\d+)(?:,(\d+))?\)")
"""numeric with a precision (and a scale): its values have one scale, the column's."""
_MAX_DECIMAL_DIGITS = 38
"""decimal128's precision."""

_FIRST_DAY = datetime.date(1, 1, 1)

_MANTISSA_DIGIT = r"^[^eE]*[1-9]"
"""A nonzero digit before the exponent: the number is not zero (an underflow if read as 0)."""


def is_typed_file(plan: FilePlan) -> bool:
    """Whether the file's chunks may be parsed client-side for binary COPY: an append (a
    staged upsert or merge is parsed so where its rows are routed by key, see
    :func:`pgingest.pipeline.keyed.route.routed_batches`) of exact types (:func:`exact_types`)."""
    return plan.target is None and exact_types(plan)


def exact_types(plan: FilePlan) -> bool:
    """Whether every column's type parses exactly client-side (:data:`ARROW_TYPES`), with no
    ``DateStyle`` to apply and no missing-value markers to read as NULL."""
    return (
        plan.datestyle is None
        and not plan.marker_columns
        and all(_arrow_type(canonical_type(t)) is not None for t in plan.target_types)
    )


def _arrow_type(kind: str) -> pa.DataType | None:
    """The Arrow type a column of ``kind`` (canonical) is parsed as, ``None`` if it is not."""
    found = ARROW_TYPES.get(kind)
    if found is not None:
        return found
    match = _NUMERIC.fullmatch(kind)
    if match is None:
        return None
    precision, scale = int(match.group(1)), int(match.group(2) or 0)
    if not 0 <= scale <= precision <= _MAX_DECIMAL_DIGITS:
        return None
    return pa.decimal128(_MAX_DECIMAL_DIGITS, scale)  # the precision is checked after


@dataclass(slots=True)
class TypedState:
    """What a file's typed chunks share (its batch workers' threads read and set it)."""

    threads: bool = False
    """Parse on pyarrow's threads too (cores to spare), not only the worker's."""
    encoder: copy.BinaryEncoder | None = None
    """The binary encoder of the last batch, rebuilt when the schema changes."""
    text_only: bool = False
    """A chunk went as text: the rest of the file does too. The server may refuse that chunk
    and the table widen: a binary batch encoded for the narrower type meanwhile would be
    refused as a malformed stream (08P01), not as a value to widen for."""


def typed_payload(text: Payload, live: LivePlan, state: TypedState) -> Payload:
    """The raw CSV chunk ``text`` as a binary COPY payload, parsed with the plan current now,
    or ``text`` itself when the parse is not certainly exact (see the module's rules).

    Args:
        text: a raw chunk's payload (whole records of the file, UTF-8, not read again).
        live: the file's plan (its types may have widened since the file began).
        state: what the file's typed chunks share.
    """
    plan = live.current
    if state.text_only or not is_typed_file(plan):
        return text
    dialect = text.dialect or CsvDialect()
    batch = parse_exact(text.data, dialect, plan.target_types, state.threads)
    if batch is None:
        state.text_only = True
        return text
    batch = batch.rename_columns(list(plan.columns))
    encoder = state.encoder
    if encoder is None or encoder.schema != batch.schema:
        encoder = copy.BinaryEncoder(batch.schema)
        state.encoder = encoder
    return Payload(
        "arrow", b"", text.first_line, batch=batch, encoder=encoder, rejects=text.rejects
    )


def parse_exact(
    data: bytes, dialect: CsvDialect, target_types: Sequence[str], threads: bool = False
) -> pa.RecordBatch | None:
    """The records of ``data`` as columns of the target types, or ``None`` when a value may
    read otherwise than the server would read it.

    ``data`` is a raw chunk COPY would read as Python's ``csv`` module does
    (:func:`pgingest.sources.repair.copy_misreads`): every quote opens or closes a field or is
    doubled, no line is blank or ``\\.``, every line break outside quotes is the file's own
    style. pyarrow cuts such records and fields where COPY does; a line break inside quotes is
    data to both.
    """
    kinds = [canonical_type(t) for t in target_types]
    if any(k in (INTEGER, BIGINT) for k in kinds) and has_hex_prefix(data):
        return None
    read = [pa.string() if k in _READ_AS_TEXT else _arrow_type(k) for k in kinds]
    if None in read:
        return None
    try:
        batch = read_typed_records(
            data,
            dialect,
            read,
            true_values=TRUE_VALUES,
            false_values=FALSE_VALUES,
            threads=threads,
        )
        columns = list(batch.columns)
        for i, kind in enumerate(kinds):
            if pa.types.is_decimal(read[i]) and not _fits(columns[i], kind):
                return None
            if kind == DATE and not _after_year_zero(columns[i]):
                return None
            if kind in _READ_AS_TEXT:
                cast = _checked_cast(columns[i], kind)
                if cast is None:
                    return None
                columns[i] = cast
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def has_hex_prefix(data: bytes) -> bool:
    """Whether ``data`` holds ``0x`` or ``0X``: searched by Arrow's RE2 over the bytes as they
    are (Python's two-byte search took 19 ms for an 8 MiB chunk of digits, this 2.5 ms)."""
    offsets = pa.py_buffer(struct.pack("<qq", 0, len(data)))
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    return bool(pc.match_substring(whole, "0x", ignore_case=True)[0].as_py())


def _after_year_zero(column: pa.Array) -> bool:
    """Whether every date is 0001-01-01 or later (ISO's year 0 is an error to PostgreSQL)."""
    first = pa.scalar(_FIRST_DAY, pa.date32())
    return pc.any(pc.less(column, first)).as_py() is not True


def _fits(column: pa.Array, kind: str) -> bool:
    """Whether every value of a decimal column fits numeric(p,s)'s digits before the point."""
    match = _NUMERIC.fullmatch(kind)
    if match is None or column.null_count == len(column):
        return match is not None
    precision, scale = int(match.group(1)), int(match.group(2) or 0)
    largest = pc.max(pc.abs(column)).as_py()
    return bool(largest < decimal.Decimal(10) ** (precision - scale))


def _checked_cast(column: pa.Array, kind: str) -> pa.Array | None:
    """A string column as ``kind`` (double precision, timestamp, timestamptz), or ``None``
    when a value is not one the server reads alike."""
    if kind == DOUBLE:
        floats = pc.cast(column, pa.float64())
        finite = pc.is_finite(floats)
        suspect = pc.invert(pc.and_(finite, pc.not_equal(floats, 0.0)))
        if pc.any(suspect).as_py():
            text = pc.filter(column, suspect)
            infinite = pc.invert(pc.filter(finite, suspect))  # NaN or infinity
            special = pc.match_substring_regex(text, _SPECIAL)
            zero = pc.filter(text, pc.invert(infinite))
            if not pc.all(pc.equal(special, infinite)).as_py():
                return None  # an overflow read as infinity, or NaN/infinity spelled oddly
            if pc.any(pc.match_substring_regex(zero, _MANTISSA_DIGIT)).as_py():
                return None  # an underflow read as zero
        return floats
    values = pc.drop_null(column)
    pattern = ZONED_TIMESTAMP if kind == TIMESTAMPTZ else LOCAL_TEMPORAL
    if len(values) and not pc.all(pc.match_substring_regex(values, pattern)).as_py():
        return None
    return pc.cast(column, ARROW_TYPES[kind])

"""Find values PostgreSQL would refuse for a column type, vectorized, without a database.

Only the failure path of a load uses this (a batch the server refused, under ``--on-error
skip``, or a contract check), so it may cost more than the clean path, but never per-row
Python. It is conservative: a value is flagged only when the server surely refuses it; what it
lets through the server still checks, and pgingest handles what the server then refuses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from pgingest.schema.evolution import canonical_type

if TYPE_CHECKING:
    import pyarrow as pa

_WS = r"[ \t\n\r\f\v]*"
_INTEGER_LIKE = rf"^{_WS}[+-]?(?:[0-9_]+|0[xXoObB][0-9a-fA-F_]+){_WS}$"
_DIGITS = r"^[+-]?[0-9]{1,18}$"
_NUMBER_LIKE = (
    rf"^{_WS}[+-]?(?:(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9]+)?"
    rf"|(?i:nan|inf|infinity)|0[xXoObB][0-9a-fA-F_]+){_WS}$"
)
_BOOLEAN_LIKE = rf"^{_WS}(?i:t|tr|tru|true|f|fa|fal|fals|false|y|ye|yes|n|no|on|of|off|1|0){_WS}$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_HAS_DIGIT = r"[0-9]"
_DATE_WORDS = r"^\s*(?i:epoch|infinity|-infinity|now|today|tomorrow|yesterday|allballs)\s*$"
_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1)}


@cache
def _fast_casts() -> dict[str, pa.DataType]:
    """Arrow types whose parse of a text column, when it succeeds, proves every value valid
    (built on first use: importing this module does not import pyarrow)."""
    import pyarrow as pa

    return {
        "smallint": pa.int16(),
        "integer": pa.int32(),
        "bigint": pa.int64(),
        "numeric": pa.float64(),
        "real": pa.float64(),
        "double precision": pa.float64(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us"),
        "boolean": pa.bool_(),
    }


def _all_false(values: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.is_null(pc.fill_null(values, ""))


def _not_matching(values: pa.Array, pattern: str) -> pa.Array:
    import pyarrow.compute as pc

    return pc.invert(pc.match_substring_regex(values, pattern))


def _integer_invalid(values: pa.Array, base: str) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    bad = _not_matching(values, _INTEGER_LIKE)
    low_high = _RANGES.get(base)
    if low_high is None:
        return bad
    # Plain digit strings short enough for int64: check the range (longer ones: the server).
    plain = pc.match_substring_regex(values, _DIGITS)
    digits = pc.utf8_ltrim(pc.if_else(plain, values, pa.scalar("0")), characters="+")
    parsed = pc.cast(digits, pa.int64())
    out = pc.or_(pc.less(parsed, low_high[0]), pc.greater(parsed, low_high[1]))
    return pc.or_(bad, pc.and_(plain, out))


def _date_invalid(values: pa.Array) -> pa.Array:
    """ISO dates that do not exist (2026-02-30), and values without a digit that are not one
    of the special words; other forms (``Jan 5 2026``) are left to the server."""
    import pyarrow.compute as pc

    iso = pc.match_substring_regex(values, _ISO_DATE)
    heads = pc.utf8_slice_codeunits(values, 0, 10)
    parsed = pc.strptime(heads, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2026-02-30 over to March 2: a round trip tells an impossible date.
    again = pc.strftime(parsed, format="%Y-%m-%d")
    impossible = pc.and_(iso, pc.invert(pc.fill_null(pc.equal(again, heads), False)))
    wordy = pc.and_(_not_matching(values, _HAS_DIGIT), _not_matching(values, _DATE_WORDS))
    return pc.or_(impossible, wordy)


def invalid_values(values: pa.Array | pa.ChunkedArray, pg_type: str) -> pa.Array | None:
    """Flag the values of a text column that ``pg_type``'s input function surely refuses.

    Args:
        values: the column as CSV text (``string``); nulls are never flagged.
        pg_type: the target column's type.

    Returns:
        A boolean array, true where a value is invalid, or ``None`` when the type has no
        client-side check here (text, json, uuid, a domain ...): then only the server knows.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = canonical_type(pg_type)
    base = t.split("(", 1)[0]
    fast = _fast_casts().get(base)
    if fast is not None:
        # Arrow's own parser accepts a subset of what the server does: when it reads the
        # whole column, no value is invalid, at a fraction of the regexes' cost.
        try:
            pc.cast(values, fast)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return _all_false(values)
    if base in ("smallint", "integer", "bigint"):
        bad = _integer_invalid(values, base)
    elif base in ("numeric", "real", "double precision"):
        bad = _not_matching(values, _NUMBER_LIKE)
    elif base == "boolean":
        bad = _not_matching(values, _BOOLEAN_LIKE)
    elif base in ("date", "timestamp", "timestamptz"):
        bad = _date_invalid(values)
    else:
        return None
    return pc.fill_null(bad, False)


TEXT_SHARE = 0.5
"""A column is text by nature when at least this share of its values misfit its type."""

NULL_MARKERS = frozenset({"na", "n/a", "#n/a", "null", "none", "nan"})
"""What exports write for a missing value (R's ``NA``, SQL's ``NULL``, Python's ``None``,
pandas' ``nan``), compared without case: NULL in a column of another type than text; in a
text column they stay text (``NA`` is Namibia)."""
_EXAMPLES = 3


@dataclass(frozen=True, slots=True)
class Majority:
    """The type most of a text column's values have, and what does not fit it."""

    pg_type: str
    misfits: int
    """Values (not markers) the type refuses: bad rows when the column loads."""
    examples: tuple[str, ...]
    """The first few of them."""
    markers: dict[str, int]
    """Missing-value markers found (as written) and how often: NULL in the column."""


def markers_in(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Which values are missing-value markers (:data:`NULL_MARKERS`); nulls are not."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    lowered = pc.utf8_lower(values)
    return pc.fill_null(pc.is_in(lowered, value_set=pa.array(sorted(NULL_MARKERS))), False)


def typed_majority(
    values: pa.Array | pa.ChunkedArray, infer: Callable[[pa.Array], str]
) -> Majority | None:
    """The type more than half of a text column's values have (missing-value markers left
    out), with the values that misfit it; ``None`` when the column is text by nature.

    Args:
        values: the column (text), e.g. a file's sample.
        infer: the narrowest type of values that all fit one (the inference's), ``text``
            when there is none.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    values = values.drop_null()
    if not len(values):
        return None
    marked = markers_in(values)
    found = values.filter(marked).to_pylist()
    markers: dict[str, int] = {}
    for marker in found:
        markers[marker] = markers.get(marker, 0) + 1
    rest = values.filter(pc.invert(marked))
    if not len(rest):
        return None
    for family in ("double precision", "timestamptz", "boolean"):
        invalid = invalid_values(rest, family)
        if invalid is None:
            continue
        fits = rest.filter(pc.invert(invalid))
        if len(fits) <= len(rest) * TEXT_SHARE:
            continue
        pg_type = infer(fits)
        if canonical_type(pg_type) == "text":
            continue
        refused = invalid_values(rest, pg_type)
        misfit = rest.filter(refused) if refused is not None else rest.slice(0, 0)
        if len(misfit) >= len(rest) * TEXT_SHARE:
            continue
        examples = tuple(misfit.slice(0, _EXAMPLES).to_pylist())
        return Majority(pg_type, len(misfit), examples, markers)
    return None


def text_by_nature(table: pa.Table, types: dict[str, str]) -> frozenset[str]:
    """Columns of ``table`` (text) whose values are mostly not of the given types.

    ``A12``, ``B34`` in an integer column are codes: the column may become text. A few
    misfits among numbers are bad rows instead (see :mod:`pgingest.schema.evolution`).

    Args:
        table: a sample of the file, string columns.
        types: column name -> its type in the table.

    Returns:
        The names of the columns that may turn into text.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out = set()
    for name, pg_type in types.items():
        if name not in table.column_names or canonical_type(pg_type) == "text":
            continue
        values = table.column(name).drop_null()
        if not len(values) or not pa.types.is_string(values.type):
            continue
        invalid = invalid_values(values, pg_type)
        if invalid is not None and (pc.sum(invalid).as_py() or 0) >= TEXT_SHARE * len(values):
            out.add(name)
    return frozenset(out)

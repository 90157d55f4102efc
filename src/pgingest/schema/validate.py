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
_DECIMAL_INT = r"[0-9]+"
_LITERAL_INT = r"(?:[0-9](?:_?[0-9])*|0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+)"
"""PostgreSQL 16+'s integer input: underscores between digits, hex, octal and binary."""
_DIGITS = r"^[+-]?[0-9]{1,18}$"
_EXPONENT = r"(?:[eE][+-]?[0-9]+)?"
_MANTISSA = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)"
_DECIMAL = rf"{_MANTISSA}{_EXPONENT}"
_MANTISSA_UNDERSCORED = r"(?:[0-9](?:_?[0-9])*(?:\.(?:[0-9](?:_?[0-9])*)?)?|\.[0-9](?:_?[0-9])*)"
_NUMERIC_EXPONENT = rf"(?:[eE]{_WS}[+-]?[0-9_]+)?"
"""numeric's exponent: strtol's, spaces allowed after the ``e`` (``0E 0`` is 0)."""
_FLOAT_WORDS = r"(?i:nan|inf|infinity|nan\([0-9a-z_]*\))"
_HEX_FLOAT = r"0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)(?:[pP][+-]?[0-9]+)?"
"""strtod's hexadecimal floats (``0x1F``, ``0x1.8p3``): the server's float input reads them."""
_NUMERIC_WORDS = r"(?i:nan|[+-]?inf|[+-]?infinity)"
_STRTOD_ONLY = r"\(|(?i:[+-]nan)"
"""``nan(12)``, ``+nan``: floats read them, numeric does not."""
_NUMERIC_SCALE = r"[eE][+-]?0*[0-9]{4}"
"""An exponent past what a float reads of numeric's range (a scale over 16383 digits:
``.0e-20000``)."""
_NUMERIC_DIGITS = 1000
"""Values this long may hold more digits than numeric's 16383 after the point: not vouched."""
_BOOLEAN_LIKE = rf"^{_WS}(?i:t|tr|tru|true|f|fa|fal|fals|false|y|ye|yes|n|no|on|of|off|1|0){_WS}$"
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
_YEAR_ZERO = rf"^{_WS}0000-[0-9]{{2}}-[0-9]{{2}}"
_HOUR_ONLY = rf"^{_WS}[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[T ][0-9]{{1,2}}{_WS}$"
"""A date and an hour without minutes (``2026-01-02 03``): Arrow reads it, the server never."""
_HAS_DIGIT = r"[0-9]"
_DATE_WORDS = r"^\s*(?i:epoch|infinity|-infinity|now|today|tomorrow|yesterday|allballs)\s*$"
_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1)}
_REAL_MAX = 3.4028236e38
"""Above it (FLT_MAX plus half a unit in the last place, rounded up) ``real`` input overflows."""
_REAL_TINY = 7.0e-46
"""Below it (half the least subnormal ``real``) a nonzero value rounds to 0: refused."""
_NONZERO_MANTISSA = r"^[^eE]*[1-9]"
LITERALS_VERSION = 160000
"""PostgreSQL reads hex, octal and binary integers and underscores in numbers from 16 on."""


def _reads_literals(server_version: int | None) -> bool:
    """Whether the server may read ``0x1F`` and ``1_000`` as numbers: 16+, or not known."""
    return server_version is None or server_version >= LITERALS_VERSION


@cache
def _fast_casts() -> dict[str, pa.DataType]:
    """Arrow types whose parse of a text column reads a subset of what the server accepts,
    once :func:`_arrow_only` finds none of the values only Arrow reads (built on first use:
    importing this module does not import pyarrow)."""
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


def _arrow_only(values: pa.Array, parsed: pa.Array, base: str) -> bool:
    """Whether Arrow read a value of the column the server may refuse: hex integers (which
    Arrow even wraps, ``0x8000`` -> -32768 as smallint), numbers out of the type's range
    (Arrow rounds them to infinity or 0), ``+nan`` as numeric, year 0, an hour without minutes.

    Each test runs a regex only on the few values Arrow's result makes suspect: the column
    Arrow reads whole stays a fraction of the regexes' cost."""
    import pyarrow.compute as pc

    if base in ("smallint", "integer", "bigint"):
        # Arrow reads 0x1F and 0X1F, nothing before them (no sign, no space)
        return _any(pc.starts_with(values, "0x")) or _any(pc.starts_with(values, "0X"))
    if base in ("date", "timestamp"):
        if _any(pc.equal(pc.year(parsed), 0)):
            return True
        length = pc.utf8_length(values)
        short = pc.and_(pc.greater_equal(length, 12), pc.less_equal(length, 13))
        return _suspect(values, short, _HOUR_ONLY)
    if base not in ("numeric", "real", "double precision"):
        return False
    magnitude = pc.abs(parsed)
    limit = _REAL_MAX if base == "real" else float("inf")
    if _any(pc.greater_equal(magnitude, limit)):
        return True  # infinity written as a word is accepted: the full check tells
    tiny = _REAL_TINY * 2 if base == "real" else 0.0
    small = pc.less_equal(magnitude, tiny)
    if base != "numeric":
        return _suspect(values, small, _NONZERO_MANTISSA)
    if (pc.max(pc.utf8_length(values)).as_py() or 0) >= _NUMERIC_DIGITS:
        return True
    return _suspect(values, pc.is_nan(parsed), _STRTOD_ONLY) or _suspect(
        values, small, _NUMERIC_SCALE
    )


def _any(mask: pa.Array) -> bool:
    import pyarrow.compute as pc

    return bool(pc.any(mask).as_py())


def _suspect(values: pa.Array, mask: pa.Array, pattern: str) -> bool:
    """Whether a value where ``mask`` is true matches ``pattern``."""
    import pyarrow.compute as pc

    few = values.filter(pc.fill_null(mask, False))
    return len(few) > 0 and _any(pc.match_substring_regex(few, pattern))


def fast_accepts(
    values: pa.Array | pa.ChunkedArray, pg_type: str, server_version: int | None = None
) -> bool:
    """Whether Arrow's parse of the column vouches for every value: the server accepts them
    all (checked at a fraction of the regexes' cost).

    Args:
        values: the column as text.
        pg_type: the target column's type.
        server_version: the server's ``server_version_num``; ``None`` when not known.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    t = canonical_type(pg_type)
    base = t.split("(", 1)[0]
    fast = _fast_casts().get(base)
    if fast is None or t != base:  # numeric(12,2): a precision Arrow does not check
        return False
    try:
        parsed = pc.cast(values, fast)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False
    return not _arrow_only(values, parsed, base)


def _all_false(values: pa.Array) -> pa.Array:
    import pyarrow.compute as pc

    return pc.is_null(pc.fill_null(values, ""))


def _not_matching(values: pa.Array, pattern: str) -> pa.Array:
    import pyarrow.compute as pc

    return pc.invert(pc.match_substring_regex(values, pattern))


def _integer_invalid(values: pa.Array, base: str, server_version: int | None) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    literal = _LITERAL_INT if _reads_literals(server_version) else _DECIMAL_INT
    bad = _not_matching(values, rf"^{_WS}[+-]?{literal}{_WS}$")
    low_high = _RANGES.get(base)
    if low_high is None:
        return bad
    # Plain digit strings short enough for int64: check the range (longer ones: the server).
    plain = pc.match_substring_regex(values, _DIGITS)
    digits = pc.utf8_ltrim(pc.if_else(plain, values, pa.scalar("0")), characters="+")
    parsed = pc.cast(digits, pa.int64())
    out = pc.or_(pc.less(parsed, low_high[0]), pc.greater(parsed, low_high[1]))
    return pc.or_(bad, pc.and_(plain, out))


def _number_invalid(values: pa.Array, base: str, server_version: int | None) -> pa.Array:
    """Values not spelled as a number of the type, and (floats) decimals out of its range:
    the server refuses ``1e400`` and ``1e-400`` as double precision, ``1e39`` as real."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if base == "numeric":
        mantissa = _MANTISSA_UNDERSCORED if _reads_literals(server_version) else _MANTISSA
        decimal = mantissa + _NUMERIC_EXPONENT
        literal = f"|{_LITERAL_INT}" if _reads_literals(server_version) else ""
        spelled = rf"^{_WS}(?:[+-]?(?:{decimal}{literal})|{_NUMERIC_WORDS}){_WS}$"
        return _not_matching(values, spelled)
    bad = _not_matching(values, rf"^{_WS}[+-]?(?:{_DECIMAL}|{_FLOAT_WORDS}|{_HEX_FLOAT}){_WS}$")
    decimal = pc.match_substring_regex(values, rf"^{_WS}[+-]?{_DECIMAL}{_WS}$")
    text = pc.utf8_ltrim(pc.utf8_trim_whitespace(pc.if_else(decimal, values, "0")), characters="+")
    try:
        magnitude = pc.abs(pc.cast(text, pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return bad
    if base == "real":
        over = pc.greater(magnitude, _REAL_MAX)
        under = pc.less(magnitude, _REAL_TINY)
    else:
        over = pc.is_inf(magnitude)
        under = pc.equal(magnitude, 0.0)
    if _any(pc.and_(decimal, under)):  # rare: then only, tell 0 from what rounds to it
        under = pc.and_(under, pc.match_substring_regex(values, _NONZERO_MANTISSA))
    return pc.or_(bad, pc.and_(decimal, pc.or_(over, under)))


def _date_invalid(values: pa.Array, base: str) -> pa.Array:
    """ISO dates that do not exist (2026-02-30, year 0), an ISO date and an hour without
    minutes (timestamps), and values without a digit that are not one of the special words;
    other forms (``Jan 5 2026``) are left to the server."""
    import pyarrow.compute as pc

    iso = pc.match_substring_regex(values, _ISO_DATE)
    heads = pc.utf8_slice_codeunits(values, 0, 10)
    parsed = pc.strptime(heads, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2026-02-30 over to March 2: a round trip tells an impossible date.
    again = pc.strftime(parsed, format="%Y-%m-%d")
    impossible = pc.and_(iso, pc.invert(pc.fill_null(pc.equal(again, heads), False)))
    impossible = pc.or_(impossible, pc.match_substring_regex(values, _YEAR_ZERO))
    if base != "date":
        impossible = pc.or_(impossible, pc.match_substring_regex(values, _HOUR_ONLY))
    wordy = pc.and_(_not_matching(values, _HAS_DIGIT), _not_matching(values, _DATE_WORDS))
    return pc.or_(impossible, wordy)


def invalid_values(
    values: pa.Array | pa.ChunkedArray, pg_type: str, server_version: int | None = None
) -> pa.Array | None:
    """Flag the values of a text column that ``pg_type``'s input function surely refuses.

    Args:
        values: the column as CSV text (``string``); nulls are never flagged.
        pg_type: the target column's type.
        server_version: the server's ``server_version_num``: PostgreSQL 15 refuses ``0x1F``
            and ``1_000`` as integers, 16 reads them. ``None`` when not known: only what
            every version refuses is flagged.

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
    if fast_accepts(values, t, server_version):
        return _all_false(values)
    if base in ("smallint", "integer", "bigint"):
        bad = _integer_invalid(values, base, server_version)
    elif base in ("numeric", "real", "double precision"):
        bad = _number_invalid(values, base, server_version)
    elif base == "boolean":
        bad = _not_matching(values, _BOOLEAN_LIKE)
    elif base in ("date", "timestamp", "timestamptz"):
        bad = _date_invalid(values, base)
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
    if not len(rest) or _count(could_be_typed(rest)) <= len(rest) * TEXT_SHARE:
        return None  # names, sentences: no family can hold the share, none is tried
    for family in _FAMILIES:
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


_FAMILIES = ("double precision", "timestamptz", "boolean")
"""The widest type of each family a text column may turn out to be."""


def could_be_typed(values: pa.Array) -> pa.Array:
    """True where a text value may be valid in one of the :data:`_FAMILIES` (a superset, in
    a few cheap passes): it holds a digit, or is short once trimmed (``NaN``, ``-Infinity``,
    ``yesterday``, ``true``), or is a float's ``nan(...)``. Every other value each family's
    :func:`invalid_values` refuses."""
    import pyarrow.compute as pc

    spelled = pc.match_substring_regex(values, rf"[0-9]|^{_WS}[+-]?(?i:nan)\(")
    short = pc.less_equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), _LONGEST_WORD)
    return pc.fill_null(pc.or_(spelled, short), False)


_LONGEST_WORD = len("-infinity")
"""The longest value without a digit a family reads (``yesterday`` is as long)."""


def _count(mask: pa.Array) -> int:
    import pyarrow.compute as pc

    return int(pc.sum(mask).as_py() or 0)


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

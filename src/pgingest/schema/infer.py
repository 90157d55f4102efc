"""Infer PostgreSQL column types from CSV text, vectorized with pyarrow.compute.

A type is chosen only when PostgreSQL's input function accepts every value of the column and
the value it reads back means what the text said: ``00123`` stays text, a 20-digit id is
``numeric``, a decimal with 16 significant digits is ``numeric`` rather than ``double
precision``. Values are never stripped or otherwise rewritten; any doubt means ``text``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc

from pgingest.errors import ConfigError
from pgingest.schema.pgtypes import (
    BIGINT,
    BOOLEAN,
    DATE,
    DOUBLE,
    INTEGER,
    NUMERIC,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
)

# All patterns are RE2 (pyarrow), anchored on the whole value, ASCII digits only.
_INTEGER = r"^[+-]?(?:0|[1-9][0-9]*)$"
_SPECIAL_FLOAT = r"nan|[+-]?inf(?:inity)?"
_SPECIAL = rf"^(?i:{_SPECIAL_FLOAT})$"
_NUMBER = (
    r"^(?:[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rf"|(?i:{_SPECIAL_FLOAT}))$"
)
# Sixteen or more significant digits (trailing zeros count: they state a precision).
_TOO_PRECISE = r"^[+-]?[0.]*[1-9](?:\.?[0-9]){15}"
_BIG_EXPONENT = r"[eE][+-]?0*[1-9][0-9]{3,}$"
_EXPONENT_PART = r"[eE].*$"
_BOOLEAN = r"^(?i:true|false|t|f|yes|no)$"
# Years 0001-9999: PostgreSQL has no year 0.
_DATE_BODY = (
    r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
    r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
)
# Hour 24 and second 60 are refused: PostgreSQL accepts them but rolls the value over.
# Seven or more fraction digits are refused: PostgreSQL rounds them to microseconds.
_TIME_BODY = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
# PostgreSQL accepts UTC offsets up to 15:59.
_OFFSET = r"(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)"
_LOCAL_TEMPORAL = rf"^{_DATE_BODY}(?:[T ]{_TIME_BODY})?$"
_ZONED_TIMESTAMP = rf"^{_DATE_BODY}[T ]{_TIME_BODY}{_OFFSET}$"
_SLASH_DATE = r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})"
_SLASH_TEMPORAL = rf"{_SLASH_DATE}(?:[T ]{_TIME_BODY})?$"
_SLASH_PARTS = r"^(?P<a>[0-9]{1,2})/(?P<b>[0-9]{1,2})/(?P<y>[0-9]{4})"
_MAX_MONTH = 12
_TEMPORAL_START = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
"""Cheap test that sends a column to the date and timestamp patterns."""
_DATE_CHARS = 10
"""``YYYY-MM-DD``: a value of the date-or-timestamp pattern this long is a date."""

_HEAD_ROWS = 256
"""Rows tried before a whole column: one misfit there rules a type out at little cost."""

_FLOAT_DIGITS = 15
"""DBL_DIG: every decimal of at most 15 significant digits survives a trip through float8."""

_DBL_MIN = 2.2250738585072014e-308
"""Smallest normal float8: below it (subnormal) fewer than 15 digits survive."""

_MAX_NUMBER_CHARS = 15_000
"""Longest number text inferred as numeric. With an exponent below 1000 it stays well inside
numeric's limits (131072 digits before the point, 16383 after)."""

_MAX_BIG_EXPONENT_FREE_CHARS = 300
"""Shorter number text with an exponent of 1000 or more is never a finite, normal float8, so
the float8 range check already finds it (the mantissa would need ~700 leading zeros)."""

_INT32 = (-(2**31), 2**31 - 1)
_INT32_DIGITS = 9
"""Any integer text of at most 9 characters fits int32 without parsing it."""
_INT64_CHARS = 20
"""``-9223372036854775808``: longer integer text never fits int64."""


class _Kind(enum.Flag):
    """What the values of a column seen so far look like."""

    NONE = 0
    BOOLEAN = enum.auto()
    INTEGER = enum.auto()
    DECIMAL = enum.auto()
    SPECIAL = enum.auto()
    """NaN or infinity: double precision only."""
    DATE = enum.auto()
    TIMESTAMP = enum.auto()
    TIMESTAMPTZ = enum.auto()
    SLASH_DATE = enum.auto()
    """``31/12/2026`` or ``12/31/2026``: day and month order decided by the values."""
    SLASH_TIMESTAMP = enum.auto()
    TEXT = enum.auto()


_NUMBERS = _Kind.INTEGER | _Kind.DECIMAL | _Kind.SPECIAL
_LOCAL_TIMES = _Kind.DATE | _Kind.TIMESTAMP
_SLASH_TIMES = _Kind.SLASH_DATE | _Kind.SLASH_TIMESTAMP
DateOrder = Literal["dmy", "mdy"]
_INT_TYPES = (INTEGER, BIGINT, NUMERIC)


@dataclass(slots=True)
class _ColumnState:
    """The evidence gathered about one column."""

    kinds: _Kind = _Kind.NONE
    int_width: int = 0
    """Index into ``_INT_TYPES``: integer, bigint or numeric."""
    beyond_float: bool = False
    """A number has more than 15 significant digits or lies outside float8's normal range."""
    beyond_numeric: bool = False
    """A number has an exponent of 1000 or more, which numeric refuses."""
    day_first_seen: bool = False
    """A slash date's first part is above 12: it is the day (``31/12/2026``)."""
    month_first_seen: bool = False
    """A slash date's second part is above 12: the month comes first (``12/31/2026``)."""
    slash_dates: pa.ChunkedArray | None = None
    """The slash dates kept while their order is open, to check them once it is known."""

    def date_order(self, default: DateOrder | None) -> DateOrder | None:
        """The order of a slash-date column, ``None`` when the values cannot tell and no
        default is given (or when they contradict each other)."""
        if self.day_first_seen and self.month_first_seen:
            return None
        if self.day_first_seen:
            return "dmy"
        if self.month_first_seen:
            return "mdy"
        return default

    def pg_type(self, default_order: DateOrder | None = None) -> str:
        """The narrowest type that keeps every value seen."""
        kinds = self.kinds
        if kinds and kinds in _SLASH_TIMES:
            order = self.date_order(default_order)
            if order is None or not _slash_dates_valid(self.slash_dates, order):
                return TEXT
            return DATE if kinds == _Kind.SLASH_DATE else TIMESTAMP
        if kinds == _Kind.NONE or _Kind.TEXT in kinds:
            return TEXT
        if kinds == _Kind.BOOLEAN:
            return BOOLEAN
        if kinds == _Kind.INTEGER:
            return _INT_TYPES[self.int_width]
        if kinds in _NUMBERS:
            if not self.beyond_float:
                return DOUBLE
            if _Kind.SPECIAL in kinds or self.beyond_numeric:
                return TEXT
            return NUMERIC
        if kinds == _Kind.DATE:
            return DATE
        if kinds in _LOCAL_TIMES:
            return TIMESTAMP
        if kinds == _Kind.TIMESTAMPTZ:
            return TIMESTAMPTZ
        return TEXT


def _matches(values: pa.ChunkedArray, pattern: str) -> pa.ChunkedArray:
    return pc.match_substring_regex(values, pattern)


def _any(mask: pa.ChunkedArray) -> bool:
    return pc.any(mask).as_py() is True


def _head_matches(values: pa.ChunkedArray, pattern: str) -> bool:
    """Whether the first rows all match: a cheap test that can only rule a type out."""
    return pc.all(_matches(values.slice(0, _HEAD_ROWS), pattern)).as_py() is True


def _all_match(values: pa.ChunkedArray, pattern: str) -> bool:
    """Whether every (non-null) value matches; tries the first rows before all of them."""
    if len(values) > _HEAD_ROWS and not _head_matches(values, pattern):
        return False
    return pc.all(_matches(values, pattern)).as_py() is True


def _parse_int64(values: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Integer text as int64, or None past int64's range (the regex vouched for the syntax)."""
    try:
        return pc.cast(values, pa.int64())
    except pa.ArrowInvalid:
        pass
    try:  # Arrow refuses a leading "+", PostgreSQL does not
        return pc.cast(pc.utf8_ltrim(values, characters="+"), pa.int64())
    except pa.ArrowInvalid:
        return None


def _observe_integers(state: _ColumnState, values: pa.ChunkedArray, max_chars: int) -> None:
    if max_chars > _MAX_NUMBER_CHARS:
        state.kinds |= _Kind.TEXT
        return
    state.kinds |= _Kind.INTEGER
    if max_chars > _FLOAT_DIGITS and not state.beyond_float:
        state.beyond_float = _any(_matches(values, _TOO_PRECISE))
    if state.int_width == len(_INT_TYPES) - 1 or max_chars <= _INT32_DIGITS:
        return
    width = len(_INT_TYPES) - 1
    if max_chars <= _INT64_CHARS:
        parsed = _parse_int64(values)
        if parsed is not None:
            low, high = (pc.min_max(parsed)[key].as_py() for key in ("min", "max"))
            width = 0 if _INT32[0] <= low and high <= _INT32[1] else 1
    state.int_width = max(state.int_width, width)


def _observe_decimals(state: _ColumnState, values: pa.ChunkedArray, max_chars: int) -> None:
    """Numbers, not all of them integers, maybe NaN or infinity."""
    if max_chars > _MAX_NUMBER_CHARS:
        state.kinds |= _Kind.TEXT
        return
    try:
        floats = pc.cast(values, pa.float64())
    except pa.ArrowInvalid:  # pragma: no cover - Arrow reads every text the regex lets through
        # Keep what is certain: numeric reads any such text (but not NaN or infinity).
        state.kinds |= _Kind.DECIMAL
        state.beyond_float = True
        if _any(_matches(values, _SPECIAL)):
            state.kinds |= _Kind.SPECIAL
        if _any(_matches(values, _BIG_EXPONENT)):
            state.beyond_numeric = True
        return
    in_range = pc.and_(pc.is_finite(floats), pc.greater_equal(pc.abs(floats), _DBL_MIN))
    specials = 0
    if not pc.all(in_range).as_py():
        # Rare values, so the regexes run on few: NaN and infinity, overflow, and text below
        # float8's normal range, where only a true zero is safe (anything else underflows,
        # which PostgreSQL refuses, or becomes a subnormal that keeps fewer digits).
        suspects = values.filter(pc.invert(in_range))
        special = _matches(suspects, _SPECIAL)
        specials = pc.sum(special).as_py() or 0
        if specials:
            state.kinds |= _Kind.SPECIAL
            suspects = suspects.filter(pc.invert(special))
        mantissas = pc.replace_substring_regex(suspects, pattern=_EXPONENT_PART, replacement="")
        if _any(_matches(mantissas, "[1-9]")):
            state.beyond_float = True
        if _any(_matches(suspects, _BIG_EXPONENT)):
            state.beyond_numeric = True
    if specials == len(values):
        return
    state.kinds |= _Kind.DECIMAL
    if max_chars > _MAX_BIG_EXPONENT_FREE_CHARS and _any(_matches(values, _BIG_EXPONENT)):
        state.beyond_numeric = True
    if not state.beyond_float and max_chars > _FLOAT_DIGITS:
        state.beyond_float = _any(_matches(values, _TOO_PRECISE))


def _observe_temporal(
    state: _ColumnState, values: pa.ChunkedArray, min_chars: int, max_chars: int
) -> None:
    """Dates, timestamps or timestamps with a UTC offset, never a mix of local and zoned."""
    if _all_match(values, _LOCAL_TEMPORAL):
        kinds = _Kind.NONE
        if min_chars == _DATE_CHARS:
            kinds |= _Kind.DATE
        if max_chars > _DATE_CHARS:
            kinds |= _Kind.TIMESTAMP
    elif _all_match(values, _ZONED_TIMESTAMP):
        kinds = _Kind.TIMESTAMPTZ
    else:
        state.kinds |= _Kind.TEXT
        return
    dates = values if max_chars == _DATE_CHARS else pc.utf8_slice_codeunits(values, 0, _DATE_CHARS)
    try:
        pc.cast(dates, pa.date32())  # the regex let 2026-02-30 and 2023-02-29 through
    except pa.ArrowInvalid:
        kinds = _Kind.TEXT
    state.kinds |= kinds


def _slash_parts(values: pa.ChunkedArray) -> tuple[pa.Array, pa.Array, pa.Array]:
    parts = pc.extract_regex(values.combine_chunks(), _SLASH_PARTS)
    return tuple(pc.struct_field(parts, key) for key in ("a", "b", "y"))


def _slash_dates_valid(values: pa.ChunkedArray | None, order: DateOrder) -> bool:
    """Whether every slash date exists (31/02/2026 does not) when read in ``order``."""
    if values is None or not len(values):
        return True
    first, second, year = _slash_parts(values)
    day, month = (first, second) if order == "dmy" else (second, first)
    iso = pc.binary_join_element_wise(
        year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), "-"
    )
    parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
    again = pc.strftime(parsed, format="%Y-%m-%d")
    if pc.any(pc.invert(pc.fill_null(pc.equal(again, iso), False))).as_py():
        return False
    return bool(pc.all(pc.not_equal(year, "0000")).as_py())


def _observe_slash(state: _ColumnState, values: pa.ChunkedArray, max_chars: int) -> None:
    if not _all_match(values, _SLASH_TEMPORAL):
        state.kinds |= _Kind.TEXT
        return
    first, second, _year = _slash_parts(values)
    low_high = [pc.min_max(pc.cast(p, pa.int32())) for p in (first, second)]
    if low_high[0]["max"].as_py() > _MAX_MONTH:
        state.day_first_seen = True
    if low_high[1]["max"].as_py() > _MAX_MONTH:
        state.month_first_seen = True
    if min(p["min"].as_py() for p in low_high) < 1:
        state.kinds |= _Kind.TEXT
        return
    dates = pc.utf8_slice_codeunits(values, 0, 10) if max_chars > _DATE_CHARS else values
    kept = [] if state.slash_dates is None else list(state.slash_dates.chunks)
    state.slash_dates = pa.chunked_array([*kept, *dates.chunks], pa.string())
    short = pc.max(pc.binary_length(values)).as_py() <= _DATE_CHARS
    has_time = pc.any(pc.match_substring(values, ":")).as_py()
    if short or not has_time:
        state.kinds |= _Kind.SLASH_DATE
    if has_time:
        state.kinds |= _Kind.SLASH_TIMESTAMP


def _observe(state: _ColumnState, column: pa.ChunkedArray) -> None:
    """Fold one batch of a column into ``state``."""
    if _Kind.TEXT in state.kinds or column.null_count == len(column):
        return
    values = pc.drop_null(column)
    lengths = pc.min_max(pc.binary_length(values))
    if lengths["min"].as_py() == 0:
        state.kinds |= _Kind.TEXT  # a quoted empty string: no other type reads ""
        return
    max_chars: int = lengths["max"].as_py()
    if _all_match(values, _INTEGER):
        _observe_integers(state, values, max_chars)
    elif _all_match(values, _NUMBER):
        _observe_decimals(state, values, max_chars)
    elif _all_match(values, _BOOLEAN):
        state.kinds |= _Kind.BOOLEAN
    elif _head_matches(values, _TEMPORAL_START):  # the temporal patterns check every value
        _observe_temporal(state, values, lengths["min"].as_py(), max_chars)
    elif _head_matches(values, _SLASH_DATE):
        _observe_slash(state, values, max_chars)
    else:
        state.kinds |= _Kind.TEXT
    if state.pg_type("dmy") == TEXT and state.pg_type("mdy") == TEXT:
        state.kinds |= _Kind.TEXT  # final: later batches need not be looked at


def _as_text_column(column: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return column
    if pa.types.is_null(column.type) or pa.types.is_string_view(column.type):
        return column.cast(pa.string())
    raise TypeError(f"column {name!r} is {column.type}; type inference reads string columns")


class TypeTracker:
    """Infers column types over a stream of batches of CSV text.

    Feed it every batch (or a sample) with :meth:`update`; :meth:`types` then gives, per
    column, the narrowest PostgreSQL type that every value seen so far fits without changing
    what it says.
    """

    def __init__(self, date_format: DateOrder | None = None) -> None:
        """Start with no evidence.

        Args:
            date_format: how to read slash dates when no value tells the day from the
                month (``dmy`` or ``mdy``); ``None`` leaves such a column text (see
                :meth:`ambiguous`).
        """
        self._columns: list[_ColumnState] | None = None
        self._date_format = date_format

    def update(self, table: pa.Table | pa.RecordBatch) -> None:
        """Take one more batch into account.

        Args:
            table: Columns of type ``string`` (``large_string``, ``string_view`` and
                all-null ``null`` columns are accepted too): null for an unquoted empty
                field, ``""`` for a quoted one. Columns are matched by position.

        Raises:
            TypeError: A column is not a string column.
            ValueError: The batch has a different number of columns than earlier ones.
        """
        if self._columns is None:
            self._columns = [_ColumnState() for _ in range(table.num_columns)]
        elif table.num_columns != len(self._columns):
            raise ValueError(
                f"batch has {table.num_columns} columns, earlier batches had {len(self._columns)}"
            )
        for state, name, column in zip(
            self._columns, table.column_names, table.columns, strict=True
        ):
            chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
            _observe(state, _as_text_column(chunked, name))

    def types(self) -> list[str]:
        """The PostgreSQL type of each column, in column order.

        Returns:
            One type per column (``text`` for a column with no non-null value); an empty list
            before the first :meth:`update`.
        """
        return [state.pg_type(self._date_format) for state in self._columns or ()]

    def date_orders(self) -> list[DateOrder | None]:
        """Per column, how its dates are written when they are slash dates (``31/12/2026``
        is ``dmy``), else ``None``: the server must be told (``DateStyle``)."""
        out: list[DateOrder | None] = []
        for state in self._columns or ():
            slash = bool(state.kinds) and state.kinds in _SLASH_TIMES
            pg_type = state.pg_type(self._date_format)
            out.append(state.date_order(self._date_format) if slash and pg_type != TEXT else None)
        return out

    def ambiguous(self) -> list[int]:
        """Columns of slash dates that stay text because nothing tells the day from the month
        (no day above 12 and no ``date_format``): each is worth a warning."""
        return [
            i
            for i, state in enumerate(self._columns or ())
            if state.kinds
            and state.kinds in _SLASH_TIMES
            and state.date_order(self._date_format) is None
            and not (state.day_first_seen and state.month_first_seen)
        ]


def infer_pg_types(table: pa.Table | pa.RecordBatch) -> list[str]:
    """Infer one PostgreSQL type per column of a table of CSV text.

    Chooses among boolean, integer, bigint, numeric, double precision, date, timestamp,
    timestamptz and text, the narrowest type whose input function accepts every non-null
    value and reads it back with the same meaning.

    Args:
        table: String columns (see :meth:`TypeTracker.update`).

    Returns:
        One type per column, in column order.

    Raises:
        TypeError: A column is not a string column.
    """
    tracker = TypeTracker()
    tracker.update(table)
    return tracker.types()


_SAFE_TYPE = re.compile(r"[a-z][a-z0-9_ ]*(\([0-9, ]+\))?(\[\])?", re.IGNORECASE)


def _split_top_level(spec: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    items: list[str] = []
    depth = 0
    start = 0
    for position, char in enumerate(spec):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ConfigError(f"unbalanced ')' in type overrides {spec!r}")
        elif char == "," and depth == 0:
            items.append(spec[start:position])
            start = position + 1
    if depth:
        raise ConfigError(f"unbalanced '(' in type overrides {spec!r}")
    items.append(spec[start:])
    return items


def parse_type_overrides(spec: str) -> dict[str, str]:
    """Parse ``--types "a=integer,b=numeric(12,2)"`` into ``{"a": "integer", ...}``.

    Commas inside parentheses belong to the type. Types end up in DDL, so each must match
    ``^[a-z][a-z0-9_ ]*(\\([0-9, ]+\\))?(\\[\\])?$`` (case-insensitive); it is returned lower
    case with runs of spaces collapsed. Column names are returned as written (stripped); the
    caller matches them against the header or the normalized names.

    Args:
        spec: The option's value; empty items (a trailing comma) are ignored.

    Returns:
        Column name to PostgreSQL type, in the order given.

    Raises:
        ConfigError: An item is not ``name=type``, a name repeats, or a type is not safe.
    """
    overrides: dict[str, str] = {}
    for item in _split_top_level(spec):
        if not item.strip():
            continue
        name, equals, pg_type = item.partition("=")
        name, pg_type = name.strip(), " ".join(pg_type.split())
        if not equals or not name or not pg_type:
            raise ConfigError(f"type override {item.strip()!r} is not of the form column=type")
        if not _SAFE_TYPE.fullmatch(pg_type):
            raise ConfigError(f"type override {name}={pg_type!r} is not an allowed type name")
        if name in overrides:
            raise ConfigError(f"column {name!r} has more than one type override")
        overrides[name] = pg_type.lower()
    return overrides

"""Infer PostgreSQL column types from CSV text: vectorized with pyarrow.compute over Arrow
batches, or with Python's ``re`` over a few rows held as Python strings (a small file, whose
load then never imports pyarrow).

A type is chosen only when PostgreSQL's input function accepts every value of the column and
the value it reads back means what the text said: ``00123`` stays text, a 20-digit id is
``numeric``, a decimal with 16 significant digits is ``numeric`` rather than ``double
precision``. Values are never stripped or otherwise rewritten; any doubt means ``text``.

The two ways ask the same questions (:class:`_Values`) with the same patterns, and the rules
that turn the answers into a type are written once, here.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import TYPE_CHECKING, Literal, Protocol

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
from pgingest.textforms import LOCAL_TEMPORAL, TIME_BODY, ZONED_TIMESTAMP

if TYPE_CHECKING:
    import pyarrow as pa


def _any_case(word: str) -> str:
    """``word`` in either case, letter by letter (``[tT][rR]...``): ASCII letters only, as
    PostgreSQL compares them. ``(?i)`` would fold Unicode too, in RE2 as in ``re``: both
    read ``ye\u017f`` (long s) as ``yes``, which PostgreSQL refuses."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


# Every pattern is RE2 (pyarrow) and Python ``re`` alike (:func:`_python_pattern`): anchored
# on the whole value, ASCII digits and letters only.
_INTEGER = r"^[+-]?(?:0|[1-9][0-9]*)$"
_SPECIAL_FLOAT = rf"{_any_case('nan')}|[+-]?{_any_case('inf')}(?:{_any_case('inity')})?"
_SPECIAL = rf"^(?:{_SPECIAL_FLOAT})$"
_NUMBER = (
    r"^(?:[+-]?(?:(?:0|[1-9][0-9]*)(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    rf"|{_SPECIAL_FLOAT})$"
)
# Sixteen or more significant digits (trailing zeros count: they state a precision).
_TOO_PRECISE = r"^[+-]?[0.]*[1-9](?:\.?[0-9]){15}"
_BIG_EXPONENT = r"[eE][+-]?0*[1-9][0-9]{3,}$"
_EXPONENT_PART = r"[eE].*$"
_NONZERO_DIGIT = r"[1-9]"
_BOOLEAN = rf"^(?:{'|'.join(_any_case(w) for w in ('true', 'false', 't', 'f', 'yes', 'no'))})$"
_SLASH_DATE = r"^([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})"
_SLASH_TEMPORAL = rf"{_SLASH_DATE}(?:[T ]{TIME_BODY})?$"
_SLASH_PARTS = r"^(?P<a>[0-9]{1,2})/(?P<b>[0-9]{1,2})/(?P<y>[0-9]{4})"
_TIME_SEPARATOR = ":"
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
_INT64 = (-(2**63), 2**63 - 1)
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


class _Values(Protocol):
    """The non-null values of one column in one batch (never none), and the questions the
    rules ask of them: :class:`_ArrowValues` answers with pyarrow.compute, :class:`_PyValues`
    one value at a time in Python, the same answers."""

    def __len__(self) -> int: ...

    def byte_lengths(self) -> tuple[int, int]:
        """The shortest and the longest value, in UTF-8 bytes."""
        ...

    def all_match(self, pattern: str, rows: int | None = None) -> bool:
        """Whether every value (of the first ``rows``) matches ``pattern``."""
        ...

    def any_match(self, pattern: str, removing: str | None = None) -> bool:
        """Whether a value matches ``pattern`` (once what matches ``removing`` is cut out)."""
        ...

    def count_match(self, pattern: str) -> tuple[int, _Values]:
        """How many values match ``pattern``, and the values that do not."""
        ...

    def int64_range(self) -> tuple[int, int] | None:
        """The smallest and largest value of integer text; ``None`` past int64's range."""
        ...

    def abnormal_floats(self) -> _Values | None:
        """The values whose float8 is not finite and normal (NaN, infinity, overflow, below
        the normal range, a true zero too); ``None`` when some value is no float8 text."""
        ...

    def dates_exist(self) -> bool:
        """Whether the ``YYYY-MM-DD`` each value starts with is a day of the calendar (the
        patterns let 2026-02-30 through)."""
        ...

    def prefix(self, chars: int) -> _Values:
        """The first ``chars`` characters of each value."""
        ...

    def slash_bounds(self) -> tuple[int, int, int]:
        """Of slash dates: the largest first part, the largest second part, the smallest
        of both."""
        ...

    def slash_dates_exist(self, order: DateOrder) -> bool:
        """Whether every slash date is a day of the calendar (31/02/2026 is not) when read
        in ``order``."""
        ...


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
    slash_dates: list[_Values] = field(default_factory=list)
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
            if order is None or not all(d.slash_dates_exist(order) for d in self.slash_dates):
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


def _all_match(values: _Values, pattern: str) -> bool:
    """Whether every value matches; tries the first rows before all of them."""
    if len(values) > _HEAD_ROWS and not values.all_match(pattern, _HEAD_ROWS):
        return False
    return values.all_match(pattern)


def _observe_integers(state: _ColumnState, values: _Values, max_chars: int) -> None:
    if max_chars > _MAX_NUMBER_CHARS:
        state.kinds |= _Kind.TEXT
        return
    state.kinds |= _Kind.INTEGER
    if max_chars > _FLOAT_DIGITS and not state.beyond_float:
        state.beyond_float = values.any_match(_TOO_PRECISE)
    if state.int_width == len(_INT_TYPES) - 1 or max_chars <= _INT32_DIGITS:
        return
    width = len(_INT_TYPES) - 1
    if max_chars <= _INT64_CHARS:
        bounds = values.int64_range()
        if bounds is not None:
            width = 0 if _INT32[0] <= bounds[0] and bounds[1] <= _INT32[1] else 1
    state.int_width = max(state.int_width, width)


def _observe_decimals(state: _ColumnState, values: _Values, max_chars: int) -> None:
    """Numbers, not all of them integers, maybe NaN or infinity."""
    if max_chars > _MAX_NUMBER_CHARS:
        state.kinds |= _Kind.TEXT
        return
    suspects = values.abnormal_floats()
    if suspects is None:  # pragma: no cover - both read every text the pattern lets through
        # Keep what is certain: numeric reads any such text (but not NaN or infinity).
        state.kinds |= _Kind.DECIMAL
        state.beyond_float = True
        if values.any_match(_SPECIAL):
            state.kinds |= _Kind.SPECIAL
        if values.any_match(_BIG_EXPONENT):
            state.beyond_numeric = True
        return
    specials = 0
    if len(suspects):
        # Rare values, so the patterns run on few: NaN and infinity, overflow, and text below
        # float8's normal range, where only a true zero is safe (anything else underflows,
        # which PostgreSQL refuses, or becomes a subnormal that keeps fewer digits).
        specials, suspects = suspects.count_match(_SPECIAL)
        if specials:
            state.kinds |= _Kind.SPECIAL
        if suspects.any_match(_NONZERO_DIGIT, removing=_EXPONENT_PART):
            state.beyond_float = True
        if suspects.any_match(_BIG_EXPONENT):
            state.beyond_numeric = True
    if specials == len(values):
        return
    state.kinds |= _Kind.DECIMAL
    if max_chars > _MAX_BIG_EXPONENT_FREE_CHARS and values.any_match(_BIG_EXPONENT):
        state.beyond_numeric = True
    if not state.beyond_float and max_chars > _FLOAT_DIGITS:
        state.beyond_float = values.any_match(_TOO_PRECISE)


def _observe_temporal(state: _ColumnState, values: _Values, min_chars: int, max_chars: int) -> None:
    """Dates, timestamps or timestamps with a UTC offset, never a mix of local and zoned."""
    if _all_match(values, LOCAL_TEMPORAL):
        kinds = _Kind.NONE
        if min_chars == _DATE_CHARS:
            kinds |= _Kind.DATE
        if max_chars > _DATE_CHARS:
            kinds |= _Kind.TIMESTAMP
    elif _all_match(values, ZONED_TIMESTAMP):
        kinds = _Kind.TIMESTAMPTZ
    else:
        state.kinds |= _Kind.TEXT
        return
    if not values.dates_exist():
        kinds = _Kind.TEXT
    state.kinds |= kinds


def _observe_slash(state: _ColumnState, values: _Values, max_chars: int) -> None:
    if not _all_match(values, _SLASH_TEMPORAL):
        state.kinds |= _Kind.TEXT
        return
    first_max, second_max, low = values.slash_bounds()
    if first_max > _MAX_MONTH:
        state.day_first_seen = True
    if second_max > _MAX_MONTH:
        state.month_first_seen = True
    if low < 1:
        state.kinds |= _Kind.TEXT
        return
    state.slash_dates.append(values.prefix(_DATE_CHARS) if max_chars > _DATE_CHARS else values)
    has_time = values.any_match(_TIME_SEPARATOR)
    if max_chars <= _DATE_CHARS or not has_time:
        state.kinds |= _Kind.SLASH_DATE
    if has_time:
        state.kinds |= _Kind.SLASH_TIMESTAMP


def _observe(state: _ColumnState, values: _Values | None) -> None:
    """Fold one batch of a column (its non-null values, ``None`` if it has none) into
    ``state``."""
    if _Kind.TEXT in state.kinds or values is None:
        return
    min_chars, max_chars = values.byte_lengths()
    if min_chars == 0:
        state.kinds |= _Kind.TEXT  # a quoted empty string: no other type reads ""
        return
    if _all_match(values, _INTEGER):
        _observe_integers(state, values, max_chars)
    elif _all_match(values, _NUMBER):
        _observe_decimals(state, values, max_chars)
    elif _all_match(values, _BOOLEAN):
        state.kinds |= _Kind.BOOLEAN
    elif values.all_match(_TEMPORAL_START, _HEAD_ROWS):  # the temporal patterns check all
        _observe_temporal(state, values, min_chars, max_chars)
    elif values.all_match(_SLASH_DATE, _HEAD_ROWS):
        _observe_slash(state, values, max_chars)
    else:
        state.kinds |= _Kind.TEXT
    if state.pg_type("dmy") == TEXT and state.pg_type("mdy") == TEXT:
        state.kinds |= _Kind.TEXT  # final: later batches need not be looked at


# -- Python strings ---------------------------------------------------------------------------


@cache
def _python_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` for Python's ``re``, searched as RE2 searches it: ``$`` is the end of the
    value (``re``'s ``$`` also matches before a final line break)."""
    return re.compile(pattern.replace("$", r"\Z"))


class _PyValues:
    """Values held as Python strings (see :class:`_Values`)."""

    __slots__ = ("_values",)

    def __init__(self, values: list[str]) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def byte_lengths(self) -> tuple[int, int]:
        lengths = [len(v) if v.isascii() else len(v.encode()) for v in self._values]
        return min(lengths), max(lengths)

    def all_match(self, pattern: str, rows: int | None = None) -> bool:
        search = _python_pattern(pattern).search
        return all(search(v) for v in self._values[:rows])

    def any_match(self, pattern: str, removing: str | None = None) -> bool:
        search = _python_pattern(pattern).search
        values = self._values
        if removing is not None:
            values = [_python_pattern(removing).sub("", v) for v in values]
        return any(search(v) for v in values)

    def count_match(self, pattern: str) -> tuple[int, _Values]:
        search = _python_pattern(pattern).search
        rest = [v for v in self._values if not search(v)]
        return len(self._values) - len(rest), _PyValues(rest)

    def int64_range(self) -> tuple[int, int] | None:
        numbers = [int(v) for v in self._values]
        low, high = min(numbers), max(numbers)
        return (low, high) if _INT64[0] <= low and high <= _INT64[1] else None

    def abnormal_floats(self) -> _Values | None:
        out = []
        for value in self._values:
            try:
                number = float(value)
            except ValueError:  # pragma: no cover - float() reads every number the pattern does
                return None
            if not (math.isfinite(number) and abs(number) >= _DBL_MIN):
                out.append(value)
        return _PyValues(out)

    def dates_exist(self) -> bool:
        try:
            for v in self._values:
                date(int(v[0:4]), int(v[5:7]), int(v[8:10]))
        except ValueError:
            return False
        return True

    def prefix(self, chars: int) -> _Values:
        return _PyValues([v[:chars] for v in self._values])

    def slash_bounds(self) -> tuple[int, int, int]:
        parts = [_slash_numbers(v) for v in self._values]
        firsts, seconds = [p[0] for p in parts], [p[1] for p in parts]
        return max(firsts), max(seconds), min(*firsts, *seconds)

    def slash_dates_exist(self, order: DateOrder) -> bool:
        for v in self._values:
            first, second, year = _slash_numbers(v)
            day, month = (first, second) if order == "dmy" else (second, first)
            try:
                date(year, month, day)
            except ValueError:  # year 0 too: PostgreSQL has none
                return False
        return True


def _slash_numbers(value: str) -> tuple[int, int, int]:
    """The first part, the second part and the year of a slash date."""
    found = _python_pattern(_SLASH_PARTS).search(value)
    if found is None:  # pragma: no cover - only values of the slash pattern are asked
        raise ValueError(f"not a slash date: {value!r}")
    return int(found["a"]), int(found["b"]), int(found["y"])


# -- Arrow columns ----------------------------------------------------------------------------


class _ArrowValues:
    """Values held in an Arrow string column, asked with pyarrow.compute (see
    :class:`_Values`)."""

    __slots__ = ("_values",)

    def __init__(self, values: pa.ChunkedArray) -> None:
        self._values = values

    def __len__(self) -> int:
        return len(self._values)

    def _matches(self, pattern: str, values: pa.ChunkedArray | None = None) -> pa.ChunkedArray:
        import pyarrow.compute as pc

        return pc.match_substring_regex(self._values if values is None else values, pattern)

    def byte_lengths(self) -> tuple[int, int]:
        import pyarrow.compute as pc

        lengths = pc.min_max(pc.binary_length(self._values))
        return lengths["min"].as_py(), lengths["max"].as_py()

    def all_match(self, pattern: str, rows: int | None = None) -> bool:
        import pyarrow.compute as pc

        values = self._values if rows is None else self._values.slice(0, rows)
        return pc.all(self._matches(pattern, values)).as_py() is True

    def any_match(self, pattern: str, removing: str | None = None) -> bool:
        import pyarrow.compute as pc

        values = self._values
        if removing is not None:
            values = pc.replace_substring_regex(values, pattern=removing, replacement="")
        return pc.any(self._matches(pattern, values)).as_py() is True

    def count_match(self, pattern: str) -> tuple[int, _Values]:
        import pyarrow.compute as pc

        found = self._matches(pattern)
        count = pc.sum(found).as_py() or 0
        rest = self._values.filter(pc.invert(found)) if count else self._values
        return count, _ArrowValues(rest)

    def int64_range(self) -> tuple[int, int] | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            parsed = pc.cast(self._values, pa.int64())
        except pa.ArrowInvalid:
            try:  # Arrow refuses a leading "+", PostgreSQL does not
                parsed = pc.cast(pc.utf8_ltrim(self._values, characters="+"), pa.int64())
            except pa.ArrowInvalid:
                return None
        bounds = pc.min_max(parsed)
        return bounds["min"].as_py(), bounds["max"].as_py()

    def abnormal_floats(self) -> _Values | None:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            floats = pc.cast(self._values, pa.float64())
        except pa.ArrowInvalid:  # pragma: no cover - Arrow reads every text the regex lets through
            return None
        in_range = pc.and_(pc.is_finite(floats), pc.greater_equal(pc.abs(floats), _DBL_MIN))
        if pc.all(in_range).as_py():
            return _ArrowValues(self._values.slice(0, 0))
        return _ArrowValues(self._values.filter(pc.invert(in_range)))

    def dates_exist(self) -> bool:
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            pc.cast(self.prefix(_DATE_CHARS)._values, pa.date32())
        except pa.ArrowInvalid:
            return False
        return True

    def prefix(self, chars: int) -> _ArrowValues:
        import pyarrow.compute as pc

        return _ArrowValues(pc.utf8_slice_codeunits(self._values, 0, chars))

    def _slash_parts(self) -> tuple[pa.Array, pa.Array, pa.Array]:
        import pyarrow.compute as pc

        parts = pc.extract_regex(self._values.combine_chunks(), _SLASH_PARTS)
        return tuple(pc.struct_field(parts, key) for key in ("a", "b", "y"))

    def slash_bounds(self) -> tuple[int, int, int]:
        import pyarrow as pa
        import pyarrow.compute as pc

        first, second, _year = self._slash_parts()
        low_high = [pc.min_max(pc.cast(p, pa.int32())) for p in (first, second)]
        return (
            low_high[0]["max"].as_py(),
            low_high[1]["max"].as_py(),
            min(p["min"].as_py() for p in low_high),
        )

    def slash_dates_exist(self, order: DateOrder) -> bool:
        import pyarrow.compute as pc

        first, second, year = self._slash_parts()
        day, month = (first, second) if order == "dmy" else (second, first)
        iso = pc.binary_join_element_wise(
            year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), "-"
        )
        parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
        again = pc.strftime(parsed, format="%Y-%m-%d")
        if pc.any(pc.invert(pc.fill_null(pc.equal(again, iso), False))).as_py():
            return False
        return bool(pc.all(pc.not_equal(year, "0000")).as_py())


def _arrow_values(column: pa.ChunkedArray, name: str) -> _ArrowValues | None:
    """The non-null values of a text column (``None`` when it has none)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(column.type) or pa.types.is_string_view(column.type):
        column = column.cast(pa.string())
    elif not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        raise TypeError(f"column {name!r} is {column.type}; type inference reads string columns")
    if column.null_count == len(column):
        return None
    return _ArrowValues(pc.drop_null(column))


class TypeTracker:
    """Infers column types over a stream of batches of CSV text.

    Feed it every batch (or a sample) with :meth:`update` (Arrow) or :meth:`update_columns`
    (Python strings: the same decisions, without pyarrow); :meth:`types` then gives, per
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

    def _states(self, width: int) -> list[_ColumnState]:
        if self._columns is None:
            self._columns = [_ColumnState() for _ in range(width)]
        elif width != len(self._columns):
            raise ValueError(f"batch has {width} columns, earlier batches had {len(self._columns)}")
        return self._columns

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
        import pyarrow as pa

        states = self._states(table.num_columns)
        for state, name, column in zip(states, table.column_names, table.columns, strict=True):
            if _Kind.TEXT in state.kinds:
                continue
            chunked = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
            _observe(state, _arrow_values(chunked, name))

    def update_columns(self, columns: Sequence[Sequence[str | None]]) -> None:
        """Take one more batch into account, given as Python strings: what :meth:`update`
        decides for the same values, without importing pyarrow (for a few rows).

        Args:
            columns: One sequence of values per column, ``None`` for an unquoted empty
                field, ``""`` for a quoted one. Columns are matched by position.

        Raises:
            ValueError: The batch has a different number of columns than earlier ones.
        """
        for state, column in zip(self._states(len(columns)), columns, strict=True):
            if _Kind.TEXT in state.kinds:
                continue
            values = [v for v in column if v is not None]
            _observe(state, _PyValues(values) if values else None)

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


def is_text_alone(values: Sequence[str], date_format: DateOrder | None = None) -> bool:
    """Whether every value, inferred by itself, is text or a slash date.

    No subset of such values infers another type than text, slash dates aside (their order is
    the whole file's): each reason a value is text (a misfit of every pattern, a date that
    does not exist, a number no type holds) holds for any set that includes it. A text column
    of them is text by nature, which spares looking for a typed majority among its values.

    Args:
        values: Non-null values, as Python strings.
        date_format: the run's date order.

    Returns:
        True when no value has a type of its own.
    """
    for value in values:
        state = _ColumnState()
        _observe(state, _PyValues([value]))
        slash = bool(state.kinds) and state.kinds in _SLASH_TIMES
        if not slash and state.pg_type(date_format) != TEXT:
            return False
    return True


def lossless_temporal(values: Sequence[str]) -> str | None:
    """The narrowest of date, timestamp and timestamptz whose input keeps every value, for a
    column that already holds dates or timestamps: ISO dates and timestamps, local and with a
    UTC offset mixed (which :class:`TypeTracker` calls text, for a new column).

    A ``date`` column takes ``2026-01-05 10:30`` and a ``timestamp`` one takes
    ``2026-01-05 10:30+02`` without a word, each dropping what it has no room for: such a
    column must widen along ``date -> timestamp -> timestamptz`` instead.

    Args:
        values: Non-null values, as Python strings.

    Returns:
        The type, or ``None`` when some value is none of these (or there is none).
    """
    zoned_pattern = _python_pattern(ZONED_TIMESTAMP)
    zoned = [v for v in values if zoned_pattern.search(v)]
    local = [v for v in values if not zoned_pattern.search(v)]
    ladder = (DATE, TIMESTAMP, TIMESTAMPTZ)
    found = []
    for part in (local, zoned):
        if not part:
            continue
        state = _ColumnState()
        _observe(state, _PyValues(part))
        pg_type = state.pg_type()
        if pg_type not in ladder or (state.kinds & _SLASH_TIMES):
            return None
        found.append(ladder.index(pg_type))
    return ladder[max(found)] if found else None


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

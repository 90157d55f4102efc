"""The ISO text forms of dates, times and timestamps that a column is typed by: one definition
for CSV inference (:mod:`pgingest.schema.infer`) and the NDJSON reader
(:mod:`pgingest.sources.ndjson`), which may not import each other.

Each is a regular expression, as text (pyarrow's and Python's ``re`` both read it).
"""

from __future__ import annotations

DATE_BODY = (
    r"(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"
    r"-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
)
"""A date, years 0001-9999: PostgreSQL has no year 0."""
TIME_BODY = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
"""A time of day. Hour 24 and second 60 are refused: PostgreSQL accepts them but rolls the
value over. Seven or more fraction digits are refused: PostgreSQL rounds them."""
OFFSET = r"(?:Z|[+-](?:0[0-9]|1[0-5])(?::?[0-5][0-9])?)"
"""A UTC offset: PostgreSQL accepts them up to 15:59."""
LOCAL_TEMPORAL = rf"^{DATE_BODY}(?:[T ]{TIME_BODY})?$"
"""A date, or a timestamp without an offset."""
ZONED_TIMESTAMP = rf"^{DATE_BODY}[T ]{TIME_BODY}{OFFSET}$"
"""A timestamp with its offset."""

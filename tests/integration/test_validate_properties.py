"""The client-side check of values against the real server's input functions: a value it
flags the server refuses, a column Arrow's parse vouches for the server accepts whole.

``--on-error skip`` on PostgreSQL 15/16 sets aside what :func:`invalid_values` flags; a value
it neither flags nor lets the server refuse fails the whole file (the server's error stands),
and a value it flags that the server reads is a good row lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import asyncpg
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pgingest.schema.validate import fast_accepts, invalid_values

TYPES = [
    "smallint",
    "integer",
    "bigint",
    "double precision",
    "real",
    "numeric",
    "numeric(4,2)",
    "date",
    "timestamp",
    "timestamptz",
    "boolean",
]


class Server:
    """One connection to the test server, asked whether it reads a value as a type."""

    def __init__(self, dsn: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: Any = self.loop.run_until_complete(asyncpg.connect(dsn, timeout=30))
        self.version = int(self._run(self.conn.fetchval("SHOW server_version_num")))

    def _run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(asyncio.wait_for(awaitable, 30))

    def accepts(self, value: str, pg_type: str) -> bool:
        """Whether ``SELECT $1::type`` reads ``value`` (a data error, class 22, says no)."""
        try:
            self._run(self.conn.fetchval(f"SELECT ($1::text::{pg_type})::text", value))
        except asyncpg.PostgresError as exc:
            if not str(exc.sqlstate).startswith("22"):
                raise
            return False
        return True

    def close(self) -> None:
        self._run(self.conn.close())
        self.loop.close()


@pytest.fixture(scope="module")
def server(pg_dsn: str) -> Iterator[Server]:
    one = Server(pg_dsn)
    yield one
    one.close()


def check(server: Server, value: str, pg_type: str) -> None:
    """Flagged -> refused and vouched for -> accepted, for this server's version and for a
    version not known (then only what every version refuses may be flagged)."""
    accepted = server.accepts(value, pg_type)
    column = pa.array([value], pa.string())
    for version in (server.version, None):
        flags = invalid_values(column, pg_type, version)
        flagged = flags is not None and bool(flags[0].as_py())
        assert not (flagged and accepted), (value, pg_type, version, "flagged, server reads it")
        vouched = fast_accepts(column, pg_type, version)
        assert not (vouched and not accepted), (value, pg_type, version, "vouched, refused")


def _joined(*parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map("".join)


def _maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), strategy)


SPACE = _maybe(st.sampled_from([" ", "\t", "  ", "\u00a0", "\n"]))
SIGN = _maybe(st.sampled_from(["+", "-"]))
DIGITS = st.text("0123456789", min_size=1, max_size=22)
UNDERSCORED = st.lists(DIGITS, min_size=1, max_size=3).map("_".join)
HEX = _joined(
    st.sampled_from(["0x", "0X", "0o", "0b", "0B"]), st.text("0123456789abcdefABCDEF_", max_size=18)
)
EXPONENT = _joined(st.sampled_from(["e", "E"]), SIGN, st.text("0123456789", max_size=6))
DECIMAL = _joined(
    st.one_of(DIGITS, UNDERSCORED, st.just("")),
    _maybe(_joined(st.just("."), st.one_of(DIGITS, UNDERSCORED, st.just("")))),
    _maybe(EXPONENT),
)
WORDS = st.sampled_from(["inf", "Infinity", "NaN", "nan(12)", "infin", "-", "."]).map(
    lambda w: w if len(w) < 2 else w[0].upper() + w[1:]
)
NUMBERS = _joined(SPACE, SIGN, st.one_of(DECIMAL, HEX, WORDS), SPACE)


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


YEAR = st.one_of(
    st.sampled_from(["0000", "0001", "1999", "2024", "2026", "9999", "10000", "294277"]),
    st.integers(0, 9999).map(lambda n: f"{n:04d}"),
)
DATE = _joined(YEAR, st.just("-"), _two(0, 13), st.just("-"), _two(0, 32))
TIME = _joined(
    st.sampled_from(["T", " ", "  ", "t"]),
    st.one_of(_two(0, 25), st.integers(0, 9).map(str)),
    _maybe(_joined(st.just(":"), _two(0, 61))),
    _maybe(_joined(st.just(":"), _two(0, 61))),
    _maybe(_joined(st.just("."), DIGITS)),
    _maybe(st.sampled_from(["Z", "+02", "-0800", " +00:00", " UTC", " BC"])),
)
DATE_WORDS = st.sampled_from(["epoch", "today", "infinity", "-infinity", "now", "later", ""])
DATES = st.one_of(
    _joined(SPACE, DATE, _maybe(TIME), _maybe(st.just(" BC")), SPACE),
    DATE_WORDS,
)
BOOLEANS = _joined(
    SPACE,
    st.sampled_from(
        ["t", "true", "f", "false", "y", "yes", "n", "no", "on", "off", "of", "o"]
    ).flatmap(lambda w: st.sampled_from([w, w.upper(), w.title(), w + "e", w[:1]])),
    SPACE,
)
ANY = st.text("0123456789+-._xXeE: T-aInf", max_size=14)

SPELLINGS: dict[str, st.SearchStrategy[str]] = {
    "number": st.one_of(NUMBERS, ANY),
    "date": st.one_of(DATES, ANY),
    "boolean": st.one_of(BOOLEANS, ANY),
}


def _family(pg_type: str) -> str:
    if pg_type in ("date", "timestamp", "timestamptz"):
        return "date"
    return "boolean" if pg_type == "boolean" else "number"


@pytest.mark.parametrize("pg_type", TYPES)
@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
@example(data=None)
def test_the_checks_verdict_is_the_servers(server, pg_type, data):
    if data is None:  # hypothesis' example: the fixed cases run as plain tests below
        return
    value = data.draw(SPELLINGS[_family(pg_type)], label="value")
    check(server, value, pg_type)


FOUND = [
    # Arrow read them, the server refuses them: the fast cast vouched, the file failed.
    ("integer", "0x1F"),  # PostgreSQL 15: not an integer; 16+: 31
    ("integer", "0X1f"),
    ("smallint", "0x8000"),  # Arrow wraps it to -32768; 16+: out of range
    ("bigint", "0x7FFFFFFFFFFFFFFF"),
    ("integer", "1_000"),  # 15 refuses, 16+ reads 1000
    ("integer", "1__0"),  # no version reads two underscores
    ("double precision", "1e400"),  # Arrow: inf
    ("double precision", "-1.8e308"),
    ("double precision", "1e-400"),  # Arrow: 0
    ("double precision", "0x1F"),  # strtod reads hex floats: never flagged
    ("double precision", "2.5e-324"),  # a subnormal: the server reads it
    ("real", "1e39"),
    ("real", "3.5e38"),
    ("real", "1e-46"),
    ("real", "1e-40"),
    ("numeric", "1e400"),
    ("numeric", "1e131072"),
    ("numeric", "0x1F"),
    ("numeric", "1_000"),
    ("numeric", "Nan(12)"),  # found by hypothesis: Arrow (strtod) reads it, numeric does not
    ("numeric", "+NaN"),  # found by hypothesis: a float, not a numeric
    ("numeric", ".0e-20000"),  # found by hypothesis: a scale past numeric's 16383 digits
    ("numeric", "0E 0"),  # found by hypothesis: numeric's exponent may follow a space
    ("numeric(4,2)", "99.995"),
    ("numeric(4,2)", "1e2"),
    ("timestamp", "2026-01-02 03"),  # Arrow: 03:00
    ("timestamp", "2026-01-02T03"),
    ("timestamptz", "2026-01-02 03"),
    ("date", "0000-01-01"),
    ("timestamp", "0000-01-01 00:00"),
    ("boolean", "of"),
]


@pytest.mark.parametrize(("pg_type", "value"), FOUND)
def test_found_examples(server, pg_type, value):
    check(server, value, pg_type)


@pytest.mark.parametrize(
    ("pg_type", "value", "refused_before_16"),
    [
        ("integer", "0x1F", True),
        ("integer", "1_000", True),
        ("numeric", "1_000.5", True),
        ("double precision", "1e400", False),
        ("double precision", "1e-400", False),
        ("real", "1e39", False),
        ("timestamp", "2026-01-02 03", False),
        ("date", "0000-01-01", False),
    ],
)
def test_what_the_server_refuses_is_flagged(server, pg_type, value, refused_before_16):
    """The values of the bug, flagged for the server that refuses them (not merely left to it:
    a batch with no other bad value would fail the file)."""
    flags = invalid_values(pa.array([value, "1"], pa.string()), pg_type, server.version)
    assert flags is not None
    refused = not server.accepts(value, pg_type)
    assert refused == (server.version < 160000 or not refused_before_16)
    assert flags.to_pylist() == [refused, False]
    assert invalid_values(pa.array([value]), pg_type, 150000).to_pylist() == [True]

"""NDJSON bad lines under ``--on-error skip``: each one set aside in ``pgingest.rejects`` (its
line, its text as the file has it, its bytes when they are not UTF-8), the rest of the file
loaded; without skip the file fails naming the line, and nothing of it is kept.

The model: a typed table holds exactly the good lines' values (``json.loads`` with
``parse_float=Decimal``), and the rejects are exactly the bad lines.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ndjson_properties import NESTED, TEXT, dump, tagged

TABLE = "CREATE TABLE {schema}.{table} (rn bigint, i bigint, b boolean, s text, j jsonb)"

WORDS = st.text("abcdeghijk", min_size=1, max_size=6)
"""Words no column type but text reads (no boolean spelling, no missing-value marker)."""

DEEP = "[" * 100_000 + "]" * 100_000
"""Nested deeper than Python's json module reads."""


def bad_line(kind: str, rn: int, draw: st.DrawFn) -> bytes:
    """A line of the kind asked, which must become a reject."""
    if kind == "not_json":
        good = dump({"rn": rn, "i": 1, "b": True}, False)
        return good[: draw(st.integers(1, len(good) - 1))].encode()
    if kind == "word":
        return draw(WORDS).encode()
    if kind == "not_object":
        return draw(st.sampled_from([b"[1, 2]", b"42", b'"x"', b"null", b"true", b"[]"]))
    if kind == "nan":
        return b'{"rn": %d, "i": NaN}' % rn
    if kind == "word_for_integer":
        return dump({"rn": rn, "i": draw(WORDS), "b": False}, False).encode()
    if kind == "word_for_boolean":
        return dump({"rn": rn, "i": 5, "b": draw(WORDS)}, False).encode()
    if kind == "word_for_jsonb":
        return dump({"rn": rn, "j": draw(WORDS)}, False).encode()
    if kind == "surrogate":
        return b'{"rn": %d, "s": "x\\ud800y"}' % rn
    if kind == "nul":
        return b'{"rn": %d, "s": "a\\u0000"}' % rn
    if kind == "nested_nul":
        return b'{"rn": %d, "j": {"k": ["\\u0000"]}}' % rn
    if kind == "surrogate_key":
        return b'{"rn": %d, "\\udc00": 1}' % rn
    if kind == "deep":
        return b'{"rn": %d, "j": %s}' % (rn, DEEP.encode())
    if kind == "not_utf8":
        return b'{"rn": %d, "s": "caf\xe9"}' % rn
    if kind == "nul_byte":
        return b'{"rn": %d, "s": "a"}\x00' % rn
    raise AssertionError(kind)


BAD_KINDS = [
    "not_json",
    "word",
    "not_object",
    "nan",
    "word_for_integer",
    "word_for_boolean",
    "word_for_jsonb",
    "surrogate",
    "nul",
    "nested_nul",
    "surrogate_key",
    "deep",
    "not_utf8",
    "nul_byte",
]
VALUE_KINDS = ("word_for_integer", "word_for_boolean", "word_for_jsonb")
"""Bad values of a typed column: fewer than a third of the column's values (every good line
has one), so that the column never reads as words by nature (which would make it text)."""


@st.composite
def good_record(draw: st.DrawFn, rn: int) -> dict[str, Any]:
    record: dict[str, Any] = {"rn": rn}
    record["i"] = draw(st.integers(-(2**63), 2**63 - 1))
    record["b"] = draw(st.booleans())
    if draw(st.booleans()):
        record["s"] = draw(st.none() | TEXT.map(lambda s: "x" + s))  # never a date
    record["j"] = draw(NESTED)
    return record


@st.composite
def files(draw: st.DrawFn) -> tuple[bytes, dict[int, dict[str, Any]], list[int]]:
    """A file's bytes, its good lines' records by line, and its bad lines."""
    count = draw(st.integers(1, 30))
    plan = draw(
        st.lists(st.sampled_from(["good", "good", "good", "blank", *BAD_KINDS]), min_size=count)
    )
    if "good" not in plan:  # (a file of bad lines only: test_a_file_of_bad_lines_only)
        plan[draw(st.integers(0, len(plan) - 1))] = "good"
    goods = plan.count("good")
    for kind in VALUE_KINDS:
        while plan.count(kind) > max(0, (goods - 1) // 3):
            plan[plan.index(kind)] = "good"
            goods += 1
    ascii_only = draw(st.booleans())
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    lines: list[bytes] = []
    good: dict[int, dict[str, Any]] = {}
    bad: list[int] = []
    for number, kind in enumerate(plan, start=1):
        if kind == "good":
            record = draw(good_record(number))
            lines.append(dump(record, ascii_only).encode())
            good[number] = record
        elif kind == "blank":
            lines.append(draw(st.sampled_from([b"", b"  ", b"\t"])))
        else:
            lines.append(bad_line(kind, number, draw))
            bad.append(number)
    ending = newline if draw(st.booleans()) else b""
    return newline.join(lines) + ending, good, bad


def rejects(db: Any, path: Path, table: str) -> list[Any]:
    return db.fetch(
        "SELECT r.line, r.column_name, r.raw, r.raw_bytes, r.reason FROM pgingest.rejects r"
        " JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.path = $1 AND f.table_name = $2 ORDER BY r.line",
        str(path.resolve()),
        table,
    )


def same_value(column: str, expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is got
    if column == "j":
        return tagged(json.loads(got, parse_float=Decimal)) == tagged(expected)
    return type(got) is type(expected) and got == expected


def check_against_model(
    db: Any, path: Path, table: str, good: dict[int, dict[str, Any]], bad: list[int]
) -> None:
    rows = db.fetch(f'SELECT rn, i, b, s, j::text AS j FROM "{db.schema}"."{table}" ORDER BY rn')
    assert [r["rn"] for r in rows] == sorted(good)  # each good line once, no bad one
    for row in rows:
        record = good[row["rn"]]
        for column in ("i", "b", "s", "j"):
            assert same_value(column, record.get(column), row[column]), (column, record, row)
    lines = path.read_bytes().splitlines()
    kept = rejects(db, path, table)
    assert [r["line"] for r in kept] == bad
    for reject in kept:
        line = lines[reject["line"] - 1]
        try:
            text = line.decode("utf-8")
            exact = "\x00" not in text
        except UnicodeDecodeError:
            exact = False
        if exact:
            assert reject["raw"] == text
            assert reject["raw_bytes"] is None
        else:
            assert reject["raw_bytes"] == line


COUNTER = itertools.count()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=files())
def test_skip_keeps_the_good_lines_and_sets_each_bad_one_aside(
    tmp_path: Path, load: Any, db: Any, data: Any
) -> None:
    content, good, bad = data
    n = next(COUNTER)
    table = f"t{n}"
    db.execute(TABLE.format(schema=f'"{db.schema}"', table=table))
    path = tmp_path / f"f{n}.ndjson"
    path.write_bytes(content)
    report = load(path, table=table, on_error="skip", tolerant=True)
    assert report.ok, report.failed
    assert report.files[0].rejects == len(bad)
    check_against_model(db, path, table, good, bad)


def test_a_refused_row_after_a_value_holding_a_line_break_is_the_one_set_aside(
    tmp_path: Path, load: Any, db: Any
) -> None:
    """Found by the property test: COPY counts the line break inside a quoted value as a line,
    so the row it named past line 12 was taken for the next one, a good row set aside."""
    lines = [{"rn": rn, "i": 0, "b": False, "j": []} for rn in range(1, 16)]
    lines[11]["s"] = "x\n"
    content = [dump(record, False) for record in lines]
    content[3] = ""
    content[4] = '{"rn": 5, "i": "a", "b": false}'
    content[12] = ""
    content[13] = '{"rn": 14, "j": "a"}'
    db.execute(TABLE.format(schema=f'"{db.schema}"', table="t"))
    path = tmp_path / "f.ndjson"
    path.write_text("\n".join(content), encoding="utf-8")
    report = load(path, table="t", on_error="skip", tolerant=True)
    assert report.ok, report.failed
    good = {r["rn"]: r for i, r in enumerate(lines) if i not in (3, 4, 12, 13)}
    check_against_model(db, path, "t", good, [5, 14])
    assert report.files[0].rejects == 2

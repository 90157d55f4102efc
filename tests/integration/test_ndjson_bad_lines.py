"""NDJSON bad lines under ``--on-error skip``: each one set aside in ``pgingest.rejects`` (its
line, its text as the file has it, its bytes when they are not UTF-8), the rest of the file
loaded; without skip the file fails naming the line, and nothing of it is kept.

The model: a typed table holds exactly the good lines' values (``json.loads`` with
``parse_float=Decimal``), and the rejects are exactly the bad lines.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_ndjson_properties import NESTED, TEXT, dump, tagged

TABLE = "CREATE TABLE {schema}.{table} (rn bigint, i bigint, b boolean, s text, j jsonb)"

WORDS = st.text("abcdeghijk", min_size=1, max_size=6)
"""Words no column type but text reads (no boolean spelling, no missing-value marker)."""

DEEP = "[" * 3_000 + "]" * 3_000
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


def _typed(db: Any, table: str = "t") -> None:
    db.execute(TABLE.format(schema=f'"{db.schema}"', table=table))


GOOD = '{"rn": %d, "i": 1, "b": true, "s": "x", "j": []}'


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        (["x", "{oops"], "line 2: not valid JSON"),
        (["null", "x"], "line 1: not a JSON object"),  # pyarrow: a first line null killed it
        (["x", "null"], "line 2: not a JSON object"),  # pyarrow: a row of NULLs
        (["x", '{"rn": 2, "j": %s}' % ("[" * 20_000 + "]" * 20_000)], "line 2: nested deeper"),
        (["x", "", '{"rn": 3, "i": "abc"}'], "line 3, column i: invalid input syntax"),
        (["x", '{"rn": 2, "s": "\\ud800"}'], "line 2, column s: a lone surrogate"),
        (["x", '{"rn": 2, "j": "plain"}'], "line 2, column j: invalid input syntax for type json"),
    ],
)
def test_without_skip_a_bad_line_fails_the_file_naming_it(
    tmp_path: Path, load: Any, db: Any, lines: list[str], where: str
) -> None:
    _typed(db)
    path = tmp_path / "f.ndjson"
    content = [GOOD % (n + 1) if line == "x" else line for n, line in enumerate(lines)]
    path.write_text("\n".join([*content, GOOD % 99]) + "\n", encoding="utf-8")
    report = load(path, table="t", tolerant=True)
    assert not report.ok
    assert f"{path}: {where}" in (report.files[0].error or "")
    assert db.count("t") == 0  # nothing of the file kept


def test_a_file_named_as_json_lines_with_a_bad_first_line_is_json_lines(
    tmp_path: Path, load: Any, db: Any
) -> None:
    """It was read as CSV (its first line is not an object); ``[1, 2]`` is a bad line, not a
    JSON array document, which is still refused."""
    path = tmp_path / "f.jsonl"
    path.write_text('{"rn": 1,\n[1, 2]\n{"rn": 3, "i": 4}\n', encoding="utf-8")
    report = load(path, table="t", on_error="skip")
    assert report.ok, report.failed
    assert report.files[0].format == "ndjson"
    assert db.rows("t") == [(3, 4)]
    assert [r["line"] for r in rejects(db, path, "t")] == [1, 2]
    array = tmp_path / "a.ndjson"
    array.write_text('[{"rn": 1},\n{"rn": 2}]\n', encoding="utf-8")
    refused = load(array, table="a", on_error="skip")
    assert "is a JSON array" in (refused.files[0].error or "")


def test_a_file_of_bad_lines_only_loads_nothing_and_keeps_each(
    tmp_path: Path, load: Any, db: Any
) -> None:
    _typed(db)
    path = tmp_path / "f.ndjson"
    path.write_text('{"rn": 1,\nnull\n\n[3]\n', encoding="utf-8")
    # (it has no column: without --tolerant it lacks every column of the table, and fails)
    report = load(path, table="t", on_error="skip", tolerant=True)
    assert report.ok, report.failed
    assert report.files[0].rows == 0
    assert report.files[0].rejects == 3
    assert [(r["line"], r["raw"]) for r in rejects(db, path, "t")] == [
        (1, '{"rn": 1,'),
        (2, "null"),
        (4, "[3]"),
    ]


def test_max_errors_counts_ndjson_bad_lines(tmp_path: Path, load: Any, db: Any) -> None:
    _typed(db)
    path = tmp_path / "f.ndjson"
    lines = [GOOD % n for n in range(1, 21)]
    lines[2], lines[9], lines[15] = "null", '{"rn": 10, "i": "abc"}', "[16]"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    failed = load(path, table="t", on_error="skip", max_errors="2", tolerant=True)
    assert not failed.ok
    assert "--max-errors 2" in (failed.files[0].error or "")
    assert db.count("t") == 0
    share = load(path, table="t", on_error="skip", max_errors="10%", tolerant=True, force=True)
    assert "--max-errors 10%" in (share.files[0].error or "")
    assert db.count("t") == 0
    loaded = load(path, table="t", on_error="skip", max_errors="3", tolerant=True, force=True)
    assert loaded.ok, loaded.failed
    assert db.count("t") == 17
    assert [r["line"] for r in rejects(db, path, "t")] == [3, 10, 16]


def test_the_command_says_how_many_lines_were_set_aside(cli: Any, db: Any, tmp_path: Path) -> None:
    _typed(db)
    path = tmp_path / "f.ndjson"
    path.write_text(f"{GOOD % 1}\nnope\n{GOOD % 3}\n", encoding="utf-8")
    code, out, err = cli("load", str(path), "--table", "t", "--on-error", "skip")
    assert code == 0, err
    assert "1 rows rejected" in out + err
    code, out, err = cli("rejects", str(path), "--dsn", db.dsn)
    assert code == 0, err
    assert "nope" in out


FAULTED_BAD = {
    9_000: "{oops",  # not JSON
    20_000: '{"rn": 20000, "i": "abc", "b": true, "s": "v"}',  # the table refuses it
    30_000: "null",  # not an object
    41_000: '{"rn": 41000, "i": 1, "b": true, "s": "\\ud800"}',  # PostgreSQL cannot store it
    52_000: '{"rn": 52000, "i": 1, "b": "maybe", "s": "v"}',  # the table refuses it
}


def _faulted_file(tmp_path: Path) -> tuple[Path, list[int]]:
    """60,000 lines (15 batches of 4,000), five bad ones of each kind, a blank line."""
    lines = []
    for rn in range(1, 60_001):
        good = f'{{"rn": {rn}, "i": {rn * 7}, "b": true, "s": "v{rn}"}}'
        lines.append(FAULTED_BAD.get(rn, "" if rn == 15_000 else good))
    path = tmp_path / "faulted.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, sorted(FAULTED_BAD)


def _check_faulted(db: Any, path: Path, bad: list[int]) -> None:
    rows = db.fetch(f'SELECT rn, i, b, s FROM "{db.schema}".f ORDER BY rn')
    expected = [rn for rn in range(1, 60_001) if rn not in bad and rn != 15_000]
    assert [r["rn"] for r in rows] == expected  # each good line once
    assert all(r["i"] == r["rn"] * 7 and r["b"] and r["s"] == f"v{r['rn']}" for r in rows)
    kept = rejects(db, path, "f")
    assert [r["line"] for r in kept] == bad  # each bad line once
    assert [r["raw"] for r in kept] == [FAULTED_BAD[line] for line in bad]
    state = db.fetch(
        "SELECT f.status, (SELECT sum(b.rows) FROM pgingest.file_batches b"
        " WHERE b.file_id = f.id) AS rows FROM pgingest.files f WHERE f.path = $1",
        str(path.resolve()),
    )
    assert [(s["status"], s["rows"]) for s in state] == [("success", len(expected))]


def _command(db: Any, path: Path, dsn: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "pgingest", "load", "--dsn", dsn or db.dsn]
    command += ["--schema", db.schema, str(path), "--table", "f", "--on-error", "skip"]
    return [*command, "--batch-size", "4000", "--retry-base", "0.05", "--tolerant"]


def test_bad_lines_survive_a_killed_load(tmp_path: Path, db: Any) -> None:
    """SIGKILL part way, then the same command again: the good lines once, each bad one once."""
    from test_upsert import kill_after_batches

    _typed(db, "f")
    path, bad = _faulted_file(tmp_path)
    command = _command(db, path)
    first = tmp_path / "first.ndjson"  # (the manifest exists when the kill is timed)
    first.write_text('{"rn": 1}\n', encoding="utf-8")
    assert subprocess.run([*command[:8], str(first)], check=False, timeout=120).returncode == 0
    kill_after_batches(db, command, "f", 3)
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    _check_faulted(db, path, bad)


def test_bad_lines_survive_cut_connections(tmp_path: Path, db: Any) -> None:
    """Connections cut twice mid-file: the batches are retried, none applied twice."""
    from test_retries import CuttingProxy, via_proxy

    _typed(db, "f")
    path, bad = _faulted_file(tmp_path)
    size = path.stat().st_size
    proxy = CuttingProxy(db.dsn)
    try:
        proxy.cut_after(size // 3, size * 5 // 6)
        command = _command(db, path, via_proxy(db.dsn, proxy.port))
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
    finally:
        proxy.close()
    assert proxy.cuts == 2
    assert done.returncode == 0, done.stderr
    _check_faulted(db, path, bad)


KEYED = [
    '{"rn": 1, "i": 1, "b": true}',
    "",
    "{oops",
    '{"rn": 2, "i": "abc", "b": true}',
    '{"rn": 3, "i": 3, "b": "maybe"}',
    "null",
    '{"rn": 4, "i": 4, "s": "x\\ny"}',
    '{"rn": 5, "i": 5, "j": "plain"}',
    '{"rn": null, "i": 6}',
    '{"rn": 1, "i": 7, "b": false}',
    '{"rn": 8, "s": "\\ud800"}',
]


@pytest.mark.parametrize("mode", ["upsert", "merge"])
def test_keyed_modes_set_aside_what_append_does_and_null_keys(
    tmp_path: Path, load: Any, db: Any, mode: str
) -> None:
    """Each key's last good row; the rejects are append's bad lines plus the NULL key, each
    its line as the file has it."""
    path = tmp_path / "k.ndjson"
    path.write_text("\n".join(KEYED) + "\n", encoding="utf-8")
    _typed(db, "a")
    appended = load(path, table="a", on_error="skip", tolerant=True)
    assert appended.ok, appended.failed
    db.execute(
        f'CREATE TABLE "{db.schema}".k (rn bigint PRIMARY KEY, i bigint, b boolean,'
        " s text, j jsonb)"
    )
    keyed = load(path, table="k", mode=mode, pk="rn", on_error="skip", tolerant=True)
    assert keyed.ok, keyed.failed
    assert db.fetch(f'SELECT rn, i, b, s FROM "{db.schema}".k ORDER BY rn') == [
        (1, 7, False, None),
        (4, 4, None, "x\ny"),
    ]
    append_lines = [r["line"] for r in rejects(db, path, "a")]
    assert append_lines == [3, 4, 5, 6, 8, 11]
    got = rejects(db, path, "k")
    assert [r["line"] for r in got] == [3, 4, 5, 6, 8, 9, 11]
    assert [r["raw"] for r in got] == [KEYED[line - 1] for line in (3, 4, 5, 6, 8, 9, 11)]
    assert all(not r["reason"].startswith("line ") for r in got), got
    assert keyed.files[0].rejects == 7


def test_replace_sets_aside_the_bad_lines(tmp_path: Path, load: Any, db: Any) -> None:
    path = tmp_path / "r.ndjson"
    path.write_text('{"rn": 1, "i": 1}\n{oops\n{"rn": 2, "i": "x"}\n{"rn": 3, "i": 3}\n')
    db.execute(f'CREATE TABLE "{db.schema}".r (rn bigint PRIMARY KEY, i bigint)')
    report = load(path, table="r", mode="replace", pk="rn", on_error="skip")
    assert report.ok, report.failed
    assert db.fetch(f'SELECT rn, i FROM "{db.schema}".r ORDER BY rn') == [(1, 1), (3, 3)]
    assert [(r["line"], r["raw"]) for r in rejects(db, path, "r")] == [
        (2, "{oops"),
        (3, '{"rn": 2, "i": "x"}'),
    ]


def _drop_odd_rows(batch: Any) -> Any:
    """A transform that keeps every other row: the rows are no longer the file's lines."""
    import pyarrow as pa

    return batch.filter(pa.array([i % 2 == 0 for i in range(batch.num_rows)]))


def test_a_transform_that_drops_rows_keeps_no_line_of_the_reader(
    tmp_path: Path, load: Any, db: Any
) -> None:
    """The reader's lines and line texts belong to its rows: after a transform that drops rows
    a reject is the row written as CSV (its row counted), never another line's text."""
    _typed(db)
    path = tmp_path / "t.ndjson"
    lines = [GOOD % n for n in range(1, 7)]
    lines[4] = '{"rn": 5, "i": "abc", "b": true, "s": "x", "j": []}'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = load(path, table="t", on_error="skip", transform=_drop_odd_rows, tolerant=True)
    assert report.ok, report.failed
    assert [r["rn"] for r in db.fetch(f'SELECT rn FROM "{db.schema}".t ORDER BY rn')] == [1, 3]
    kept = rejects(db, path, "t")
    assert len(kept) == 1
    assert "abc" in kept[0]["raw"]
    assert kept[0]["raw"] != lines[2]  # (row 3 of the batch is line 5, not line 3)

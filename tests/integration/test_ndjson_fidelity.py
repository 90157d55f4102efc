"""NDJSON values arrive as the file writes them: numbers with every digit, times with their
offset, objects with their own keys; what PostgreSQL cannot store, and a JSON array, fail in
one line."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_numbers_keep_every_digit(load: Any, db: Any, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "nums.ndjson",
        '{"id": 1, "big": 99999999999999999999, "mix": 9007199254740993, "huge": 1E400}\n'
        '{"id": 2, "big": 5, "mix": 1.5, "huge": 1}\n',
    )
    report = load(path)
    assert report.ok, report.failed
    assert db.types("nums") == {
        "id": "bigint",
        "big": "numeric",
        "mix": "numeric",
        "huge": "numeric",
    }
    assert db.rows("nums") == [
        (1, Decimal("99999999999999999999"), Decimal("9007199254740993"), Decimal("1E400")),
        (2, Decimal(5), Decimal("1.5"), Decimal(1)),
    ]


def test_jsonb_keeps_number_text_and_each_objects_keys(load: Any, db: Any, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "docs.ndjson",
        '{"id": 1, "o": {"f": 0.1234567890123456789, "big": 12345678901234567890123},'
        ' "l": [{"a": 1}, {"b": "x"}]}\n'
        '{"id": 2, "o": {"b": 2}, "l": [{"a": 1.0}]}\n',
    )
    report = load(path)
    assert report.ok, report.failed
    assert db.types("docs") == {"id": "bigint", "o": "jsonb", "l": "jsonb"}
    rows = db.fetch(f'SELECT o::text, l::text FROM "{db.schema}".docs ORDER BY id')
    assert [tuple(r) for r in rows] == [
        (
            '{"f": 0.1234567890123456789, "big": 12345678901234567890123}',
            '[{"a": 1}, {"b": "x"}]',
        ),
        ('{"b": 2}', '[{"a": 1.0}]'),
    ]


def test_a_time_with_an_offset_is_timestamptz(load: Any, db: Any, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "times.ndjson",
        '{"id": 1, "t": "2024-01-01T10:00:00+02:00", "m": "2024-01-01T10:00:00"}\n'
        '{"id": 2, "t": "2024-01-02T11:00:00Z", "m": "2024-01-01T10:00:00+02:00"}\n',
    )
    report = load(path)
    assert report.ok, report.failed
    # local and zoned times mixed stay text, as in CSV: no instant is guessed
    assert db.types("times") == {"id": "bigint", "t": "timestamp with time zone", "m": "text"}
    utc = dt.UTC
    assert db.rows("times") == [
        (1, dt.datetime(2024, 1, 1, 8, tzinfo=utc), "2024-01-01T10:00:00"),
        (2, dt.datetime(2024, 1, 2, 11, tzinfo=utc), "2024-01-01T10:00:00+02:00"),
    ]


def test_a_lone_surrogate_fails_in_one_line(cli: Any, db: Any, tmp_path: Path) -> None:
    path = _write(tmp_path, "sur.ndjson", '{"id": 1, "s": "\\ud800"}\n{"id": 2, "s": "ok"}\n')
    code, _, err = cli("load", str(path))
    assert code == 1
    assert f"{path}: line 1, column s: a lone surrogate" in err
    assert "Traceback" not in err
    assert db.val("SELECT to_regclass($1)", f"{db.schema}.sur") is None


def test_a_json_array_named_ndjson_is_refused(cli: Any, db: Any, tmp_path: Path) -> None:
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    one_line = _write(tmp_path, "one.ndjson", json.dumps(rows))
    lines = _write(tmp_path, "many.ndjson", "[\n" + ",\n".join(map(json.dumps, rows)) + "\n]\n")
    for path in (one_line, lines):
        code, _, err = cli("load", str(path))
        assert code == 1
        assert f"{path}: is a JSON array; pgingest reads JSON lines" in err
        assert db.val("SELECT to_regclass($1)", f"{db.schema}.{path.stem}") is None

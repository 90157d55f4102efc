"""The NDJSON reader: keys become columns, nested values JSON text (jsonb), mixed types text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from pgingest.errors import SourceError
from pgingest.schema.pgtypes import pg_type_for_arrow
from pgingest.sources import detect, open_source


def _open(path: Path) -> object:
    return open_source(detect(str(path)))


def test_objects_become_typed_columns(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    lines = [
        {"id": 1, "name": "a", "score": 1.5, "ok": True, "at": "2024-01-02T03:04:05"},
        {"id": 2, "name": "b", "extra": "late key"},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    info = detect(str(path))
    assert info.format == "ndjson"
    source = open_source(info)
    assert source.column_names() == ["id", "name", "score", "ok", "at", "extra"]
    table = source.sample()
    assert [pg_type_for_arrow(t) for t in table.schema.types] == [
        "bigint",
        "text",
        "double precision",
        "boolean",
        "timestamp",
        "text",
    ]
    assert table.column("extra").to_pylist() == [None, "late key"]


def test_nested_values_are_json(tmp_path: Path) -> None:
    path = tmp_path / "n.ndjson"
    path.write_text('{"id": 1, "tags": ["x", "y"], "meta": {"k": [1, 2]}}\n{"id": 2}\n')
    table = open_source(detect(str(path))).sample()
    assert isinstance(table.schema.field("tags").type, pa.JsonType)
    assert pg_type_for_arrow(table.schema.field("meta").type) == "jsonb"
    meta = table.column("meta").cast(pa.string()).to_pylist()
    assert [None if m is None else json.loads(m) for m in meta] == [{"k": [1, 2]}, None]


def test_mixed_types_fall_back_to_text(tmp_path: Path) -> None:
    path = tmp_path / "m.ndjson"
    path.write_text('{"v": 1}\n{"v": "one"}\n{"v": {"a": 1}}\n')
    table = open_source(detect(str(path))).sample()
    assert table.column("v").to_pylist() == ["1", "one", '{"a": 1}']


def test_compressed_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.ndjson.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    source = open_source(detect(str(path)))
    chunks = list(source.chunks(batch_rows=1))
    assert [c.first_line for c in chunks] == [1, 2]
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(SourceError, match=r"bad\.ndjson: line 2: not valid JSON"):
        open_source(detect(str(bad), "ndjson"))


def test_json_array_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    path.write_text('[{"a": 1}, {"a": 2}]')
    with pytest.raises(SourceError, match=r"rows\.json: is a JSON array"):
        detect(str(path))

"""The NDJSON reader: keys become columns, nested values JSON text (jsonb), mixed types text."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.errors import RowError, SourceError
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


def _types(path: Path) -> dict[str, str]:
    table = open_source(detect(str(path))).sample()
    return {f.name: pg_type_for_arrow(f.type) for f in table.schema}


def test_numbers_no_float8_holds_are_numeric_text(tmp_path: Path) -> None:
    path = tmp_path / "n.ndjson"
    path.write_text(
        '{"big": 99999999999999999999, "mix": 9007199254740993, "huge": 1E400, "f": 1.5}\n'
        '{"big": 5, "mix": 1.5, "huge": 2, "f": 1e20}\n'
    )
    assert _types(path) == {
        "big": "numeric",
        "mix": "numeric",
        "huge": "numeric",
        "f": "double precision",
    }
    table = open_source(detect(str(path))).sample()
    assert table.column("big").cast(pa.string()).to_pylist() == ["99999999999999999999", "5"]
    assert table.column("mix").cast(pa.string()).to_pylist() == ["9007199254740993", "1.5"]
    assert table.column("huge").cast(pa.string()).to_pylist() == ["1E+400", "2"]
    assert table.column("f").to_pylist() == [1.5, 1e20]


def test_nested_values_keep_their_keys_and_digits(tmp_path: Path) -> None:
    path = tmp_path / "j.ndjson"
    path.write_text(
        '{"o": {"a": 1}, "l": [{"a": 1}, {"b": "x"}]}\n'
        '{"o": {"b": 2, "f": 0.1234567890123456789, "big": 12345678901234567890123}}\n'
    )
    table = open_source(detect(str(path))).sample()
    assert table.column("o").cast(pa.string()).to_pylist() == [
        '{"a": 1}',
        '{"b": 2, "f": 0.1234567890123456789, "big": 12345678901234567890123}',
    ]
    assert table.column("l").cast(pa.string()).to_pylist() == ['[{"a": 1}, {"b": "x"}]', None]


def test_times_with_an_offset_are_timestamptz(tmp_path: Path) -> None:
    path = tmp_path / "t.ndjson"
    path.write_text(
        '{"z": "2024-01-01T10:00:00+02:00", "mixed": "2024-01-01T10:00:00", "d": "2024-01-02",'
        ' "f": "2024-01-02 03:04:05.25"}\n'
        '{"z": "2024-01-02T11:00:00Z", "mixed": "2024-01-01T10:00:00+02:00", "d": "2024-01-03",'
        ' "f": "2024-01-02"}\n'
    )
    assert _types(path) == {"z": "timestamptz", "mixed": "text", "d": "date", "f": "timestamp"}
    table = open_source(detect(str(path))).sample()
    assert [str(v) for v in table.column("z").to_pylist()] == [
        "2024-01-01 08:00:00+00:00",
        "2024-01-02 11:00:00+00:00",
    ]
    assert table.column("mixed").to_pylist() == [
        "2024-01-01T10:00:00",
        "2024-01-01T10:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("line", "what"),
    [
        (r'{"id": 1, "s": "\ud800"}', "lone surrogate"),
        (r'{"id": 1, "s": {"k": "a\u0000b"}}', "NUL"),
    ],
)
def test_a_string_postgresql_cannot_store_names_line_and_column(
    tmp_path: Path, line: str, what: str
) -> None:
    path = tmp_path / "s.ndjson"
    path.write_text(line + '\n{"id": 2, "s": "ok"}\n')
    with pytest.raises(RowError, match=rf"s\.ndjson: line 1, column s: a {what}") as caught:
        open_source(detect(str(path)))
    assert (caught.value.line, caught.value.column) == (1, "s")


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("rows.ndjson", '[{"id":1,"name":"a"},{"id":2,"name":"b"}]\n'),
        ("rows.jsonl", '[\n{"id":1,"name":"a"},\n{"id":2,"name":"b"}\n]\n'),
        ("rows.txt", '[\n  {"id":1,"name":"a"}\n]\n'),
    ],
)
def test_a_json_array_is_refused_whatever_its_name(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SourceError, match=r"is a JSON array; pgingest reads JSON lines"):
        detect(str(path))


@pytest.mark.parametrize("value", ["1", "1.5"])  # pyarrow's parse, then Python's
def test_a_key_is_refused_only_when_it_cannot_be_written(tmp_path: Path, value: str) -> None:
    nul = tmp_path / "nul.ndjson"
    nul.write_text('{"a\\u0000b": ' + value + "}\n")
    assert open_source(detect(str(nul))).column_names() == ["a\x00b"]  # normalized later
    lone = tmp_path / "lone.ndjson"
    lone.write_text('{"id": 1}\n{"a\\ud800b": ' + value + "}\n")
    with pytest.raises(RowError, match=r"lone\.ndjson: line 2: key .* a lone surrogate"):
        open_source(detect(str(lone)))


@given(
    st.lists(
        st.sampled_from([b"{}", b"", b"  ", b"x", b"\r", b"\n", b"\r\n", b'{"a": 1}']),
        max_size=12,
    ).map(b"".join)
)
def test_line_spans_cut_as_splitlines_does(data: bytes) -> None:
    from pgingest.sources._lines import line_spans

    starts, ends = line_spans(data)
    assert [data[s:e] for s, e in zip(starts, ends, strict=True)] == data.splitlines()


def _chunks(path: Path, skip: bool, rows: int = 2) -> list[Any]:
    from pgingest.sources.ndjson import NdjsonSource

    return list(NdjsonSource(detect(str(path)), skip_bad_rows=skip).chunks(batch_rows=rows))


@pytest.mark.parametrize("exact", [True, False])
def test_rows_know_their_lines_past_blank_ones(tmp_path: Path, exact: bool) -> None:
    """Floats or not (pyarrow reads only files whose every line starts an object: not these);
    each line's text is found on demand."""
    value = "1" if exact else "1.5"
    path = tmp_path / "b.ndjson"
    path.write_bytes(b'{"a": 1}\n\n{"a": %s}\r\n  \n{"a": 3}\n{"a": 4}' % value.encode())
    chunks = _chunks(path, skip=False)
    assert [(c.first_line, list(c.lines)) for c in chunks] == [(1, [1, 3]), (5, [5, 6])]
    second = f'{{"a": {value}}}'
    assert [c.records.text(1) for c in chunks] == [second, '{"a": 4}']
    assert [c.records.take([1]).text(0) for c in chunks] == [second, '{"a": 4}']


def test_a_clean_file_builds_no_line_index(tmp_path: Path) -> None:
    path = tmp_path / "c.ndjson"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    chunks = _chunks(path, skip=False)
    assert [(c.first_line, c.lines) for c in chunks] == [(1, None), (3, None)]
    assert chunks[0].records.index._spans is None  # (found only when a reject asks)
    assert chunks[1].records.text(0) == '{"a": 3}'


def test_bad_lines_skipped_are_the_rejects_of_their_chunk(tmp_path: Path) -> None:
    path = tmp_path / "s.ndjson"
    path.write_bytes(
        b'{"a": 1}\n{oops\n{"a": 2}\n[1]\n{"a": "\\ud800"}\n{"a": 3}\n\xff\n{"\\udc00": 1}\n'
    )
    chunks = _chunks(path, skip=True)
    assert [list(c.lines) for c in chunks] == [[1, 3], [6]]
    got = [[(r.line, r.column, r.raw, r.raw_bytes) for r in c.rejects] for c in chunks]
    assert got == [
        [(2, None, "{oops", None)],
        [
            (4, None, "[1]", None),
            (5, "a", '{"a": "\\ud800"}', None),
            (7, None, "\\xff", b"\xff"),
            (8, None, '{"\\udc00": 1}', None),
        ],
    ]
    with pytest.raises(SourceError, match=r"s\.ndjson: line 2: not valid JSON"):
        _chunks(path, skip=False)


def test_deep_nesting_is_a_bad_line_not_a_crash(tmp_path: Path) -> None:
    """pyarrow's reader overflowed its stack on 20,000 levels (SIGSEGV); a first line null
    did too, and a later one was a row of NULLs."""
    path = tmp_path / "d.ndjson"
    deep = b"[" * 20_000 + b"]" * 20_000
    path.write_bytes(b'{"a": 1}\n{"a": %s}\nnull\n{"a": 2}\n' % deep)
    chunks = _chunks(path, skip=True, rows=10)
    assert [(r.line, r.reason) for r in chunks[0].rejects] == [
        (2, "nested deeper than Python's json module reads"),
        (3, "not a JSON object"),
    ]
    first_null = tmp_path / "n.ndjson"
    first_null.write_bytes(b'null\n{"a": 1}\n')
    with pytest.raises(SourceError, match=r"n\.ndjson: line 1: not a JSON object"):
        _chunks(first_null, skip=False)

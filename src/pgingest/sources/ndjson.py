"""Read NDJSON (JSON lines): one object per line; its keys become columns, nested values jsonb.

pyarrow's JSON reader parses the file into typed Arrow columns (numbers, booleans, strings,
timestamps in ISO form). Objects and arrays inside a record are kept whole as JSON text of the
Arrow JSON type, which the loader creates as ``jsonb``. This module is the proof that a format
plugs in as one reader: nothing in the writer knows about it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.json as pajson

from pgingest.errors import SourceError
from pgingest.model import ArrowChunk, Chunk, SourceInfo
from pgingest.sources.base import one_line, open_stream, read_errors

__all__ = ["NdjsonSource"]

_MAX_BLOCK = 1 << 30
"""The whole file is one parse block (up to 1 GiB), so that column types are inferred from
every line: with smaller blocks pyarrow refuses a later block whose types differ."""


class NdjsonSource:
    """A JSON-lines file opened for reading (see :class:`pgingest.sources.Source`)."""

    def __init__(self, info: SourceInfo) -> None:
        """Parse the file.

        Raises:
            SourceError: the file cannot be read, or a line is not a JSON object.
        """
        self.info = info
        self.warnings: list[str] = []
        path = info.path
        stream = open_stream(path, info.compression)
        try:
            data = stream.read()
        except read_errors() as exc:
            raise SourceError(f"{path}: cannot read: {one_line(exc)}", path=path) from exc
        finally:
            stream.close()
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            table = pajson.read_json(
                io.BytesIO(data),
                read_options=pajson.ReadOptions(
                    block_size=max(1 << 20, min(len(data) + 1, _MAX_BLOCK))
                ),
            )
        except pa.ArrowInvalid:
            # Values of one key with different JSON types (a number here, a string there):
            # parsed in Python, and such a column is kept as text (nested values as JSON).
            table = _parse_mixed(data, path)
        self._table = _jsonify_nested(table).combine_chunks()

    def __enter__(self) -> NdjsonSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop the parsed data."""
        self._table = pa.table({})

    def column_names(self) -> list[str]:
        """The keys, in order of first appearance."""
        return list(self._table.schema.names)

    def sample(self, max_rows: int = 50_000, *, skip_bad_records: bool = False) -> pa.Table:
        """The first ``max_rows`` records, typed (``skip_bad_records`` does not apply)."""
        return self._table.slice(0, max_rows)

    def chunks(
        self, *, batch_rows: int = 50_000, batch_bytes: int = 64 << 20, raw: bool = True
    ) -> Iterator[Chunk]:
        """The records as :class:`ArrowChunk` batches; ``first_line`` is the record's number."""
        total = self._table.num_rows
        per_row = max(1, self._table.nbytes // max(total, 1))
        step = max(1, min(batch_rows, batch_bytes // per_row))
        for start in range(0, total, step):
            for batch in self._table.slice(start, step).to_batches():
                if batch.num_rows:
                    yield ArrowChunk(batch, start + 1)


def _jsonify_nested(table: pa.Table) -> pa.Table:
    """Structs and lists become JSON text of the Arrow JSON type (jsonb in PostgreSQL)."""
    columns = []
    fields = []
    for field, column in zip(table.schema, table.columns, strict=True):
        if pa.types.is_nested(field.type):
            # Nested values are few and small next to scalar columns: a Python pass is fine.
            values = column.to_pylist()
            text = pa.array(
                [
                    None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                    for v in values
                ],
                pa.string(),
            )
            column = pa.ExtensionArray.from_storage(pa.json_(), text)
            field = pa.field(field.name, pa.json_())
        columns.append(column)
        fields.append(field)
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _parse_mixed(data: bytes, path: str) -> pa.Table:
    records: list[dict[str, Any]] = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise SourceError(
                f"{path}: line {number}: not valid JSON: {one_line(exc)}", path=path
            ) from exc
        if not isinstance(value, dict):
            raise SourceError(f"{path}: line {number}: not a JSON object", path=path)
        records.append(value)
    keys: dict[str, None] = {}
    for record in records:
        keys.update(dict.fromkeys(record))
    arrays = {}
    for key in keys:
        values = [r.get(key) for r in records]
        try:
            arrays[key] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            arrays[key] = pa.array(
                [
                    None if v is None else v if isinstance(v, str) else json.dumps(v, default=str)
                    for v in values
                ],
                pa.string(),
            )
    return pa.table(arrays)

"""Shape Arrow batches for the writer: normalize types, JSON-encode nested values, align with the
target table's column types, or fall back to CSV text when binary COPY cannot carry a column."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from pgingest.errors import RowError
from pgingest.schema.evolve import canonical_type
from pgingest.schema.pgtypes import is_json_type, normalize_arrow_type

# PostgreSQL types (in schema.evolve's canonical spelling) whose binary COPY form pgpq
# produces from the given Arrow type.
_ARROW_FOR_PG: dict[str, pa.DataType] = {
    "boolean": pa.bool_(),
    "smallint": pa.int16(),
    "integer": pa.int32(),
    "bigint": pa.int64(),
    "real": pa.float32(),
    "double precision": pa.float64(),
    "text": pa.string(),
    "varchar": pa.string(),
    "bytea": pa.binary(),
    "date": pa.date32(),
    "time": pa.time64("us"),
    "timestamp": pa.timestamp("us"),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "interval": pa.duration("us"),
    "jsonb": pa.string(),
}


def arrow_type_for_pg(pg_type: str) -> pa.DataType | None:
    """The Arrow type that binary COPY needs for a column of ``pg_type``; ``None`` if unknown."""
    t = canonical_type(pg_type)
    if t.endswith("[]"):
        element = arrow_type_for_pg(t[:-2])
        return None if element is None else pa.list_(element)
    if t in _ARROW_FOR_PG:
        return _ARROW_FOR_PG[t]
    if t.startswith(("character varying", "character(")):
        return None  # length checks belong to the server: send text through CSV
    if t.startswith("numeric(") and t.endswith(")"):
        precision, _, scale = t[len("numeric(") : -1].partition(",")
        try:
            p, s = int(precision), int(scale or 0)
        except ValueError:
            return None
        # pgpq encodes decimal128 only: wider numbers go as text, the server parses them.
        return pa.decimal128(p, s) if p <= 38 else None
    return None


def _json_column(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    # Nested values are rare and small next to scalar columns: a Python pass here is accepted.
    values = array.to_pylist(maps_as_pydicts="lossy")  # a map is a JSON object, {} if empty
    return pa.array(
        [None if v is None else json.dumps(_jsonable(v), ensure_ascii=False) for v in values],
        pa.string(),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class Shaped:
    """A batch ready for the writer: binary-encodable Arrow, or CSV text for the server to cast."""

    batch: pa.RecordBatch | None
    csv: bytes | None
    json_columns: tuple[str, ...] = ()


def normalize_batch(batch: pa.RecordBatch, names: Sequence[str], path: str) -> Shaped:
    """Rename to ``names`` and convert every column to a type the binary encoder can send.

    Raises:
        RowError: a value cannot be represented without change (e.g. nanoseconds).
    """
    arrays: list[pa.Array] = []
    json_cols: list[str] = []
    for name, column in zip(names, batch.columns, strict=True):
        if is_json_type(column.type):
            arrays.append(_json_column(column))
            json_cols.append(name)
            continue
        target = normalize_arrow_type(column.type)
        if target != column.type:
            try:
                column = column.cast(target, safe=True)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise RowError(
                    f"{path}: column {name}: cannot convert {column.type} to {target}: {exc}",
                    path=path,
                    column=name,
                ) from exc
        arrays.append(column)
    return Shaped(pa.RecordBatch.from_arrays(arrays, names=list(names)), None, tuple(json_cols))


def align_batch(shaped: Shaped, target_types: Sequence[str], path: str, first_line: int) -> Shaped:
    """Cast a normalized batch to the table's column types for binary COPY.

    When a column's table type has no binary mapping (``uuid``, ``varchar(n)``, ``numeric``
    without scale, a domain ...) or the Arrow value cannot be cast exactly, the whole batch goes
    as CSV text and the server casts it, so the table's own rules decide.
    """
    if shaped.batch is None:  # already CSV: nothing to align
        return shaped
    batch = shaped.batch
    arrays: list[pa.Array] = []
    json_cols = set(shaped.json_columns)
    out_json: list[str] = []
    for name, column, pg_type in zip(batch.schema.names, batch.columns, target_types, strict=True):
        canonical = canonical_type(pg_type)
        if canonical in ("jsonb", "json"):
            if name not in json_cols and not pa.types.is_string(column.type):
                return Shaped(None, batch_to_csv(batch))
            if canonical == "json":
                return Shaped(None, batch_to_csv(batch))
            out_json.append(name)
            arrays.append(column)
            continue
        if name in json_cols:
            return Shaped(None, batch_to_csv(batch))
        if canonical == "numeric":
            # pgpq writes decimals and uint64 as numeric; integers widen to an exact decimal.
            if pa.types.is_decimal(column.type) or column.type == pa.uint64():
                arrays.append(column)
                continue
            if pa.types.is_integer(column.type):
                arrays.append(column.cast(pa.decimal128(20, 0)))
                continue
        target = arrow_type_for_pg(canonical)
        if target is None:
            return Shaped(None, batch_to_csv(batch))
        if column.type == target:
            arrays.append(column)
            continue
        if pa.types.is_list(column.type) != pa.types.is_list(target):
            return Shaped(None, batch_to_csv(batch))
        try:
            arrays.append(column.cast(target, safe=True))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            bad = _first_bad_row(column, target)
            if bad is None:
                return Shaped(None, batch_to_csv(batch))
            row, value = bad
            raise RowError(
                f"{path}: line {first_line + row}, column {name}: value {value!r} does not fit "
                f"column type {pg_type}",
                path=path,
                line=first_line + row,
                column=name,
                value=value,
            ) from None
    return Shaped(
        pa.RecordBatch.from_arrays(arrays, names=batch.schema.names), None, tuple(out_json)
    )


def _first_bad_row(column: pa.Array, target: pa.DataType) -> tuple[int, str] | None:
    """Find the first value that a safe cast refuses (only runs on the failure path)."""
    if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
        return None
    if not (pa.types.is_integer(target) or pa.types.is_decimal(target)):
        return None
    for index, value in enumerate(column.to_pylist()):
        if value is None:
            continue
        try:
            pa.array([value], column.type).cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return index, str(value)
    return None


_CSV_WRITE = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")


def batch_to_csv(batch: pa.RecordBatch) -> bytes:
    """CSV text of ``batch`` for ``COPY ... (FORMAT csv)``: NULL unquoted-empty, values quoted.

    Nested columns become JSON / array literals first; everything else is written by pyarrow.
    """
    arrays = []
    for column in batch.columns:
        if pa.types.is_nested(column.type):
            arrays.append(_json_column(column))
        elif pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
            # bytea's text form; only reached when a table's types force the CSV route.
            values = column.to_pylist()
            arrays.append(pa.array([None if v is None else "\\x" + v.hex() for v in values]))
        else:
            arrays.append(column)
    table = pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, _CSV_WRITE)
    data: bytes = sink.getvalue().to_pybytes()
    return data

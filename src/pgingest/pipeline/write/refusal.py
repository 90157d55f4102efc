"""Refused CSV batches read client-side for the loader: the records the server would refuse
taken out (bytes kept as they were), missing-value markers made NULL, and the server's line
numbers mapped back to the file's. The byte-level reading is :mod:`pgingest.sources.refused`'s;
the types of the values are checked here."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pgingest.model import CsvDialect, Reject
from pgingest.schema.evolution import canonical_type
from pgingest.schema.infer import TypeTracker
from pgingest.schema.pgtypes import TEXT
from pgingest.schema.validate import invalid_values, markers_in
from pgingest.sources.refused import copy_lines, decode_line, parse_refused, record_at
from pgingest.sources.repair import join_records, write_records

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Filtered", "file_line", "filter_csv", "null_markers"]

_RAW_PREVIEW = 60


@dataclass(slots=True)
class Filtered:
    """A CSV batch with its bad rows taken out."""

    data: bytes
    lines: Any
    """numpy int64: the file line of each record left in ``data``."""
    rejects: list[Reject]
    misfits: dict[str, list[str]] = field(default_factory=dict)
    """Per column, the values its type refused (they may call for a wider type)."""
    ends: Any = None
    """numpy int64: where each record of ``data`` ends (so it need not be cut again)."""
    kept: Any = None
    """numpy int64: the position of each record left in ``data`` among the batch's records."""
    refused: tuple[int, ...] = ()
    """The position among the batch's records of each of ``rejects``, in their order."""


def filter_csv(
    data: bytes,
    first_line: int,
    encoding: str,
    dialect: CsvDialect,
    columns: Sequence[str],
    types: Sequence[str],
    validate: bool = True,
    server_version: int | None = None,
) -> Filtered | None:
    """Take the records the server would refuse out of a raw CSV batch.

    Refused: a broken quote, a wrong field count, bytes invalid in the encoding (read by
    :func:`pgingest.sources.refused.parse_refused`), a value the column's type surely refuses
    (:func:`pgingest.schema.validate.invalid_values`). The good records stay byte for byte as
    they were. ``validate=False`` leaves the values to the server (``ON_ERROR ignore``): only
    malformed records are taken out. ``server_version`` (``server_version_num``): the
    server's input rules (PostgreSQL 15 refuses ``0x1F`` as an integer, 16 reads it).

    Returns:
        The good records, their lines and the rejects; ``None`` when the batch cannot be
        parsed client-side the way the server reads it (the caller keeps the server's error).
    """
    import numpy as np

    checked = [n for n, t in zip(columns, types, strict=True) if canonical_type(t) != TEXT]
    if not validate:
        checked = []
    parsed = parse_refused(data, first_line, encoding, dialect, columns, checked)
    if parsed is None:
        return None
    data, records = parsed.data, parsed.records
    reasons: dict[int, tuple[str | None, str]] = {i: (None, r) for i, r in parsed.reasons.items()}
    good = np.zeros(len(records), np.bool_)
    misfits: dict[str, list[str]] = {}
    table, kept = parsed.table, parsed.kept
    if table is None:
        good[kept] = True
    else:
        bad_rows = np.zeros(table.num_rows, np.bool_)
        for name, pg_type in zip(columns, types, strict=True):
            if name not in checked:
                continue
            mask = invalid_values(table.column(name), pg_type, server_version)
            if mask is None:
                continue
            flagged = np.asarray(mask.to_numpy(zero_copy_only=False), np.bool_) & ~bad_rows
            if not flagged.any():
                continue
            values = table.column(name)
            refused = misfits.setdefault(name, [])
            for row in np.flatnonzero(flagged):
                value = values[int(row)].as_py()
                refused.append(value)
                shown = value if len(value) <= _RAW_PREVIEW else value[:_RAW_PREVIEW] + "..."
                reasons[int(kept[row])] = (name, f"invalid input for type {pg_type}: {shown!r}")
            bad_rows |= flagged
        good[kept[~bad_rows]] = True
    by_position = sorted(reasons.items())
    rejects: list[Reject] = [
        Reject(
            int(records.lines[i]),
            column,
            decode_line(data[records.starts[i] : records.ends[i]], "utf-8"),
            reason,
        )
        for i, (column, reason) in by_position
    ]
    kept_ends = np.cumsum(records.ends[good] - records.starts[good])
    return Filtered(
        join_records(data, records.starts[good], records.ends[good]),
        records.lines[good],
        rejects,
        misfits,
        kept_ends,
        np.flatnonzero(good),
        tuple(i for i, _ in by_position),
    )


def file_line(payload: Any, stream_line: int) -> int:
    """The file line of the record COPY names by "line ``stream_line``" in a CSV payload.

    A payload whose records the reader wrote again or took out (``lines`` set) is mapped
    record by record; else its bytes are the file's from ``first_line`` on.
    """
    if payload.kind != "csv":
        return int(payload.first_line) + stream_line - 1
    records, numbers = copy_lines(payload.data, payload.dialect or CsvDialect())
    index = record_at(numbers, stream_line)
    if index < 0:
        return int(payload.first_line) + stream_line - 1
    if payload.lines is not None and len(payload.lines) == len(records):
        return int(payload.lines[index])
    return int(payload.first_line) + int(records.lines[index]) - 1


def null_markers(
    payload: Any, columns: Sequence[str], marked: AbstractSet[str]
) -> tuple[Any, dict[str, set[str]]]:
    """A CSV payload with the missing-value markers (``NA``...) of the ``marked`` columns made
    NULL, written again for COPY; and the markers found per column. The payload as it was when
    it has none, or when it has malformed records (they go the failure path, as before)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dialect = payload.dialect or CsvDialect()
    parsed = parse_refused(
        payload.data, payload.first_line, payload.encoding, dialect, columns, list(columns)
    )
    if parsed is None or parsed.reasons or parsed.table is None:
        return payload, {}
    table = parsed.table
    found: dict[str, set[str]] = {}
    for name in marked:
        if name not in table.column_names:
            continue
        position = table.column_names.index(name)
        column = table.column(position)
        mask = markers_in(column)
        if not pc.any(mask).as_py():
            continue
        found[name] = set(column.filter(mask).to_pylist())
        nulls = pa.nulls(len(column), column.type)
        table = table.set_column(position, name, pc.if_else(mask, nulls, column))
    if not found:
        return payload, {}
    records = parsed.records
    lines = records.lines
    if payload.lines is not None and len(payload.lines) == len(records):
        lines = payload.lines
    lines = lines[parsed.kept]
    data = write_records(table, dialect.delimiter, dialect.quotechar)
    first = int(lines[0]) if len(lines) else payload.first_line
    changed = replace(
        payload, data=data, encoding="UTF8", lines=lines, record_ends=None, first_line=first
    )
    return changed, found


def incoming_types(table: pa.Table, current: Sequence[str]) -> list[str]:
    """The types a batch of text needs, column by column; a column without values (all
    NULL) needs nothing new."""
    tracker = TypeTracker()
    tracker.update(table)
    return [
        cur if column.null_count == len(column) else inferred
        for cur, inferred, column in zip(current, tracker.types(), table.columns, strict=True)
    ]


_NUMBER_FAMILY = "double precision"
_FAMILY = {
    "smallint": _NUMBER_FAMILY,
    "integer": _NUMBER_FAMILY,
    "bigint": _NUMBER_FAMILY,
    "real": _NUMBER_FAMILY,
    "date": "timestamptz",
    "timestamp": "timestamptz",
}
"""A column type -> the widest type of its family: refused values that fit it may widen it."""


def wider_types(
    columns: Sequence[str],
    current: Sequence[str],
    fixed: AbstractSet[str],
    misfits: dict[str, list[str]],
) -> tuple[list[str], bool]:
    """The column types widened for values their type refused that fit its family
    (``3.5`` among integers, a time after a date): only those values are inferred."""
    import pyarrow as pa
    import pyarrow.compute as pc

    types = list(current)
    wider = False
    for name, values in misfits.items():
        if name in fixed or name not in columns:
            continue
        position = list(columns).index(name)
        family = _FAMILY.get(canonical_type(types[position]).split("(", 1)[0])
        if family is None:
            continue
        array = pa.array(values, pa.string())
        invalid = invalid_values(array, family)
        candidates = array.filter(pc.invert(invalid)) if invalid is not None else array
        if not len(candidates):
            continue
        (inferred,) = incoming_types(pa.table({name: candidates}), [types[position]])
        if inferred not in (TEXT, types[position]):
            types[position] = inferred
            wider = True
    return types, wider

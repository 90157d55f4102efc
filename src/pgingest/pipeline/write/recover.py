"""What a batch the server refused becomes: a wider table and the same batch again, or (with
``--on-error skip``) its bad rows set aside and the rest sent again, or the error.

The clean path never comes here: raw CSV goes to COPY untouched, and only a batch that fails
with a data error (SQLSTATE class 22) is parsed client-side, vectorized, to find out why.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

from pgingest.config import LoadOptions, error_limit
from pgingest.errors import (
    RecordFormatError,
    RowError,
    TooManyErrorsError,
    TypeConflictError,
    UnreadableNoticeError,
    WidenedError,
)
from pgingest.model import ColumnSpec, CsvChunk, CsvDialect, Reject
from pgingest.pg import connect
from pgingest.pg.copy import (
    BinaryEncoder,
    copy_csv_skipping,
)
from pgingest.pg.merge import STAGE_ORDINAL
from pgingest.pipeline.evolve.change import evolve_table, policy_for
from pgingest.pipeline.prepare.plan import FilePlan, LivePlan
from pgingest.pipeline.write.refusal import (
    Filtered,
    filter_csv,
    incoming_types,
    null_markers,
    wider_types,
)
from pgingest.pipeline.write.shape import Shaped, align_batch, batch_to_csv
from pgingest.schema.evolution import canonical_type
from pgingest.schema.pgtypes import TEXT, pg_type_for_arrow
from pgingest.schema.validate import NULL_MARKERS, markers_in, text_by_nature
from pgingest.sources.records import split_records
from pgingest.sources.refused import copy_lines, decode_line, record_at, text_table
from pgingest.sources.repair import join_records

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger("pgingest.recover")


TEXT_SAMPLE_ROWS = 5_000
"""Rows sampled to tell whether a column's values are words by nature (on the failure path)."""


class _MarkersFirstError(RowError):
    """Values the server skipped are missing-value markers: make them NULL, then again."""


class _WidenFirstError(RowError):
    """Values the server skipped would fit a wider type: widen, then the batch again."""

    def __init__(self, message: str, misfits: dict[str, list[str]]) -> None:
        super().__init__(message)
        self.misfits = misfits


@dataclass(slots=True)
class Recovery:
    """The failure path of one file's batches (shared by its batch workers)."""

    schema: str
    table: str
    live: LivePlan
    """The file's plan: what recovery learns (wider types, marker columns) makes a new one."""
    options: LoadOptions
    file_id: int | None
    run_id: int | None
    fixed: frozenset[str] = frozenset()
    text_columns: frozenset[str] | None = None
    """Columns the file's sample reads as text: only those may turn a column into text."""
    committed_rejects: int = 0
    pending: dict[int, int] = field(default_factory=dict)
    """Bad rows per batch index (batches not committed yet count too: conservative)."""
    source: Any = None
    """The file, read again (its sample) only to tell text columns on the failure path."""
    pool: Any = None
    """Connections for DDL found necessary before a batch's first COPY."""
    keyed: bool = False
    """upsert and merge: each batch's CSV ends with the staging ordinal, its records are
    routed by key (their file lines in ``lines``), and it is encoded for the plan's types, so
    a wider table plans the file again (:class:`~pgingest.errors.WidenedError`)."""
    server_skips: bool = False
    """The server skips unreadable values itself (``ON_ERROR ignore``, PostgreSQL 17+)."""
    server_version: int | None = None
    """The server's ``server_version_num`` (the run's; else asked at the first refused
    batch): its input rules decide which values are bad rows."""
    dirty: bool = False
    """A batch had bad rows: filter the next ones before the first COPY."""
    _marked: set[int] = field(default_factory=set)
    """Batches whose missing-value markers were made NULL."""
    _batch_text: frozenset[str] = frozenset()
    """Columns a refused batch holds words in (half its values or more): may turn text."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def plan(self) -> FilePlan:
        """The file's current plan."""
        return self.live.current

    @property
    def columns(self) -> list[str]:
        """The columns of a batch's CSV (a keyed batch's end with the staging ordinal)."""
        columns = list(self.plan.columns)
        return [*columns, STAGE_ORDINAL] if self.keyed else columns

    @property
    def types(self) -> list[str]:
        """The types of :attr:`columns`."""
        types = list(self.plan.target_types)
        return [*types, "bigint"] if self.keyed else types

    @property
    def rejects(self) -> int:
        """Bad rows of the file so far."""
        return self.committed_rejects + sum(self.pending.values())

    @property
    def skipping(self) -> bool:
        """``--on-error skip``."""
        return self.options.on_error == "skip"

    def _numbered(self, payload: Any) -> bool:
        """Whether the batch's ``lines`` name its rows from the start (routed by key, or an
        NDJSON batch): bad rows are named by them, and taken out leave ``record_ends``."""
        return self.keyed or bool(payload.numbered)

    def _raw(self, payload: Any, position: int, written: str | None) -> str | None:
        """The record of a numbered batch's row ``position`` as the file has it; else (an
        Arrow row of a keyed batch, no record in the file) the row as the batch ``written``
        it, the staging ordinal off."""
        if payload.records is not None:
            return str(payload.records.text(position))
        if written is None or not self.keyed:
            return written
        return written.rsplit(",", 1)[0]

    def _check_limit(self, error: RowError) -> None:
        count, _share = error_limit(self.options.max_errors)
        total = self.rejects
        if count is not None and total > count:
            raise TooManyErrorsError(
                f"{error} (and more: {total} bad rows, more than --max-errors {count})",
                path=error.path,
                line=error.line,
            )

    def check_share(self, path: str, rows: int) -> None:
        """After the file's batches: fail it when its bad rows are more than the share
        ``--max-errors`` allows (a count is checked as the rows come)."""
        _count, share = error_limit(self.options.max_errors)
        total = self.rejects
        if share is not None and total > share * (rows + total):
            raise TooManyErrorsError(
                f"{path}: {total} bad rows of {rows + total}, more than --max-errors"
                f" {self.options.max_errors}",
                path=path,
            )

    async def prepare(self, index: int, payload: Any) -> Any:
        """Before a batch's first COPY: count the rows its reader left out, and filter it
        when earlier batches had bad rows."""
        if payload.rejects and index not in self.pending:
            self.pending[index] = len(payload.rejects)
            bad = payload.rejects[0]
            path = self.plan.info.path
            self._check_limit(
                RowError(f"{path}: line {bad.line}: {bad.reason}", path=path, line=bad.line)
            )
        markers = payload.kind == "csv" and bool(self.plan.marker_columns)
        if markers and index not in self._marked:
            payload = await asyncio.to_thread(self._null_markers, index, payload)
        # Filtered already (a numbered batch always has its lines: its records' ends say it).
        filtered_before = payload.record_ends if self._numbered(payload) else payload.lines
        ready = filtered_before is not None or payload.rejects
        if not (self.dirty and self.skipping and payload.kind == "csv") or ready:
            return payload
        filtered = await asyncio.to_thread(self._filter, payload)
        if filtered is None:
            return payload
        if filtered.misfits and await self._widen_misfits(filtered.misfits):
            filtered = await asyncio.to_thread(self._filter, payload)
            if filtered is None:
                return payload
        return self._filtered_payload(index, payload, filtered)

    def _null_markers(self, index: int, payload: Any) -> Any:
        changed, found = null_markers(payload, self.columns, self.plan.marker_columns)
        if found:
            self._marked.add(index)
        return changed

    def _skipped_markers(self, skipped: Sequence[Any]) -> list[str]:
        """Columns the server skipped missing-value markers in (``ON_ERROR ignore``): noted
        so that the batch is sent again with them NULL."""
        found: dict[str, set[str]] = {}
        for row in skipped:
            known = row.column in self.plan.columns and row.column not in self.plan.marker_columns
            if known and row.value.lower() in NULL_MARKERS:
                found.setdefault(row.column, set()).add(row.value)
        self._note_markers(found)
        return sorted(found)

    def _note_markers(self, found: dict[str, set[str]]) -> None:
        self.live.learn(marker_columns=self.plan.marker_columns | frozenset(found))
        for name, values in sorted(found.items()):
            self.plan.warn(
                f"column {name}: {', '.join(sorted(values))} read as NULL (missing-value"
                " markers in a column of another type than text)"
            )

    def _find_markers(self, payload: Any) -> dict[str, set[str]]:
        """Typed columns of a refused batch that hold missing-value markers."""
        import pyarrow.compute as pc

        table = self._text_table(payload)
        if table is None:
            return {}
        found: dict[str, set[str]] = {}
        for name, pg_type in zip(self.plan.columns, self.plan.target_types, strict=True):
            if canonical_type(pg_type) == TEXT or name in self.plan.marker_columns:
                continue
            column = table.column(name)
            mask = markers_in(column)
            if pc.any(mask).as_py():
                found[name] = set(column.filter(mask).to_pylist())
        return found

    def _wider_types(self, misfits: dict[str, list[str]]) -> tuple[list[str], bool]:
        plan = self.plan
        return wider_types(plan.columns, plan.target_types, self.fixed, misfits)

    async def _widen_misfits(self, misfits: dict[str, list[str]], conn: Any = None) -> bool:
        """Widen the table for refused values that only needed a wider type; True if it did."""
        types, wider = await asyncio.to_thread(self._wider_types, misfits)
        if not wider:
            return False
        if conn is None:
            async with self.pool.acquire() as own:
                return await self._evolve(own, types)
        return await self._evolve(conn, types)

    def _text_table(self, payload: Any) -> pa.Table | None:
        """A CSV batch's values as text columns, the file's (``None``: malformed records)."""
        table = text_table(payload.data, payload.dialect or CsvDialect(), self.columns)
        if table is not None and self.keyed:
            table = table.drop_columns([STAGE_ORDINAL])
        return table

    def _filter(self, payload: Any) -> Filtered | None:
        filtered = filter_csv(
            payload.data,
            payload.first_line,
            payload.encoding,
            payload.dialect or CsvDialect(),
            self.columns,
            self.types,
            validate=not self.server_skips,
            server_version=self.server_version,
        )
        if filtered is None or not self._numbered(payload):
            return filtered
        # Routed records (NDJSON rows): each one's line is the file's, in ``lines``.
        lines = payload.lines
        filtered.rejects = [
            replace(bad, line=int(lines[position]), raw=self._raw(payload, position, bad.raw))
            for bad, position in zip(filtered.rejects, filtered.refused, strict=True)
        ]
        filtered.lines = lines[filtered.kept]
        return filtered

    async def copy_skipping(
        self, conn: Any, index: int, payload: Any
    ) -> tuple[int, tuple[Reject, ...]]:
        """Inside the batch's transaction, with ``server_skips`` (``--on-error skip`` on
        PostgreSQL 17+): COPY a CSV batch, the server skipping the values it cannot read
        (``ON_ERROR ignore``) and saying which; return its rows and its bad rows."""
        dialect = payload.dialect or CsvDialect()
        chunk = CsvChunk(payload.data, payload.first_line, payload.encoding)
        schema, table, columns = self.schema, self.table, self.plan.columns
        datestyle = self.plan.datestyle
        try:
            rows, skipped = await copy_csv_skipping(
                conn, schema, table, columns, chunk, dialect, datestyle
            )
        except UnreadableNoticeError as exc:
            self.server_skips = False  # the server's language: set bad rows aside ourselves
            raise RowError(f"{self.plan.info.path}: {exc}", path=self.plan.info.path) from exc
        if not skipped:
            return rows, payload.rejects
        marked = self._skipped_markers(skipped)
        if marked:
            raise _MarkersFirstError(f"{self.plan.info.path}: missing-value markers: {marked}")
        misfits: dict[str, list[str]] = {}
        for row in skipped:
            misfits.setdefault(row.column or "", []).append(row.value)
        if (await asyncio.to_thread(self._wider_types, misfits))[1]:
            raise _WidenFirstError(f"{self.plan.info.path}: values need a wider type", misfits)
        records, numbers = await asyncio.to_thread(
            copy_lines, payload.data, payload.dialect or CsvDialect(), payload.record_ends
        )
        lines = payload.lines
        if lines is None or len(lines) != len(records):
            lines = records.lines + (payload.first_line - 1)
        path = self.plan.info.path
        found: list[Reject] = []
        for row in skipped:
            position = record_at(numbers, row.line)
            if position < 0:
                raise RowError(f"{path}: the server skipped line {row.line}, not in the batch")
            raw = payload.data[int(records.starts[position]) : int(records.ends[position])]
            line = int(lines[position])
            text: str | None = decode_line(raw, "utf-8")
            if payload.numbered:
                text = self._raw(payload, position, text)
            found.append(Reject(line, row.column, text, row.reason))
        self.pending[index] = len(payload.rejects) + len(found)
        first = found[0]
        self._check_limit(
            RowError(f"{path}: line {first.line}, column {first.column}: {first.reason}", path=path)
        )
        return rows, (*payload.rejects, *found)

    def _filtered_payload(self, index: int, payload: Any, filtered: Filtered) -> Any:
        self.pending[index] = len(filtered.rejects) + len(payload.rejects)
        if filtered.rejects:
            self.dirty = True
            bad = filtered.rejects[0]
            line, column, reason = bad.line, bad.column, bad.reason
            path = self.plan.info.path
            self._check_limit(
                RowError(
                    f"{path}: line {line}{f', column {column}' if column else ''}: {reason}",
                    path=path,
                    line=line,
                    column=column,
                )
            )
        first = int(filtered.lines[0]) if len(filtered.lines) else payload.first_line
        records = payload.records
        return replace(
            payload,
            data=filtered.data,
            encoding="UTF8",
            first_line=first,
            lines=filtered.lines,
            record_ends=filtered.ends,
            rejects=(*payload.rejects, *filtered.rejects),
            records=None if records is None else records.take(filtered.kept),
        )

    async def recover(self, conn: Any, index: int, payload: Any, error: RowError) -> Any | None:
        """A batch failed with a data error: return the payload to try again, or ``None``.

        Widens the table when the batch's values need it (and the policy allows), else with
        ``--on-error skip`` sets the bad rows aside; ``TooManyErrorsError`` past the limit.
        """
        try:
            if isinstance(error, _WidenFirstError):
                await self._widen_misfits(error.misfits, conn)
                return payload
            if isinstance(error, _MarkersFirstError):
                return await asyncio.to_thread(self._null_markers, index, payload)
            if payload.kind == "arrow":
                realigned = await self._recover_arrow(conn, payload, error)
                if realigned is not None or not self.skipping:
                    return realigned
                # Values that fit no type the column may take: as CSV text, the bad-row
                # filter finds them (their raw line is the row written as CSV).
                payload = replace(
                    payload,
                    kind="csv",
                    data=batch_to_csv(payload.batch, self.types),
                    encoding="UTF8",
                    dialect=CsvDialect(),
                    batch=None,
                    encoder=None,
                    error=None,
                )
                # (An NDJSON batch keeps its rows' lines: each bad row's reject is its line.)
                if self.server_skips:
                    return payload  # the server skips what it cannot read
            if payload.kind == "csv" and not isinstance(error, RecordFormatError):
                # Missing-value markers past the sample: NULL, as in the sample.
                markers = await asyncio.to_thread(self._find_markers, payload)
                if markers:
                    self._note_markers(markers)
                    return await asyncio.to_thread(self._null_markers, index, payload)
            # A malformed record (a field too many) says nothing of the values' types.
            if not isinstance(error, RecordFormatError) and await self._widen_for(conn, payload):
                return payload
        except TypeConflictError as exc:  # --on-type-change fail
            raise TypeConflictError(f"{error}; {exc}", table=exc.table) from exc
        if not self.skipping:
            return None
        if self.server_version is None:
            self.server_version = await connect.server_version(conn)
        numbered = self._numbered(payload)
        if (payload.record_ends if numbered else payload.lines) is not None:
            return self._drop_refused_line(index, payload, error)  # filtered before
        filtered = await asyncio.to_thread(self._filter, payload)
        if filtered is None or not filtered.rejects:
            if numbered:  # its lines are known: the record the server names goes
                return self._drop_refused_line(index, payload, error)
            return None  # nothing found client-side: the server's error stands
        if filtered.misfits and await self._widen_misfits(filtered.misfits, conn):
            return payload  # wider now: try the whole batch again
        return self._filtered_payload(index, payload, filtered)

    def _drop_refused_line(self, index: int, payload: Any, error: RowError) -> Any | None:
        """The server refused a record of an already filtered batch: set it aside too."""
        import numpy as np

        # the error names the file line (see file_line): the record starting at or before it
        position = int(np.searchsorted(payload.lines, error.line or 0, side="right")) - 1
        if not 0 <= position < len(payload.lines):
            return None
        dialect = payload.dialect or CsvDialect()
        newline = "\r" if dialect.newline == "\r" else "\n"
        records = split_records(
            payload.data,
            payload.first_line,
            delimiter=dialect.delimiter,
            quote=dialect.quotechar,
            newline=newline,
        )
        if len(records) != len(payload.lines):
            return None
        keep = np.ones(len(records), np.bool_)
        keep[position] = False
        raw: str | None = decode_line(
            payload.data[records.starts[position] : records.ends[position]], "utf-8"
        )
        if self._numbered(payload):
            raw = self._raw(payload, position, raw)
        line = int(payload.lines[position])
        reject = Reject(line, error.column, raw, _reason(error))
        data = join_records(payload.data, records.starts[keep], records.ends[keep])
        lines = payload.lines[keep]
        self.pending[index] = self.pending.get(index, 0) + 1
        self._check_limit(error)
        first = int(lines[0]) if len(lines) else payload.first_line
        return replace(
            payload,
            data=data,
            lines=lines,
            record_ends=None,
            first_line=first,
            rejects=(*payload.rejects, reject),
            records=None if payload.records is None else payload.records.take(keep),
        )

    async def _widen_for(self, conn: Any, payload: Any) -> bool:
        """Infer the batch's types and widen the table to them; True when it changed."""
        table = await asyncio.to_thread(self._text_table, payload)
        if table is None:
            return False
        types = await asyncio.to_thread(incoming_types, table, self.plan.target_types)
        if self.text_columns is None and any(
            t == TEXT and c != TEXT for t, c in zip(types, self.plan.target_types, strict=True)
        ):
            self.text_columns = await asyncio.to_thread(self._sample_text_columns)
        # Words by nature in the sample or in this batch (half its values or more misfit):
        # the same rule wherever in the file; a few stray values are bad rows.
        current = dict(zip(self.plan.columns, self.plan.target_types, strict=True))
        self._batch_text |= await asyncio.to_thread(text_by_nature, table, current)
        return await self._evolve(conn, types)

    def _sample_text_columns(self) -> frozenset[str]:
        """Columns that are text by nature in the file's sample."""
        if self.source is None:
            return frozenset()
        rows = min(self.options.sample_rows, TEXT_SAMPLE_ROWS)
        sample = self.source.sample(rows, skip_bad_records=True)
        names = self.plan.read_columns or self.plan.columns
        if sample.num_columns != len(names):
            return frozenset()
        types = dict(zip(self.plan.columns, self.plan.target_types, strict=True))
        return text_by_nature(sample.rename_columns(names), types)

    async def _evolve(self, conn: Any, types: Sequence[str]) -> bool:
        incoming = [ColumnSpec(n, t) for n, t in zip(self.plan.columns, types, strict=True)]
        before = self.plan.target_types
        async with self._lock:
            evolution = await evolve_table(
                conn,
                self.schema,
                self.table,
                incoming,
                replace(policy_for(self.options, self.fixed), tolerant=True),
                text_ok=(self.text_columns or frozenset()) | self._batch_text,
                file_id=self.file_id,
                run_id=self.run_id,
            )
        by_name = {c.name: c.pg_type for c in evolution.columns}
        plan = self.live.learn(
            target_types=tuple(by_name.get(n, TEXT) for n in self.plan.columns),
            changes=(*self.plan.changes, *evolution.changes),
        )
        changed = plan.target_types != before or bool(evolution.changes)
        if changed and self.keyed:
            path = plan.info.path
            said = "; ".join(evolution.changes) or "its columns' types changed"
            raise WidenedError(
                f"{path}: schema: {plan.table.qualified}: {said}, for a value of this file;"
                " planned again for the wider table, after its committed batches",
                tuple(evolution.changes),
            )
        return changed

    async def _recover_arrow(self, conn: Any, payload: Any, error: RowError) -> Any | None:
        """An Arrow batch does not fit: widen the column its value needs (by its Arrow
        type), or, when binary COPY was refused, take the table's types again (another
        worker may have widened it); then align the batch again."""
        batch = payload.batch
        types = list(self.plan.target_types)
        if payload.error is not None and error.column in self.plan.columns:
            position = self.plan.columns.index(error.column)
            types[position] = pg_type_for_arrow(batch.schema.field(position).type)
        before = self.plan.target_types
        changed = await self._evolve(conn, types)
        if not changed and self.plan.target_types == before:
            return None
        shaped = align_batch(
            Shaped(batch, None), self.plan.target_types, self.plan.info.path, payload.first_line
        )
        if shaped.csv is not None:
            return replace(
                payload,
                kind="csv",
                data=shaped.csv,
                dialect=CsvDialect(),
                batch=None,
                encoder=None,
                error=None,
            )
        aligned = cast("pa.RecordBatch", shaped.batch)
        encoder = BinaryEncoder(aligned.schema, shaped.json_columns)
        return replace(payload, batch=aligned, encoder=encoder, error=None)


def _one_line(text: str) -> str:
    return " ".join(text.split())


_WHERE = re.compile(r"^line [0-9]+(, column [^:]*)?: ")


def _reason(error: RowError) -> str:
    """The server's refusal of a row, without the file, line and column its reject holds."""
    return _WHERE.sub("", _one_line(str(error)).split(": ", 1)[-1])

"""A file's incoming columns: names and the types their values need, for a new table (from
the sample or the Parquet schema) or for an existing one (a small sample, to widen first what
the server would otherwise cast without a word), and how the server must read its dates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from pgingest.config import LoadOptions
from pgingest.errors import ConfigError
from pgingest.model import ARROW_FORMATS, ColumnSpec
from pgingest.schema.evolution import canonical_type
from pgingest.schema.infer import TypeTracker, is_text_alone, lossless_temporal
from pgingest.schema.pgtypes import TEXT, pg_type_for_arrow
from pgingest.schema.validate import Majority, typed_majority
from pgingest.sources import Source
from pgingest.sources.base import open_stream, read_block
from pgingest.sources.small import SmallCsvSource

if TYPE_CHECKING:
    import pyarrow as pa

    from pgingest.schema.contract import Contract, TableContract

EXISTING_TABLE_SAMPLE_ROWS = 5_000
"""Rows of a CSV file sampled before it loads into an existing table with date or time
columns (or new columns): enough to see the values PostgreSQL would cast without a word (a
time after a date, an offset after a timestamp), cheap next to the load (a few ms). Values
the server refuses widen their column when their batch fails."""

_DATESTYLES = {"dmy": "ISO, DMY", "mdy": "ISO, MDY"}


@dataclass(slots=True)
class Incoming:
    """What a file brings."""

    columns: list[ColumnSpec]
    text_ok: frozenset[str] = frozenset()
    """Columns whose values are text by nature (may turn a column into text)."""
    datestyle: str | None = None
    """``DateStyle`` for the file's slash dates (``ISO, DMY``), if it has any."""
    warnings: list[str] = field(default_factory=list)
    """Lines for the terminal (the file's path first): dates whose order is unknown."""
    notes: list[str] = field(default_factory=list)
    """What the file's result says (its path not repeated): a stray value, missing-value
    markers read as NULL."""
    marker_columns: frozenset[str] = frozenset()
    """Typed columns whose sample holds missing-value markers (``NA``): NULL when loading."""
    no_rows: bool = False
    """A CSV file without data rows (a header only): its columns are text for want of values."""


@dataclass(slots=True)
class _Typed:
    types: list[str]
    datestyle: str | None = None
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    marker_columns: frozenset[str] = frozenset()
    no_rows: bool = False


class _TextSample:
    """A CSV file's sample as Python strings (a small plain file: no pyarrow), one list of
    values per column."""

    def __init__(self, columns: list[list[str | None]]) -> None:
        self.columns = columns
        self.num_rows = len(columns[0]) if columns else 0
        self.num_columns = len(columns)

    def select(self, keep: list[int]) -> _TextSample:
        return _TextSample([self.columns[i] for i in keep])

    def typed(self) -> dict[int, str]:
        return {}  # no transform made a column typed: that path reads Arrow

    def strings(self, i: int) -> list[str]:
        return [v for v in self.columns[i] if v is not None]

    def infer(self, tracker: TypeTracker, text: list[int]) -> None:
        tracker.update_columns([self.columns[i] for i in text])

    def majority(self, i: int, options: LoadOptions) -> Majority | None:
        values = [v for v in self.columns[i] if v is not None]
        if is_text_alone(values, options.date_format):
            return None  # the usual text column: no value has a type of its own
        import pyarrow as pa

        return typed_majority(pa.array(values, pa.string()), _inference(options))


class _ArrowSample:
    """A file's sample as an Arrow table (string columns, or typed by a transform)."""

    def __init__(self, table: pa.Table) -> None:
        self.table = table
        self.num_rows: int = table.num_rows
        self.num_columns: int = table.num_columns

    def select(self, keep: list[int]) -> _ArrowSample:
        return _ArrowSample(self.table.select(keep))

    def typed(self) -> dict[int, str]:
        import pyarrow as pa

        return {
            i: pg_type_for_arrow(t)
            for i, t in enumerate(self.table.schema.types)
            if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))
        }

    def infer(self, tracker: TypeTracker, text: list[int]) -> None:
        tracker.update(self.table.select(text))

    def strings(self, i: int) -> list[str]:
        values: list[str] = self.table.column(i).drop_null().to_pylist()
        return values

    def majority(self, i: int, options: LoadOptions) -> Majority | None:
        return typed_majority(self.table.column(i), _inference(options))


def _read_sample(source: Source, rows: int, options: LoadOptions) -> _TextSample | _ArrowSample:
    """The sample as Python strings when the reader can give them so, else as Arrow."""
    if isinstance(source, SmallCsvSource):
        columns = source.text_sample(rows)
        if columns is not None:
            return _TextSample(columns)
    return _ArrowSample(source.sample(rows, skip_bad_records=options.on_error == "skip"))


def _text_types(
    source: Source,
    names: list[str],
    rows: int,
    options: LoadOptions,
    only: frozenset[str] | None = None,
    ladder: frozenset[str] = frozenset(),
) -> _Typed:
    """Types of a CSV file's sample, its DateStyle, warnings and the columns holding
    missing-value markers; ``only`` these columns are inferred (the others get ``text``, for
    the caller to replace). A ``ladder`` column (a table's date or timestamp column) whose
    values mix local times and UTC offsets gets the type on ``date -> timestamp ->
    timestamptz`` that keeps them all, not text."""
    sample = _read_sample(source, rows, options)
    if options.text:
        return _Typed([TEXT] * len(names))
    if not sample.num_rows and only is None:
        note = (
            "no data rows: its columns are text for now; the first file with data gives them"
            " their types while the table is still empty"
        )
        return _Typed([TEXT] * len(names), notes=[note], no_rows=True)
    tracker = TypeTracker(options.date_format)
    full_names = names
    if only is not None:
        keep = [i for i, n in enumerate(names) if n in only]
        sample = sample.select(keep)
        names = [names[i] for i in keep]
    # A transform may have made columns typed: those keep their type, the text is inferred.
    typed = sample.typed()
    text = [i for i in range(sample.num_columns) if i not in typed]
    sample.infer(tracker, text)
    inferred = dict(zip(text, tracker.types(), strict=True))
    types = [typed.get(i) or inferred[i] for i in range(sample.num_columns)]
    path = source.info.path
    warnings = [
        f"{path}: column {names[i]} holds dates like 01/02/2026 where no day is above 12:"
        " loaded as text; --date-format dmy or mdy decides"
        for i in (text[k] for k in tracker.ambiguous())
    ]
    datestyle = None
    chosen = None
    for k, order in enumerate(tracker.date_orders()):
        i = text[k]
        if order is None:
            continue
        if chosen is None:
            chosen, datestyle = order, _DATESTYLES[order]
        elif order != chosen:
            types[i] = TEXT
            warnings.append(
                f"{path}: column {names[i]} writes dates {order}, another column {chosen}:"
                " one file is read with one date order, so it is loaded as text"
            )
    notes: list[str] = []
    markers: set[str] = set()
    for i in text:
        if types[i] != TEXT or names[i] in options.types:
            continue
        temporal = lossless_temporal(sample.strings(i)) if names[i] in ladder else None
        if temporal is not None:
            types[i] = temporal
            continue
        majority = sample.majority(i, options)
        if majority is None:
            continue
        types[i] = majority.pg_type
        if majority.markers:
            markers.add(names[i])
            found = ", ".join(sorted(majority.markers))
            notes.append(
                f"column {names[i]}: {found} read as NULL (missing-value markers in a"
                f" {majority.pg_type} column; in a text column they stay text)"
            )
        if majority.misfits:
            shown = ", ".join(repr(v) for v in majority.examples)
            notes.append(
                f"column {names[i]} holds {majority.pg_type} values; {majority.misfits:,} in"
                f" the first {sample.num_rows:,} rows do not ({shown}): bad rows, wherever in"
                f" the file (--types {names[i]}=text keeps them as text)"
            )
    if only is not None:
        by_name = dict(zip(names, types, strict=True))
        types = [by_name.get(n, TEXT) for n in full_names]
    return _Typed(types, datestyle, warnings, notes, frozenset(markers))


def _inference(options: LoadOptions) -> Callable[[pa.Array], str]:
    """The type inference of one column of text, with the run's date order."""

    def infer(values: pa.Array) -> str:
        import pyarrow as pa

        tracker = TypeTracker(options.date_format)
        tracker.update(pa.table({"v": values}))
        if tracker.date_orders()[0] is not None:
            return TEXT  # slash dates: their order is the file's, decided above
        return tracker.types()[0]

    return infer


def _check_overrides(path: str, names: list[str], options: LoadOptions) -> None:
    unknown = set(options.types) - set(names)
    if unknown:
        raise ConfigError(
            f"{path}: --types names unknown column(s): {', '.join(sorted(unknown))}"
            f" (columns: {', '.join(names)})"
        )


def infer_columns(source: Source, names: list[str], options: LoadOptions) -> Incoming:
    """The columns of a file bound for a new table: Parquet's own types, or types inferred
    from the CSV sample; ``--types`` overrides either."""
    raw = source.column_names()
    _check_overrides(source.info.path, names, options)
    types: list[str] = []
    if source.info.format in ARROW_FORMATS:
        schema = source.sample(1).schema
        types = [TEXT if options.text else pg_type_for_arrow(f.type) for f in schema]
    typed = _Typed(types)
    if source.info.format not in ARROW_FORMATS:
        typed = _text_types(source, names, options.sample_rows, options)
    types = [options.types.get(n, t) for n, t in zip(names, typed.types, strict=True)]
    columns = [ColumnSpec(n, t, r) for n, t, r in zip(names, types, raw, strict=True)]
    text_ok = frozenset(c.name for c in columns if c.pg_type == TEXT)
    return Incoming(
        columns,
        text_ok,
        typed.datestyle,
        typed.warnings,
        typed.notes,
        typed.marker_columns,
        typed.no_rows,
    )


def incoming_columns(
    source: Source, names: list[str], have: dict[str, ColumnSpec], options: LoadOptions
) -> Incoming:
    """The incoming columns of a file bound for an existing table.

    Parquet: the table's types for the columns it has (a value that does not fit widens
    its column when its batch is encoded), the schema's for new ones. CSV: typed from a small
    sample; a table column keeps its type unless the sample needs a wider one, and turns to
    text only when its values are text by nature.
    """
    raw = source.column_names()
    _check_overrides(source.info.path, names, options)
    if source.info.format in ARROW_FORMATS:
        inferred: dict[str, str] = {}
        if options.on_new_column == "add" and any(n not in have for n in names):
            inferred = {c.name: c.pg_type for c in infer_columns(source, names, options).columns}
        columns = [
            ColumnSpec(n, have[n].pg_type if n in have else inferred.get(n, TEXT), r)
            for n, r in zip(names, raw, strict=True)
        ]
        return Incoming(columns, frozenset(n for n in names if inferred.get(n) == TEXT))
    # Only new columns and the table's date and time columns are inferred: the server casts
    # a time after a date (or an offset after a timestamp) without a word, and reads slash
    # dates by DateStyle. Other values it refuses, and then their batch widens the column.
    wanted = frozenset(
        n
        for n in names
        if n not in have or _base(have[n].pg_type) in _SILENT_CASTS or n in options.types
    )
    rows = min(options.sample_rows, EXISTING_TABLE_SAMPLE_ROWS)
    if wanted and all(n in have for n in wanted) and not _may_hold_times(source, rows):
        wanted = frozenset()  # no ':' and no '/' in the sample: no time, offset or slash date
    if not wanted:
        return Incoming(
            [ColumnSpec(n, have[n].pg_type, r) for n, r in zip(names, raw, strict=True)]
        )
    ladder = frozenset(
        n
        for n in wanted
        if n in have and _base(have[n].pg_type) in _SILENT_CASTS and n not in options.types
    )
    typed = _text_types(source, names, rows, options, wanted, ladder)
    types = [options.types.get(n, t) for n, t in zip(names, typed.types, strict=True)]
    columns = []
    for name, pg_type, original in zip(names, types, raw, strict=True):
        if name in have and (name not in wanted or pg_type == TEXT):
            pg_type = have[name].pg_type  # text only by the batch's evidence, later
        columns.append(ColumnSpec(name, pg_type, original))
    new_text = {n for n, t in zip(names, types, strict=True) if t == TEXT and n not in have}
    return Incoming(
        columns,
        frozenset(new_text),
        typed.datestyle,
        typed.warnings,
        typed.notes,
        typed.marker_columns,
    )


_HEAD_BYTES = 1 << 20
"""Bytes read at a time when looking for ``:`` and ``/`` before sampling a file."""


def _may_hold_times(source: Source, rows: int) -> bool:
    """Whether the file's first ``rows`` lines (those the sample reads, the header's one
    more) hold a ``:`` or a ``/`` (a time, an offset, a slash date); without either, its
    date and time columns need no sample. Read a MiB at a time: a file of wide rows holds
    fewer than ``rows`` lines in its first MiB, and a time past it was missed."""
    stream = open_stream(source.info.path, source.info.compression)
    lines = 0
    try:
        while block := read_block(stream, _HEAD_BYTES, source.info.path):
            if b":" in block or b"/" in block:
                return True
            lines += block.count(b"\n") or block.count(b"\r")  # (CR alone ends lines too)
            if lines > rows:
                return False
    finally:
        stream.close()
    return False


_SILENT_CASTS = frozenset({"date", "timestamp"})
"""Column types whose input PostgreSQL accepts with a loss (the time, the offset dropped)."""


def _base(pg_type: str) -> str:
    return canonical_type(pg_type).split("(", 1)[0]


def read_contract(path: str) -> Contract:
    """Read a YAML contract file (``--contract``).

    Raises:
        ConfigError: the file cannot be read or is not a contract.
    """
    import yaml

    from pgingest.schema.contract import parse_contract  # (--contract only, as below)

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError(f"--contract {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"--contract {path}: not valid YAML: {exc}") from exc
    return parse_contract(data, path)


def options_for_contract(
    contract: TableContract, names: list[str], options: LoadOptions
) -> LoadOptions:
    """The load options with the contract's types as ``--types`` (flags win) for the columns
    the file has, and missing undeclared-required columns tolerated (the contract decides)."""
    declared = {n: t for n, t in contract.types.items() if n in names}
    return replace(options, types={**declared, **options.types}, tolerant=True)


def check_file(
    contract: TableContract, source: Source, names: list[str], options: LoadOptions
) -> None:
    """Check a file against its contract from its names and a sample (before any write).

    Raises:
        ContractError: with every violation.
    """
    from pgingest.schema.contract import check_contract

    rows = min(options.sample_rows, EXISTING_TABLE_SAMPLE_ROWS * 10)
    sample = source.sample(rows, skip_bad_records=options.on_error == "skip")
    if sample.num_columns == len(names):
        sample = sample.rename_columns(names)
    first_line = 2
    if source.info.dialect is not None:
        first_line = 1 + source.info.dialect.skip_lines + int(source.info.dialect.has_header)
    check_contract(
        contract,
        names,
        sample,
        path=source.info.path,
        tolerant=options.tolerant,
        extra_fail=options.on_new_column == "fail",
        first_line=first_line,
    )


def declared_table(
    contract: TableContract, columns: list[ColumnSpec]
) -> tuple[list[ColumnSpec], tuple[str, ...]]:
    """A new table's columns under a contract: the file's, with declared not-null, then the
    declared columns the file lacks; and the declared key."""
    out = []
    for column in columns:
        declared = contract.column(column.name)
        not_null = declared is not None and (declared.not_null or column.name in contract.key)
        out.append(ColumnSpec(column.name, column.pg_type, column.source_name, not_null))
    present = {c.name for c in columns}
    for declared in contract.columns:
        if declared.name not in present:
            out.append(ColumnSpec(declared.name, declared.pg_type or TEXT, None, declared.not_null))
    return out, contract.key

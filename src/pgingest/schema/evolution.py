"""Schema evolution, planned without I/O: an existing table, the incoming columns and the policy
give a :class:`SchemaPlan` of operations (add a column, widen a column's type).

The widening rules never lose a value already in the table:

- ``smallint -> integer -> bigint -> numeric``;
- ``smallint``/``integer``/``real`` meeting decimals -> ``double precision`` (every int32 and
  float4 survives float8 exactly); ``bigint`` meeting decimals -> ``numeric`` (float8 would
  round integers beyond 2^53); a ``numeric`` column stays ``numeric`` (it holds every decimal)
  and a ``double precision`` one stays ``double precision`` (numeric was not asked for);
- ``date -> timestamp -> timestamptz`` (local times are read in the server's ``TimeZone``);
- anything -> ``text``, last, and only when the incoming *column* is text (a Parquet string
  column, a CSV column whose values are words): a single value that fits no type is a bad row,
  not a reason to turn the column into text.

Types the rules do not know (``uuid``, ``jsonb``, ``varchar(n)``, a domain ...) and declared
types (``--types``, a contract) are never widened.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pgingest.errors import SchemaDriftError, SchemaError, TypeConflictError
from pgingest.model import ColumnSpec

OnNewColumn = Literal["add", "ignore", "fail"]
OnTypeChange = Literal["widen", "fail"]

_ALIASES = {
    "int": "integer",
    "int4": "integer",
    "int8": "bigint",
    "int2": "smallint",
    "float8": "double precision",
    "float4": "real",
    "float": "double precision",
    "bool": "boolean",
    "timestamp without time zone": "timestamp",
    "timestamp with time zone": "timestamptz",
    "decimal": "numeric",
    "character varying": "varchar",
    "time without time zone": "time",
}
_TYPMOD = re.compile(r"^([a-z ]+?)\s*\(([0-9, ]+)\)$")

_INTEGERS = ("smallint", "integer", "bigint")
_EXACT_IN_DOUBLE = frozenset({"smallint", "integer", "real", "double precision"})
_TEMPORAL = ("date", "timestamp", "timestamptz")


def canonical_type(pg_type: str) -> str:
    """The short canonical spelling of a type: ``timestamp with time zone`` -> ``timestamptz``,
    ``int8`` -> ``bigint``, ``numeric(12,2)`` stays as is (lower case, spaces collapsed)."""
    t = " ".join(pg_type.strip().lower().split())
    match = _TYPMOD.match(t)
    if match:
        base = _ALIASES.get(match.group(1), match.group(1))
        return f"{base}({match.group(2).replace(' ', '')})"
    return _ALIASES.get(t, t)


def _base(t: str) -> str:
    return t.split("(", 1)[0]


def widened_type(current: str, incoming: str, *, allow_text: bool = True) -> str | None:
    """The narrowest type that holds the values of both ``current`` and ``incoming``.

    Args:
        current: the column's type now.
        incoming: the type the new values need (inferred from CSV text, or mapped from an
            Arrow type).
        allow_text: whether ``text`` may be the answer when nothing narrower holds both.

    Returns:
        ``current`` itself when the incoming values fit it already, a wider type, or ``None``
        when no type in the rules holds both (and text is not allowed).
    """
    cur, new = canonical_type(current), canonical_type(incoming)
    if cur == new:
        return current
    cur_base, new_base = _base(cur), _base(new)
    if cur_base == "text":
        return current
    if cur_base in _INTEGERS and new_base in _INTEGERS:
        return current if _INTEGERS.index(cur_base) >= _INTEGERS.index(new_base) else new_base
    numbers = {*_INTEGERS, "numeric", "real", "double precision"}
    if cur_base in numbers and new_base in numbers:
        if cur_base == "double precision":
            # Already a float column: it stays one (numeric was not asked for, and turning
            # its values into numeric would change them); the server rounds to 15-17 digits.
            return current
        if cur_base == "numeric":
            # numeric(p,s) is declared precision: values that need more are not widened into it
            return current if cur == "numeric" or new_base in _INTEGERS[:2] else None
        if new_base == "numeric":
            return "numeric"
        if cur_base == "double precision":
            # Already a float column: it stays one (numeric was not asked for, and turning
            # its values into numeric would change them); the server rounds to 15-17 digits.
            return current
        # cur is an integer or real; new is real/double or an integer wider than cur
        if cur_base in _EXACT_IN_DOUBLE and new_base in _EXACT_IN_DOUBLE:
            return "double precision"
        return "numeric"
    if cur_base in _TEMPORAL and new_base in _TEMPORAL:
        wider = max(_TEMPORAL.index(cur_base), _TEMPORAL.index(new_base))
        return current if wider == _TEMPORAL.index(cur_base) else _TEMPORAL[wider]
    if new_base == "text" and allow_text:
        return "text"
    return None


@dataclass(frozen=True, slots=True)
class AddColumn:
    """``ALTER TABLE ... ADD COLUMN name type``."""

    name: str
    pg_type: str


@dataclass(frozen=True, slots=True)
class AlterType:
    """``ALTER TABLE ... ALTER COLUMN name TYPE new_type``."""

    name: str
    old_type: str
    new_type: str


Operation = AddColumn | AlterType


@dataclass(frozen=True, slots=True)
class Policy:
    """What evolution may do."""

    on_new_column: OnNewColumn = "add"
    on_type_change: OnTypeChange = "widen"
    tolerant: bool = False
    """A table column missing from the file is NULL (else an error naming it)."""
    fixed: frozenset[str] = frozenset()
    """Columns whose type was declared (``--types``, a contract): never widened."""


@dataclass(frozen=True, slots=True)
class SchemaPlan:
    """What to do to a table before a file's (or a batch's) rows go in."""

    operations: tuple[Operation, ...] = ()
    ignored: tuple[str, ...] = ()
    """Incoming columns left out (policy ``ignore``)."""
    missing: tuple[str, ...] = ()
    """Table columns the incoming data lacks (NULL, under ``tolerant``)."""
    conflicts: tuple[str, ...] = field(default=())
    """Columns whose incoming type does not fit and may not widen (declared or unknown
    types): their misfit values are bad rows, left to the row-error policy."""

    @property
    def is_empty(self) -> bool:
        """True when the table needs no change."""
        return not self.operations


def plan_evolution(
    existing: Sequence[ColumnSpec],
    incoming: Sequence[ColumnSpec],
    policy: Policy,
    *,
    table: str = "",
    text_ok: Iterable[str] = (),
) -> SchemaPlan:
    """Plan the changes that let ``incoming`` columns into a table of ``existing`` columns.

    Args:
        existing: the table's data columns, in order.
        incoming: the file's (or the batch's) columns with the types their values need.
        policy: what may change.
        table: the table's name, for messages.
        text_ok: incoming columns whose values are text by nature (may widen a column to
            ``text``); other columns needing ``text`` are conflicts (their values are bad rows).

    Returns:
        The plan.

    Raises:
        SchemaDriftError: a new column under ``fail``, or missing columns without
            ``tolerant``; every such column is named.
        TypeConflictError: a column must widen under ``on_type_change="fail"``.
    """
    by_name = {c.name: c for c in existing}
    allowed_text = set(text_ok)
    operations: list[Operation] = []
    ignored: list[str] = []
    new: list[str] = []
    conflicts: list[str] = []
    changes: list[str] = []
    for column in incoming:
        have = by_name.get(column.name)
        if have is None:
            if policy.on_new_column == "add":
                operations.append(AddColumn(column.name, column.pg_type))
            elif policy.on_new_column == "ignore":
                ignored.append(column.name)
            else:
                new.append(column.name)
            continue
        if column.name in policy.fixed:
            if widened_type(have.pg_type, column.pg_type, allow_text=False) != have.pg_type:
                conflicts.append(column.name)
            continue
        wider = widened_type(have.pg_type, column.pg_type, allow_text=column.name in allowed_text)
        if wider is None:
            conflicts.append(column.name)
        elif wider != have.pg_type:
            if policy.on_type_change == "fail":
                changes.append(f"{column.name} {have.pg_type} -> {wider}")
            else:
                operations.append(AlterType(column.name, have.pg_type, wider))
    where = f" of table {table}" if table else ""
    if new:
        raise SchemaDriftError(
            f"new column(s) {', '.join(new)} not in table{where} (--on-new-column fail)",
            table=table or None,
        )
    if changes:
        raise TypeConflictError(
            f"column type change(s){where} needed: {', '.join(changes)} (--on-type-change fail)",
            table=table or None,
        )
    names = {c.name for c in incoming}
    missing = tuple(c.name for c in existing if c.name not in names)
    if missing and not policy.tolerant:
        raise SchemaError(
            f"file lacks column(s) {', '.join(missing)}{where} (--tolerant loads them as NULL)",
            table=table or None,
        )
    return SchemaPlan(tuple(operations), tuple(ignored), missing, tuple(conflicts))


def apply_operations(
    columns: Sequence[ColumnSpec], operations: Iterable[Operation]
) -> list[ColumnSpec]:
    """The columns a table has after ``operations`` (what the DDL will make of it)."""
    out = list(columns)
    for op in operations:
        if isinstance(op, AddColumn):
            out.append(ColumnSpec(op.name, op.pg_type))
        else:
            out = [
                ColumnSpec(c.name, op.new_type, c.source_name) if c.name == op.name else c
                for c in out
            ]
    return out

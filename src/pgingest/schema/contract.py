"""Data contracts, without I/O: what a YAML contract declares per table (columns, types,
not-null, key, header aliases), and the check of a file's columns and sample against it.

A contract file::

    tables:
      events:                      # the target table (or schema.table)
        key: [id]                  # primary key, created with the table
        columns:
          id: {type: bigint, not_null: true, aliases: [ID, "Event Id"]}
          amount: numeric(12,2)    # shorthand: the type alone
          note: {type: text, required: false}

Every declared column is required unless ``required: false`` (or ``--tolerant``); a file
column the contract does not name follows ``--on-new-column``. Declared types are never widened.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgingest.errors import ConfigError, ContractError
from pgingest.schema.evolution import canonical_type, widened_type
from pgingest.schema.infer import parse_type_overrides
from pgingest.schema.names import normalize_names, validate_identifier
from pgingest.schema.pgtypes import pg_type_for_arrow
from pgingest.schema.validate import invalid_values

if TYPE_CHECKING:
    import pyarrow as pa

_EXAMPLES = 3
"""Bad values quoted per violation."""


@dataclass(frozen=True, slots=True)
class ColumnContract:
    """One declared column."""

    name: str
    pg_type: str | None = None
    not_null: bool = False
    required: bool = True
    aliases: tuple[str, ...] = ()
    """Header names (normalized) that mean this column."""


@dataclass(frozen=True, slots=True)
class TableContract:
    """What a table's files must look like."""

    table: str
    columns: tuple[ColumnContract, ...]
    key: tuple[str, ...] = ()

    @property
    def types(self) -> dict[str, str]:
        """Declared types by column."""
        return {c.name: c.pg_type for c in self.columns if c.pg_type}

    def column(self, name: str) -> ColumnContract | None:
        """The declared column ``name``."""
        return next((c for c in self.columns if c.name == name), None)

    def rename(self, names: Sequence[str]) -> list[str]:
        """The file's (normalized) column names with aliases replaced by column names."""
        alias = {a: c.name for c in self.columns for a in c.aliases}
        return [alias.get(n, n) if n not in self.types else n for n in names]


@dataclass(frozen=True, slots=True)
class Contract:
    """Every table's contract, by table name (``name`` or ``schema.name``)."""

    tables: Mapping[str, TableContract] = field(default_factory=dict)

    def for_table(self, schema: str, table: str) -> TableContract | None:
        """The contract of ``schema.table``, if any."""
        return self.tables.get(f"{schema}.{table}") or self.tables.get(table)


def _type(value: Any, where: str) -> str:
    try:
        return parse_type_overrides(f"x={value}")["x"]
    except (ConfigError, KeyError):
        raise ConfigError(f"{where}: {value!r} is not an allowed type name") from None


def parse_contract(data: Any, source: str = "contract") -> Contract:
    """Read a contract from its parsed YAML.

    Raises:
        ConfigError: the document is not a contract (every problem says where).
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("tables"), Mapping):
        raise ConfigError(f"{source}: a contract is a mapping with a 'tables' mapping")
    tables: dict[str, TableContract] = {}
    for table, spec in data["tables"].items():
        where = f"{source}: table {table}"
        if not isinstance(spec, Mapping) or not isinstance(spec.get("columns"), Mapping):
            raise ConfigError(f"{where}: needs a 'columns' mapping")
        columns = []
        for raw_name, column in spec["columns"].items():
            name = validate_identifier(str(raw_name))
            if column is None or isinstance(column, str):
                column = {"type": column}
            if not isinstance(column, Mapping):
                raise ConfigError(f"{where}: column {name}: a type or a mapping")
            unknown = set(column) - {"type", "not_null", "required", "aliases"}
            if unknown:
                raise ConfigError(f"{where}: column {name}: unknown key(s) {sorted(unknown)}")
            pg_type = column.get("type")
            aliases = column.get("aliases") or []
            if isinstance(aliases, str):
                aliases = [aliases]
            columns.append(
                ColumnContract(
                    name,
                    _type(pg_type, f"{where}: column {name}") if pg_type else None,
                    bool(column.get("not_null", False)),
                    bool(column.get("required", True)),
                    tuple(normalize_names([str(a) for a in aliases])),
                )
            )
        key = spec.get("key") or []
        if isinstance(key, str):
            key = [key]
        names = {c.name for c in columns}
        missing_key = [k for k in key if k not in names]
        if missing_key:
            raise ConfigError(f"{where}: key column(s) {missing_key} are not declared")
        tables[str(table)] = TableContract(str(table), tuple(columns), tuple(str(k) for k in key))
    return Contract(tables)


def check_contract(
    contract: TableContract,
    names: Sequence[str],
    sample: pa.Table | None,
    *,
    path: str,
    tolerant: bool = False,
    extra_fail: bool = False,
    first_line: int = 2,
) -> None:
    """Check a file against its table's contract, before anything is written.

    Args:
        contract: the table's contract.
        names: the file's column names (normalized, aliases applied).
        sample: the first rows (CSV: text; Parquet: typed) with those names, or ``None``.
        path: the file, for the message.
        tolerant: declared columns may be missing.
        extra_fail: a column the contract does not declare is a violation
            (``--on-new-column fail``).
        first_line: the file line of the sample's first row.

    Raises:
        ContractError: listing every violation.
    """
    import pyarrow.compute as pc

    violations: list[str] = []
    present = set(names)
    for column in contract.columns:
        if column.name not in present and (column.not_null or (column.required and not tolerant)):
            aliases = f" (or {', '.join(column.aliases)})" if column.aliases else ""
            violations.append(f"required column {column.name}{aliases} is missing")
    if extra_fail:
        extra = [n for n in names if contract.column(n) is None]
        if extra:
            violations.append(f"column(s) {', '.join(extra)} not in the contract")
    if sample is not None:
        for column in contract.columns:
            if column.name not in present or column.name not in sample.column_names:
                continue
            values = sample.column(column.name)
            if column.not_null and values.null_count:
                first = pc.index(pc.is_null(values), True).as_py()
                violations.append(
                    f"column {column.name} is not-null but has {values.null_count} empty"
                    f" value(s) (first at line {first_line + first})"
                )
            if column.pg_type:
                violations.extend(_type_violations(column, values, first_line))
    if violations:
        listed = "; ".join(violations)
        raise ContractError(
            f"{path}: breaks the contract of table {contract.table}: {listed}",
            table=contract.table,
            violations=violations,
        )


def _type_violations(column: ColumnContract, values: Any, first_line: int) -> list[str]:
    import pyarrow as pa
    import pyarrow.compute as pc

    declared = column.pg_type or "text"
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        incoming = pg_type_for_arrow(values.type)
        if widened_type(declared, incoming, allow_text=False) != declared and canonical_type(
            declared
        ) not in ("text", canonical_type(incoming)):
            return [f"column {column.name} is {incoming} in the file, the contract says {declared}"]
        return []
    invalid = invalid_values(values, declared)
    if invalid is None:
        return []
    bad = pc.indices_nonzero(invalid).to_pylist()
    if not bad:
        return []
    combined = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    shown = ", ".join(f"{combined[i].as_py()!r} (line {first_line + i})" for i in bad[:_EXAMPLES])
    more = f" and {len(bad) - _EXAMPLES} more" if len(bad) > _EXAMPLES else ""
    return [f"column {column.name} must be {declared}: {shown}{more}"]

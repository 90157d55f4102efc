"""Upsert, merge and replace: the key from the catalog, per-connection staging tables, and the
statements that apply a staged batch to its target (``INSERT ... ON CONFLICT``, ``MERGE``), or
swap a freshly loaded table in for the old one.

Every identifier passes :func:`~pgingest.schema.names.quote_ident`; values travel through COPY
or bound parameters only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pgingest.errors import ConfigError, SchemaError
from pgingest.pg.ddl import qualified_name, quote_ident
from pgingest.schema.names import LINEAGE_COLUMNS

STAGE_ORDINAL = "_pgingest_ord"
"""Staging column holding each row's line in its file: the last occurrence of a key wins."""
MERGE_MIN_VERSION = 150000
"""``MERGE`` arrived in PostgreSQL 15."""

# Types without an equality operator: compared by their text form in IS DISTINCT FROM.
_NO_EQUALITY = frozenset({"json", "xml", "point", "line", "lseg", "box", "path", "polygon"})


@dataclass(frozen=True, slots=True)
class Target:
    """What a staged batch is applied to, and how."""

    schema: str
    table: str
    columns: tuple[str, ...]
    """The file's columns, in file order (a subset of the table's with ``--tolerant``)."""
    types: tuple[str, ...]
    key: tuple[str, ...]
    mode: str
    """``upsert`` or ``merge``."""
    lineage: bool
    """The table has the lineage columns: an updated row gets the new file id and time."""
    indexed: bool = True
    """A unique index covers the key (merge probes it row by row)."""

    @property
    def stage(self) -> str:
        """The staging table's name: one per target and column shape, on each connection."""
        shape = "\x00".join([self.schema, self.table, *self.columns, "\x01", *self.types])
        return "pgingest_stage_" + hashlib.sha256(shape.encode()).hexdigest()[:16]

    @property
    def copy_columns(self) -> list[str]:
        """The columns COPY fills in the staging table."""
        return [*self.columns, STAGE_ORDINAL]


def check_merge_supported(server_version_num: int) -> None:
    """Refuse ``--mode merge`` on a server without ``MERGE``.

    Raises:
        ConfigError: the server is older than PostgreSQL 15.
    """
    if server_version_num < MERGE_MIN_VERSION:
        major = server_version_num // 10000
        raise ConfigError(
            f"--mode merge needs PostgreSQL 15 or newer (MERGE); this server is {major}."
            " Use --mode upsert (INSERT ... ON CONFLICT) instead"
        )


async def unique_keys(conn: Any, schema: str, table: str) -> list[tuple[str, tuple[str, ...]]]:
    """The table's usable unique keys, best first: primary key, unique constraints, unique
    indexes (non-partial, on plain columns), each as (index name, columns in index order)."""
    rows = await conn.fetch(
        """
        SELECT ic.relname AS name, i.indisprimary AS is_primary,
               EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid) AS is_con,
               array_agg(a.attname::text ORDER BY k.ord) AS cols
        FROM pg_index i
        JOIN pg_class c ON c.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_class ic ON ic.oid = i.indexrelid
        CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
        WHERE n.nspname = $1 AND c.relname = $2 AND i.indisunique AND i.indisvalid
          AND i.indpred IS NULL AND i.indexprs IS NULL AND k.ord <= i.indnkeyatts
        GROUP BY ic.relname, i.indisprimary, i.indexrelid
        ORDER BY i.indisprimary DESC, 3 DESC, ic.relname
        """,
        schema,
        table,
    )
    return [(r["name"], tuple(r["cols"])) for r in rows]


async def resolve_key(
    conn: Any, schema: str, table: str, pk: Sequence[str] | None, mode: str, exists: bool
) -> tuple[str, ...]:
    """The key of an upsert or merge into ``schema.table``.

    ``pk`` (``--pk``) wins; else the table's primary key, else its first unique constraint or
    index. Upsert needs a unique index on exactly the key (``ON CONFLICT`` infers its arbiter
    from it); a table that does not exist yet is created with ``PRIMARY KEY (pk)``.

    Raises:
        ConfigError: no key given or found, or ``--pk`` matches no unique index (upsert).
    """
    name = f"{schema}.{table}"
    if not exists:
        if not pk:
            raise ConfigError(
                f"--mode {mode} into new table {name} needs its key: give --pk col[,col]"
            )
        return tuple(pk)
    found = await unique_keys(conn, schema, table)
    if pk:
        wanted = tuple(pk)
        if mode == "upsert" and not any(set(cols) == set(wanted) for _, cols in found):
            have = "; ".join(f"{n} ({', '.join(c)})" for n, c in found) or "none"
            raise ConfigError(
                f"--mode upsert on ({', '.join(wanted)}) needs a primary key, unique constraint"
                f" or unique index on exactly those columns of {name} (ON CONFLICT uses it);"
                f" unique keys of the table: {have}"
            )
        return wanted
    if not found:
        raise ConfigError(
            f"--mode {mode} into {name} needs a key: the table has no primary key or unique"
            " constraint; give --pk col[,col] (or add a primary key to the table)"
        )
    return found[0][1]


async def has_key_index(conn: Any, schema: str, table: str, key: Sequence[str]) -> bool:
    """Whether a unique index of the table is on exactly the key's columns."""
    return any(set(cols) == set(key) for _, cols in await unique_keys(conn, schema, table))


def check_key_columns(path: str, key: Sequence[str], columns: Sequence[str], table: str) -> None:
    """Every key column must be among the file's columns (checked before anything is written).

    Raises:
        SchemaError: naming the missing key column(s).
    """
    missing = [k for k in key if k not in columns]
    if missing:
        raise SchemaError(
            f"{path}: key column(s) {', '.join(missing)} of {table} not in the file"
            f" (columns: {', '.join(columns)})",
            table=table,
        )


def primary_key_sql(key: Sequence[str]) -> str:
    """``PRIMARY KEY (...)`` for ``CREATE TABLE`` of a new upsert target."""
    return f"PRIMARY KEY ({', '.join(quote_ident(k) for k in key)})"


async def ensure_stage(conn: Any, target: Target) -> None:
    """Create the connection's temporary staging table for ``target`` unless it exists.

    Typed like the target's columns (no constraints), plus the ordinal; ``ON COMMIT DELETE
    ROWS`` empties it when the batch's transaction commits, so it is created once per
    connection and reused by every batch.
    """
    cols = ", ".join(quote_ident(c) for c in target.columns)
    await conn.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {quote_ident(target.stage)} ON COMMIT DELETE ROWS AS"
        f" SELECT {cols}, NULL::bigint AS {quote_ident(STAGE_ORDINAL)}"
        f" FROM {qualified_name(target.schema, target.table)} WITH NO DATA"
    )


def _source_sql(target: Target, dedup: bool) -> str:
    """The staged rows; with ``dedup`` only the last occurrence of each key (by ordinal)."""
    cols = ", ".join(quote_ident(c) for c in target.columns)
    stage = f"pg_temp.{quote_ident(target.stage)}"
    if not dedup:
        return f"SELECT {cols} FROM {stage}"
    keys = ", ".join(quote_ident(k) for k in target.key)
    return (
        f"SELECT DISTINCT ON ({keys}) {cols} FROM {stage}"
        f" ORDER BY {keys}, {quote_ident(STAGE_ORDINAL)} DESC"
    )


def _compared(alias: str, column: str, pg_type: str) -> str:
    ref = f"{alias}.{quote_ident(column)}"
    return f"{ref}::text" if pg_type.split("(")[0].strip() in _NO_EQUALITY else ref


def _rest(target: Target) -> list[tuple[str, str]]:
    """The non-key columns of the file, with their types."""
    pairs = zip(target.columns, target.types, strict=True)
    return [(c, t) for c, t in pairs if c not in target.key]


def upsert_sql(target: Target, dedup: bool) -> str:
    """``INSERT ... SELECT ... ON CONFLICT (key) DO UPDATE``: rows whose values are unchanged
    are not rewritten (no dead tuple, no WAL for them).

    Unchanged rows are filtered out before the insert by a plain read of the key's index:
    ``ON CONFLICT ... DO UPDATE ... WHERE`` alone would still lock each of them, which
    writes its page and a WAL record (measured: 538 MB of WAL instead of 314 MB for
    BASELINE.md's upsert, where half the rows are unchanged).
    """
    name = qualified_name(target.schema, target.table)
    cols = ", ".join(quote_ident(c) for c in target.columns)
    keys = ", ".join(quote_ident(k) for k in target.key)
    rest = _rest(target)
    if not rest:
        return (
            f"INSERT INTO {name} AS t ({cols}) {_source_sql(target, dedup)}"
            f" ON CONFLICT ({keys}) DO NOTHING"
        )
    match = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in target.key)
    unchanged = (
        f"ROW({', '.join(_compared('t', c, ty) for c, ty in rest)}) IS NOT DISTINCT FROM"
        f" ROW({', '.join(_compared('s', c, ty) for c, ty in rest)})"
    )
    changed_only = (
        f"SELECT {', '.join('s.' + quote_ident(c) for c in target.columns)}"
        f" FROM ({_source_sql(target, dedup)}) AS s"
        f" WHERE NOT EXISTS (SELECT 1 FROM {name} AS t WHERE {match} AND {unchanged})"
    )
    head = f"INSERT INTO {name} AS t ({cols}) {changed_only} ON CONFLICT ({keys})"
    sets = [f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c, _ in rest]
    if target.lineage:
        sets += [f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in LINEAGE_COLUMNS]
    old = ", ".join(_compared("t", c, ty) for c, ty in rest)
    new = ", ".join(_compared("EXCLUDED", c, ty) for c, ty in rest)
    return f"{head} DO UPDATE SET {', '.join(sets)} WHERE ROW({old}) IS DISTINCT FROM ROW({new})"


def merge_sql(target: Target, dedup: bool) -> str:
    """``MERGE INTO ... USING`` the staged rows: update changed rows, insert new ones."""
    name = qualified_name(target.schema, target.table)
    on = " AND ".join(f"t.{quote_ident(k)} = s.{quote_ident(k)}" for k in target.key)
    rest = _rest(target)
    cols = ", ".join(quote_ident(c) for c in target.columns)
    values = ", ".join(f"s.{quote_ident(c)}" for c in target.columns)
    sql = f"MERGE INTO {name} AS t USING ({_source_sql(target, dedup)}) AS s ON {on}"
    if rest:
        sets = [f"{quote_ident(c)} = s.{quote_ident(c)}" for c, _ in rest]
        if target.lineage:
            sets += [f"{quote_ident(c)} = DEFAULT" for c in LINEAGE_COLUMNS]
        old = ", ".join(_compared("t", c, ty) for c, ty in rest)
        new = ", ".join(_compared("s", c, ty) for c, ty in rest)
        sql += (
            f" WHEN MATCHED AND ROW({old}) IS DISTINCT FROM ROW({new})"
            f" THEN UPDATE SET {', '.join(sets)}"
        )
    return f"{sql} WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"


async def apply_stage(conn: Any, target: Target, dedup: bool, seen: str | None = None) -> int:
    """Inside the batch's transaction: apply the staged rows to the target; return the rows
    inserted or changed. ``dedup`` when the batch may repeat a key (the last one wins).
    ``seen`` (merge ``--delete-missing``): the file's key table, which gets the batch's keys."""
    if target.mode == "merge":
        if target.indexed:
            # Staging holds a batch, the target may hold millions: probe the key's index per
            # row instead of hashing the whole target (the stage has no statistics).
            await conn.execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
        status = await conn.execute(merge_sql(target, dedup))
    else:
        # The unchanged-row filter probes the key's index row by row (see upsert_sql).
        status = await conn.execute(
            "SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off; "
            + upsert_sql(target, dedup)
        )
    if seen is not None:
        keys = ", ".join(quote_ident(k) for k in target.key)
        await conn.execute(
            f"INSERT INTO pgingest.{quote_ident(seen)} ({keys})"
            f" SELECT {keys} FROM pg_temp.{quote_ident(target.stage)}"
        )
    return int(status.split()[-1]) if status else 0


async def clear_stage(conn: Any, target: Target) -> None:
    """Empty the staging table inside a transaction that stages another batch next."""
    await conn.execute(f"TRUNCATE pg_temp.{quote_ident(target.stage)}")


def seen_table(file_id: int) -> str:
    """The name (in schema ``pgingest``) of a ``--delete-missing`` file's key table."""
    return f"merge_keys_{int(file_id)}"


async def prepare_seen(conn: Any, target: Target, file_id: int, fresh: bool) -> str:
    """Create the file's key table (unlogged, in ``pgingest``); ``fresh`` empties it (a new
    attempt, no committed batch: keys of rolled-back attempts must not count)."""
    name = seen_table(file_id)
    keys = ", ".join(quote_ident(k) for k in target.key)
    await conn.execute(
        f"CREATE UNLOGGED TABLE IF NOT EXISTS pgingest.{quote_ident(name)} AS"
        f" SELECT {keys} FROM {qualified_name(target.schema, target.table)} WITH NO DATA"
    )
    if fresh:
        await conn.execute(f"TRUNCATE pgingest.{quote_ident(name)}")
    return name


async def delete_missing(conn: Any, target: Target, file_id: int) -> int:
    """Delete the target rows inside the file's key range (its smallest to its largest key,
    composite keys compared as rows) whose key the file does not hold; drop the key table.

    Returns:
        The rows deleted.
    """
    name = f"pgingest.{quote_ident(seen_table(file_id))}"
    keys = [quote_ident(k) for k in target.key]
    row_t = f"({', '.join('t.' + k for k in keys)})"
    asc = ", ".join(keys)
    desc = ", ".join(f"{k} DESC" for k in keys)
    match = " AND ".join(f"s.{k} = t.{k}" for k in keys)
    async with conn.transaction():
        await conn.execute(f"ANALYZE {name}")
        status = await conn.execute(
            f"DELETE FROM {qualified_name(target.schema, target.table)} AS t"
            f" WHERE {row_t} >= (SELECT {asc} FROM {name} ORDER BY {asc} LIMIT 1)"
            f" AND {row_t} <= (SELECT {asc} FROM {name} ORDER BY {desc} LIMIT 1)"
            f" AND NOT EXISTS (SELECT 1 FROM {name} AS s WHERE {match})"
        )
        await conn.execute(f"DROP TABLE {name}")
    return int(status.split()[-1]) if status else 0


# -- replace ---------------------------------------------------------------------------------


def replacement_name(table: str, run_id: int) -> str:
    """The name the new content is loaded under before it is swapped in."""
    suffix = f"__pgingest_new_{int(run_id)}"
    return table[: 63 - len(suffix)] + suffix


async def create_replacement(conn: Any, schema: str, table: str, new: str) -> bool:
    """Create the empty table ``new`` shaped like ``schema.table`` (columns, defaults, NOT NULL,
    CHECK constraints, indexes, identity, storage, comments); False when there is no old
    table (the first file then creates ``new`` from its own columns).

    Raises:
        ConfigError: other objects depend on the old table (views, foreign keys pointing at
            it): swapping it would leave them on the old one.
    """
    old = qualified_name(schema, table)
    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", old):
        return False
    dependents = await conn.fetch(
        """
        SELECT DISTINCT v.oid::regclass::text AS name FROM pg_depend d
        JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
        WHERE d.refobjid = $1::regclass AND v.oid <> $1::regclass
        UNION
        SELECT conrelid::regclass::text FROM pg_constraint
        WHERE confrelid = $1::regclass AND contype = 'f' AND conrelid <> $1::regclass
        """,
        old,
    )
    if dependents:
        names = ", ".join(r["name"] for r in dependents)
        raise ConfigError(
            f"--mode replace cannot swap {schema}.{table}: {names} depend(s) on it and would"
            " keep pointing at the old table; load with --mode append into a truncated table"
        )
    await conn.execute(f"DROP TABLE IF EXISTS {qualified_name(schema, new)}")
    await conn.execute(f"CREATE TABLE {qualified_name(schema, new)} (LIKE {old} INCLUDING ALL)")
    return True


async def table_exists(conn: Any, schema: str, table: str) -> bool:
    """Whether ``schema.table`` exists."""
    return bool(
        await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", qualified_name(schema, table))
    )


async def set_lock_timeout(conn: Any, seconds: float) -> None:
    """Inside a transaction: wait at most ``seconds`` for any lock it asks for (then the
    statement fails with ``lock_not_available``)."""
    await conn.execute(
        "SELECT set_config('lock_timeout', $1, true)", f"{max(1, round(seconds * 1000))}ms"
    )


async def lock_holders(conn: Any, schema: str, table: str) -> list[str]:
    """Other sessions holding a lock on the table now, as ``pid N (state, since HH:MM:SS)``:
    what a swap that could not get its lock waited for."""
    rows = await conn.fetch(
        "SELECT DISTINCT l.pid, a.state, to_char(a.xact_start, 'HH24:MI:SS') AS since"
        " FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.relation = to_regclass($1) AND l.granted AND l.pid <> pg_backend_pid()"
        " ORDER BY l.pid",
        qualified_name(schema, table),
    )
    described = []
    for r in rows:
        since = f", since {r['since']}" if r["since"] else ""
        described.append(f"pid {r['pid']} ({r['state'] or 'unknown'}{since})")
    return described


async def swap_in(conn: Any, schema: str, table: str, new: str) -> None:
    """Inside the caller's transaction: put ``new`` in the place of ``schema.table``, so that
    readers see the old table or the new one, never a half-loaded one. The old table is
    locked first (the caller's ``lock_timeout`` bounds that wait); its grants, owner, foreign
    keys and triggers are carried over, its index names kept; then it is dropped."""
    old = qualified_name(schema, table)
    fresh = qualified_name(schema, new)
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", old)
    if not exists:
        await conn.execute(f"ALTER TABLE {fresh} RENAME TO {quote_ident(table)}")
        return
    await conn.execute(f"LOCK TABLE {old} IN ACCESS EXCLUSIVE MODE")
    grants = await conn.fetch(
        """
        SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END
               AS grantee, a.privilege_type, a.is_grantable
        FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.oid = $1::regclass AND a.grantee <> c.relowner
        """,
        old,
    )
    owner = await conn.fetchval(
        "SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = $1::regclass", old
    )
    foreign = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE conrelid = $1::regclass AND contype = 'f' ORDER BY conname",
        old,
    )
    triggers = await conn.fetch(
        "SELECT tgname, pg_get_triggerdef(oid) AS def FROM pg_trigger"
        " WHERE tgrelid = $1::regclass AND NOT tgisinternal ORDER BY tgname",
        old,
    )
    indexes = await conn.fetch(
        "SELECT indexrelid::regclass::text AS qname, c.relname AS name FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = $1::regclass"
        " ORDER BY i.indexrelid",
        old,
    )
    new_indexes = await conn.fetch(
        "SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = $1::regclass ORDER BY i.indexrelid",
        fresh,
    )
    for row in foreign:
        # pg_get_constraintdef gives a definition the server itself wrote.
        await conn.execute(
            f"ALTER TABLE {fresh} ADD CONSTRAINT {quote_ident(row['conname'])} {row['def']}"
        )
    await conn.execute(f"DROP TABLE {old}")
    await conn.execute(f"ALTER TABLE {fresh} RENAME TO {quote_ident(table)}")
    for row in triggers:
        # The server's own definition names the old table by OID-resolved name: the new
        # table has that name now.
        await conn.execute(row["def"])
    if len(indexes) == len(new_indexes):
        for old_index, new_index in zip(indexes, new_indexes, strict=True):
            if old_index["name"] != new_index["name"]:
                await conn.execute(
                    f"ALTER INDEX {qualified_name(schema, new_index['name'])}"
                    f" RENAME TO {quote_ident(old_index['name'])}"
                )
    current = await conn.fetchval("SELECT current_user")
    if owner and owner != current:
        await conn.execute(f"ALTER TABLE {old} OWNER TO {quote_ident(owner)}")
    allowed = {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
    for row in grants:
        privilege = row["privilege_type"]
        if privilege not in allowed:
            continue
        who = "PUBLIC" if row["grantee"] == "PUBLIC" else quote_ident(row["grantee"])
        option = " WITH GRANT OPTION" if row["is_grantable"] else ""
        await conn.execute(f"GRANT {privilege} ON {old} TO {who}{option}")


async def drop_replacement(conn: Any, schema: str, new: str) -> None:
    """Drop the new table of a replace given up (a file failed, or a later run starts the
    replace over)."""
    await conn.execute(f"DROP TABLE IF EXISTS {qualified_name(schema, new)}")

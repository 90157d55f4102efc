"""Citus targets on a real PostgreSQL. Without Citus nothing changes (one query says it is
absent). With Citus's catalog emulated in a database of its own (``pg_dist_partition`` and
``column_to_column_name`` as Citus defines them, and the extension's version query answered),
the real upsert, merge and replace runs refuse what Citus would refuse, naming why."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

import pgingest
from integrity import csv_of, fresh_database
from pgingest.pg import citus

EMULATED_CATALOG = """
CREATE TABLE public.pg_dist_partition (
    logicalrelid regclass NOT NULL, partmethod "char" NOT NULL, partkey text,
    colocationid integer NOT NULL DEFAULT 0, repmodel "char" NOT NULL DEFAULT 's');
-- Citus's partkey is a Var node's text; here it is simply the column's name.
CREATE FUNCTION public.column_to_column_name(regclass, text) RETURNS text
    LANGUAGE sql AS $$ SELECT $2 $$;
"""


async def _distribution(dsn: str, table: str) -> citus.Distribution | None:
    conn = await asyncpg.connect(dsn)
    try:
        return await citus.table_distribution(conn, "public", table)
    finally:
        await conn.close()


def test_without_citus_tables_are_plain_and_keyed_loads_unchanged(tmp_path, load, db):
    src = csv_of(tmp_path / "a.csv", range(5))
    assert load(src, table="k").ok
    assert asyncio.run(_distribution(db.dsn, "k")) is None  # public.k need not exist either
    # The second upsert and the merge find the table there: its distribution is asked.
    for mode in ("upsert", "upsert", "merge"):
        report = load(src, table="u", mode=mode, pk="id")
        assert report.ok, report.files
    assert load(src, table="k", mode="replace").ok
    assert db.count("k") == 5
    assert db.count("u") == 5


def test_an_emulated_citus_catalog_refuses_what_citus_would(tmp_path, pg_dsn, monkeypatch):
    src = csv_of(tmp_path / "a.csv", range(5))
    with fresh_database(pg_dsn) as dsn:

        async def setup() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(EMULATED_CATALOG)
            finally:
                await conn.close()

        asyncio.run(setup())
        for table in ("events", "tenants", "plain"):
            # Made by an upsert: each has a unique key on id (that is not what Citus checks).
            report = pgingest.load([src], dsn=dsn, table=table, mode="upsert", pk="id")
            assert report.ok, report.files

        async def distribute() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute(
                    "INSERT INTO public.pg_dist_partition (logicalrelid, partmethod, partkey,"
                    " repmodel) VALUES ('public.events', 'h', 'name', 's'),"
                    " ('public.tenants', 'n', NULL, 't')"
                )
            finally:
                await conn.close()

        asyncio.run(distribute())
        # Citus is "installed": its version query answers (the catalog is the emulated one).
        monkeypatch.setattr(citus, "CITUS_VERSION", "SELECT '12.1'::text")
        assert asyncio.run(_distribution(dsn, "events")) == citus.Distribution(
            "distributed", "name"
        )
        assert asyncio.run(_distribution(dsn, "tenants")) == citus.Distribution("reference")
        assert asyncio.run(_distribution(dsn, "plain")) is None
        for mode in ("upsert", "merge"):
            report = pgingest.load([src], dsn=dsn, table="events", mode=mode, pk="id")
            (result,) = report.files
            assert result.status == "failed"
            assert "a Citus distributed table (distribution column name)" in (result.error or "")
            assert "--pk name,id" in (result.error or "")
            # The reference table and the plain one take any key.
            for table in ("tenants", "plain"):
                assert pgingest.load([src], dsn=dsn, table=table, mode=mode, pk="id").ok
        report = pgingest.load([src], dsn=dsn, table="events", mode="replace")
        (result,) = report.files
        assert result.status == "failed"
        assert "--mode replace refuses public.events: it is a Citus distributed" in (
            result.error or ""
        )
        (result,) = pgingest.load([src], dsn=dsn, table="tenants", mode="replace").files
        assert "Citus reference table" in (result.error or "")
        assert pgingest.load([src], dsn=dsn, table="plain", mode="replace").ok

        # A key that holds the distribution column is Citus's to enforce: not refused here.
        async def unique() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                await conn.execute("CREATE UNIQUE INDEX ON public.events (name, id)")
            finally:
                await conn.close()

        asyncio.run(unique())
        assert pgingest.load([src], dsn=dsn, table="events", mode="upsert", pk="name,id").ok


@pytest.mark.parametrize("table", ["missing"])
def test_a_table_not_there_yet_has_no_distribution(db, table):
    assert asyncio.run(_distribution(db.dsn, table)) is None

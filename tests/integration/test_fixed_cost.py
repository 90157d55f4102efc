"""The fixed cost of a load (issue 15): a small plain CSV file loads, into a new table and into
an existing one, in a process that never imports pyarrow, numpy or the other heavy modules;
a file the small reader declines still loads, through the full reader (which does import them,
so the check below sees imports when they happen)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from conftest import fetch

HEAVY = ("pyarrow", "numpy", "pgpq", "rich", "prometheus_client", "obstore", "yaml", "fastexcel")
UNNEEDED = (
    *HEAVY,
    "platformdirs",  # the embedded server's data directory: not with a DSN
    "pgingest.sources.workbook",  # workbooks' sheets and their XML parsers
    "xml.etree.ElementTree",
    "pgingest.schema.contract",  # --contract
    "pgingest.config_file",  # --config
)
"""What a small plain CSV's load never imports: each costs the fixed cost milliseconds."""

_RUN = """
import atexit, json, sys
heavy, out = json.loads(sys.argv[1]), sys.argv[2]
def dump():
    with open(out, "w") as f:
        json.dump(sorted(m for m in heavy if m in sys.modules), f)
atexit.register(dump)
from pgingest.cli.app import main
main(sys.argv[3:])
"""


def heavy_imports(tmp_path: Path, db, *args: str) -> list[str]:
    """Run ``pgingest load ARGS`` in a process of its own; the modules of :data:`UNNEEDED`
    it imported."""
    out = tmp_path / "modules.json"
    command = ["load", *args, "--dsn", db.dsn, "--schema", db.schema]
    done = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(UNNEEDED), str(out), *command],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return list(json.loads(out.read_text()))


def test_a_small_csv_loads_without_pyarrow_or_numpy(tmp_path, db):
    first = tmp_path / "first.csv"
    first.write_text('id,name,day,ok\n1,"Smith, J",2026-01-02,true\n2,,2026-01-03,false\n')
    assert heavy_imports(tmp_path, db, str(first), "--table", "t") == []
    assert db.types("t") == {"id": "integer", "name": "text", "day": "date", "ok": "boolean"}
    assert db.rows("t", "id") == [
        (1, "Smith, J", dt.date(2026, 1, 2), True),
        (2, None, dt.date(2026, 1, 3), False),
    ]
    second = tmp_path / "second.csv"
    second.write_text('id,name,day,ok\n3,"",2026-01-04,t\n')
    assert heavy_imports(tmp_path, db, str(second), "--table", "t") == []  # existing table
    assert heavy_imports(tmp_path, db, str(second), "--table", "t", "--force") == []
    assert db.val(f'SELECT name FROM "{db.schema}".t WHERE id = 3') == ""
    assert db.count("t") == 3  # --force: the file's rows replaced by themselves


def test_a_file_the_small_reader_declines_loads_through_the_full_one(tmp_path, db):
    src = tmp_path / "stray.csv"
    src.write_bytes(b'id,size\n1,5" pipe\n2,x\n')  # a quote COPY would open a field at
    assert "pyarrow" in heavy_imports(tmp_path, db, str(src), "--table", "s")
    assert db.rows("s", "id") == [(1, '5" pipe'), (2, "x")]


def test_a_small_load_never_has_the_driver_look_types_up(tmp_path, load, db, monkeypatch):
    # An array in a statement's parameters or reply has the driver look its type up in the
    # catalog, once per new connection: three more statements, ~10 ms of a one-row load.
    # (A spy on the driver's lookup: it still runs; the test counts it.)
    looked_up: list[object] = []
    lookup = asyncpg.Connection._introspect_types

    async def spy(self, typeoids, *args):
        looked_up.append(sorted(typeoids))
        return await lookup(self, typeoids, *args)

    monkeypatch.setattr(asyncpg.Connection, "_introspect_types", spy)
    first = tmp_path / "first.csv"
    first.write_text("id,name\n1,a\n")
    assert load(first, table="t").ok  # a new table
    second = tmp_path / "second.csv"
    second.write_text("id,name\n2,b\n")
    assert load(second, table="t").ok  # an existing one
    forced = load(second, table="t", force=True)  # replaces its earlier load
    assert forced.ok
    assert forced.files[0].status == "loaded"
    assert db.rows("t", "id") == [(1, "a"), (2, "b")]
    assert looked_up == []


def test_the_manifest_is_created_in_a_few_round_trips(tmp_path, pg_dsn):
    # Its ~40 statements go as one script, in the transaction that creates it; a manifest
    # that is there and current costs two statements.
    from integrity import fresh_database
    from pgingest.manifest.schema import SCHEMA_VERSION, ensure_manifest

    async def ensure(dsn: str) -> list[str]:
        conn = await asyncpg.connect(dsn)
        queries: list[str] = []
        conn.add_query_logger(lambda record: queries.append(record.query))
        try:
            await ensure_manifest(conn)
        finally:
            await conn.close()
        return queries

    with fresh_database(pg_dsn) as dsn:
        created = asyncio.run(ensure(dsn))  # BEGIN, its checks, the script, COMMIT
        assert len(created) <= 8, created
        current = asyncio.run(ensure(dsn))
        assert len(current) == 2, current
        version = fetch(dsn, "SELECT max(version) FROM pgingest.version")[0][0]
        assert version == SCHEMA_VERSION
        src = tmp_path / "a.csv"
        src.write_text("id\n1\n2\n")
        done = subprocess.run(
            [sys.executable, "-m", "pgingest", "load", str(src), "--dsn", dsn, "--table", "t"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert fetch(dsn, "SELECT count(*) FROM t")[0][0] == 2


def test_a_one_row_load_into_an_existing_table_is_a_few_statements(tmp_path, load, db, monkeypatch):
    # Each statement is a round trip (and server work): the run's start and end, the file's
    # claim, columns, COPY with its batch record, completion, the ANALYZE of a table that
    # changed much. A connection that holds nothing of the load goes back to the pool
    # without the reset's round trip: only the run's own (its lock) is reset.
    first = tmp_path / "first.csv"
    first.write_text("id,name\n1,a\n")
    assert load(first, table="t").ok
    queries: list[str] = []
    init = asyncpg.Connection.__init__

    def spy(self, *args, **kwargs):  # every connection's statements, as sent
        init(self, *args, **kwargs)
        self.add_query_logger(lambda record: queries.append(" ".join(record.query.split())))

    monkeypatch.setattr(asyncpg.Connection, "__init__", spy)
    second = tmp_path / "second.csv"
    second.write_text("id,name\n2,b\n")
    assert load(second, table="t").ok
    sent = list(queries)
    listed = "\n".join(sent)
    assert len(sent) <= 15, listed
    assert sum(q.startswith("SELECT pg_advisory_unlock_all()") for q in sent) == 1, listed
    assert db.rows("t", "id") == [(1, "a"), (2, "b")]


@pytest.mark.parametrize("args", [["--help"], ["load", "--help"], ["status", "--help"]])
def test_help_needs_no_event_loop_nor_driver(tmp_path, args):
    out = tmp_path / "modules.json"
    unneeded = [*UNNEEDED, "asyncio", "asyncpg", "uvloop", "pgingest.pipeline.run"]
    done = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(unneeded), str(out), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Usage:" in done.stdout
    assert json.loads(out.read_text()) == []

"""Security: hostile identifiers cannot inject SQL, a DSN's password leaks nowhere, and a load
runs as a role with the least privileges the README lists."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

HOSTILE = 'x"; DROP TABLE t; --'
PASSWORD = "S3cret-PW-4711"  # noqa: S105 - the secret the test looks for in every output


def pgingest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgingest", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def with_user(dsn: str, user: str, password: str | None = None) -> str:
    """The DSN with another user (and password) in it."""
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    auth = f"{user}:{password}" if password else user
    return urlunsplit((parts.scheme, f"{auth}@{host}", parts.path, parts.query, parts.fragment))


def test_hostile_header_table_and_schema_names_are_only_names(tmp_path, db):
    db.execute(f'CREATE TABLE "{db.schema}".t (id int)')
    src = tmp_path / "data.csv"
    src.write_text(f'id,"{HOSTILE.replace(chr(34), chr(34) * 2)}"\n1,a\n2,b\n')
    done = pgingest("load", "--dsn", db.dsn, "--schema", db.schema, str(src), "--table", HOSTILE)
    assert done.returncode == 0, done.stderr
    assert db.val("SELECT to_regclass($1) IS NOT NULL", f'"{db.schema}".t')  # still there
    columns = [
        r["column_name"]
        for r in db.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            db.schema,
            HOSTILE,
        )
    ]
    assert columns[:2] == ["id", "x_drop_table_t"]
    assert (
        db.val(f'SELECT count(*) FROM "{db.schema}"."{HOSTILE.replace(chr(34), chr(34) * 2)}"') == 2
    )

    hostile_schema = f"s{uuid.uuid4().hex[:6]}{HOSTILE}"
    quoted = '"' + hostile_schema.replace('"', '""') + '"'
    done = pgingest("load", "--dsn", db.dsn, "--schema", hostile_schema, str(src), "--table", "t")
    try:
        assert done.returncode == 0, done.stderr
        assert db.val(f"SELECT count(*) FROM {quoted}.t") == 2
        assert db.val("SELECT to_regclass($1) IS NOT NULL", f'"{db.schema}".t')
        status = pgingest("status", "--dsn", db.dsn, "--json", "--table", f"{hostile_schema}.t")
        assert status.returncode == 0, status.stderr
        json.loads(status.stdout)
    finally:
        db.execute(f"DROP SCHEMA IF EXISTS {quoted} CASCADE")


def test_password_appears_in_no_output_of_a_failing_run(tmp_path, db):
    dsn = with_user(db.dsn, urlsplit(db.dsn).username or "postgres", PASSWORD)
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,a\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,a\n")
    outputs: list[str] = []
    first = pgingest("load", "--dsn", dsn, "--schema", db.schema, str(good), "--table", "pw")
    assert first.returncode == 0, first.stderr
    bad.write_text("id,name\nnot a number,a\n")  # the table's id is integer: this file fails
    log_file = tmp_path / "log.json"
    metrics = tmp_path / "m.prom"
    failing = pgingest(
        "--debug",
        "load",
        "--dsn",
        dsn,
        "--schema",
        db.schema,
        str(bad),
        "--table",
        "pw",
        "--on-type-change",
        "fail",
        "-v",
        "--log-format",
        "json",
        "--log-file",
        str(log_file),
        "--metrics-file",
        str(metrics),
    )
    assert failing.returncode == 1
    unreachable = "postgresql://postgres:" + PASSWORD + "@127.0.0.1:1/nowhere"
    refused = pgingest(
        "load",
        "--dsn",
        unreachable,
        str(good),
        "--max-retries",
        "1",
        "--retry-base",
        "0.01",
        "--log-format",
        "json",
    )
    assert refused.returncode != 0
    assert "***" in refused.stderr
    env_run = pgingest(
        "load",
        str(good),
        "--schema",
        db.schema,
        "--table",
        "pw2",
        env={**_environ(), "DATABASE_URL": dsn},
    )
    assert env_run.returncode == 0, env_run.stderr
    status = pgingest("status", "--dsn", dsn)
    status_json = pgingest("status", "--dsn", dsn, "--json")
    for done in (first, failing, refused, env_run, status, status_json):
        outputs += [done.stdout, done.stderr]
    outputs += [log_file.read_text(), metrics.read_text()]
    assert "failed" in log_file.read_text()
    manifest = db.fetch(
        "SELECT options::text AS o, coalesce(error, '') AS e FROM pgingest.runs r"
        " LEFT JOIN pgingest.files f ON f.run_id = r.id"
    )
    outputs += [r["o"] + r["e"] for r in manifest]
    leaks = [text for text in outputs if PASSWORD in text]
    assert not leaks


def _environ() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGINGEST_DSN")}


def test_load_as_a_least_privileged_role(tmp_path, db):
    """The README's least privileges: CONNECT; USAGE + CREATE on the target schema; on the
    bookkeeping schema (bootstrapped once by an owner) USAGE and row privileges; on an existing
    table owned by someone else, SELECT, INSERT and DELETE. No superuser, no ownership."""
    role = f"loader_{uuid.uuid4().hex[:8]}"
    schema = db.schema
    # The bookkeeping schema exists once an owner ran pgingest (here: the test's superuser).
    seed = tmp_path / "seed.csv"
    seed.write_text("id\n1\n")
    assert pgingest("load", "--dsn", db.dsn, "--schema", schema, str(seed)).returncode == 0
    db.execute(f'CREATE TABLE "{schema}".owned_by_admin (id int, name text)')
    statements = [
        f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE",
        # quoted: a database name may hold a dash
        f'GRANT CONNECT ON DATABASE "{db.val("SELECT current_database()")}" TO {role}',
        f'GRANT USAGE, CREATE ON SCHEMA "{schema}" TO {role}',
        f"GRANT USAGE ON SCHEMA pgingest TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgingest TO {role}",
        f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgingest TO {role}",
        f'GRANT SELECT, INSERT, DELETE ON "{schema}".owned_by_admin TO {role}',
    ]
    try:
        for statement in statements:
            db.execute(statement)
        # Lineage columns on the admin's table are added once by its owner (ALTER needs it).
        admin_file = tmp_path / "owned_by_admin.csv"
        admin_file.write_text("id,name\n0,zero\n")
        first = pgingest("load", "--dsn", db.dsn, "--schema", schema, str(admin_file))
        assert first.returncode == 0, first.stderr
        dsn = with_user(db.dsn, role)
        assert db.val("SELECT rolsuper FROM pg_roles WHERE rolname = $1", role) is False
        new_table = tmp_path / "loader_made.csv"
        new_table.write_text("id,name\n1,a\n2,b\n")
        existing = tmp_path / "more.csv"
        existing.write_text("id,name\n1,one\n2,two\n")
        done = pgingest(
            "load",
            "--dsn",
            dsn,
            "--schema",
            schema,
            str(new_table),
            str(existing),
            "--table",
            "owned_by_admin",
            "-v",
        )
        assert done.returncode == 0, done.stderr
        # ANALYZE needs the owner (or MAINTAIN): the admin's table is left to autovacuum,
        # said in the log only; the table the loader made (and owns) is analyzed.
        assert "warning" not in done.stderr.lower()
        assert "owned_by_admin: not analyzed: only its owner (or MAINTAIN) may" in done.stderr
        assert analyze_count(db, "owned_by_admin") == 1  # its owner's first load only
        made = pgingest("load", "--dsn", dsn, "--schema", schema, str(new_table))
        assert made.returncode == 0, made.stderr
        assert analyze_count(db, "loader_made") == 1
        assert db.count("owned_by_admin") == 5
        assert db.count("loader_made") == 2
        reverted = pgingest("revert", "--dsn", dsn, "--file", str(existing))
        assert reverted.returncode == 0, reverted.stderr
        assert db.count("owned_by_admin") == 3
        owned = db.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = $1 AND c.relkind = 'r'",
            role,
        )
        assert [r["relname"] for r in owned] == ["loader_made"]
    finally:
        db.execute(f'DROP TABLE IF EXISTS "{schema}".loader_made')
        db.execute(f"DROP OWNED BY {role}")
        db.execute(f"DROP ROLE IF EXISTS {role}")


def analyze_count(db, table: str) -> int:
    return db.val(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
        db.schema,
        table,
    )

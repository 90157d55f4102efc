"""Files that cannot be loaded fail clearly, one line each, while the others load."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq


def test_bad_files_fail_and_good_ones_load(tmp_path, cli, db):
    good = tmp_path / "good.csv"
    good.write_text("a,b\n1,2\n")
    pq.write_table(pa.table({"x": [1, 2, 3]}), tmp_path / "fine.parquet")
    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1" + b"\x00garbage" * 50 + b"PAR1")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 40)
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    code, out, err = cli(
        "load", str(good), str(corrupt), str(binary), str(empty), str(tmp_path / "fine.parquet")
    )
    assert code == 1
    assert db.count("good") == 1
    assert db.count("fine") == 3
    error_lines = [line for line in err.splitlines() if line.startswith("✗")]
    assert len(error_lines) == 3
    for name in ("corrupt.parquet", "binary.csv", "empty.csv"):
        assert sum(name in line for line in error_lines) == 1, err
    assert "✓" in out


def test_missing_path_is_reported(tmp_path, cli, db):
    code, _out, err = cli("load", str(tmp_path / "nope.csv"))
    assert code == 1
    assert "nope.csv" in err


def test_dry_run_writes_nothing(tmp_path, cli, db):
    src = tmp_path / "plan_me.csv"
    src.write_text("id,when,zip\n1,2026-01-01,00501\n")
    code, out, _err = cli("load", "--dry-run", str(src))
    assert code == 0
    assert "CREATE TABLE" in out
    assert '"zip" text' in out
    assert "delimiter ','" in out
    assert db.val("SELECT to_regclass($1)", f'"{db.schema}".plan_me') is None


def test_password_never_printed(tmp_path, cli):
    src = tmp_path / "a.csv"
    src.write_text("a\n1\n")
    code, out, err = cli(
        "load", str(src), "--dsn", "postgresql://bob:s3cr3tpw@127.0.0.1:1/nodb", dsn=False
    )
    assert code != 0
    assert "s3cr3tpw" not in out + err
    assert "***" in out + err or "bob" in out + err


def test_usage_error_exit_code(cli):
    code, _out, _err = cli("load", "--batch-size", "0", "x.csv")
    assert code == 2

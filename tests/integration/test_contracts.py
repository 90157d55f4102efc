"""Contracts: declared columns, types, not-null, key and header aliases; a file that breaks
its contract fails before any write, with every violation listed."""

from __future__ import annotations

import decimal
from pathlib import Path

import pytest

D = decimal.Decimal

CONTRACT = """
tables:
  orders:
    key: [id]
    columns:
      id: {type: bigint, not_null: true, aliases: [Order ID, order_no]}
      amount: numeric(12,2)
      placed: {type: date}
      note: {type: text, required: false}
"""


@pytest.fixture
def contract(tmp_path) -> Path:
    path = tmp_path / "contract.yaml"
    path.write_text(CONTRACT)
    return path


def test_a_file_that_keeps_the_contract_creates_the_declared_table(tmp_path, load, db, contract):
    src = tmp_path / "o1.csv"
    src.write_text("Order ID,amount,placed,extra\n1,10.5,2026-01-02,x\n2,3,2026-01-03,y\n")
    report = load(src, table="orders", contract=str(contract))
    assert report.ok, report.failed
    assert db.types("orders") == {
        "id": "bigint",
        "amount": "numeric(12,2)",
        "placed": "date",
        "extra": "text",
        "note": "text",
    }
    assert db.rows("orders", "id")[0][:3] == (
        1,
        D("10.50"),
        __import__("datetime").date(2026, 1, 2),
    )
    pk = db.val(
        "SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'p'",
        f'"{db.schema}".orders',
    )
    assert pk == 1


def test_every_violation_is_listed_and_nothing_is_written(tmp_path, load, db, contract):
    src = tmp_path / "bad.csv"
    src.write_text("order_no,amount,surprise\n1,abc,x\n,2,y\n3,zz,z\n")
    report = load(src, table="orders", contract=str(contract), on_new_column="fail")
    assert not report.ok
    error = report.failed[0].error
    assert "required column placed is missing" in error
    assert "column(s) surprise not in the contract" in error
    assert "column id is not-null but has 1 empty value(s) (first at line 3)" in error
    assert "column amount must be numeric(12,2): 'abc' (line 2), 'zz' (line 4)" in error
    assert db.val("SELECT to_regclass($1)", f'"{db.schema}".orders') is None


def test_wrong_parquet_type_and_existing_table(tmp_path, load, db, contract):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = tmp_path / "good.csv"
    good.write_text("id,amount,placed\n1,1.5,2026-01-01\n")
    assert load(good, table="orders", contract=str(contract)).ok
    pq.write_table(
        pa.table({"id": ["x"], "amount": [1.0], "placed": pa.array([1], pa.int32())}),
        tmp_path / "p.parquet",
    )
    report = load(tmp_path / "p.parquet", table="orders", contract=str(contract))
    assert not report.ok
    assert "column id must be bigint: 'x'" in report.failed[0].error
    assert "column placed is integer in the file, the contract says date" in report.failed[0].error
    assert db.count("orders") == 1


def test_a_bad_contract_file_is_a_usage_error(tmp_path, cli, db):
    bad = tmp_path / "c.yaml"
    bad.write_text("tables:\n  t:\n    columns:\n      id: {type: 'int; drop table x'}\n")
    src = tmp_path / "t.csv"
    src.write_text("id\n1\n")
    code, _out, err = cli("load", str(src), "--contract", str(bad))
    assert code == 2
    assert "not an allowed type name" in err


def test_partial_headers_name_the_first_columns(tmp_path, load, db):
    src = tmp_path / "partial.csv"
    src.write_text("a,b,c\n1,2,3\n")
    assert load(src, headers=("x",)).ok
    assert db.data_columns("partial") == ["x", "b", "c"]
    bare = tmp_path / "bare.csv"
    bare.write_text("1,2,3\n4,5,6\n")
    assert load(bare, headers=("x",), header=False).ok
    assert db.data_columns("bare") == ["x", "col_2", "col_3"]

"""Workbooks into PostgreSQL: types, error cells as rejects, sheets, every format, a big sheet."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from workbooks import (
    BIG_ROWS,
    rich_xlsx,
    shared_big_xlsx,
    simple_ods,
    simple_xls,
    simple_xlsb,
    simple_xlsx,
)


@pytest.fixture
def big_workbook() -> Path:
    """The 100,000-row sheet, written once per session."""
    return shared_big_xlsx()


def test_workbook_types_rows_and_rejects(load: Any, db: Any, tmp_path: Path) -> None:
    path = rich_xlsx(tmp_path / "report.xlsx")
    report = load(path)
    assert report.ok, report.failed
    assert db.types("report") == {
        "customer": "text",
        "customer_2": "text",
        "amount": "double precision",
        "day": "date",
        "col_5": "text",  # unnamed and empty, inside the header's span: kept (case 9)
        "stamp": "timestamp without time zone",
        "at": "time without time zone",
        "paid": "boolean",
        "half": "double precision",
        "count": "integer",
    }
    assert db.rows("report") == [
        ("Alice", "A-1", 10.5, dt.date(2024, 1, 2), None, dt.datetime(2024, 1, 2, 3, 4, 5),
         dt.time(12, 30), True, 5.25, 1),
        ("Bob", "B-2", 20.0, dt.date(2024, 2, 3), None, dt.datetime(2024, 2, 3, 4, 5, 6),
         dt.time(1, 2, 3), False, None, 2),
        ("Carol", "C-3", 30.0, dt.date(2024, 3, 4), None, dt.datetime(2024, 3, 4, 5, 6, 7),
         dt.time(23, 59, 59), True, 15.0, None),
    ]  # fmt: skip
    rejects = db.fetch(
        "SELECT r.line, r.column_name, r.raw, r.reason FROM pgingest.rejects r"
        " JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.table_schema = $1 AND f.table_name = 'report' ORDER BY r.line",
        db.schema,
    )
    assert [tuple(r)[:3] for r in rejects] == [(6, "half", "#DIV/0!"), (7, "count", "#N/A")]
    assert all("error cell" in r["reason"] for r in rejects)
    assert report.files[0].format == "xlsx"


def test_sheet_all_gives_each_sheet_its_table(load: Any, db: Any, tmp_path: Path) -> None:
    path = rich_xlsx(tmp_path / "book.xlsx")
    report = load(path, sheet="all")
    assert report.ok, report.failed
    tables = sorted(f.table.split(".", 1)[1] for f in report.files)
    assert len(tables) == 2  # the empty sheet is no table
    # A sheet name with nothing ASCII in it is named by its position.
    assert tables == ["book_donnees", "book_sheet2"]
    assert db.count("book_donnees") == 3
    assert db.rows("book_sheet2") == [("x", 1.25), ("y", 2.5)]
    again = load(path, sheet="all")
    assert [f.status for f in again.files] == ["skipped", "skipped"]


def test_sheet_all_into_one_table_with_sheet_column(load: Any, db: Any, tmp_path: Path) -> None:
    path = rich_xlsx(tmp_path / "book.xlsx")
    report = load(path, sheet="all", sheet_column=True, table="everything")
    assert report.ok, report.failed
    sheets = db.fetch(f'SELECT sheet, count(*) FROM "{db.schema}".everything GROUP BY 1 ORDER BY 1')
    assert [tuple(r) for r in sheets] == [("Données €", 3), ("日本語", 2)]


@pytest.mark.parametrize("write", [simple_xlsx, simple_xls, simple_ods, simple_xlsb])
def test_each_workbook_format_loads_the_same(
    load: Any, db: Any, tmp_path: Path, write: Any
) -> None:
    suffix = {simple_xlsx: ".xlsx", simple_xls: ".xls", simple_ods: ".ods", simple_xlsb: ".xlsb"}
    path = write(tmp_path / f"simple{suffix[write]}")
    report = load(path, table="simple")
    assert report.ok, report.failed
    types = db.types("simple")
    assert (types["name"], types["when"], types["ok"]) == ("text", "date", "boolean")
    assert types["n"] in ("integer", "bigint")
    assert db.rows("simple") == [
        ("alpha", 1, dt.date(2024, 1, 2), True),
        ("beta", 2, dt.date(2024, 1, 3), False),
        ("gamma", 3, dt.date(2024, 1, 4), True),
    ]


def test_hundred_thousand_row_sheet(load: Any, db: Any, big_workbook: Path) -> None:
    report = load(big_workbook, table="big")
    assert report.ok, report.failed
    assert report.rows == BIG_ROWS
    assert db.types("big") == {
        "id": "integer",
        "amount": "double precision",
        "day": "date",
        "label": "text",
    }
    # Read ahead (a large workbook first in the run) and then skipped as unchanged: fine.
    again = load(big_workbook, table="big")
    assert [f.status for f in again.files] == ["skipped"]
    total = db.fetch(f'SELECT count(*), sum(id), max(amount), min(day) FROM "{db.schema}".big')[0]
    assert tuple(total) == (BIG_ROWS, BIG_ROWS * (BIG_ROWS + 1) // 2, BIG_ROWS / 4,
                            dt.date(2020, 1, 1))  # fmt: skip


def test_cli_sheet_and_header_row(cli: Any, db: Any, tmp_path: Path) -> None:
    path = rich_xlsx(tmp_path / "book.xlsx")
    code, _, err = cli("load", str(path), "--sheet", "日本語", "--table", "jp")
    assert code == 0, err
    assert db.count("jp") == 2
    code, _, err = cli("load", str(path), "--header-row", "3", "--table", "by_row", "--force")
    assert code == 0, err
    assert "customer" in db.types("by_row")
    code, _, err = cli("load", str(path), "--sheet", "Nope", "--table", "nope")
    assert code == 1
    assert "no sheet 'Nope'" in err


def test_password_protected_workbook_fails_with_its_name(load: Any, tmp_path: Path) -> None:
    import msoffcrypto.format.ooxml

    plain = simple_xlsx(tmp_path / "plain.xlsx")
    locked = tmp_path / "locked.xlsx"
    with plain.open("rb") as src, locked.open("wb") as out:
        msoffcrypto.format.ooxml.OOXMLFile(src).encrypt("secret", out)
    report = load(locked)
    assert not report.ok
    error = report.failed[0].error
    assert "locked.xlsx" in error
    assert "password-protected" in error
    assert "\n" not in error

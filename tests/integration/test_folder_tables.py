"""A tree of workbooks, one table per folder, driven by a YAML config; the daily re-run."""

from __future__ import annotations

import datetime as dt
import os
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from workbooks import simple_xlsx

HEADER = ["region", "amount", "day"]


def _book(path: Path, rows: list[tuple[str, float, dt.datetime]], **kw: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return simple_xlsx(path, rows=[list(r) for r in rows], header=HEADER, **kw)


def _tree(root: Path) -> None:
    day = dt.datetime(2024, 5, 1)
    _book(root / "sales" / "emea" / "q1.xlsx", [("fr", 1, day), ("de", 2, day)])
    _book(root / "sales" / "emea" / "q2.xlsx", [("it", 3, day)])
    _book(root / "sales" / "us" / "q1.xlsx", [("ny", 4, day), ("ca", 5, day), ("tx", 6, day)])
    # hr: the data is on the second sheet, its header in row 3 (a title in row 1).
    import xlsxwriter

    (root / "hr").mkdir(parents=True)
    book = xlsxwriter.Workbook(str(root / "hr" / "staff.xlsx"))
    book.add_worksheet("Cover").write(0, 0, "nothing here")
    people = book.add_worksheet("People")
    people.write(0, 0, "Staff list")
    people.write_row(2, 0, ["id", "name"])
    people.write_row(3, 0, [1, "Ann"])
    people.write_row(4, 0, [2, "Ben"])
    book.close()
    (root / "sales" / "emea" / "~$q1.xlsx").write_bytes(b"lock file of an open workbook")


CONFIG = """\
table_from: folder
source_file_column: true
folders:
  sales:
    folders:
      us:
        table: us_sales
  hr:
    sheet: People
    header_row: 3
    mode: append
"""


def _config(tmp_path: Path, text: str = CONFIG) -> Path:
    path = tmp_path / "pgingest.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_folder_per_table_with_config(cli: Any, db: Any, tmp_path: Path) -> None:
    root = tmp_path / "drop"
    _tree(root)
    config = _config(tmp_path)
    code, out, err = cli("load", str(root), "--config", str(config), "--no-progress")
    assert code == 0, err
    listed = db.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", db.schema)
    assert sorted(r[0] for r in listed) == ["hr", "sales_emea", "us_sales"]
    assert db.fetch(f'SELECT region, amount FROM "{db.schema}".sales_emea ORDER BY amount') == [
        ("fr", 1),
        ("de", 2),
        ("it", 3),
    ]
    assert db.count("us_sales") == 3
    staff = str(root / "hr" / "staff.xlsx")
    assert db.rows("hr") == [(1, "Ann", staff), (2, "Ben", staff)]
    files = db.fetch(f'SELECT DISTINCT source_file FROM "{db.schema}".sales_emea ORDER BY 1')
    assert [f[0] for f in files] == [
        str(root / "sales" / "emea" / "q1.xlsx"),
        str(root / "sales" / "emea" / "q2.xlsx"),
    ]
    assert "per table:" in out
    assert "sales_emea: 2 new file(s), 3 rows loaded" in out


def test_daily_rerun_loads_exactly_new_and_edited_workbooks(
    cli: Any, db: Any, tmp_path: Path
) -> None:
    root = tmp_path / "drop"
    _tree(root)
    config = _config(tmp_path)
    code, _, err = cli("load", str(root), "--config", str(config), "--no-progress")
    assert code == 0, err
    day = dt.datetime(2024, 6, 1)
    # Next day: q1 of emea edited (a row changed, one added), q3 added; the rest unchanged.
    edited = root / "sales" / "emea" / "q1.xlsx"
    _book(edited, [("fr", 10, day), ("de", 20, day), ("es", 30, day)])
    os.utime(edited, (1_800_000_000, 1_800_000_000))
    _book(root / "sales" / "emea" / "q3.xlsx", [("pt", 40, day)])
    code, out, err = cli("load", str(root), "--config", str(config), "--no-progress")
    assert code == 0, err
    loaded = sorted(line.split()[1] for line in out.splitlines() if line.startswith("✓"))
    assert loaded == [str(edited), str(root / "sales" / "emea" / "q3.xlsx")]
    skipped = [line for line in out.splitlines() if line.startswith("- ")]
    assert len(skipped) == 3  # emea/q2, us/q1, hr/staff
    assert "sales_emea: 1 new, 1 changed, 1 unchanged file(s), 4 rows loaded" in out
    assert "us_sales: 1 unchanged file(s)" in out
    # The edited workbook's old rows were replaced by its new ones.
    rows = db.fetch(f'SELECT region, amount FROM "{db.schema}".sales_emea ORDER BY amount')
    assert [tuple(r) for r in rows] == [("it", 3), ("fr", 10), ("de", 20), ("es", 30), ("pt", 40)]
    # A third run changes nothing.
    code, out, _ = cli("load", str(root), "--config", str(config), "--no-progress")
    assert code == 0
    assert not [line for line in out.splitlines() if line.startswith("✓")]


def test_config_sources_globs_to_tables(cli: Any, db: Any, tmp_path: Path) -> None:
    day = dt.datetime(2024, 5, 1)
    _book(tmp_path / "in" / "a-2024.xlsx", [("x", 1, day)])
    _book(tmp_path / "in" / "b-2024.xlsx", [("y", 2, day)])
    (tmp_path / "in" / "events.ndjson").write_text('{"id": 1, "tags": ["a"]}\n{"id": 2}\n')
    config = _config(
        tmp_path,
        f"""\
        sources:
          - path: "{tmp_path}/in/*-2024.xlsx"
            table: yearly
          - path: "{tmp_path}/in/*.ndjson"
            table: events
        """,
    )
    code, _, err = cli("load", "--config", str(config), "--no-progress")
    assert code == 0, err
    assert db.count("yearly") == 2
    assert db.types("events") == {"id": "bigint", "tags": "jsonb"}


def test_config_refuses_what_this_version_cannot_do(cli: Any, tmp_path: Path) -> None:
    config = _config(tmp_path, "folders:\n  sales:\n    mode: upsert\n")
    code, _, err = cli("load", str(tmp_path), "--config", str(config))
    assert code == 2
    assert "mode can only be set for the whole run" in err  # issue 4: modes are per run
    config = _config(tmp_path, "sheeet: x\n")
    code, _, err = cli("load", str(tmp_path), "--config", str(config))
    assert code == 2
    assert "unknown option 'sheeet'" in err


def upper_region(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A transform for the tests: region in capitals, a computed column added."""
    i = batch.schema.get_field_index("region")
    batch = batch.set_column(i, "region", pc.utf8_upper(batch.column(i)))
    return batch.append_column("doubled", pc.multiply(batch.column("amount"), 2))


def upper_only(batch: pa.RecordBatch) -> pa.RecordBatch:
    """A transform for CSV, whose batches arrive as text columns."""
    i = batch.schema.get_field_index("region")
    return batch.set_column(i, "region", pc.utf8_upper(batch.column(i)))


def test_transform_from_the_library_and_the_cli(
    load: Any, cli: Any, db: Any, tmp_path: Path
) -> None:
    day = dt.datetime(2024, 5, 1)
    path = _book(tmp_path / "t.xlsx", [("fr", 1, day), ("de", 2, day)])
    report = load(path, table="via_api", transform=upper_region)
    assert report.ok, report.failed
    assert db.rows("via_api", order_by="2") == [
        ("FR", 1, dt.date(2024, 5, 1), 2),
        ("DE", 2, dt.date(2024, 5, 1), 4),
    ]
    csv = tmp_path / "t.csv"
    csv.write_text("region,amount\nfr,1.5\n")
    code, _, err = cli(
        "load", str(csv), "--table", "via_cli", "--transform", "test_folder_tables:upper_only"
    )
    assert code == 0, err
    assert db.rows("via_cli") == [("FR", 1.5)]
    # CSV with a source_file column: parsed (its raw bytes cannot get a column), types kept.
    report = load(csv, table="with_file", source_file_column=True)
    assert report.ok, report.failed
    assert db.types("with_file") == {
        "region": "text",
        "amount": "double precision",
        "source_file": "text",
    }
    assert db.rows("with_file") == [("fr", 1.5, str(csv))]

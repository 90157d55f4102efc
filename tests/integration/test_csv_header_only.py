"""A header-only first file warns, and its text columns are retyped while the table is still
empty (each change logged), so the first file with data decides the types."""

from __future__ import annotations

import datetime as dt


def changes(db, table: str) -> list[tuple]:
    return [
        tuple(r)
        for r in db.fetch(
            "SELECT change, column_name, old_type, new_type FROM pgingest.schema_changes"
            " WHERE table_schema = $1 AND table_name = $2 ORDER BY id",
            db.schema,
            table,
        )
    ]


def test_the_first_file_with_data_types_a_header_only_table(tmp_path, load, db):
    (tmp_path / "h1.csv").write_text("id,amount,day,note\n")
    (tmp_path / "h2.csv").write_text("id,amount,day,note\n1,2.5,2026-01-02,x\n2,3,2026-01-03,y\n")
    first = load(tmp_path / "h1.csv", table="h")
    assert first.ok
    assert any("no data rows" in w for w in first.files[0].warnings)
    assert set(db.types("h").values()) == {"text"}
    second = load(tmp_path / "h2.csv", table="h")
    assert second.ok, second.failed
    assert db.types("h") == {
        "id": "integer",
        "amount": "double precision",
        "day": "date",
        "note": "text",
    }
    assert db.rows("h", "id") == [
        (1, 2.5, dt.date(2026, 1, 2), "x"),
        (2, 3.0, dt.date(2026, 1, 3), "y"),
    ]
    assert changes(db, "h") == [
        ("create_table", None, None, "header only"),
        ("alter_type", "id", "text", "integer"),
        ("alter_type", "amount", "text", "double precision"),
        ("alter_type", "day", "text", "date"),
    ]
    assert any("id text -> integer" in c for c in second.files[0].schema_changes)


def test_a_table_with_rows_or_made_as_text_keeps_its_text_columns(tmp_path, load, db):
    (tmp_path / "e1.csv").write_text("id,n\n")
    (tmp_path / "e2.csv").write_text("id,n\nx,1\n")
    (tmp_path / "e3.csv").write_text("id,n\n2,3\n")
    assert load(tmp_path / "e1.csv", table="e").ok
    assert load(tmp_path / "e2.csv", table="e").ok  # id is text by its value: n is retyped
    assert db.types("e") == {"id": "text", "n": "integer"}
    assert load(tmp_path / "e3.csv", table="e").ok  # the table has rows now: nothing changes
    assert db.types("e") == {"id": "text", "n": "integer"}
    # --text asks for text: a header-only file loaded so is not retyped
    assert load(tmp_path / "e1.csv", table="t", text=True).ok
    assert load(tmp_path / "e3.csv", table="t").ok
    assert db.types("t") == {"id": "text", "n": "text"}
    # a table the user made with text columns, empty, is left alone
    db.execute(f'CREATE TABLE "{db.schema}".mine (id text, n text)')
    assert load(tmp_path / "e3.csv", table="mine").ok
    assert db.types("mine") == {"id": "text", "n": "text"}

"""Property: CSV files with arbitrary text, written by Python's ``csv`` module in several
dialects or broken the way real exporters break them (bare quotes, unescaped quotes inside
quoted fields, blank lines, a BOM), load with ``--text`` exactly as Python's ``csv`` reads
them, on a real PostgreSQL; records Python reads with another field count are rejects."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings

from csv_strategies import Written, csv_files, python_read

COUNTER = itertools.count()


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(written=csv_files(max_rows=8))
def test_every_field_arrives_as_python_reads_it(tmp_path, load, db, written: Written):
    name = f"p{next(COUNTER)}"
    path = tmp_path / f"{name}.csv"
    path.write_bytes(written.data)
    report = load(
        path,
        table=name,
        text=True,
        header=True,
        delimiter=written.delimiter,
        quote=written.quote,
        escape="double",
        on_error="skip",
    )
    assert report.ok, report.failed
    rows = python_read(written.data, written.delimiter, written.quote, file=True)[1:]
    width = written.width
    columns = ", ".join(f'"c{i}"' for i in range(width))
    back = db.fetch(f'SELECT {columns} FROM "{db.schema}"."{name}" ORDER BY ctid')
    # NULL and "" are the same to Python's csv module
    loaded = [["" if v is None else v for v in row] for row in back]
    assert loaded == [row for _line, row in rows if len(row) == width]
    rejected = db.fetch(
        "SELECT r.line FROM pgingest.rejects r JOIN pgingest.files f ON f.id = r.file_id"
        " WHERE f.path = $1 ORDER BY r.line",
        str(path),
    )
    assert [r["line"] for r in rejected] == [line for line, row in rows if len(row) != width]

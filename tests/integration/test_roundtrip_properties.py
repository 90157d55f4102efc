"""Property: random tables of typed columns, written as CSV and as Parquet, load and read back
equal, whatever the values (quotes, commas, newlines, NULLs, extremes)."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import math

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

KINDS = {
    "int": (st.integers(-(2**31), 2**31 - 1), pa.int32()),
    "big": (st.integers(-(2**63), 2**63 - 1), pa.int64()),
    "float": (st.floats(allow_nan=False, allow_infinity=False, width=64), pa.float64()),
    "bool": (st.booleans(), pa.bool_()),
    "date": (st.dates(dt.date(1, 1, 1), dt.date(9999, 12, 31)), pa.date32()),
    "ts": (
        st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)),
        pa.timestamp("us"),
    ),
    # text that could be read as another type is prefixed with a letter
    "text": (
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")).map(
            lambda s: "x" + s
        ),
        pa.string(),
    ),
}

COUNTER = itertools.count()


@st.composite
def tables(draw):
    kinds = ["int", *draw(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=5))]
    rows = draw(st.integers(1, 30))
    # a row number first: orders the rows read back, and no CSV row is a blank line (a lone
    # NULL column is one, which CSV cannot tell from a blank line)
    columns: dict[str, list] = {"rn": list(range(rows))}
    for i, kind in enumerate(kinds):
        values, _type = KINDS[kind]
        if i == 0:
            continue
        columns[f"{kind}_{i}"] = draw(st.lists(st.none() | values, min_size=rows, max_size=rows))
    return kinds, columns


def same(kind, wrote, read):
    if wrote is None or read is None:
        return wrote is read
    if kind == "float":
        return float(read) == wrote or (math.isclose(float(read), wrote) and wrote == 0)
    if kind in ("int", "big"):
        return int(read) == wrote
    if kind == "text":
        return read == wrote
    if kind == "ts" and isinstance(read, dt.datetime):
        return read.replace(tzinfo=None) == wrote
    if kind == "date" and isinstance(read, dt.datetime):
        return read.date() == wrote
    if isinstance(read, str):
        return read == str(wrote) or read.lower() == str(wrote).lower()
    if isinstance(read, decimal.Decimal):
        return read == decimal.Decimal(str(wrote))
    return read == wrote


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=tables())
def test_csv_and_parquet_read_back_equal(tmp_path, load, db, data):
    kinds, columns = data
    n = next(COUNTER)
    schema = pa.schema([(name, KINDS[kind][1]) for name, kind in zip(columns, kinds, strict=True)])
    table = pa.table(columns, schema=schema)
    csv_path = tmp_path / f"rt{n}.csv"
    pacsv.write_csv(table, csv_path)
    parquet_path = tmp_path / f"rt{n}.parquet"
    pq.write_table(table, parquet_path)
    for path in (csv_path, parquet_path):
        name = f"{path.suffix[1:]}_{n}"
        report = load(path, table=name)
        assert report.ok, report.failed
        back = db.fetch(f'SELECT * FROM "{db.schema}"."{name}" ORDER BY rn')
        assert len(back) == table.num_rows
        for column, kind in zip(columns, kinds, strict=True):
            read = [row[column] for row in back]
            for wrote, got in zip(columns[column], read, strict=True):
                assert same(kind, wrote, got), (path.suffix, column, wrote, got)

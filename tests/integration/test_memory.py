"""Memory stays flat: a 1,000,000-row file loads with a peak RSS under 300 MB."""

from __future__ import annotations

import subprocess
import sys

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROWS = 1_000_000
LIMIT_MB = 300

# The peak is VmHWM, this process's own high-water mark: ru_maxrss would also count the
# parent's resident set at fork, which Linux carries across exec.
MEASURE = """
import sys
import pgingest
report = pgingest.load(sys.argv[1], dsn=sys.argv[2], schema=sys.argv[3], table=sys.argv[4])
assert report.ok, report.failed
with open("/proc/self/status") as status:
    hwm = next(line for line in status if line.startswith("VmHWM:"))
print(report.rows, int(hwm.split()[1]) // 1024)
"""


def make_table() -> pa.Table:
    ids = pa.array(range(ROWS), pa.int64())
    return pa.table(
        {
            "id": ids,
            "name": pc.binary_join_element_wise("name-", ids.cast(pa.string()), ""),
            "score": pc.divide(ids.cast(pa.float64()), 7.0),
            "descr": pc.binary_join_element_wise(
                "some words, more words and ", ids.cast(pa.string()), ""
            ),
        }
    )


def peak_mb(path: str, db, table: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, path, db.dsn, db.schema, table],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows, peak = map(int, done.stdout.split())
    assert rows == ROWS
    return peak


def test_million_rows_csv_and_parquet_under_300_mb(tmp_path, db):
    table = make_table()
    csv_path = tmp_path / "million.csv"
    pacsv.write_csv(table, csv_path)
    pq_path = tmp_path / "million.parquet"
    pq.write_table(table, pq_path, row_group_size=200_000)
    assert peak_mb(str(csv_path), db, "m_csv") < LIMIT_MB
    assert peak_mb(str(pq_path), db, "m_pq") < LIMIT_MB
    assert db.count("m_csv") == ROWS
    assert db.count("m_pq") == ROWS

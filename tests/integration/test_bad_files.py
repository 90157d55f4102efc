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


def test_records_the_server_would_refuse_are_parsed_client_side(tmp_path, load, db):
    # PostgreSQL's CSV parser opens a quoted field at any quote and refuses blank lines in
    # a multi-column file; RFC 4180 readers (and users) take 5" as 5 inches.
    inches = tmp_path / "inches.csv"
    inches.write_text('id,size,name\n1,5" pipe,x\n2,"7",y\n')
    blank = tmp_path / "blank.csv"
    blank.write_text("a,b\n1,2\n\n\n3,4\n")
    tsv = tmp_path / "said.tsv"
    tsv.write_text('id\tname\n1\tsay "hi\n2\tok\n')
    assert load([inches, blank, tsv]).ok
    assert db.rows("inches", "id") == [(1, '5" pipe', "x"), (2, "7", "y")]
    assert db.rows("blank", "a") == [(1, 2), (3, 4)]
    assert db.rows("said", "id") == [(1, 'say "hi'), (2, "ok")]


def test_a_stray_quote_far_into_a_file_reloads_it_exactly_once(tmp_path, load, db):
    rows = 60_000
    lines = [f"{i},item {i}" for i in range(rows)]
    lines[50_000] = '50000,a 12" pizza'
    big = tmp_path / "late.csv"
    big.write_text("id,name\n" + "\n".join(lines) + "\n")
    report = load(big, batch_size=5_000)
    assert report.ok, report.failed
    assert db.count("late") == rows
    assert db.val("SELECT count(DISTINCT id) FROM late") == rows
    assert db.val("SELECT name FROM late WHERE id = 50000") == 'a 12" pizza'
    assert [
        r["status"] for r in db.fetch("SELECT status FROM pgingest.files WHERE path = $1", str(big))
    ] == ["success"]


def test_a_ragged_row_fails_with_its_line_and_the_manifest_says_so(tmp_path, load, db):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,name\n1,x\n2,y,extra\n3,z\n")
    report = load(ragged)
    assert not report.ok
    assert "line 3" in report.failed[0].error
    row = db.fetch("SELECT status, error FROM pgingest.files WHERE path = $1", str(ragged))
    assert [r["status"] for r in row] == ["failed"]
    assert "line 3" in row[0]["error"]


def _zero_values_in_last_row_group(path, rows_per_group):
    """Rewrite the footer so that column x's last chunk counts no values (as in duckdb's
    parquet_column_num_values_mismatch.parquet): pyarrow's batch reader then stops there
    without an error, though the footer still counts every row."""
    data = path.read_bytes()

    def varint(n):  # thrift compact: zigzag, then 7 bits a byte
        n, out = n << 1, b""
        while n >= 0x80:
            out, n = out + bytes([n & 0x7F | 0x80]), n >> 7
        return out + bytes([n])

    # path_in_schema ["x"], codec UNCOMPRESSED, then num_values (an i64 field)
    count = varint(rows_per_group)
    assert len(count) == 2
    head = b"\x01x\x15\x00\x16"
    at = data.rindex(head + count) + len(head)
    path.write_bytes(data[:at] + b"\x80\x00" + data[at + 2 :])  # 0, in two varint bytes


def test_parquet_data_shorter_than_its_footer_fails_keeping_nothing(tmp_path, load, db):
    path = tmp_path / "short.parquet"
    table = pa.table({"x": pa.array(range(3000), pa.int32()), "s": [str(i) for i in range(3000)]})
    pq.write_table(table, path, compression="none", write_statistics=False, row_group_size=1000)
    _zero_values_in_last_row_group(path, 1000)
    assert pq.ParquetFile(path).metadata.num_rows == 3000
    quiet = pq.ParquetFile(path).iter_batches(batch_size=500)
    assert sum(b.num_rows for b in quiet) == 2000  # no error: the reader stops there
    # batches of 500 rows: four were written before the data ran out
    report = load(path, batch_size=500, sample_rows=100)
    assert not report.ok
    error = report.files[0].error or ""
    assert error.startswith(f"{path}: corrupt Parquet file: row group 2 ends after 0 of the 1000")
    assert "\n" not in error
    assert db.count("short") == 0

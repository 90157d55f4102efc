"""Remote inputs against real servers on loopback: moto's S3-compatible server, the emulators of
GCS (gcp-storage-emulator) and Azure (azurite), and an HTTP file server of the tests' own
(Range, ETag, an injected 503 or reset). The same checks as for local files: formats, gzip,
skip unchanged, a changed object replaces its rows, resume after a kill, a bad object named in
one line, and no credential or query string anywhere."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from processes import pgingest
from remote_servers import (
    Azurite,
    GcsEmulator,
    azurite,
    env_for_s3,
    gcs_emulator,
    http_file_server,
    moto_server,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - moto's test key
SIGNATURE = "X-Amz-Signature=5ecre7516na7ure"


def csv_bytes(start: int, rows: int) -> bytes:
    return ("id,name\n" + "".join(f"{i},n{i}\n" for i in range(start, start + rows))).encode()


def parquet_bytes(start: int, rows: int) -> bytes:
    table = pa.table(
        {"id": list(range(start, start + rows)), "name": [f"n{i}" for i in range(rows)]}
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=max(1, rows // 4))
    return sink.getvalue()


def ndjson_bytes(start: int, rows: int) -> bytes:
    return "".join(
        json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(start, start + rows)
    ).encode()


def xlsx_bytes(start: int, rows: int) -> bytes:
    sink = io.BytesIO()
    book = xlsxwriter.Workbook(sink)
    sheet = book.add_worksheet("data")
    sheet.write_row(0, 0, ["id", "name"])
    for r, i in enumerate(range(start, start + rows), start=1):
        sheet.write_row(r, 0, [i, f"n{i}"])
    book.close()
    return sink.getvalue()


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server; yields the AWS variables that point at it."""
    with moto_server() as endpoint:
        yield env_for_s3(endpoint)


@pytest.fixture
def bucket(s3: dict[str, str], monkeypatch: pytest.MonkeyPatch, request: Any) -> Any:
    """A fresh bucket; the process's AWS variables point at moto for the test."""
    import boto3

    for key, value in s3.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name="us-east-1")
    name = "b-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    client.create_bucket(Bucket=name)

    def put(key: str, body: bytes) -> str:
        client.put_object(Bucket=name, Key=key, Body=body)
        return f"s3://{name}/{key}"

    put.name = name  # type: ignore[attr-defined]
    return put


@pytest.fixture(scope="module")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    """gcp-storage-emulator on loopback (in memory)."""
    with gcs_emulator(tmp_path_factory.mktemp("gcs")) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def azure() -> Iterator[Azurite]:
    """azurite's Blob service on loopback (installed from npm once, then cached)."""
    with azurite() as emulator:
        yield emulator


@pytest.fixture(params=["s3", "gs", "az"])
def store(request: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket (an Azure container) in S3 (moto), GCS (gcp-storage-emulator) or Azure
    (azurite); the process's variables point at that store's server for the test. Yields
    ``put(key, body) -> url``; ``put.base`` is the bucket's URL."""
    scheme = request.param
    name = "b" + uuid.uuid4().hex[:20]  # a valid bucket and container name in all three
    if scheme == "s3":
        import boto3

        env = request.getfixturevalue("s3")
        for key, value in env.items():  # boto3 takes the keys from them too
            monkeypatch.setenv(key, value)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1")
        client.create_bucket(Bucket=name)

        def upload(key: str, body: bytes) -> None:
            client.put_object(Bucket=name, Key=key, Body=body)

    elif scheme == "gs":
        emulator = request.getfixturevalue("gcs")
        env = emulator.env
        emulator.create_bucket(name)

        def upload(key: str, body: bytes) -> None:
            emulator.put(name, key, body)

    else:
        blobs = request.getfixturevalue("azure")
        env = blobs.env
        blobs.create_container(name)

        def upload(key: str, body: bytes) -> None:
            blobs.put(name, key, body)

    for key, value in env.items():
        monkeypatch.setenv(key, value)

    def put(key: str, body: bytes) -> str:
        upload(key, body)
        return f"{scheme}://{name}/{key}"

    put.base = f"{scheme}://{name}/"  # type: ignore[attr-defined]
    return put


def run_cli(
    db: Any, *args: str, env: dict[str, str] | None = None, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    return pgingest(
        "load", "--dsn", db.dsn, "--schema", db.schema, *args,
        crash=crash, timeout=180, env={**os.environ, **(env or {})},
    )  # fmt: skip


def total_rows(db: Any, tables: str = "abcde") -> int:
    """Rows in the per-file tables ``a`` .. ``e``, each id once across them.

    Each format loads into its own table, so that a count tells which one lost rows (files of
    several formats loading into one table at once: ``test_columns_changed.py``)."""
    union = " UNION ALL ".join(f"SELECT id::bigint AS id FROM {t}" for t in tables)
    assert db.val(f"SELECT count(*) - count(DISTINCT id) FROM ({union}) u") == 0
    return int(db.val(f"SELECT count(*) FROM ({union}) u"))


def manifest_text(db: Any) -> str:
    """Everything the manifest holds about files and runs, as one text."""
    rows = db.fetch(
        "SELECT row_to_json(f)::text FROM pgingest.files f WHERE f.table_schema = $1", db.schema
    )
    rows += db.fetch(
        "SELECT row_to_json(r)::text FROM pgingest.runs r WHERE r.id IN"
        " (SELECT run_id FROM pgingest.files WHERE table_schema = $1)",
        db.schema,
    )
    assert len(rows) >= 2
    return "\n".join(r[0] for r in rows)


def test_every_format_from_a_prefix_loads_and_an_unchanged_rerun_reads_nothing(store, load, db):
    store("drop/a.csv", csv_bytes(0, 50))
    store("drop/b.csv.gz", gzip.compress(csv_bytes(100, 40)))
    store("drop/c.parquet", parquet_bytes(200, 30))
    store("drop/d.ndjson", ndjson_bytes(300, 20))
    store("drop/e.xlsx", xlsx_bytes(400, 10))
    store("drop/notes.md", b"not data")  # not a data file: a prefix scan leaves it out
    prefix = store.base + "drop/"
    report = load([prefix])
    assert report.ok, [f.error for f in report.files]
    assert sorted(f.path for f in report.files) == [
        prefix + n for n in ("a.csv", "b.csv.gz", "c.parquet", "d.ndjson", "e.xlsx")
    ]
    assert total_rows(db) == 150
    recorded = {
        r["path"]: r
        for r in db.fetch(
            "SELECT path, sha256, status FROM pgingest.files WHERE table_schema = $1", db.schema
        )
    }
    assert set(recorded) == {f.path for f in report.files}
    # Every byte passed in order (streamed, or a small object's one range): hashed as it did.
    assert all(len(r["sha256"]) == 64 for r in recorded.values())
    again = load([prefix])
    assert again.ok
    assert {f.status for f in again.files} == {"skipped"}
    assert total_rows(db) == 150


def test_a_glob_takes_the_matching_objects_only(store, load, db):
    store("day/x1.parquet", parquet_bytes(0, 10))
    store("day/x2.parquet", parquet_bytes(10, 10))
    store("day/x3.csv", csv_bytes(20, 10))
    report = load([store.base + "day/*.parquet"], table="t")
    assert report.ok
    assert len(report.files) == 2
    assert db.count("t") == 20


def test_a_changed_object_replaces_its_rows(store, load, db):
    url = store("v/data.csv", csv_bytes(0, 30))
    assert load([url], table="t").ok
    store("v/data.csv", csv_bytes(1000, 25))  # a new version: a new ETag
    report = load([url], table="t")
    assert report.ok
    assert [f.status for f in report.files] == ["loaded"]
    assert db.count("t") == 25
    assert db.val("SELECT min(id) FROM t") == 1000


def test_a_bad_object_is_named_in_one_line_and_the_others_load(store, db):
    good = store("m/good.csv", csv_bytes(0, 5))
    bad = store("m/bad.parquet", b"PAR1 this is no parquet file PAR1")
    done = run_cli(db, good, bad, "--table", "t")
    assert done.returncode == 1
    failed = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("✗")]
    assert len(failed) == 1, done.stdout + done.stderr
    assert bad in failed[0]
    assert db.count("t") == 5
    missing = run_cli(db, store.base + "m/none.csv", "--table", "t")
    assert missing.returncode != 0
    assert store.base + "m/none.csv" in missing.stdout + missing.stderr


def test_no_credential_in_output_or_manifest(bucket, db):
    url = bucket("c/data.csv", csv_bytes(0, 5))
    done = run_cli(db, url, "--table", "t", "-v")
    assert done.returncode == 0, done.stderr
    for text in (done.stdout, done.stderr, manifest_text(db)):
        assert SECRET not in text
        assert "AKIAIOSFODNN7EXAMPLE" not in text


def test_killed_mid_object_then_resumed_each_row_once(bucket, db):
    url = bucket("k/big.csv", csv_bytes(0, 20_000))
    args = (url, "--table", "t", "--batch-size", "2000", "--internal-concurrency", "1")
    crashed = run_cli(db, *args, crash="batch-committed:3")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert 0 < db.count("t") < 20_000
    again = run_cli(db, *args)
    assert again.returncode == 0, again.stderr
    assert db.count("t") == 20_000
    assert db.val("SELECT count(DISTINCT id) FROM t") == 20_000
    rows = db.fetch(
        "SELECT status, rows FROM pgingest.files WHERE path = $1 AND status <> 'reverted'"
        " AND table_schema = $2",
        url,
        db.schema,
    )
    assert [(r["status"], r["rows"]) for r in rows] == [("success", 20_000)]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str, Any]]:
    root = tmp_path / "www"
    root.mkdir()
    with http_file_server(root) as (base, faults):
        yield root, base, faults


def test_http_urls_stream_csv_and_read_parquet_by_ranges(served, load, db):
    root, base, faults = served
    (root / "a.csv").write_bytes(csv_bytes(0, 40))
    (root / "p.parquet").write_bytes(parquet_bytes(100, 120_000))  # 1.5 MB
    (root / "w.xlsx").write_bytes(xlsx_bytes(9000, 7))
    report = load([f"{base}/a.csv", f"{base}/p.parquet", f"{base}/w.xlsx"])
    assert report.ok, [f.error for f in report.files]
    assert (db.count("a"), db.count("p"), db.count("w")) == (40, 120_000, 7)
    sha = {
        r["path"]: r["sha256"]
        for r in db.fetch(
            "SELECT path, sha256 FROM pgingest.files WHERE table_schema = $1", db.schema
        )
    }
    # Streamed (CSV, the workbook's copy): hashed as it passed; Parquet read by ranges: unknown.
    assert len(sha[f"{base}/a.csv"]) == 64
    assert len(sha[f"{base}/w.xlsx"]) == 64
    assert sha[f"{base}/p.parquet"] is None
    parquet_gets = [r for r in faults.requests if r.startswith("GET /p.parquet")]
    assert parquet_gets
    assert all(r.split(" ", 2)[2] for r in parquet_gets)  # every GET asked for a range
    faults.requests.clear()
    again = load([f"{base}/a.csv", f"{base}/p.parquet", f"{base}/w.xlsx"])
    assert {f.status for f in again.files} == {"skipped"}
    # An unchanged object is known by its ETag and size: not read again.
    assert not [r for r in faults.requests if r.startswith("GET")], faults.requests


def test_a_presigned_url_leaves_no_query_string_or_user_info_anywhere(served, db):
    root, base, _faults = served
    (root / "s.csv").write_bytes(csv_bytes(0, 12))
    url = base.replace("http://", "http://user:pa55word@") + f"/s.csv?X-Amz-Expires=60&{SIGNATURE}"
    done = run_cli(db, url, "--table", "t", "-v", "--log-format", "json")
    assert done.returncode == 0, done.stderr
    assert db.count("t") == 12
    for text in (done.stdout, done.stderr, manifest_text(db)):
        assert "5ecre7516na7ure" not in text
        assert "pa55word" not in text
        assert "X-Amz" not in text
    assert (
        db.val("SELECT path FROM pgingest.files WHERE table_schema = $1", db.schema)
        == f"{base}/s.csv"
    )
    # revert --file takes the URL as given (its query string and user info dropped too).
    reverted = pgingest("revert", "--dsn", db.dsn, "--file", url)
    assert reverted.returncode == 0, reverted.stdout + reverted.stderr
    assert "5ecre7516na7ure" not in reverted.stdout + reverted.stderr
    assert db.count("t") == 0


@pytest.mark.parametrize("fault", ["status_503", "reset"])
def test_a_remote_fault_is_retried_like_a_database_fault(served, db, fault):
    root, base, faults = served
    (root / "r.csv").write_bytes(csv_bytes(0, 30))
    setattr(faults, fault, 1)
    done = run_cli(db, f"{base}/r.csv", "--table", "t", "--retry-base", "0.01")
    # The server is in this process: the fault switch counts its requests.
    assert getattr(faults, fault) == 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert "retrying" in (done.stdout + done.stderr).lower()
    assert db.count("t") == 30


def test_a_remote_fault_that_persists_fails_the_object_after_the_retries(served, db):
    root, base, faults = served
    (root / "r.csv").write_bytes(csv_bytes(0, 30))
    faults.status_503 = 1_000
    done = run_cli(
        db, f"{base}/r.csv", "--table", "t", "--retry-base", "0.01", "--max-retries", "2"
    )
    assert done.returncode == 1
    failed = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("✗")]
    assert len(failed) == 1, done.stdout + done.stderr
    assert f"{base}/r.csv" in failed[0]
    assert 2 <= 1_000 - faults.status_503 <= 10  # bounded: a try and its retries


def zip_bytes(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w", compression=compression) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return sink.getvalue()


ARCHIVE = {
    "a.csv": csv_bytes(0, 20),
    "sub/b.csv.gz": gzip.compress(csv_bytes(100, 10)),
    "c.parquet": parquet_bytes(200, 30),
    "d.ndjson": ndjson_bytes(300, 5),
    "e.xlsx": xlsx_bytes(400, 4),
    "README.md": b"# not data",
    "__MACOSX/._a.csv": b"junk",
}
MEMBERS = ["a.csv", "c.parquet", "d.ndjson", "e.xlsx", "sub/b.csv.gz"]


def test_a_local_zip_loads_each_member_as_a_file_of_its_own(tmp_path, load, db):
    archive = tmp_path / "drop.zip"
    archive.write_bytes(zip_bytes(ARCHIVE))
    report = load([str(archive)])
    assert report.ok, [f.error for f in report.files]
    assert sorted(f.path for f in report.files) == [f"{archive}!/{m}" for m in MEMBERS]
    assert total_rows(db) == 69
    paths = {
        r["path"]
        for r in db.fetch("SELECT path FROM pgingest.files WHERE table_schema = $1", db.schema)
    }
    assert paths == {f"{archive}!/{m}" for m in MEMBERS}
    again = load([str(archive)])
    assert {f.status for f in again.files} == {"skipped"}
    # A new archive where one member changed: that member only loads again, replacing its rows.
    changed = dict(ARCHIVE, **{"a.csv": csv_bytes(5000, 3)})
    archive.write_bytes(zip_bytes(changed))
    third = load([str(archive)])
    assert {f.path: f.status for f in third.files}[f"{archive}!/a.csv"] == "loaded"
    assert sorted(f.status for f in third.files) == ["loaded"] + ["skipped"] * 4
    assert total_rows(db) == 52
    # A member named directly: that file only.
    other = tmp_path / "other.zip"
    other.write_bytes(zip_bytes({"x.csv": csv_bytes(9000, 2), "y.csv": csv_bytes(9100, 2)}))
    assert load([f"{other}!/y.csv"], table="u").ok
    assert db.count("u") == 2


def test_a_stored_zip_in_s3_and_over_http_is_read_by_ranges(bucket, served, load, db):
    body = zip_bytes(ARCHIVE, zipfile.ZIP_STORED)
    url = bucket("z/drop.zip", body)
    report = load([url])
    assert report.ok, [f.error for f in report.files]
    assert sorted(f.path for f in report.files) == [f"{url}!/{m}" for m in MEMBERS]
    assert total_rows(db) == 69
    root, base, faults = served
    (root / "drop.zip").write_bytes(
        zip_bytes({"h1.csv": csv_bytes(1000, 10), "h2.parquet": parquet_bytes(2000, 12)})
    )
    signed = f"{base}/drop.zip?{SIGNATURE}"
    over_http = load([signed])
    assert over_http.ok, [f.error for f in over_http.files]
    assert sorted(f.path for f in over_http.files) == [
        f"{base}/drop.zip!/h1.csv",
        f"{base}/drop.zip!/h2.parquet",
    ]
    assert (db.count("h1"), db.count("h2")) == (10, 12)
    assert all(r.split(" ", 2)[2] for r in faults.requests if r.startswith("GET"))
    assert "5ecre7516na7ure" not in manifest_text(db)


def test_a_corrupt_archive_is_named_and_the_other_inputs_load(tmp_path, db):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    good = tmp_path / "good.csv"
    good.write_bytes(csv_bytes(0, 3))
    done = run_cli(db, str(bad), str(good), "--table", "t")
    assert done.returncode != 0
    assert str(bad) in done.stdout + done.stderr
    assert db.count("t") == 3


def test_a_stream_is_read_in_windows_and_hashed_whole(served, load, db, monkeypatch):
    from pgingest.sources import remote

    monkeypatch.setattr(remote, "_WINDOW", (64 << 10) + 7)  # an odd size: windows cut lines
    monkeypatch.setattr(remote, "_SMALL_OBJECT", 0)  # (not read whole: it is small)
    root, base, faults = served
    body = csv_bytes(0, 30_000)
    (root / "w.csv").write_bytes(body)
    report = load([f"{base}/w.csv"], table="t")
    assert report.ok, [f.error for f in report.files]
    assert db.count("t") == 30_000
    assert db.val("SELECT count(DISTINCT id) FROM t") == 30_000
    windows = [r for r in faults.requests if r.startswith("GET /w.csv")]
    assert len(windows) >= len(body) // ((64 << 10) + 7)
    sha = db.val("SELECT sha256 FROM pgingest.files WHERE table_schema = $1", db.schema)
    assert sha == hashlib.sha256(body).hexdigest()


@pytest.mark.parametrize("fault", ["missing", "status_503"])
def test_a_failing_presigned_url_is_named_without_its_signature(served, db, fault):
    root, base, faults = served
    (root / "f.csv").write_bytes(csv_bytes(0, 3))
    name = "none.csv" if fault == "missing" else "f.csv"
    if fault == "status_503":
        faults.status_503 = 1_000
    url = f"{base}/{name}?X-Amz-Credential=AKIAEXAMPLE&{SIGNATURE}"
    done = run_cli(
        db,
        url,
        "--table",
        "t",
        "--retry-base",
        "0.01",
        "--max-retries",
        "1",
        "--log-format",
        "json",
        "-v",
    )
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert f"{base}/{name}" in output
    assert "5ecre7516na7ure" not in output
    assert "AKIAEXAMPLE" not in output
    recorded = db.fetch(
        "SELECT row_to_json(f)::text FROM pgingest.files f WHERE table_schema = $1", db.schema
    )
    if fault == "status_503":  # claimed, then failed after its retries: recorded so
        assert len(recorded) == 1
        assert f"{base}/{name}" in recorded[0][0]
    assert "5ecre7516na7ure" not in " ".join(r[0] for r in recorded)


def test_a_listing_cut_mid_request_is_retried_with_the_runs_bounds(
    bucket, s3, load, db, monkeypatch
):
    from test_retries import CuttingProxy

    bucket("cut/a.csv", csv_bytes(0, 7))
    moto = urlsplit(s3["AWS_ENDPOINT_URL"])
    proxy = CuttingProxy(f"postgresql://x@127.0.0.1:{moto.port}/x")  # (any TCP server)
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{proxy.port}")
        prefix = f"s3://{bucket.name}/cut/"
        proxy.cut_after(1)  # the listing's request: its connection cut as it arrives
        failed = load([prefix], table="t", max_retries=0)
        assert proxy.cuts == 1
        assert [f.status for f in failed.files] == ["failed"]
        assert prefix in (failed.files[0].error or "")
        proxy.cut_after(proxy.sent + 1)
        report = load([prefix], table="t", max_retries=2, retry_base=0.01)
        assert proxy.cuts == 2
        assert report.ok, [f.error for f in report.files]
        assert db.count("t") == 7
    finally:
        proxy.close()


def test_credentials_from_an_aws_profile(bucket, s3, db, tmp_path):
    url = bucket("prof/a.csv", csv_bytes(0, 4))
    (tmp_path / "credentials").write_text(
        f"[loader]\naws_access_key_id = AKIAPROFILEKEY\naws_secret_access_key = {SECRET}\n"
    )
    (tmp_path / "config").write_text("[profile loader]\nregion = us-east-1\n")
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "PGINGEST_CRASH_AT"
    }
    environ.update(
        AWS_ENDPOINT_URL=s3["AWS_ENDPOINT_URL"],
        AWS_PROFILE="loader",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "credentials"),
        AWS_CONFIG_FILE=str(tmp_path / "config"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    done = pgingest("load", "--dsn", db.dsn, "--schema", db.schema, url, timeout=180, env=environ)
    assert done.returncode == 0, done.stdout + done.stderr
    assert db.count("a") == 4
    assert SECRET not in done.stdout + done.stderr
    assert "AKIAPROFILEKEY" not in done.stdout + done.stderr + manifest_text(db)
    # Another profile: none such, and nothing loads (so the first one's keys were used).
    environ["AWS_PROFILE"] = "nobody"
    wrong = pgingest("load", "--dsn", db.dsn, "--schema", db.schema, url, timeout=180, env=environ)
    assert wrong.returncode == 1
    assert "nobody" in wrong.stdout + wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_parquet_by_ranges_reads_ahead_so_each_get_serves_several_column_reads(served, load, db):
    root, base, faults = served
    rows = 300_000
    rng = np.random.default_rng(16)
    table = pa.table(
        {
            "id": np.arange(rows),
            # Incompressible and uncompressed: a 13 MB file, its row groups' column chunks
            # read interleaved, a row group at a time.
            "a": rng.integers(0, 2**62, rows),
            "b": rng.random(rows),
            "c": [f"{v:x}" for v in rng.integers(0, 2**40, rows)],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink, row_group_size=30_000, compression="none")
    body = sink.getvalue()
    (root / "big.parquet").write_bytes(body)
    report = load([f"{base}/big.parquet"], table="t")
    assert report.ok, [f.error for f in report.files]
    assert db.count("t") == rows
    assert db.val("SELECT sum(b) FROM t") == pytest.approx(sum(table.column("b").to_pylist()))
    assert db.val("SELECT count(DISTINCT c) FROM t") == len(set(table.column("c").to_pylist()))
    gets = [r for r in faults.requests if r.startswith("GET /big.parquet")]
    # Read as asked (1 MiB at a time, a read per column chunk): 37 GETs; read ahead by 8 MiB:
    # the footer and a few ranges for the sample and for the load.
    assert len(gets) <= len(body) // (1 << 20), gets
    assert faults.sent <= 2.5 * len(body)


@pytest.mark.parametrize("allow_http", [True, False])
def test_an_azure_account_on_plain_http_needs_azure_allow_http(azure, db, allow_http):
    """The account's own variables (no emulator switch) against azurite on plain HTTP: pgingest's
    client options replace those obstore reads from the environment, so it honours
    ``AZURE_ALLOW_HTTP`` itself; without it the HTTP endpoint is refused."""
    from remote_servers import AZURITE_ACCOUNT, AZURITE_KEY

    name = "p" + uuid.uuid4().hex[:20]
    azure.create_container(name)
    azure.put(name, "a.csv", csv_bytes(0, 6))
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "AZURITE_"))}
    environ.update(
        AZURE_STORAGE_ACCOUNT_NAME=AZURITE_ACCOUNT,
        AZURE_STORAGE_ACCOUNT_KEY=AZURITE_KEY,
        AZURE_STORAGE_ENDPOINT=f"{azure.url}/{AZURITE_ACCOUNT}",
    )
    if allow_http:
        environ["AZURE_ALLOW_HTTP"] = "true"
    done = pgingest(
        "load", "--dsn", db.dsn, "--schema", db.schema, f"az://{name}/a.csv", "--table", "t",
        "--max-retries", "0", timeout=180, env=environ,
    )  # fmt: skip
    if allow_http:
        assert done.returncode == 0, done.stdout + done.stderr
        assert db.count("t") == 6
    else:
        assert done.returncode != 0
        assert f"az://{name}/a.csv" in done.stdout + done.stderr
        assert AZURITE_KEY not in done.stdout + done.stderr

"""Metrics, JSON logs and progress output of real loads."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families


def write_csv(path: Path, rows: int, start: int = 0) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(start, start + rows)))
    return path


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition, keyed by name and sorted labels."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(found: dict, name: str, **labels: str) -> float:
    return sum(
        v
        for (n, lab), v in found.items()
        if n == name and all(dict(lab).get(k) == val for k, val in labels.items())
    )


def pgingest(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgingest", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_metrics_file_counts_what_was_loaded(tmp_path, db):
    a = write_csv(tmp_path / "a.csv", 2500)
    b = write_csv(tmp_path / "b.csv", 1200, start=5000)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\x00\x01\x02binary\xff" * 50)
    prom = tmp_path / "out.prom"
    done = pgingest(
        "load",
        "--dsn",
        db.dsn,
        "--schema",
        db.schema,
        str(a),
        str(b),
        str(bad),
        "--table",
        "m",
        "--batch-size",
        "1000",
        "--metrics-file",
        str(prom),
    )
    assert done.returncode == 1, done.stderr  # the binary file fails, the others load
    found = samples(prom.read_text())
    batches = db.val(
        "SELECT count(*) FROM pgingest.file_batches b JOIN pgingest.files f ON f.id = b.file_id"
        " WHERE f.table_schema = $1 AND f.table_name = 'm'",
        db.schema,
    )
    assert total(found, "ingest_files_processed_total", file_type="csv", status="loaded") == 2
    assert total(found, "ingest_files_processed_total", status="failed") == 1
    assert total(found, "ingest_rows_read_total", file_type="csv") == 3700 == db.count("m")
    assert total(found, "ingest_rows_staged_total") == 3700
    assert total(found, "ingest_rows_upserted_total", table=f"{db.schema}.m") == 3700
    assert total(found, "ingest_rows_rejected_total", table=f"{db.schema}.m") == 0
    assert total(found, "ingest_batches_processed_total") == batches >= 3
    assert total(found, "ingest_batch_latency_seconds_count") == batches
    assert total(found, "ingest_retries_total") == 0
    assert total(found, "ingest_memory_peak_bytes") > 10 << 20


def test_metrics_endpoint_scraped_during_the_run(tmp_path, db):
    files = [write_csv(tmp_path / f"s{n}.csv", 3000, start=n * 10_000) for n in range(3)]
    port = free_port()
    prom = tmp_path / "after.prom"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgingest",
            "load",
            "--dsn",
            db.dsn,
            "--schema",
            db.schema,
            *map(str, files),
            "--table",
            "s",
            "--concurrency",
            "1",
            "--pause-every",
            "1",
            "--pause-seconds",
            "1",
            "--metrics-port",
            str(port),
            "--metrics-file",
            str(prom),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    scraped = None
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as page:
                text = page.read().decode()
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.05)
            continue
        found = samples(text)
        if total(found, "ingest_files_processed_total") >= 1:
            scraped = found
            break
        time.sleep(0.05)
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert scraped is not None, "the endpoint never showed a finished file during the run"
    assert 3000 <= total(scraped, "ingest_rows_read_total") < 9000
    after = samples(prom.read_text())
    assert total(after, "ingest_rows_read_total") == 9000 == db.count("s")
    assert total(after, "ingest_files_processed_total", status="loaded") == 3
    with socket.socket() as s:  # the server is gone with the run
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_json_log_lines_all_parse_and_carry_the_fields(tmp_path, db):
    a = write_csv(tmp_path / "a.csv", 2000)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,a\n")
    write_csv(tmp_path / "j2.csv", 10)
    db.execute(f'CREATE TABLE "{db.schema}".jb (id integer, other text)')
    done = pgingest(
        "load",
        "--dsn",
        db.dsn,
        "--schema",
        db.schema,
        str(a),
        "--table",
        "j",
        "--batch-size",
        "500",
        "--log-format",
        "json",
        "-v",
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()
    batches = [x for x in lines if x.get("status") == "committed"]
    assert (
        len(batches)
        == db.val(
            "SELECT count(*) FROM pgingest.file_batches b JOIN pgingest.files f ON f.id = b.file_id"
            " WHERE f.path = $1",
            str(a),
        )
        > 0
    )
    for x in batches:
        assert {"run_id", "file", "table", "batch", "rows", "latency_ms"} <= x.keys()
    files = [x for x in lines if x.get("status") == "loaded"]
    assert files[0]["rows"] == 2000
    assert files[0]["file"] == str(a)

    log_file = tmp_path / "run.log"
    failing = pgingest(
        "load",
        "--dsn",
        db.dsn,
        "--schema",
        db.schema,
        str(bad),
        "--table",
        "jb",
        "--on-new-column",
        "fail",
        "--log-format",
        "json",
        "--log-file",
        str(log_file),
    )
    assert failing.returncode == 1
    logged = [json.loads(line) for line in log_file.read_text().splitlines()]
    failed = [x for x in logged if x.get("status") == "failed" and x.get("file")]
    assert failed
    assert "name" in failed[0]["error"]
    assert any("run_id" in x for x in logged)


def test_no_progress_bars_unless_stdout_is_a_terminal(tmp_path, db):
    src = write_csv(tmp_path / "p.csv", 3000)
    piped = pgingest("load", "--dsn", db.dsn, "--schema", db.schema, str(src), "--table", "p1")
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr  # no terminal control sequences
    assert piped.stdout.startswith("✓ ")

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pgingest",
            "load",
            "--dsn",
            db.dsn,
            "--schema",
            db.schema,
            str(src),
            "--table",
            "p2",
            "--force",
        ],
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "TERM": "xterm", "COLUMNS": "120"},
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    shown = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, shown
    assert "\x1b[" in shown  # rich drew (and removed) its bars
    assert "rows" in shown

    quiet = pgingest(
        "load", "--dsn", db.dsn, "--schema", db.schema, str(src), "--table", "p3", "--no-progress"
    )
    assert "\x1b[" not in quiet.stdout

"""A file that cannot be read is the file's fault, not the connection's: it fails at once
(no retries), named, recorded; and every failed file's ✗ line names its file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from test_retries import CuttingProxy, via_proxy

import pgingest
from pgingest.observability.progress import NullReporter


def run_unprivileged(dsn: str, schema: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``pgingest load`` without the capabilities that let root read any file."""
    command = [sys.executable, "-m", "pgingest", "load", "--dsn", dsn, "--schema", schema, *args]
    if os.geteuid() == 0:
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_an_unreadable_file_fails_at_once_named_and_recorded(tmp_path, db):
    good = tmp_path / "good.csv"
    good.write_text("a\n1\n2\n")
    bad = tmp_path / "secret.csv"
    bad.write_text("a\n3\n")
    bad.chmod(0)
    # Through a TCP proxy: without those capabilities the server's Unix socket (the embedded
    # server's, in a private folder) is unreachable too.
    proxy = CuttingProxy(db.dsn)
    try:
        done = run_unprivileged(
            via_proxy(db.dsn, proxy.port),
            db.schema,
            str(good),
            str(bad),
            "--table",
            "t",
            "--retry-base",
            "0.01",
        )
    finally:
        proxy.close()
    assert done.returncode == 1, done.stderr
    output = done.stdout + done.stderr
    assert "retrying" not in output
    failed = [line for line in output.splitlines() if line.startswith("✗")]
    assert len(failed) == 1, output
    assert str(bad) in failed[0]
    assert "permission denied" in failed[0].lower()
    assert "connection" not in failed[0]
    assert db.count("t") == 2
    rows = db.fetch("SELECT status, error FROM pgingest.files WHERE path = $1", str(bad))
    assert [r["status"] for r in rows] == ["failed"]
    assert "permission denied" in rows[0]["error"].lower()


class _DeleteOnStart(NullReporter):
    """Deletes a file once the run has started (after discovery)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def run_started(self, run_id: int) -> None:
        self.path.unlink()


def test_a_file_deleted_after_discovery_fails_at_once_named(tmp_path, db):
    gone = tmp_path / "gone.csv"
    gone.write_text("a\n1\n")
    report = pgingest.load(
        [str(gone)],
        dsn=db.dsn,
        schema=db.schema,
        table="t",
        retry_base=0.01,
        reporter=_DeleteOnStart(gone),
    )
    assert report.retries == 0
    [failed] = report.failed
    assert str(gone) in failed.error
    assert "connection" not in failed.error


def test_every_failed_line_names_its_file(tmp_path, db, load):
    two = tmp_path / "two.csv"
    two.write_text("a,b\n1,2\n")
    load(two, table="lacks")
    one = tmp_path / "one.csv"
    one.write_text("a\n1\n")
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(1601)) + "\n" + ",".join("1" * 1601) + "\n")
    [lacks] = load(one, table="lacks").failed
    assert lacks.error.startswith(f"{one}: file lacks column(s) b")
    [too_wide] = load(wide, table="wide").failed
    assert too_wide.error.startswith(f"{wide}: ")
    assert "1600 columns" in too_wide.error
    [too_long] = load(one, table="t" * 70).failed
    assert too_long.error.startswith(f"{one}: ")
    assert "too long" in too_long.error

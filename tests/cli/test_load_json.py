"""``pgingest load --json``: one JSON document on stdout at the end, for schedulers and
scripts; progress and messages on stderr."""

from __future__ import annotations

import json
import subprocess
import sys


def test_load_json_is_one_document_on_stdout(tmp_path, db):
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,a\n2,b\n3,c\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name\n1,a\n2,b,c,d\n")
    skipped = tmp_path / "again.csv"
    skipped.write_text("id\n7\n")
    args = [sys.executable, "-m", "pgingest", "load", "--dsn", db.dsn, "--schema", db.schema]
    subprocess.run([*args, str(skipped)], capture_output=True, timeout=120, check=True)

    done = subprocess.run(
        [*args, "--json", str(good), str(bad), str(skipped), "--on-error", "skip"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    document = json.loads(done.stdout)  # nothing else on stdout
    assert done.returncode == 0, done.stderr
    run = document["run"]
    assert run["exit_code"] == 0
    assert (run["files"], run["loaded"], run["skipped"], run["failed"]) == (3, 2, 1, 0)
    assert run["rows"] == 4
    assert run["rejects"] == 1
    assert isinstance(run["id"], int)
    by_path = {f["path"]: f for f in document["files"]}
    assert by_path[str(good)]["status"] == "loaded"
    assert by_path[str(good)]["rows"] == 3
    assert by_path[str(good)]["table"] == f"{db.schema}.good"
    assert by_path[str(bad)]["rejects"] == 1
    assert by_path[str(skipped)]["status"] == "skipped"
    assert set(by_path[str(good)]) >= {"path", "table", "status", "rows", "rejects", "seconds"}
    # Progress and messages went to stderr, the closing line last.
    assert f"✓ {good}" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("done: 2 file(s) loaded, 1 skipped;")

    failing = subprocess.run(
        [*args, "--json", str(bad), "--force"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failing.returncode == 1
    document = json.loads(failing.stdout)
    assert document["run"]["exit_code"] == 1
    assert document["run"]["failed"] == 1
    (entry,) = document["files"]
    assert entry["status"] == "failed"
    assert "line 3" in entry["error"]


def test_load_json_when_the_run_cannot_start(tmp_path):
    src = tmp_path / "a.csv"
    src.write_text("id\n1\n")
    done = subprocess.run(
        [sys.executable, "-m", "pgingest", "load", "--dsn", "foo://bar", "--json", str(src)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr  # a DSN that is not one: a usage error
    document = json.loads(done.stdout)
    assert document["run"]["exit_code"] == 2
    assert document["files"] == []
    assert document["run"]["error"]
    assert document["run"]["error"] in done.stderr


def test_load_json_with_json_logs_on_stderr(tmp_path, db):
    """--json and --log-format json: stdout is the document, stderr only log objects."""
    src = tmp_path / "both.csv"
    src.write_text("id\n1\n2\n")
    done = subprocess.run(
        [
            *(sys.executable, "-m", "pgingest", "load", "--dsn", db.dsn, "--schema", db.schema),
            *("--json", "--log-format", "json", str(src)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["run"]["rows"] == 2
    logged = [json.loads(line) for line in done.stderr.splitlines()]
    assert any(x.get("file") == str(src) for x in logged)

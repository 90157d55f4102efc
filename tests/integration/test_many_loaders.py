"""Many loaders, one load: separate ``pgingest load`` processes given the same folder share its
files through the manifest (each file loaded by one of them, a killed loader's files taken over
by a re-run), and ``pgingest status`` names the host and process that loaded each file and
what is loading now."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.processes import environment, pgingest, wait_for

FILES = 300
ROWS = 40


def write_files(folder: Path) -> set[int]:
    """``FILES`` small CSV files of ``ROWS`` rows each, every id in one file only."""
    folder.mkdir()
    ids: set[int] = set()
    for n in range(FILES):
        first = n * ROWS
        rows = range(first, first + ROWS)
        ids.update(rows)
        lines = ["id,v,src", *(f"{i},{i * 7 % 1000},f{n:03d}" for i in rows)]
        (folder / f"part-{n:03d}.csv").write_text("\n".join(lines) + "\n")
    return ids


def loader(db, folder: Path) -> subprocess.Popen[str]:
    # Small batches: each file is several transactions, so a loader is often mid-file (a
    # kill leaves a file with committed batches; status finds files loading now).
    args = ["load", str(folder), "--dsn", db.dsn, "--schema", db.schema, "--table", "t"]
    return subprocess.Popen(
        [sys.executable, "-m", "pgingest", *args, "--batch-size", "8", "-j", "2", "-q"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )


def loaded_by(db, pid: int) -> int:
    if not db.val("SELECT to_regclass('pgingest.files') IS NOT NULL"):
        return 0  # no loader has made the manifest yet
    return int(
        db.val(
            "SELECT count(*) FROM pgingest.files WHERE table_schema = $1 AND pid = $2"
            " AND status = 'success'",
            db.schema,
            pid,
        )
    )


def status_json(db) -> dict[str, object]:
    done = pgingest("status", "--dsn", db.dsn, "--table", f"{db.schema}.t", "--json", "--files")
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_three_loaders_one_killed_then_a_rerun_load_every_row_once(db, tmp_path):
    folder = tmp_path / "drop"
    ids = write_files(folder)
    procs = [loader(db, folder) for _ in range(3)]
    try:
        # One killed mid-way: the first to have loaded some files, while the others still load.
        wait_for(
            lambda: any(loaded_by(db, p.pid) >= 5 for p in procs), 90, "a loader's first files"
        )
        victim = next(p for p in procs if loaded_by(db, p.pid) >= 5)
        survivors = [p for p in procs if p is not victim]
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=10)
        # Its server sessions end (and free its locks) once the server sees the sockets close.
        wait_for(
            lambda: (
                not db.val(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                    f"pgingest {victim.pid} %",
                )
            ),
            30,
            "the killed loader's sessions to end",
        )
        # What is loading now: files held by a live loader, each named by its host and pid.
        seen_running: set[int] = set()

        def running_now() -> bool:
            for item in status_json(db)["running"]:  # type: ignore[union-attr]
                assert item["host"] == socket.gethostname(), item
                seen_running.add(item["pid"])
            return bool(seen_running)

        wait_for(running_now, 60, "status to show a file loading now")
        outputs = [p.communicate(timeout=180) for p in survivors]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.communicate(timeout=10)
    for p, (out, err) in zip(survivors, outputs, strict=True):
        assert p.returncode == 0, out + err
    assert seen_running <= {p.pid for p in survivors}, seen_running
    killed_files = loaded_by(db, victim.pid)
    assert killed_files >= 5
    for p in survivors:  # both survivors took part
        assert loaded_by(db, p.pid) > 0, p.pid

    # The re-run loads what the killed loader left (its file in flight resumes) and nothing
    # twice.
    rerun = pgingest("load", str(folder), "--dsn", db.dsn, "--schema", db.schema, "--table", "t")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = db.fetch(f'SELECT id, v, src FROM "{db.schema}".t')
    assert len(rows) == FILES * ROWS
    assert {r["id"] for r in rows} == ids
    for r in rows:  # each row as its file has it
        assert (r["v"], r["src"]) == (r["id"] * 7 % 1000, f"f{r['id'] // ROWS:03d}")
    per_file = db.fetch(
        "SELECT path, count(*) AS n, sum(rows) AS rows FROM pgingest.files"
        " WHERE table_schema = $1 AND status = 'success' GROUP BY path",
        db.schema,
    )
    assert len(per_file) == FILES
    assert all(r["n"] == 1 and r["rows"] == ROWS for r in per_file), per_file

    # Status names the loader of every file (host and process) and each loader's share.
    data = status_json(db)
    pids = {p.pid for p in procs}
    files = data["files"]
    assert len(files) == FILES  # type: ignore[arg-type]
    for item in files:  # type: ignore[union-attr]
        assert item["host"] == socket.gethostname(), item
    # Each file's loader is one of the three, or the re-run.
    others = {item["pid"] for item in files} - pids  # type: ignore[union-attr]
    assert len(others) <= 1, others
    assert None not in others
    loaders = {(p["host"], p["pid"]): p for p in data["loaders"]}  # type: ignore[union-attr]
    for p in procs:
        assert loaders[(socket.gethostname(), p.pid)]["files_loaded"] == loaded_by(db, p.pid)
    assert sum(p["files_loaded"] for p in loaders.values()) == FILES
    assert sum(p["rows"] for p in loaders.values()) == FILES * ROWS
    assert data["running"] == []
    # The plain text names them too.
    text = pgingest("status", "--dsn", db.dsn, "--table", f"{db.schema}.t")
    for p in survivors:
        assert f"{socket.gethostname()} pid {p.pid}" in text.stdout, text.stdout

"""``pgingest load --workers N``: one run, N loader processes sharing the files through the
manifest; one exit code and closing line for them all; SIGTERM stops them all, bounded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.processes import environment, pgingest, wait_for

ROWS = 30


def write_files(folder: Path, count: int) -> set[int]:
    folder.mkdir()
    ids: set[int] = set()
    for n in range(count):
        rows = range(n * ROWS, (n + 1) * ROWS)
        ids.update(rows)
        body = "".join(f"{i},{i % 97},f{n}\n" for i in rows)
        (folder / f"part-{n:03d}.csv").write_text("id,v,src\n" + body)
    return ids


def command(db, folder: Path, *extra: str) -> list[str]:
    return ["load", str(folder), "--dsn", db.dsn, "--schema", db.schema, "--table", "t", *extra]


def started(db, folder: Path, *extra: str) -> subprocess.Popen[str]:
    """The command started in a process group (a session) of its own, its workers in it."""
    return subprocess.Popen(
        [sys.executable, "-m", "pgingest", *command(db, folder, *extra)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        start_new_session=True,
    )


def runs_of(db) -> list[dict[str, object]]:
    return [
        dict(r)
        for r in db.fetch(
            "SELECT id, status, pid, files_loaded, files_failed, rows FROM pgingest.runs"
            " WHERE options->>'schema' = $1 ORDER BY id",
            db.schema,
        )
    ]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_load_every_file_once_as_one_run(db, tmp_path, workers):
    folder = tmp_path / "drop"
    ids = write_files(folder, 120)
    done = pgingest(*command(db, folder, "--workers", str(workers), "--batch-size", "10"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("done: 120 file(s) loaded;"), done.stdout
    rows = db.fetch(f'SELECT id, src FROM "{db.schema}".t')
    assert len(rows) == 120 * ROWS
    assert {r["id"] for r in rows} == ids
    (run,) = runs_of(db)
    assert run["status"] == "success"
    assert (run["files_loaded"], run["files_failed"], run["rows"]) == (120, 0, 120 * ROWS)
    files = db.fetch(
        "SELECT run_id, pid, status FROM pgingest.files WHERE table_schema = $1", db.schema
    )
    assert len(files) == 120
    assert {f["run_id"] for f in files} == {run["id"]}
    assert {f["status"] for f in files} == {"success"}
    loaders = {f["pid"] for f in files}
    # The workers' processes loaded them, not the one that recorded the run.
    assert run["pid"] not in loaders
    assert 1 <= len(loaders) <= workers
    # Again: every file skipped, nothing loaded twice.
    again = pgingest(*command(db, folder, "--workers", str(workers)))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "120 skipped" in again.stdout.strip().splitlines()[-1], again.stdout
    assert db.count("t") == 120 * ROWS


def test_the_run_analyzes_its_table_once_after_every_worker(db, tmp_path):
    # Each worker analyzed the table when its own files were done: twice, the first time
    # while the other worker was still loading. The run's process does it once, at the end.
    folder = tmp_path / "drop"
    write_files(folder, 40)
    done = pgingest(*command(db, folder, "--workers", "2", "-v"))
    assert done.returncode == 0, done.stdout + done.stderr
    (stages,) = [
        line.split(": ", 1)[1]
        for line in (done.stdout + done.stderr).splitlines()
        if line.startswith("stages (")
    ]
    names = [part.split()[0] for part in stages.split(", ")]
    assert "analyze" in names, stages
    assert names == sorted(names), stages  # (the run's own ANALYZE among the workers' stages)
    stats = db.fetch(
        "SELECT analyze_count, last_analyze FROM pg_stat_user_tables"
        " WHERE schemaname = $1 AND relname = 't'",
        db.schema,
    )
    assert [s["analyze_count"] for s in stats] == [1]
    last_file = db.val(
        "SELECT max(finished_at) FROM pgingest.files WHERE table_schema = $1", db.schema
    )
    assert stats[0]["last_analyze"] >= last_file
    assert (
        db.val(f"SELECT reltuples FROM pg_class WHERE oid = '\"{db.schema}\".t'::regclass")
        == 40 * ROWS
    )


@pytest.mark.parametrize("mode", ["upsert", "append"])
def test_forced_workers_load_each_file_once_in_the_run(db, tmp_path, mode):
    # Found: with --force every worker claimed every file again (the manifest loaded each
    # file once per worker: 12 records and twice the rows for 6 files, two workers).
    folder = tmp_path / "drop"
    write_files(folder, 6)
    keyed = ("--mode", "upsert", "--pk", "id") if mode == "upsert" else ()
    assert pgingest(*command(db, folder, *keyed)).returncode == 0
    done = pgingest(*command(db, folder, *keyed, "--force", "--workers", "2"))
    assert done.returncode == 0, done.stdout + done.stderr
    run = runs_of(db)[-1]
    files = db.fetch(
        "SELECT path, rows FROM pgingest.files WHERE run_id = $1 AND status = 'success'",
        run["id"],
    )
    assert sorted(f["path"] for f in files) == sorted(str(p) for p in folder.iterdir())
    assert sum(f["rows"] for f in files) == 6 * ROWS
    assert db.count("t") == 6 * ROWS


def test_a_failed_file_fails_the_command_once(db, tmp_path):
    folder = tmp_path / "drop"
    write_files(folder, 40)
    (folder / "part-017.csv").write_text("id,v,src\n1,2,x\n2,3,y,z\n")
    done = pgingest(*command(db, folder, "--workers", "2"))
    assert done.returncode == 1, done.stdout + done.stderr
    closing = (done.stdout + done.stderr).strip().splitlines()[-1]
    assert "39 file(s) loaded" in closing, closing
    assert "1 failed" in closing, closing
    (run,) = runs_of(db)
    assert (run["status"], run["files_loaded"], run["files_failed"]) == ("failed", 39, 1)


def test_sigterm_stops_every_worker_and_a_rerun_finishes(db, tmp_path):
    folder = tmp_path / "drop"
    ids = write_files(folder, 300)
    proc = started(db, folder, "--workers", "3", "-q")  # signalled alone, by a supervisor
    try:

        def some_loaded() -> bool:
            if not db.val("SELECT to_regclass('pgingest.files') IS NOT NULL"):
                return False
            return bool(
                db.val(
                    "SELECT count(*) >= 10 FROM pgingest.files WHERE table_schema = $1"
                    " AND status = 'success'",
                    db.schema,
                )
            )

        wait_for(some_loaded, 90, "the workers' first files")
        workers = {
            r["pid"]
            for r in db.fetch(
                "SELECT DISTINCT pid FROM pgingest.files WHERE table_schema = $1", db.schema
            )
        }
        stopped = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 130, out + err
    assert time.monotonic() - stopped < 40
    assert "interrupted by SIGTERM" in err
    assert not [pid for pid in workers if alive(pid)], workers
    (run,) = runs_of(db)
    if run["files_loaded"] == 300:
        pytest.fail("the load ended before the signal: nothing was stopped")
    assert run["status"] == "interrupted"
    rerun = pgingest(*command(db, folder))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = db.fetch(f'SELECT id FROM "{db.schema}".t')
    assert len(rows) == 300 * ROWS
    assert {r["id"] for r in rows} == ids


def test_an_unreachable_server_fails_in_one_line_and_the_workers_end(tmp_path):
    # The run's process connected without retries and without saying what failed:
    # "unexpected error: ConnectionRefusedError", exit code 70.
    folder = tmp_path / "drop"
    write_files(folder, 3)
    started = time.monotonic()
    done = pgingest(
        "load", str(folder), "--dsn", "postgresql://postgres@127.0.0.1:1/nowhere",
        "--workers", "2", "--max-retries", "1", "--retry-base", "0.01",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: cannot connect to postgresql://postgres@127.0.0.1:1/nowhere")
    assert "(after 1 retries)" in error, error
    assert time.monotonic() - started < 30


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
@pytest.mark.parametrize("after", [0.0, 0.05, 0.1, 0.2, 0.35])
def test_ctrl_c_while_the_workers_start_stops_quietly(db, tmp_path, after):
    """Ctrl-C reaches the terminal's whole process group: a worker still starting (its
    imports, waiting for the run's start) printed a KeyboardInterrupt's traceback. Now every
    moment of the start (``after`` seconds once the workers exist) stops the same way, and a
    re-run loads every row once."""
    folder = tmp_path / "drop"
    ids = write_files(folder, 60)
    proc = started(db, folder, "--workers", "2", "-q")  # its group signalled, as a terminal's
    try:
        wait_for(lambda: len(children(proc.pid)) >= 2, 60, "the workers' processes")
        time.sleep(after)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode in (0, 130), out + err  # (0: it was done before the signal)
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    rerun = pgingest(*command(db, folder))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = db.fetch(f'SELECT id FROM "{db.schema}".t')
    assert len(rows) == len(ids)
    assert {r["id"] for r in rows} == ids


def test_workers_refuse_replace(db, tmp_path):
    folder = tmp_path / "drop"
    write_files(folder, 2)
    done = pgingest(*command(db, folder, "--workers", "2", "--mode", "replace"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--workers does not go with --mode replace" in done.stderr


def test_a_lost_worker_is_taken_over_or_fails_its_file(db, tmp_path):
    """A worker killed (SIGKILL, as the OOM killer would): the other takes its unfinished
    file over if it has not passed it yet, else the command fails that file, saying why; a
    re-run loads every row once either way."""
    folder = tmp_path / "drop"
    ids = write_files(folder, 300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgingest", *command(db, folder, "--workers", "2")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    try:

        def a_worker() -> int | None:
            if not db.val("SELECT to_regclass('pgingest.files') IS NOT NULL"):
                return None
            return db.val(
                "SELECT pid FROM pgingest.files WHERE table_schema = $1 AND status = 'success'"
                " GROUP BY pid HAVING count(*) >= 5 LIMIT 1",
                db.schema,
            )

        wait_for(lambda: a_worker() is not None, 90, "a worker's first files")
        victim = a_worker()
        assert victim is not None
        os.kill(victim, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    output = out + err
    assert "a worker stopped: worker " in output, output
    assert "died (exit code -9)" in output, output
    (run,) = runs_of(db)
    loaded = db.val(
        "SELECT count(*) FROM pgingest.files WHERE table_schema = $1 AND status = 'success'",
        db.schema,
    )
    if loaded == 300:  # the other worker took the killed one's file over
        assert (proc.returncode, run["status"]) == (0, "success"), output
    else:
        assert (proc.returncode, run["status"]) == (1, "failed"), output
        assert "a worker of this run was lost while the file was held" in output, output
    rerun = pgingest(*command(db, folder))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    rows = db.fetch(f'SELECT id FROM "{db.schema}".t')
    assert len(rows) == 300 * ROWS
    assert {r["id"] for r in rows} == ids


def test_the_run_is_closed_on_a_new_session_when_its_own_was_ended(db, tmp_path):
    """Found: the command's own session, idle while the workers load, ended by the server (an
    administrator, a restart): the command said success, exit 0, but the run stayed
    'running' in the manifest for good and its new table was never analyzed. The run's
    process now closes the run on a new session."""
    folder = tmp_path / "drop"
    ids = write_files(folder, 300)
    proc = started(db, folder, "--workers", "2")
    try:

        def loaded() -> int:
            if not db.val("SELECT to_regclass('pgingest.files') IS NOT NULL"):
                return 0
            return int(
                db.val(
                    "SELECT count(*) FROM pgingest.files"
                    " WHERE table_schema = $1 AND status = 'success'",
                    db.schema,
                )
            )

        wait_for(lambda: loaded() >= 5 or proc.poll() is not None, 90, "the first files")
        ended = db.val(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = $1",
            f"pgingest {proc.pid} workers",
        )
        if loaded() >= 300 or ended != 1:
            pytest.fail(f"the run ended before its session could be ({ended} ended)")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    assert proc.returncode == 0, out + err
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == len(ids)
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == len(ids)
    assert [(r["status"], r["files_loaded"]) for r in runs_of(db)] == [("success", 300)]
    assert (
        db.val(
            "SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 't'",
            db.schema,
        )
        == 1
    )

"""A connection cut at any point of the run's own session: while it records the run (the
manifest made or checked, the run's row written), while it loads, or while it closes the run
(ANALYZE, the run's counts). With one process or with ``--workers``, the command retries on a
new connection and ends well: every row once, every file recorded as loaded, the run closed.
``--mode replace`` too (its run holds one more session, with the tables' locks); upsert and
merge passed the same sweep once at 24 points, not kept in the suite for its time.

The cut points are spread over every byte the run's session sends in a run without a cut (the
proxy counts them), so they land in each of its statements in turn, whatever their sizes on a
given server.
"""

from __future__ import annotations

import subprocess

import pytest
from test_retries import CuttingProxy, run_load, via_proxy

FILES = 4
ROWS = 50
POINTS = 24


def write_files(folder, first: int) -> list[int]:
    """``FILES`` files of ``ROWS`` rows, ids from ``first`` on (each folder's content new)."""
    folder.mkdir()
    ids = list(range(first, first + FILES * ROWS))
    for n in range(FILES):
        part = ids[n * ROWS : (n + 1) * ROWS]
        (folder / f"part-{n}.csv").write_text("id,v\n" + "".join(f"{i},{i % 7}\n" for i in part))
    return ids


def load(db, folder, dsn: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_load(
        dsn,
        db.schema,
        str(folder),
        "--table",
        "t",
        "--retry-base",
        "0.05",
        "--max-retries",
        "8",
        *extra,
    )


def first_session_bytes(db, folder, *extra: str) -> int:
    """What the run's own session sends in a run without a cut."""
    proxy = CuttingProxy(db.dsn)
    try:
        proxy.cut_after(1 << 40, first_only=True)
        done = load(db, folder, via_proxy(db.dsn, proxy.port), *extra)
    finally:
        proxy.close()
    assert done.returncode == 0, done.stdout + done.stderr
    assert proxy.sent > 0
    return proxy.sent


@pytest.mark.parametrize(
    "extra",
    [("--workers", "1"), ("--workers", "2"), ("--mode", "replace")],
    ids=["one process", "workers", "replace"],  # (replace: a session more, holding the locks)
)
def test_the_run_s_session_cut_anywhere_ends_with_every_row_once(db, tmp_path, extra):
    for n in range(2):  # (the first may make the manifest: the second run is the measure)
        measured = tmp_path / f"measure-{n}"
        write_files(measured, -(n + 1) * FILES * ROWS)
        db.execute(f'DROP TABLE IF EXISTS "{db.schema}".t')
        total = first_session_bytes(db, measured, *extra)
    for point in range(POINTS):
        db.execute(f'DROP TABLE IF EXISTS "{db.schema}".t')
        folder = tmp_path / f"cut-{point}"
        ids = write_files(folder, (point + 1) * FILES * ROWS)
        cut = max(1, total * point // POINTS + total // (2 * POINTS))
        proxy = CuttingProxy(db.dsn)
        try:
            proxy.cut_after(cut, first_only=True)
            done = load(db, folder, via_proxy(db.dsn, proxy.port), *extra)
        finally:
            proxy.close()
        said = f"cut after {cut} of {total} bytes: {done.stdout}{done.stderr}"
        assert proxy.cuts == 1, said
        assert done.returncode == 0, said
        assert "Traceback" not in done.stderr, said
        rows = db.fetch(f'SELECT id FROM "{db.schema}".t')
        assert sorted(r["id"] for r in rows) == sorted(ids), said
        files = db.fetch(
            "SELECT status FROM pgingest.files WHERE table_schema = $1 AND path LIKE $2",
            db.schema,
            f"{folder}/%",
        )
        assert [r["status"] for r in files] == ["success"] * FILES, said
        last_run = db.val(
            "SELECT status FROM pgingest.runs WHERE options->>'schema' = $1"
            " ORDER BY id DESC LIMIT 1",
            db.schema,
        )
        assert last_run == "success", said

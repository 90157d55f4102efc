"""The load's progress as a person sees it: the command runs on a pseudo-terminal of 120
columns, a terminal emulator (pyte) draws what it writes, and the tests look at the screen
while the files load and after."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pyte

COLUMNS, LINES = 120, 40
BOUND_SECONDS = 180


def screen_of(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).rstrip()


def logical_lines(screen: str) -> list[str]:
    """The screen's non-blank lines, a line the terminal wrapped (it fills the width) joined
    with the rest of it."""
    out: list[str] = []
    joining = False
    for line in screen.splitlines():
        if joining:
            out[-1] += line
        elif line.strip():
            out.append(line)
        joining = len(line) == COLUMNS
    return out


def run_on_terminal(*args: str, cwd: Path) -> tuple[int, list[str], str]:
    """Run ``pgingest ARGS`` on a pty; return its exit code, the screens seen while it ran
    (one per read of its output) and the last screen."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(LINES)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgingest", *args],
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    os.close(follower)
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    seen: list[str] = []
    deadline = time.monotonic() + BOUND_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            stream.feed(data)
            seen.append(screen_of(screen.display))
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(leader)
    return code, seen, screen_of(screen.display)


def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    csv = tmp_path / "wide_enough.csv"
    with csv.open("w") as out:
        out.write("id,name,amount\n")
        for start in range(0, 400_000, 50_000):
            out.write("".join(f"{i},name {i},{i * 0.5}\n" for i in range(start, start + 50_000)))
    parquet = tmp_path / "rows_known.parquet"
    n = 400_000
    pq.write_table(
        pa.table({"id": pa.array(range(n)), "name": [f"n{i}" for i in range(n)]}),
        parquet,
        row_group_size=20_000,
    )
    bad = tmp_path / "broken.csv"
    bad.write_text("id,name\n1,a\n2,b,c,d\n")
    return csv, parquet, bad


BAR = re.compile(r"[━╸╺]")
TOTAL = re.compile(r"all files .*?([\d.,]+)/([\d.,]+) (kB|MB|bytes)")
PARQUET = re.compile(r"rows_known\.parquet .*?([\d,]+)/([\d,]+) rows")


def test_progress_on_a_terminal_adds_up_and_leaves_clean_lines(tmp_path, db):
    csv, parquet, bad = files(tmp_path)
    code, seen, last = run_on_terminal(
        "load",
        "--dsn",
        db.dsn,
        "--schema",
        db.schema,
        "--batch-size",
        "20000",
        "--concurrency",
        "2",
        csv.name,
        parquet.name,
        bad.name,
        cwd=tmp_path,
    )
    assert code == 1, last

    # While it ran: the run's bar has a total (the bytes of the three files) and moves.
    totals = [m.groups() for s in seen for m in [TOTAL.search(s)] if m]
    assert totals, "\n----\n".join(seen[-5:])
    assert {t[1] for t in totals} != {"?"}
    assert len({t[0] for t in totals}) >= 2, totals  # it moved
    size = csv.stat().st_size + parquet.stat().st_size + bad.stat().st_size
    assert float(totals[0][1].replace(",", "")) == round(size / 1e6, 1)  # MB of the files found
    # The Parquet file's bar counts rows against its row count, and never passes it.
    counted = [m.groups() for s in seen for m in [PARQUET.search(s)] if m]
    assert counted, "\n----\n".join(seen[-5:])
    for done, total in counted:
        assert total == "400,000"
        assert int(done.replace(",", "")) <= 400_000

    # After: no bar is left, each file has one clean line, and the last line says how it ended.
    lines = logical_lines(last)
    assert not BAR.search(last), last
    assert "all files" not in last
    done_lines = [line for line in lines if line.startswith("✓ ")]
    assert len(done_lines) == 2, last
    for line in done_lines:
        assert re.fullmatch(r"✓ \S+  [\d,]+ rows  [\d.]+ s  [\d,]+ rows/s  -> \S+", line), line
    reason = "line 3: CSV parse error: Row #2: Expected 2 columns, got 4: 2,b,c,d"
    assert f"✗ {bad.name}: {reason}" in lines
    assert lines[-1].startswith("FAILED: 2 file(s) loaded, 0 skipped, 1 failed; 800,000 rows")
    assert lines[-1].endswith(f"; {bad.name}: {reason}")
    print(seen[len(seen) // 2])
    print("=" * COLUMNS)
    print(last)


def test_plain_lines_when_not_a_terminal(tmp_path, db):
    csv, _, _ = files(tmp_path)
    piped = subprocess.run(
        [
            sys.executable,
            "-m",
            "pgingest",
            "load",
            "--dsn",
            db.dsn,
            "--schema",
            db.schema,
            str(csv),
        ],
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout + piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0].startswith(f"✓ {csv}  400,000 rows")
    assert lines[-1].startswith("done: 1 file(s) loaded, 0 skipped, 0 failed; 400,000 rows in")

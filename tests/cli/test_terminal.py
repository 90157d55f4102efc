"""The load's progress as a person sees it: the command runs on a pseudo-terminal of 120
columns, a terminal emulator (pyte) draws what it writes, and the tests look at the screen
while the files load and after."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from terminal import BOUND_SECONDS, COLUMNS, run_on_terminal, screen_lines, squeezed


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
    lines = screen_lines(last)
    assert not BAR.search(last), last
    assert "all files" not in last
    done_lines = [line for line in lines if line.startswith("✓ ")]
    assert len(done_lines) == 2, last
    for line in done_lines:
        assert re.fullmatch(r"✓ \S+  [\d,]+ rows  [\d.]+ s  [\d,]+ rows/s  -> \S+", line), line
    reason = "line 3: CSV parse error: Row #2: Expected 2 columns, got 4: 2,b,c,d"
    assert f"✗ {bad.name}: {reason}" in lines
    # The closing line, wrapped by the terminal where it is wider than the screen.
    closing = next(i for i, line in enumerate(lines) if line.startswith("FAILED: "))
    shown = squeezed("".join(lines[closing:]))
    assert shown.startswith(squeezed("FAILED: 2 file(s) loaded, 1 failed; 800,000 rows in"))
    assert shown.endswith(squeezed(f"; {bad.name}: {reason}"))
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
    assert lines[-1].startswith("done: 1 file(s) loaded; 400,000 rows in")

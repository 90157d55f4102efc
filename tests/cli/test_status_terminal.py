"""``pgingest status`` on a terminal, as a person sees it (a pty drawn by pyte): runs with
local times and how long ago, durations and rows/s, interrupted runs marked, failed files
first with the command that retries them (the password masked), tables, schema changes and
rejects."""

from __future__ import annotations

import re
import subprocess
import sys

from terminal import run_on_terminal, screen_lines, squeezed

PASSWORD = "s3cret-pw"  # noqa: S105 - the test checks it is never shown


def with_password(dsn: str) -> str:
    """The test DSN with a password in it (the test servers trust the connection anyway)."""
    for user in ("postgres:@", "postgres@"):
        if user in dsn:
            return dsn.replace(user, f"postgres:{PASSWORD}@", 1)
    raise AssertionError(f"no user in {dsn}")


def pgingest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pgingest", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_on_a_terminal(tmp_path, db):
    dsn = with_password(db.dsn)
    table = f"{db.schema}.t"
    common = ("--dsn", dsn, "--schema", db.schema, "--table", "t")
    first = tmp_path / "first.csv"
    first.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(1000)))
    wider = tmp_path / "wider.csv"
    wider.write_text("id,name,extra\n5000,x,1\n5001,y,2\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("id,name,extra\n1,a,1\n2,b,c,d\n")
    rejected = tmp_path / "rejected.csv"
    rejected.write_text("id,name,extra\n7,a,1\n8,b,2,3\n")
    assert pgingest("load", *common, str(first)).returncode == 0
    assert pgingest("load", *common, str(wider)).returncode == 0
    assert pgingest("load", *common, str(bad)).returncode == 1
    assert pgingest("load", *common, str(rejected), "--on-error", "skip").returncode == 0
    # A run whose process died while loading a file (its locks are gone with it).
    run_id = db.val("INSERT INTO pgingest.runs (status) VALUES ('running') RETURNING id")
    db.execute(
        "INSERT INTO pgingest.files (run_id, path, size, table_schema, table_name, status)"
        f" VALUES ({run_id}, '/gone/half.csv', 10, '{db.schema}', 't', 'running')"
    )

    code, _, screen = run_on_terminal(
        "status", "--dsn", dsn, "--table", table, cwd=tmp_path, lines=200
    )
    assert code == 0, screen
    print(screen)
    lines = screen_lines(screen)
    assert PASSWORD not in screen
    titles = [line.strip() for line in lines if line.strip() and line.strip()[0].isalpha()]
    # Failures first, then the runs; the tables, schema changes and rejects after.
    assert titles[0] == "Failed files", titles
    order = ["Failed files", "Recent runs", "Tables", "Schema changes"]
    assert [t for t in titles if t in order] == order, titles
    assert any(t.startswith("Rejected rows") for t in titles), titles
    assert any(t.startswith("Interrupted files") for t in titles), titles
    assert any(t.startswith("Loaders (what each process loaded)") for t in titles), titles

    # The failed file's row (its cells folded over lines): the file, how long ago, the error.
    first = next(i for i, line in enumerate(lines) if line.startswith("┡"))
    last = next(i for i, line in enumerate(lines) if line.startswith("└"))
    cells = [line.split("│")[1:-1] for line in lines[first + 1 : last]]
    file, _table, when, error = (squeezed("".join(column)) for column in zip(*cells, strict=True))
    assert file.startswith(squeezed(f"{bad} (file"))
    assert re.fullmatch(r"\d+sago|justnow", when), when
    assert error == squeezed("line 3: CSV parse error: Row #2: Expected 3 columns, got 4: 2,b,c,d")
    assert "line 3: CSV parse error" in screen
    failed_run = db.val("SELECT run_id FROM pgingest.files WHERE path = $1", str(bad))
    masked = f"pgingest resume {failed_run} --dsn '{dsn.replace(PASSWORD, '***')}'"
    assert f"  {masked}" in lines, screen

    runs = [line for line in lines if re.match(r"│\s+\d+ │", line)]
    assert len(runs) == 5, screen
    for line in runs:
        # Local time to the second and how long ago; no ISO timestamps with microseconds.
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \((just now|\d+ s ago|1 min ago)\)", line)
    assert "+00:00" not in screen
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", screen)
    interrupted = next(line for line in runs if line.startswith(f"│ {run_id:>3} │"))
    assert "interrupted (process gone)" in interrupted
    loaded = next(line for line in runs if "1,000" in line)
    assert re.search(r"│\s+[\d.]+ s │\s+1 loaded │\s+1,000 │\s+[\d,]+ │ success", loaded), loaded
    assert any("failed" in line and "0 loaded, 1 failed" in line for line in runs)

    table_row = next(line for line in lines if line.startswith(f"│ {table} "))
    assert re.search(r"│\s+3 │\s+1,003 │\s+1,003 │", table_row), table_row
    assert any("add_column" in line and "extra" in line for line in lines), screen
    assert any("rejected.csv" in line and re.search(r"│\s+1 │$", line) for line in lines)

    # The command shown loads the failed file again once it is fixed.
    bad.write_text("id,name,extra\n1,a,1\n2,b,2\n")
    again = pgingest("resume", str(failed_run), "--dsn", db.dsn)
    assert again.returncode == 0, again.stderr
    assert db.count("t") == 1005

    piped = pgingest("status", "--dsn", dsn, "--table", table)
    assert "┃" not in piped.stdout  # plain text when stdout is not a terminal
    assert piped.stdout.startswith("Recent runs:")

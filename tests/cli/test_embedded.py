"""The embedded default: no DSN, an empty PGINGEST_HOME, the server reused by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PGINGEST_DSN")}
    env["PGINGEST_HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "pgingest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_embedded_server_from_empty_home_is_reused(tmp_path):
    # The server runs as another OS user when we are root: its home must be reachable.
    home = Path(tempfile.mkdtemp(prefix="pgingest-home-"))
    os.chmod(home, 0o755)
    src = tmp_path / "emb.csv"
    src.write_text("a,b\n1,x\n2,y\n")
    try:
        first = run(["load", str(src)], home)
        assert first.returncode == 0, first.stderr
        assert "2 rows" in first.stdout
        pid_file = home / "pgdata" / "postmaster.pid"
        pid = pid_file.read_text().split()[0]
        second = run(["load", str(src), "--table", "emb2"], home)
        assert second.returncode == 0, second.stderr
        assert pid_file.read_text().split()[0] == pid  # the same server answered
        uri = run(["db", "uri"], home)
        assert uri.stdout.startswith("postgresql://")
        count = run(["db", "psql", "-tA", "-c", "SELECT count(*) FROM emb"], home)
        assert count.stdout.strip() == "2", count.stderr
    finally:
        stop = run(["db", "stop"], home)
        assert stop.returncode == 0, stop.stderr
        assert not (home / "pgdata" / "postmaster.pid").exists()

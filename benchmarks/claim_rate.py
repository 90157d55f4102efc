"""The manifest's claim rate: how many files per second one PostgreSQL manifest hands out.

``--claimers`` concurrent claimers (default 8), each on its own connection, each claiming a
new small file with the manifest's real calls (``pgingest.manifest.store.claim_file``, the
server-side ``pgingest.claim``, then ``complete_file``, ``pgingest.complete``: the two
statements every loaded file costs the manifest, whatever its size) for ``--seconds``, in
``--rounds`` rounds; prints claims per second per round and their median. No rows are
written: what is measured is the manifest alone, the ceiling of files/s that any number of
loader machines can reach through it.

    python benchmarks/claim_rate.py --dsn postgresql://me@host/scratch [--claimers 8]
        [--seconds 10] [--rounds 3] [--sizes distinct|same]

``--sizes same`` gives every file one size (fixed-width exports): claims and completions of
one table and size take one lock in turn (the manifest's same-content check), so that is the
worst case; ``distinct`` (default) the common one. Use a scratch database: the script makes
schema ``bench_claim`` (dropped first) and records its runs in that database's manifest.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "src"))

import asyncpg  # noqa: E402

from pgingest.manifest import store  # noqa: E402

SCHEMA = "bench_claim"


async def claimer(dsn: str, run_id: int, worker: int, args: argparse.Namespace) -> int:
    """Claim and complete new files until the round's end; return how many."""
    conn = await asyncpg.connect(dsn)
    done = 0
    try:
        deadline = time.monotonic() + args.seconds
        while time.monotonic() < deadline:
            # A new file each time (a drop of new files): distinct paths; sizes distinct or one.
            n = done * args.claimers + worker
            size = 4096 if args.sizes == "same" else 4096 + n
            path = f"/bench/{run_id}/{worker}/part-{n:07d}.csv"
            claim = await store.claim_file(
                conn,
                path=path,
                size=size,
                mtime_ns=time.time_ns(),
                sha256=secrets.token_hex(32),
                schema=SCHEMA,
                table="t",
                fmt="csv",
                run_id=run_id,
                chunking={},
                force=False,
                on_changed="replace",
            )
            if claim.action != "load" or claim.file_id is None:
                raise RuntimeError(f"claim of {path}: {claim.action} ({claim.reason})")
            await store.complete_file(
                conn, claim.file_id, secrets.token_hex(32), fmt="csv", force=False, lineage=True
            )
            done += 1
    finally:
        await conn.close()
    return done


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    conn = await asyncpg.connect(args.dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        await conn.execute(
            f"CREATE TABLE {SCHEMA}.t (id integer, _pgingest_file_id bigint,"
            " _pgingest_loaded_at timestamptz DEFAULT now())"
        )
        await store.ensure_manifest(conn)
        version = await conn.fetchval("SHOW server_version")
        rates: list[float] = []
        for round_no in range(1, args.rounds + 1):
            run_id = await store.start_run(conn, ["bench"], {}, "bench", os.getpid())
            began, cpu = time.perf_counter(), time.process_time()
            counts = await asyncio.gather(
                *(claimer(args.dsn, run_id, w, args) for w in range(args.claimers))
            )
            seconds = time.perf_counter() - began
            cpu = time.process_time() - cpu
            await store.finish_run(conn, run_id, "success", {"loaded": sum(counts)})
            rate = sum(counts) / seconds
            rates.append(rate)
            print(
                f"round {round_no}: {sum(counts):,} claims in {seconds:.1f} s ="
                f" {rate:,.0f} claims/s ({args.claimers} claimers, this client's CPU"
                f" {cpu / seconds:.0%} of a core)"
            )
        files = await conn.fetchval(
            "SELECT count(*) FROM pgingest.files WHERE table_schema = $1", SCHEMA
        )
    finally:
        await conn.close()
    median = statistics.median(rates)
    print(f"median: {median:,.0f} claims/s (PostgreSQL {version}; {files:,} files in the table)")
    return {
        "claimers": args.claimers,
        "sizes": args.sizes,
        "seconds": args.seconds,
        "rates": rates,
        "median_claims_per_s": median,
        "server_version": version,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--claimers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", choices=("distinct", "same"), default="distinct")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

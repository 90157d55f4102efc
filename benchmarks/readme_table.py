"""The README's benchmark table, from the JSON reports of ``bench.py``.

Each report becomes a block of rows (its dataset, row count and rounds), under one line
saying when, on what machine, against which server and peers' versions it was measured::

    python benchmarks/bench.py --rows 1000000 --rounds 5 --json /tmp/easy.json
    python benchmarks/bench.py --rows 1000000 --rounds 5 --dataset hard --json /tmp/hard.json
    python benchmarks/readme_table.py /tmp/easy.json /tmp/hard.json

The ratios are medians of per-round ratios (see ``bench.py``); the seconds and CPU columns
are medians over the rounds; RSS is the largest peak seen.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

# What each case is, in the table's words (a case not named here is shown by its name).
LABELS = {
    "server_copy": "server-side `COPY ... FROM` file (the yardstick)",
    "psql_copy": "psql `\\copy`",
    "pgingest_csv": "pgingest, CSV",
    "pgingest_parquet": "pgingest, Parquet",
    "pgingest_csv_no_lineage": "pgingest, CSV, `--no-lineage`",
    "duckdb_csv": "DuckDB, CSV",
    "duckdb_parquet": "DuckDB, Parquet",
    "pgingest_csv_bad_skip": "pgingest, CSV with 1% bad rows, `--on-error skip`",
    "pgingest_1row": "pgingest, a 1-row CSV (whole command)",
    "psql_1row": "psql `\\copy`, a 1-row CSV",
    "raw_1row": "a Python process importing asyncio and asyncpg, one COPY of the 1-row CSV",
    "upsert_sql": "raw SQL upsert (COPY into a temporary table, one INSERT ... ON CONFLICT)",
    "upsert_csv": "pgingest upsert, CSV, half the keys existing",
    "upsert_parquet": "pgingest upsert, Parquet, half the keys existing",
    "raw_csv_2streams": "the CSV's bytes in two COPY streams (no parsing, no manifest)",
    "raw_csv_2streams_analyze": "the CSV's bytes in two COPY streams, then ANALYZE",
    "raw_parquet_2streams_analyze": "the Parquet file's batches as binary COPY in two streams,"
    " then ANALYZE",
}


# Cases whose speed is told against another case of the same rounds, not against COPY.
AGAINST = {"pgingest_csv_bad_skip": ("pgingest_csv", "the clean file")}
ONE_ROW = {"pgingest_1row", "psql_1row", "raw_1row"}
COMPARE = "@compare"  # bench.py's suffix of a case run with the other checkout's sources


def _num(value: float | None, spec: str, suffix: str = "") -> str:
    return "" if value is None else f"{format(value, spec)}{suffix}"


def _median_ratio(report: dict[str, Any], case: str, other: str) -> float | None:
    """Median over the rounds of ``case``'s rows/s over ``other``'s in the same round."""
    rates: dict[tuple[str, int], float] = {
        (r["case"], r["round"]): r["rows_per_s"]
        for r in report["runs"]
        if r.get("ok") and r.get("rows_per_s")
    }
    ratios = sorted(
        rate / rates[(other, rnd)]
        for (name, rnd), rate in rates.items()
        if name == case and (other, rnd) in rates
    )
    if not ratios:
        return None
    mid = len(ratios) // 2
    return ratios[mid] if len(ratios) % 2 else (ratios[mid - 1] + ratios[mid]) / 2


def heading(report: dict[str, Any]) -> str:
    """When, where and against what a report was measured, in one line."""
    m = report["machine"]
    peers = [f"PostgreSQL {m['postgresql']}"]
    if m.get("psql"):
        peers.append(m["psql"])
    if m.get("duckdb"):
        peers.append(f"DuckDB {m['duckdb']} (duckdb-ext-postgres {m['duckdb_ext_postgres']})")
    commit = (report.get("pgingest") or {}).get("commit") or "?"
    return (
        f"{report['created'][:10]}, {m['nproc']} cores ({m['cpu_model']}), "
        f"{m['mem_total_gib']} GiB, Python {m['python']}, pyarrow {m['pyarrow']}, "
        f"asyncpg {m['asyncpg']}; {', '.join(peers)}; server: {report['server']}; "
        f"pgingest {commit[:7]}"
    )


def rows(report: dict[str, Any], server: bool = False) -> list[str]:
    """One table row per case of ``report``; ``server``: its dataset column names the
    server's major version (a table of reports measured on several)."""
    data = report["dataset"]["kind"]
    where = f", PostgreSQL {_major(report)}" if server else ""
    extra = " ".join(report.get("extra_args") or [])
    out = []
    for name, s in report["summary"].items():
        if not s["ok_rounds"]:
            continue
        case = name.removesuffix(COMPARE)
        label = LABELS.get(case, case)
        if case != name:
            label += ", the compared checkout (`--compare-src`)"
        if case.startswith(("pgingest", "upsert_csv", "upsert_parquet")) and extra:
            label += f", `{extra}`"
        if case in ONE_ROW:
            ratios = []
        elif case in AGAINST:
            other, what = AGAINST[case]
            ratios = [_num(_median_ratio(report, name, other), ".2f", f"x {what}")]
        else:
            ratios = [
                _num(s.get("median_ratio"), ".2f", "x COPY") if name != "server_copy" else "1.00",
                _num(s.get("median_ratio_duckdb"), ".2f", "x DuckDB"),
                _num(s.get("median_ratio_upsert_sql"), ".2f", "x raw SQL"),
            ]
        out.append(
            "| "
            + " | ".join(
                [
                    label,
                    (f"{data}, 1" if case in ONE_ROW else f"{data}, {report['rows']:,}") + where,
                    str(s["ok_rounds"]),
                    _num(s["median_seconds"], ".3f" if s["median_seconds"] < 0.1 else ".2f", " s"),
                    ", ".join(r for r in ratios if r),
                    _num(s.get("median_client_cpu_s"), ".2f", " s"),
                    _num(s.get("median_server_cpu_s"), ".2f", " s"),
                    _num(s.get("max_client_peak_rss_mb"), ".0f", " MB"),
                ]
            )
            + " |"
        )
    return out


def table(reports: list[dict[str, Any]]) -> str:
    """The markdown of ``reports``: a heading line each, then one table of all their rows."""
    lines = [f"- {heading(r)} (`{' '.join(r['argv'][1:])}`)" for r in reports]
    lines += [
        "",
        "| case | dataset, rows | rounds | s (median) | speed ratio (median per round)"
        " | client CPU | server CPU | client peak RSS |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    servers = len({_major(r) for r in reports}) > 1
    for report in reports:
        lines += rows(report, servers)
    return "\n".join(lines)


def _major(report: dict[str, Any]) -> str:
    """The server's major version (``18`` of ``18.4``, ``15`` of ``15.20 (Debian ...)``)."""
    return str(report["machine"]["postgresql"]).split(".")[0]


def main(argv: list[str] | None = None) -> int:
    """Print the table of the reports named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reports", nargs="+", type=Path, help="bench.py --json reports")
    args = parser.parse_args(argv)
    print(table([json.loads(p.read_text()) for p in args.reports]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

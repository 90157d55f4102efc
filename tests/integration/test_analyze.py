"""ANALYZE after a load that changed much of a table (``--no-analyze`` skips it), seen in the
server's own statistics; a failed ANALYZE is a warning, never a failed load."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import asyncpg

import pgingest
from pgingest.observability.progress import NullReporter
from pgingest.pipeline import analyze


def write_csv(path: Path, start: int, count: int) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "v"])
        writer.writerows([i, f"v{i % 13}"] for i in range(start, start + count))
    return path


def analyze_count(db, table: str = "t") -> int:
    """Manual ANALYZEs of the table (autovacuum's are counted apart)."""
    return db.val(
        "SELECT analyze_count FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
        db.schema,
        table,
    )


def test_a_new_table_is_analyzed_once_and_its_cost_is_a_stage(tmp_path, load, db):
    report = load(
        [write_csv(tmp_path / "a.csv", 0, 3_000), write_csv(tmp_path / "b.csv", 3_000, 3_000)],
        table="t",
    )
    assert report.ok
    assert analyze_count(db) == 1  # two files, one table: once, at the end of the run
    assert "analyze" in report.stages
    assert (
        db.val(f"SELECT reltuples FROM pg_class WHERE oid = '\"{db.schema}\".t'::regclass") == 6_000
    )


def test_a_tiny_append_to_a_big_table_is_left_to_autovacuum(tmp_path, load, db):
    assert load(write_csv(tmp_path / "big.csv", 0, 20_000), table="t").ok
    assert analyze_count(db) == 1
    assert load(write_csv(tmp_path / "tiny.csv", 20_000, 100), table="t").ok
    assert analyze_count(db) == 1
    # 10% of the rows counted before is "much": analyzed again.
    assert load(write_csv(tmp_path / "more.csv", 20_100, 2_000), table="t").ok
    assert analyze_count(db) == 2


def test_no_analyze_skips_it(tmp_path, cli, db):
    code, _, _ = cli(
        "load", str(write_csv(tmp_path / "a.csv", 0, 5_000)), "--table", "t", "--no-analyze"
    )
    assert code == 0
    assert analyze_count(db) == 0
    assert db.val(f"SELECT reltuples FROM pg_class WHERE oid = '\"{db.schema}\".t'::regclass") < 0


def test_upsert_and_replace_tables_are_analyzed(tmp_path, load, db):
    assert load(write_csv(tmp_path / "a.csv", 0, 4_000), table="t", mode="upsert", pk=("id",)).ok
    assert analyze_count(db) == 1
    # replace swaps in a new table: never counted, so analyzed whatever its size.
    assert load(write_csv(tmp_path / "b.csv", 0, 50), table="r", mode="replace").ok
    assert analyze_count(db, "r") == 1
    assert db.val(f"SELECT reltuples FROM pg_class WHERE oid = '\"{db.schema}\".r'::regclass") == 50


class Messages(NullReporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def message(self, text: str) -> None:
        self.messages.append(text)


def test_an_analyze_that_cannot_get_its_lock_is_a_warning(tmp_path, load, db, monkeypatch, caplog):
    assert load(write_csv(tmp_path / "a.csv", 0, 1_000), table="t").ok
    monkeypatch.setattr(analyze, "LOCK_WAIT", 0.2)
    reporter = Messages()

    async def main() -> pgingest.LoadReport:
        holder = await asyncpg.connect(db.dsn)
        try:
            async with holder.transaction():
                # What another ANALYZE or a VACUUM holds; a COPY does not wait for it.
                await holder.execute(f'LOCK TABLE "{db.schema}".t IN SHARE UPDATE EXCLUSIVE MODE')
                return await asyncio.wait_for(
                    pgingest.load_async(
                        write_csv(tmp_path / "b.csv", 1_000, 1_000),
                        dsn=db.dsn,
                        schema=db.schema,
                        table="t",
                        reporter=reporter,
                    ),
                    60,
                )
        finally:
            await holder.close()

    report = asyncio.run(main())
    assert report.ok, report.failed
    assert report.rows == 1_000
    assert db.val(f'SELECT count(*) FROM "{db.schema}".t') == 2_000
    assert analyze_count(db) == 1  # the first load's only
    [warning] = [m for m in reporter.messages if "not analyzed" in m]
    assert f"{db.schema}.t" in warning
    assert "lock" in warning
    assert any("not analyzed" in r.getMessage() for r in caplog.records)

"""After a run, ANALYZE each table the run changed much, so that the first queries on fresh
data get sane plans (``--no-analyze`` skips it).

"Much": the rows the run wrote into the table are at least :data:`SHARE` of the rows the
planner last counted in it, or the planner never counted them (a new table, or replace's new
one). A tiny append to a big table is left to autovacuum, and so is a table this role may
not ANALYZE (a least-privileged loader appending to a table it does not own). ANALYZE is an
optimization: a failure (its lock held too long, the server gone) is a warning, never a
failed load.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from functools import partial
from typing import TYPE_CHECKING

from pgingest.errors import PgIngestError
from pgingest.model import LoadReport
from pgingest.observability.progress import Reporter
from pgingest.pg import analyze as pg_analyze

if TYPE_CHECKING:
    from pgingest.pipeline.context import RunContext

log = logging.getLogger("pgingest.run")

SHARE = 0.1
"""Rows written, as a share of the rows counted before, from which a table is analyzed: the
share at which autovacuum's own default (``autovacuum_analyze_scale_factor``) would."""
LOCK_WAIT = 5.0
"""Seconds ANALYZE waits for its lock (held by another ANALYZE, a VACUUM or a schema change)
before the run gives up on it with a warning: the load is done, and autovacuum will do it."""


def written_tables(report: LoadReport) -> dict[tuple[str, str], int]:
    """Rows written per table ``(schema, name)`` by the files the run loaded."""
    rows: dict[tuple[str, str], int] = defaultdict(int)
    for result in report.files:
        if result.status == "loaded" and result.rows > 0:
            schema, _, name = result.table.partition(".")
            rows[schema, name] += result.rows
    return dict(rows)


def needs_analyze(rows_written: int, planner_rows: float) -> bool:
    """True when ``rows_written`` changed much of a table whose planner counted
    ``planner_rows`` (below zero: never counted)."""
    return rows_written > 0 and (planner_rows < 0 or rows_written >= SHARE * planner_rows)


async def analyze_tables(ctx: RunContext, report: LoadReport) -> list[str]:
    """:func:`analyze_written` on the run's pool, its time in the run's stages."""
    return await analyze_written(ctx.pool.acquire, report, ctx.reporter, ctx.events.stages)


async def analyze_written(
    acquire: pg_analyze.Acquire, report: LoadReport, reporter: Reporter, stages: dict[str, float]
) -> list[str]:
    """ANALYZE the tables of ``report`` that the run changed much, one after the other, on
    connections of ``acquire`` (a pool's, or one connection's); the time is added to
    ``stages["analyze"]``. A failure is logged and reported as a warning.

    Returns:
        The tables analyzed (``schema.name``).
    """
    tables = written_tables(report)
    if not tables:
        return []
    done: list[str] = []
    began = time.perf_counter()
    try:
        for (schema, name), rows in sorted(tables.items()):
            try:
                outcome = await pg_analyze.analyze_if(
                    acquire, schema, name, partial(needs_analyze, rows), LOCK_WAIT
                )
                if outcome == "analyzed":
                    done.append(f"{schema}.{name}")
                elif outcome == "not allowed":  # a loader that does not own the table
                    log.info("%s.%s: not analyzed: only its owner (or MAINTAIN) may", schema, name)
            except PgIngestError as exc:
                _warn(reporter, f"{schema}.{name}", exc)
    finally:
        stages["analyze"] = stages.get("analyze", 0.0) + time.perf_counter() - began
    return done


def _warn(reporter: Reporter, tables: str, exc: BaseException) -> None:
    text = f"{tables}: not analyzed ({exc}); autovacuum will analyze it in time"
    log.warning("%s", text)
    reporter.message(f"warning: {text}")

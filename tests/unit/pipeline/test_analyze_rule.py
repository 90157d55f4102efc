"""Which tables a run ANALYZEs: rows written against the rows the planner last counted."""

from __future__ import annotations

import pytest

from pgingest.model import FileResult, LoadReport
from pgingest.pipeline import analyze


@pytest.mark.parametrize(
    ("written", "counted", "wanted"),
    [
        (1, -1.0, True),
        (0, -1.0, False),
        (100, 20_000.0, False),
        (2_000, 20_000.0, True),
        (5, 0.0, True),
    ],
)
def test_the_rule(written, counted, wanted):
    assert analyze.needs_analyze(written, counted) is wanted


def test_rows_written_add_up_per_table_from_loaded_files_only():
    report = LoadReport(
        files=[
            FileResult("a.csv", "public.t", "loaded", rows=10),
            FileResult("b.csv", "public.t", "loaded", rows=5),
            FileResult("c.csv", "s.u", "loaded", rows=0),
            FileResult("d.csv", "s.u", "failed"),
            FileResult("e.csv", "s.v", "skipped"),
            FileResult("f.csv", "s.w.x", "loaded", rows=1),
        ]
    )
    assert analyze.written_tables(report) == {("public", "t"): 15, ("s", "w.x"): 1}

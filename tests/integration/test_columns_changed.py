"""A file's batches are encoded (binary COPY) for the types its plan found in the table; when
another load widens a column between that plan and a batch's COPY, the server refuses the
batch (08P01, "insufficient data left in message"). Found loading files of several formats
into one table at once (about 1 run in 10): the file failed after every retry. It must be
planned again against the table as it is and load every row once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import asyncpg
from tests.conftest import Db

import pgingest
from pgingest.pipeline import task


def test_a_column_widened_between_plan_and_copy_replans_the_file(
    db: Db, load: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    first = tmp_path / "a.csv"
    first.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(50)))
    assert load(first, table="t").ok
    assert db.types("t")["id"] == "integer"
    late = tmp_path / "b.ndjson"  # read through Arrow: its batches are binary COPY
    late.write_text("".join(json.dumps({"id": i, "name": f"n{i}"}) + "\n" for i in range(50, 90)))
    planned = task.fit_table
    widened: list[bool] = []

    async def plan_then_widen(*args: Any, **kwargs: Any) -> Any:
        plan = await planned(*args, **kwargs)
        if not widened:  # what another file's load does meanwhile, once
            widened.append(True)
            conn = await asyncpg.connect(db.dsn)
            try:
                await conn.execute(f'ALTER TABLE "{db.schema}".t ALTER COLUMN id TYPE bigint')
            finally:
                await conn.close()
        return plan

    monkeypatch.setattr(task, "fit_table", plan_then_widen)
    report = asyncio.run(
        asyncio.wait_for(pgingest.load_async(late, dsn=db.dsn, schema=db.schema, table="t"), 120)
    )
    assert widened
    assert report.ok, report.failed
    assert db.types("t")["id"] == "bigint"
    assert db.count("t") == 90
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 90
    assert [(f.status, f.rows) for f in report.files] == [("loaded", 40)]

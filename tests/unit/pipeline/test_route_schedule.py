"""Key routing and conflict-aware scheduling, without a database."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.errors import ConfigError, RowError
from pgingest.pg.merge import Target, check_merge_supported, merge_sql, upsert_sql
from pgingest.pipeline.keyed.route import has_duplicates, key_hashes, partition
from pgingest.pipeline.keyed.schedule import FileKeys, KeySummary, overlap, plan_schedule


def hashes(values: list[object], kind: str, arrow_type: pa.DataType | None = None) -> np.ndarray:
    batch = pa.record_batch({"id": pa.array(values, arrow_type)})
    return key_hashes(batch, ["id"], [kind], "f.csv", 2)


def test_a_key_hashes_alike_from_csv_text_and_parquet_integers():
    text = hashes(["7", " 7", "007", "8"], "int")
    ints = hashes([7, 7, 7, 8], "int", pa.int32())
    assert (text == ints).all()
    assert text[0] == text[1] == text[2] != text[3]


@given(st.lists(st.text(max_size=40), min_size=1, max_size=60))
def test_text_hash_depends_on_the_value_only(values):
    whole = hashes(values, "text")
    one_by_one = np.concatenate([hashes([v], "text") for v in values])
    assert (whole == one_by_one).all()
    for i, v in enumerate(values):
        for j, w in enumerate(values):
            if v == w:
                assert whole[i] == whole[j]


def test_text_hashes_differ_for_different_strings():
    values = [f"key-{i}" for i in range(10_000)] + ["", "a", "b", "ab", "ba"]
    assert len(np.unique(hashes(values, "text"))) == len(values)


def test_null_key_names_line_and_column():
    with pytest.raises(RowError, match=r"f.csv: line 3, column id: NULL in key column"):
        hashes(["1", None], "int")


def test_a_non_integer_integer_key_is_a_row_error():
    with pytest.raises(RowError, match=r"line 3, column id: key value 'x1' is not an integer"):
        hashes(["1", "x1"], "int")


def test_partition_keeps_file_order_and_sends_a_key_to_one_worker():
    values = [str(i % 50) for i in range(1_000)]
    h = hashes(values, "int")
    parts = partition(h, 3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(1_000))
    owner: dict[str, int] = {}
    for worker, rows in enumerate(parts):
        assert (np.diff(rows) > 0).all()  # file order inside each worker
        for row in rows:
            assert owner.setdefault(values[row], worker) == worker
    assert all(len(p) for p in parts)
    assert has_duplicates(h)
    assert not has_duplicates(hashes(["1", "2"], "int"))


def summary(low: int, high: int, keys: list[int] | None = None) -> KeySummary:
    h = None if keys is None else np.unique(hashes([str(k) for k in keys], "int"))
    return KeySummary(rows=1, low=low, high=high, hashes=h)


def test_overlap_by_range_then_by_hash_set():
    assert not overlap(summary(1, 10), summary(11, 20))
    assert overlap(summary(1, 10), summary(10, 20))  # ranges meet, no hash sets
    assert not overlap(summary(1, 10, [1, 10]), summary(5, 20, [5, 20]))  # interleaved keys
    assert overlap(summary(1, 10, [1, 10]), summary(5, 20, [10, 20]))
    assert overlap(summary(1, 10, [1, 10]), summary(5, 20, [5, 20]), ranges_only=True)
    assert overlap(None, summary(1, 2))


def test_plan_schedule_orders_only_overlapping_files():
    files = [
        FileKeys(0, "a", "s.t", summary(1, 10, [1, 10])),
        FileKeys(1, "b", "s.t", summary(11, 20, [11, 20])),
        FileKeys(2, "c", "s.t", summary(5, 15, [10, 15])),
        FileKeys(3, "d", "s.u", summary(1, 10, [1])),
    ]
    auto = plan_schedule(files, "auto")
    assert auto.waits == {2: {0}}
    assert auto.strategies["s.t"].startswith("ordered where keys overlap: 1 of 3 files wait")
    assert auto.per_file == {0: "parallel", 1: "parallel", 2: "ordered", 3: "parallel"}
    assert plan_schedule(files, "parallel").waits == {}
    assert plan_schedule(files, "ordered").waits == {1: {0}, 2: {1}}
    sequential = plan_schedule(files, "sequential")
    assert sequential.waits == {1: {0}, 2: {1}, 3: {2}}
    assert sequential.single_worker


def test_merge_needs_postgresql_15():
    check_merge_supported(150000)
    check_merge_supported(180004)
    with pytest.raises(
        ConfigError, match=r"needs PostgreSQL 15 or newer \(MERGE\); this server is 14"
    ):
        check_merge_supported(140011)


def test_statements_quote_every_identifier():
    target = Target(
        "s", 'we"ird', ("id", "v x", "j"), ("bigint", "text", "json"), ("id",), "upsert", True
    )
    sql = upsert_sql(target, dedup=True)
    assert 'INSERT INTO "s"."we""ird" AS t ("id", "v x", "j")' in sql
    assert 'ON CONFLICT ("id") DO UPDATE SET "v x" = EXCLUDED."v x"' in sql
    assert (
        'ROW(t."v x", t."j"::text) IS DISTINCT FROM ROW(EXCLUDED."v x", EXCLUDED."j"::text)' in sql
    )
    assert 'DISTINCT ON ("id")' in sql
    assert '"_pgingest_ord" DESC' in sql
    assert '"_pgingest_file_id" = EXCLUDED."_pgingest_file_id"' in sql
    merged = merge_sql(target, dedup=False)
    assert merged.startswith('MERGE INTO "s"."we""ird" AS t USING (SELECT')
    assert "WHEN NOT MATCHED THEN INSERT" in merged
    only_key = Target("s", "t", ("id",), ("bigint",), ("id",), "upsert", False)
    assert upsert_sql(only_key, dedup=False).endswith("DO NOTHING")


@given(st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1])))
def test_has_duplicates_says_whether_a_hash_repeats(values):
    found = np.array(values, dtype=np.uint64)
    assert has_duplicates(found) == (len(set(values)) < len(values))

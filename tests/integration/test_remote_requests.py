"""How many requests a remote object costs, counted by the servers themselves (the tests' HTTP
server's log, moto's recorder): a load takes an object's identity once (its listing, or one
HEAD), every GET is conditional on it, and an unchanged re-run asks for the listing (or one
HEAD) and nothing else. An object replaced between its listing and its read is never loaded as
a mix of two versions: its read fails, and the file's retry loads the new version under the
new version's identity."""

from __future__ import annotations

import gzip
import hashlib
import os
from collections import Counter
from typing import Any

import pytest
from test_remote_inputs import bucket, csv_bytes, ndjson_bytes, parquet_bytes, s3, served

from remote_servers import MotoRecorder, Request

__all__ = ["bucket", "s3", "served"]  # the servers' fixtures, shared with the remote tests

FILES = {
    "a.csv": csv_bytes(0, 50),
    "b.parquet": parquet_bytes(100, 40),
    "c.ndjson": ndjson_bytes(200, 30),
    "d.csv.gz": gzip.compress(csv_bytes(300, 20)),
}
# Each of them is small (up to remote._SMALL_OBJECT): read whole by one GET, its bytes kept for
# detection, the reader's first record, the type sample and the load (3-5 GETs before; a
# larger object still streams or reads ranges for each: 4-5 GETs for a 5 MB CSV or Parquet).


def by_object(requests: list[tuple[str, str]]) -> dict[str, Counter[str]]:
    """(method, path) pairs counted per object name; a listing is ``<listing>``."""
    out: dict[str, Counter[str]] = {}
    for method, path in requests:
        name = "<listing>" if "list-type=" in path else path.split("?", 1)[0].rsplit("/", 1)[-1]
        out.setdefault(name, Counter())[method] += 1
    return out


def http_pairs(faults: Any) -> list[tuple[str, str]]:
    """The HTTP server's log as (method, path) pairs."""
    return [(line.split(" ")[0], line.split(" ")[1]) for line in faults.requests]


@pytest.fixture
def recorded(s3: dict[str, str]) -> MotoRecorder:
    return MotoRecorder(s3["AWS_ENDPOINT_URL"])


def s3_requests(recorder: MotoRecorder) -> list[Request]:
    return [r for r in recorder.requests() if r.method in ("GET", "HEAD")]


def test_http_one_head_per_object_conditional_gets_and_a_rerun_of_heads_only(served, load, db):
    root, base, faults = served
    for name, body in FILES.items():
        (root / name).write_bytes(body)
    urls = [f"{base}/{name}" for name in FILES]
    report = load(urls)
    assert report.ok, [f.error for f in report.files]
    counts = by_object(http_pairs(faults))
    assert set(counts) == set(FILES)
    for name, count in counts.items():
        assert count["HEAD"] == 1, (name, count)  # (before: 7-9)
        assert count["GET"] == 1, (name, count)  # (before: 3-5)
    # Every GET asked for the version whose identity the run took (If-Match its ETag).
    assert faults.if_match
    assert all(tag and tag.startswith('"') for tag in faults.if_match), faults.if_match

    faults.requests.clear()
    again = load(urls)
    assert {f.status for f in again.files} == {"skipped"}
    assert sorted(faults.requests) == sorted(f"HEAD /{name} " for name in FILES)

    # A changed object is seen by the re-run's HEAD, and loaded again; the others skipped.
    (root / "a.csv").write_bytes(csv_bytes(5000, 7))
    faults.requests.clear()
    third = load(urls)
    assert {f.path: f.status for f in third.files} == {
        url: "loaded" if url.endswith("a.csv") else "skipped" for url in urls
    }
    assert db.count("a") == 7
    counts = by_object(http_pairs(faults))
    assert counts["a.csv"]["HEAD"] == 1
    assert all(counts[name] == Counter(HEAD=1) for name in FILES if name != "a.csv")


def test_s3_a_prefix_costs_its_listing_and_gets_and_an_unchanged_rerun_the_listing_only(
    bucket, recorded, load, db
):
    for name, body in FILES.items():
        bucket(f"drop/{name}", body)
    prefix = f"s3://{bucket.name}/drop/"
    recorded.start()
    report = load([prefix])
    assert report.ok, [f.error for f in report.files]
    requests = s3_requests(recorded)
    counts = by_object([(r.method, r.path) for r in requests])
    assert counts.pop("<listing>") == Counter(GET=1)
    assert set(counts) == set(FILES)
    for name, count in counts.items():
        assert count["HEAD"] == 0, (name, count)  # the listing said it (before: 7-9 HEADs)
        assert count["GET"] == 1, (name, count)  # (before: 3-5)
    gets = [r for r in requests if "list-type=" not in r.path]
    assert all(r.headers.get("if-match", "").startswith('"') for r in gets), gets

    recorded.start()
    again = load([prefix])
    assert {f.status for f in again.files} == {"skipped"}
    assert by_object([(r.method, r.path) for r in s3_requests(recorded)]) == {
        "<listing>": Counter(GET=1)
    }

    # A changed object: the re-run's listing shows its new ETag; it loads again, alone.
    bucket("drop/a.csv", csv_bytes(7000, 9))
    recorded.start()
    third = load([prefix])
    assert sorted(f.status for f in third.files) == ["loaded", "skipped", "skipped", "skipped"]
    assert db.count("a") == 9
    counts = by_object([(r.method, r.path) for r in s3_requests(recorded)])
    assert set(counts) == {"<listing>", "a.csv"}
    assert counts["a.csv"]["HEAD"] == 0


def test_s3_a_single_object_costs_one_head_and_its_rerun_that_head_only(bucket, recorded, load, db):
    url = bucket("one/b.parquet", FILES["b.parquet"])
    recorded.start()
    assert load([url]).ok
    count = by_object([(r.method, r.path) for r in s3_requests(recorded)])["b.parquet"]
    assert count == Counter(HEAD=1, GET=1)
    recorded.start()
    assert {f.status for f in load([url]).files} == {"skipped"}
    assert [(r.method, r.path) for r in s3_requests(recorded)] == [
        ("HEAD", f"/{bucket.name}/one/b.parquet")
    ]


@pytest.mark.parametrize("max_retries", [0, 2])
def test_an_object_replaced_after_its_listing_is_never_loaded_as_the_old_identity(
    bucket, recorded, load, db, monkeypatch, max_retries
):
    """Replaced between the listing and the first read: the read (If-Match the listed ETag)
    fails. With retries, the retry takes the new identity and loads the new version, recorded
    as such (the next run skips it); without, the file fails in one line naming the change,
    and the next run loads the new version."""
    from pgingest.pipeline import discover

    bucket("swap/a.csv", csv_bytes(0, 30))
    listed = discover.list_objects

    def list_then_replace(url: str) -> Any:
        found = listed(url)
        bucket("swap/a.csv", csv_bytes(1000, 12))  # a new version, after its listing
        return found

    monkeypatch.setattr(discover, "list_objects", list_then_replace)
    prefix = f"s3://{bucket.name}/swap/"
    report = load([prefix], table="t", max_retries=max_retries, retry_base=0.01)
    monkeypatch.setattr(discover, "list_objects", listed)
    if max_retries == 0:
        assert [f.status for f in report.files] == ["failed"]
        error = report.files[0].error or ""
        assert "changed while it was read" in error
        assert "\n" not in error
        report = load([prefix], table="t")
        assert [f.status for f in report.files] == ["loaded"]
    else:
        assert report.ok, [f.error for f in report.files]
        assert report.retries >= 1
    assert db.count("t") == 12
    assert db.val("SELECT min(id) FROM t") == 1000
    # Recorded under the new version's identity: the next run skips it.
    assert {f.status for f in load([prefix], table="t").files} == {"skipped"}


def test_an_object_replaced_mid_stream_is_loaded_as_the_new_version_only(
    served, load, db, monkeypatch
):
    """Replaced between two windows of its stream, after batches of the old version were
    committed: the next window's GET (If-Match the old ETag) fails; the retry takes the new
    identity, the old version's rows are removed, and the table holds the new version only,
    with its hash."""
    from pgingest.sources import remote

    monkeypatch.setattr(remote, "_WINDOW", 64 << 10)
    monkeypatch.setattr(remote, "_SMALL_OBJECT", 0)  # streamed in windows, not read whole
    root, base, faults = served
    # Of the same size: a read past the new version's end cannot give the change away.
    old, new = csv_bytes(100_000, 30_000), csv_bytes(500_000, 30_000)
    assert len(old) == len(new)
    (root / "m.csv").write_bytes(old)
    gets: list[str] = []

    def replace_mid_load(line: str) -> None:
        if not line.startswith("GET /m.csv"):
            return
        gets.append(line)
        # The 5th read from byte 0 is the load's (detection, the first record, the encoding and
        # the sample read from there before it); its 5th window comes after some batches.
        starts = [g for g in gets if " bytes=0-" in g]
        if len(starts) == 5 and gets[-5] == starts[-1]:
            (root / "m.csv").write_bytes(new)
            os.utime(root / "m.csv", ns=(1, 1))  # (a new ETag whatever the clock)
            replaced.append(line)

    replaced: list[str] = []
    faults.before = replace_mid_load
    report = load(
        [f"{base}/m.csv"],
        table="t",
        batch_size=2_000,
        internal_concurrency=1,
        retry_base=0.01,
    )
    assert report.ok, [f.error for f in report.files]
    assert len(replaced) == 1, gets
    assert report.retries >= 1
    assert db.count("t") == 30_000
    assert db.val("SELECT min(id) FROM t") == 500_000
    assert db.val("SELECT count(DISTINCT id) FROM t") == 30_000
    rows = db.fetch(
        "SELECT sha256, rows FROM pgingest.files WHERE table_schema = $1 AND status = 'success'",
        db.schema,
    )
    assert [(r["sha256"], r["rows"]) for r in rows] == [(hashlib.sha256(new).hexdigest(), 30_000)]


def test_a_member_named_in_a_remote_archive_sees_a_new_archive_in_the_next_run(served, load, db):
    """A member named directly is not listed: its run takes the archive's identity afresh
    (one HEAD), so a second run in the same process sees a new archive, and an unchanged one
    costs that HEAD only."""
    from test_remote_inputs import zip_bytes

    root, base, faults = served
    (root / "drop.zip").write_bytes(zip_bytes({"a.csv": csv_bytes(0, 6)}))
    url = f"{base}/drop.zip!/a.csv"
    assert load([url], table="t").ok
    faults.requests.clear()
    assert {f.status for f in load([url], table="t").files} == {"skipped"}
    assert faults.requests == ["HEAD /drop.zip "]
    (root / "drop.zip").write_bytes(zip_bytes({"a.csv": csv_bytes(500, 4)}))
    again = load([url], table="t")
    assert [f.status for f in again.files] == ["loaded"]
    assert db.count("t") == 4
    assert db.val("SELECT min(id) FROM t") == 500

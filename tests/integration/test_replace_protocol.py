"""``--mode replace`` is crash-safe and exclusive per table (issue 12, cases 2, 3 and 6).

Every test runs the real command in processes of its own: killed at each crash point of the
protocol then resumed or run again, two replaces of one table at once, a swap behind a
long-running reader. After each, the table holds exactly the rows of the files given (the old
table's rows are gone), no ``__pgingest_new_`` table is left and the manifest says what
happened: the files ``success`` in the table, the old table's file ``reverted``."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from pgingest.config import CRASH_POINTS
from processes import finish, pgingest, running, wait_for

BATCH = 500
SIZES = {"new1.csv": 3_000, "new2.csv": 2_000}
OLD_ROWS = 100


def write_csv(path: Path, first: int, rows: int) -> Path:
    path.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(first, first + rows)))
    return path


@pytest.fixture
def files(tmp_path: Path, load, db) -> list[Path]:
    """Table ``t`` holding an old file's rows, and the two files that replace them."""
    assert load(write_csv(tmp_path / "old.csv", 100_000, OLD_ROWS), table="t").ok
    out, first = [], 0
    for name, rows in SIZES.items():
        out.append(write_csv(tmp_path / name, first, rows))
        first += rows
    return out


def replace_args(db, paths: list[Path], *extra: str) -> list[str]:
    return [
        "load",
        *map(str, paths),
        "--dsn",
        db.dsn,
        "--schema",
        db.schema,
        "--table",
        "t",
        "--mode",
        "replace",
        "--batch-size",
        str(BATCH),
        "--internal-concurrency",
        "1",
        "-j",
        "1",
        *extra,
    ]


def last_run(db) -> int:
    return int(
        db.val(
            "SELECT max(id) FROM pgingest.runs WHERE options->>'schema' = $1",
            db.schema,
        )
    )


def leftovers(db) -> list[str]:
    return [
        r[0]
        for r in db.fetch(
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND relname LIKE '%pgingest%'",
            db.schema,
        )
    ]


def pending(db) -> list[tuple[str, int, str | None]]:
    """The manifest's unfinished replacements of the test's tables."""
    if not db.val("SELECT to_regclass('pgingest.replacements') IS NOT NULL"):
        return []
    return [
        (r["new_table"], r["run_id"], r["error"])
        for r in db.fetch(
            "SELECT new_table, run_id, error FROM pgingest.replacements WHERE table_schema = $1",
            db.schema,
        )
    ]


def assert_replaced(db, paths: list[Path], rows: dict[str, range] | None = None) -> None:
    """The table holds exactly the files' rows; the manifest and the schema say so."""
    expected: list[int] = []
    first = 0
    for path in paths:
        span = (rows or {}).get(path.name) or range(first, first + SIZES[path.name])
        first = span.stop
        expected.extend(span)
    ids = [r[0] for r in db.fetch(f'SELECT id FROM "{db.schema}".t ORDER BY id')]
    assert ids == sorted(expected)
    manifest = {
        (r["path"], r["status"], r["table_name"], r["rows"])
        for r in db.fetch(
            "SELECT path, status, table_name, rows FROM pgingest.files WHERE table_schema = $1"
            " AND status <> 'reverted' AND path <> $2",
            db.schema,
            str(paths[0].parent / "old.csv"),
        )
    }
    counts = {p.name: len((rows or {}).get(p.name) or range(SIZES[p.name])) for p in paths}
    assert manifest == {(str(p), "success", "t", counts[p.name]) for p in paths}
    old = db.fetch(
        "SELECT status FROM pgingest.files WHERE table_schema = $1 AND path = $2",
        db.schema,
        str(paths[0].parent / "old.csv"),
    )
    assert [r["status"] for r in old] == ["reverted"]
    assert leftovers(db) == []
    assert pending(db) == []


FILE_POINTS = {
    # point: (nth time, how the follow-up continues)
    "claimed": (2, "again"),
    "batch-copied": (3, "resume"),
    "batch-committed": (3, "again"),
    "before-complete": (1, "resume"),
    "completed": (1, "again"),
}
REPLACE_POINTS = ["replace-loaded", "swap-before-commit", "swap-committed"]
CASES = [(p, n, f) for p, (n, f) in FILE_POINTS.items()] + [
    (p, 1, f) for p in REPLACE_POINTS for f in ("resume", "again")
]


def test_every_crash_point_of_the_protocol_is_tested():
    replace_points = {p for p, what in CRASH_POINTS.items() if what.startswith("replace:")}
    assert set(REPLACE_POINTS) == replace_points
    file_points = {"claimed", "batch-copied", "batch-committed", "before-complete", "completed"}
    assert file_points <= set(CRASH_POINTS)
    assert {p for p, _, _ in CASES} >= file_points | replace_points


@pytest.mark.parametrize(("point", "nth", "follow"), CASES)
def test_replace_killed_then_resumed_or_run_again_holds_the_files_once(
    files, db, cli, point, nth, follow
):
    crashed = pgingest(*replace_args(db, files), crash=f"{point}:{nth}")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    run = last_run(db)
    unfinished = {
        r["path"]: r["id"]
        for r in db.fetch(
            "SELECT path, id FROM pgingest.files WHERE run_id = $1 AND status <> 'reverted'", run
        )
    }
    committed = db.val(
        "SELECT count(*) FROM pgingest.file_batches b JOIN pgingest.files f ON f.id = b.file_id"
        " WHERE f.run_id = $1",
        run,
    )
    # Until the swap commits, the old table is untouched and no file of the run is loaded.
    swapped = point == "swap-committed"
    assert db.count("t") == (sum(SIZES.values()) if swapped else OLD_ROWS)
    loaded = db.val(
        "SELECT count(*) FROM pgingest.files WHERE run_id = $1 AND status = 'success'", run
    )
    assert loaded == (len(files) if swapped else 0)
    if follow == "resume":
        code, out, err = cli("resume", str(run), "--dsn", db.dsn)
    else:
        code, out, err = cli(*replace_args(db, files))
    assert code == 0, out + err
    assert_replaced(db, files)
    if swapped:
        return  # the swap was done: the next run is a replace of its own
    # The follow-up continued the crashed run's new table: its files kept their manifest
    # entries and committed batches (nothing loaded twice, nothing lost).
    after = {
        r["path"]: r["id"]
        for r in db.fetch(
            "SELECT path, id FROM pgingest.files WHERE table_schema = $1 AND status = 'success'",
            db.schema,
        )
    }
    for path, file_id in unfinished.items():
        assert after[path] == file_id, (path, out, err)
    kept = db.val(
        "SELECT count(*) FROM pgingest.file_batches WHERE file_id = ANY($1::bigint[])",
        list(unfinished.values()),
    )
    assert kept >= committed
    assert "continuing the replace of" in err, err


def test_a_changed_file_starts_the_replacement_over(files, db, cli, tmp_path):
    crashed = pgingest(*replace_args(db, files), crash="batch-committed:3")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    write_csv(files[0], 50_000, 3_000)  # new content, same path
    code, out, err = cli(*replace_args(db, files))
    assert code == 0, out + err
    assert "starting the replace of" in err, err
    assert "changed since run" in err, err
    assert_replaced(db, files, {"new1.csv": range(50_000, 53_000), "new2.csv": range(3_000, 5_000)})


def test_a_second_replace_of_the_table_is_refused_naming_the_run_that_holds_it(files, db, cli):
    # The first run pauses between its files: it holds the table for seconds.
    with running(*replace_args(db, files, "--pause-every", "1", "--pause-seconds", "2")) as first:
        wait_for(lambda: any("pgingest_new" in t for t in leftovers(db)), what="the first run")
        holder = last_run(db)
        code, out, err = cli(*replace_args(db, files))
        assert code == 1, out + err
        assert f"being replaced by run {holder}" in err, err
        code, out, err = finish(first)
    assert code == 0, out + err
    assert_replaced(db, files)
    # Case 3's tail: the next plain load of the same files appends nothing again.
    code, out, err = cli("load", *map(str, files), "--table", "t")
    assert code == 0, out + err
    assert db.count("t") == sum(SIZES.values())
    assert out.count("skipped: already loaded") == 2, out


def test_an_interrupted_replace_is_continued_by_resume(files, db, cli):
    with running(*replace_args(db, files, "--pause-every", "1", "--pause-seconds", "2")) as run:
        wait_for(
            lambda: (
                db.val(
                    "SELECT count(*) FROM pgingest.files WHERE table_schema = $1 AND path = $2"
                    " AND status IN ('staged', 'success')",
                    db.schema,
                    str(files[0]),
                )
                == 1
            ),
            what="the first file",
        )
        run.send_signal(signal.SIGTERM)
        code, out, err = finish(run)
    assert code == 130, out + err
    assert db.count("t") == OLD_ROWS  # the old table until the swap
    code, out, err = cli("resume", str(last_run(db)), "--dsn", db.dsn)
    assert code == 0, out + err
    assert "continuing the replace of" in err, err
    assert "already in the new table" in out, out
    assert_replaced(db, files)


async def _lock_waiters(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE relation = to_regclass($1)"
                " AND NOT granted AND mode = 'AccessExclusiveLock'",
                table,
            )
        )
    finally:
        await conn.close()


def test_the_swap_does_not_queue_readers_behind_a_long_reader(files, db):
    """Case 6: a reader holds the old table; the swap waits for it a few seconds at a time, so
    a second reader (statement_timeout 8 s) arriving during the swap is not cancelled; the
    swap succeeds once the long reader ends."""
    name = f'"{db.schema}".t'

    async def main() -> tuple[float, int, tuple[int, str, str]]:
        long = await asyncpg.connect(db.dsn)
        second = await asyncpg.connect(db.dsn)
        try:
            await second.execute("SET statement_timeout = '8s'")
            holding = long.transaction()
            await holding.start()
            await long.fetchval(f"SELECT count(*) FROM {name}")
            with running(*replace_args(db, files)) as proc:
                deadline = time.monotonic() + 60
                while await _lock_waiters(db.dsn, name) == 0:
                    assert proc.poll() is None, "the load ended before its swap"
                    assert time.monotonic() < deadline, "the swap never asked for its lock"
                    await asyncio.sleep(0.05)
                began = time.monotonic()
                seen = int(await second.fetchval(f"SELECT count(*) FROM {name}"))
                waited = time.monotonic() - began
                await holding.commit()
                return waited, seen, await asyncio.to_thread(finish, proc)
        finally:
            await long.close()
            await second.close()

    waited, seen, (code, out, err) = asyncio.run(main())
    assert seen == OLD_ROWS
    assert waited < 6, waited
    assert code == 0, out + err
    assert_replaced(db, files)


def test_a_swap_that_cannot_get_its_lock_fails_clearly_and_resume_swaps(files, db, cli):
    name = f'"{db.schema}".t'

    async def hold_while(command: list[str]) -> tuple[int, str, str]:
        long = await asyncpg.connect(db.dsn)
        try:
            async with long.transaction():
                await long.fetchval(f"SELECT count(*) FROM {name}")
                done = await asyncio.to_thread(pgingest, *command)
        finally:
            await long.close()
        return done.returncode, done.stdout, done.stderr

    args = replace_args(db, files, "--swap-lock-timeout", "0.5", "--swap-tries", "2")
    code, out, err = asyncio.run(hold_while(args))
    assert code == 1, out + err
    assert "pgingest resume" in err, err
    run = last_run(db)
    assert db.count("t") == OLD_ROWS  # the old table untouched
    [(new, holder, error)] = pending(db)
    assert holder == run
    assert "could not swap" in (error or "")
    assert db.count(new) == sum(SIZES.values())  # the complete new table, kept
    staged = db.fetch(
        "SELECT id, status FROM pgingest.files WHERE table_schema = $1 AND table_name = $2",
        db.schema,
        new,
    )
    assert [r["status"] for r in staged] == ["staged", "staged"]
    assert db.val("SELECT status FROM pgingest.runs WHERE id = $1", run) == "failed"
    code, out, _ = cli("status", "--dsn", db.dsn, "--table", f"{db.schema}.t")
    assert code == 0
    assert f"{db.schema}.t <- {new}  run {run}, every file in it: could not swap" in out, out
    code, out, err = cli("resume", str(run), "--dsn", db.dsn)
    assert code == 0, out + err
    assert_replaced(db, files)
    ids = {r["id"] for r in staged}
    assert {
        r["id"]
        for r in db.fetch(
            "SELECT id FROM pgingest.files WHERE table_schema = $1 AND status = 'success'",
            db.schema,
        )
    } == ids  # swapped in as loaded: no file loaded again


def test_the_swap_waits_for_files_another_process_loads_into_the_old_table(files, db, cli):
    """An append into the old table in flight at the swap: its committed batches would go with
    the old table while its next ones went to the new. The swap waits for it (bounded)."""
    appending = str(files[0].parent / "appending.csv")

    async def hold_while(command: list[str]) -> tuple[int, str, str]:
        other = await asyncpg.connect(db.dsn)  # plays the appending process
        try:
            file_id = await other.fetchval(
                "INSERT INTO pgingest.files (path, size, mtime_ns, table_schema, table_name,"
                " status) VALUES ($1, 1, 1, $2, 't', 'running') RETURNING id",
                appending,
                db.schema,
            )
            await other.execute(
                "SELECT pg_advisory_lock(hashtextextended($1, 0))", f"pgingest.file:{file_id}"
            )
            done = await asyncio.to_thread(pgingest, *command)
        finally:
            await other.close()
        return done.returncode, done.stdout, done.stderr

    args = replace_args(db, files, "--swap-lock-timeout", "0.5", "--swap-tries", "2")
    code, out, err = asyncio.run(hold_while(args))
    assert code == 1, out + err
    assert f"files being loaded into it: {appending}" in err, err
    assert db.count("t") == OLD_ROWS
    code, out, err = cli("resume", str(last_run(db)), "--dsn", db.dsn)
    assert code == 0, out + err
    assert db.count("t") == sum(SIZES.values())


def test_a_version_2_manifest_is_brought_up_to_staged_files(tmp_path, load, db):
    assert load(write_csv(tmp_path / "a.csv", 0, 10), table="t").ok
    db.execute("ALTER TABLE pgingest.files DROP CONSTRAINT files_status_check")
    db.execute(
        "ALTER TABLE pgingest.files ADD CONSTRAINT files_status_check"
        " CHECK (status IN ('pending', 'running', 'success', 'failed', 'reverted')) NOT VALID"
    )  # (NOT VALID: other tests' rows may be staged)
    db.execute("DROP TABLE pgingest.replacements")
    db.execute("DELETE FROM pgingest.version WHERE version >= 3")
    report = load(write_csv(tmp_path / "b.csv", 0, 20), table="t", mode="replace")
    assert report.ok, report.files
    assert db.count("t") == 20
    assert db.val("SELECT max(version) FROM pgingest.version") >= 3


def test_the_tables_lock_connection_cut_mid_run_is_taken_again_for_the_swap(files, db):
    args = replace_args(db, files, "--pause-every", "1", "--pause-seconds", "1")
    with running(*args) as run:
        wait_for(lambda: pending(db) != [], what="the replace to start")
        holder = db.val(
            "SELECT holder_pid FROM pgingest.replacements WHERE table_schema = $1", db.schema
        )
        assert db.val("SELECT pg_terminate_backend($1)", holder)
        code, out, err = finish(run)
    assert code == 0, out + err
    assert_replaced(db, files)

"""Issue 12, case 1: files of identical byte size are each loaded exactly once.

The claim compared a file with the unfinished ones of the same size by ``... OR r.sha256 =
p_sha``: NULL while a loading file's hash is not known yet, so ``IF NOT (...)`` took an
unrelated file for the same one and skipped it as "being loaded by another pgingest
process". Two copies of one content loaded at once stay reconciled by ``complete``.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import signal

import asyncpg

from integrity import finish, same_size_csvs, start, together
from processes import pgingest

FILES = 8
ROWS = 52_000  # 21 bytes a row: each file over 1 MiB, hashed in the background


def loaded(db, table: str) -> list[tuple[str, str, int]]:
    return [
        (r["path"], r["status"], r["rows"])
        for r in db.fetch(
            "SELECT path, status, rows FROM pgingest.files WHERE table_schema = $1"
            " AND table_name = $2 AND status <> 'failed' ORDER BY path, id",
            db.schema,
            table,
        )
    ]


def test_same_size_files_all_load_in_one_process(tmp_path, load, db):
    paths = same_size_csvs(tmp_path / "same", FILES, ROWS)
    assert paths[0].stat().st_size > 1 << 20
    report = load(tmp_path / "same", table="t")
    assert [f.status for f in report.files] == ["loaded"] * FILES, [
        (f.status, f.message) for f in report.files
    ]
    assert db.count("t") == FILES * ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == FILES * ROWS
    assert loaded(db, "t") == [(str(p), "success", ROWS) for p in paths]


def test_same_size_files_two_processes_load_each_once(tmp_path, db):
    paths = same_size_csvs(tmp_path / "same", FILES, ROWS)
    results = together(db.dsn, 2, "load", str(tmp_path / "same"), "--table", "t", schema=db.schema)
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert db.count("t") == FILES * ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == FILES * ROWS
    assert loaded(db, "t") == [(str(p), "success", ROWS) for p in paths]
    # Between them, each file was loaded by one process and skipped by the other.
    lines = "".join(out for _, out, _ in results).splitlines()
    for path in paths:
        done = [line for line in lines if str(path) in line]
        assert sorted(line[0] for line in done) == ["-", "✓"], done


def test_same_size_files_of_two_loaders_into_one_table(tmp_path, db):
    # Two loaders with their own files, one table: a file skipped by mistake is lost (the
    # other process never has it). Each claims its first files before any is loaded (no
    # hash asked), the next ones after (hashed first), while the other's are in flight.
    each = 6  # more than the 4 files a loader claims at once
    paths = same_size_csvs(tmp_path / "all", 2 * each, ROWS)
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    first = [p.rename(tmp_path / "one" / p.name) for p in paths[:each]]
    second = [p.rename(tmp_path / "two" / p.name) for p in paths[each:]]
    started = [
        start(db.dsn, "load", str(folder), "--table", "t", schema=db.schema)
        for folder in (tmp_path / "one", tmp_path / "two")
    ]
    results = [finish(p) for p in started]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert "skipped" not in "".join(out for _, out, _ in results)
    assert db.count("t") == 2 * each * ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 2 * each * ROWS
    assert loaded(db, "t") == sorted((str(p), "success", ROWS) for p in [*first, *second])


def test_two_copies_of_one_file_load_once(tmp_path, load, db):
    paths = same_size_csvs(tmp_path / "copies", 3, ROWS)
    twin = tmp_path / "copies" / "twin.csv"
    shutil.copy(paths[0], twin)
    report = load(tmp_path / "copies", table="t")
    by_path = {f.path: f for f in report.files}
    assert sorted(f.status for f in report.files) == ["loaded"] * 3 + ["skipped"]
    skipped = (
        by_path[str(twin)] if by_path[str(twin)].status == "skipped" else by_path[str(paths[0])]
    )
    assert "same content" in skipped.message
    assert db.count("t") == 3 * ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 3 * ROWS
    # Both names are loaded; one holds the rows (the other keeps them if the first changes).
    names = [(s, n) for p, s, n in loaded(db, "t") if p in (str(twin), str(paths[0]))]
    assert sorted(names) == [("success", 0), ("success", ROWS)]


def test_two_copies_of_one_file_two_processes_load_once(tmp_path, db):
    paths = same_size_csvs(tmp_path / "copies", 3, ROWS)
    shutil.copy(paths[0], tmp_path / "copies" / "twin.csv")
    results = together(
        db.dsn, 2, "load", str(tmp_path / "copies"), "--table", "t", schema=db.schema
    )
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    assert db.count("t") == 3 * ROWS
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 3 * ROWS
    success = [(p, n) for p, s, n in loaded(db, "t") if s == "success"]
    assert sorted(n for _, n in success) == [0, ROWS, ROWS, ROWS]
    assert {p for p, n in success if n == 0} <= {
        str(paths[0]),
        str(tmp_path / "copies" / "twin.csv"),
    }


CLAIM = "SELECT * FROM pgingest.claim($1, $2, $3, $4, $5, 't', 'csv', $6, '{}', false, false, true)"


async def behind_an_open_transaction(dsn, first, second):
    """``first(a)`` in a transaction left open on connection a; ``second(b)`` started on
    connection b; once b waits for a lock (10 s at most) or is done, a commits; what
    ``second`` returned. The interleaving where one manifest call ends what another reads."""
    a = await asyncpg.connect(dsn)
    b = await asyncpg.connect(dsn)
    try:
        await a.execute("BEGIN")
        await first(a)
        other = asyncio.ensure_future(second(b))
        for _ in range(200):
            waiting = await a.fetchval(
                "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1",
                b.get_server_pid(),
            )
            if waiting or other.done():
                break
            await asyncio.sleep(0.05)
        await a.execute("COMMIT")
        return await asyncio.wait_for(other, 30)
    finally:
        await a.close()
        await b.close()


def killed_before_complete(db, path):
    """``path`` loaded into t with every batch committed, its process killed before it was
    recorded complete: its attempt's id, run and rows."""
    killed = pgingest(
        "load", str(path), "--dsn", db.dsn, "--schema", db.schema, "--table", "t",
        crash="before-complete",
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [attempt] = db.fetch("SELECT id, run_id, status FROM pgingest.files WHERE path = $1", str(path))
    assert attempt["status"] == "running"
    return attempt


def test_a_claim_does_not_resume_a_file_whose_completion_is_committing(tmp_path, db):
    """``complete`` lets go of the file's lock before it commits: a claim of the same file
    in between took the lock, saw it running and resumed it, loading it a second time (the
    per-size lock kept them apart before; now the attempt's row does). It must wait, then
    skip the file as loaded."""
    p = tmp_path / "p.csv"
    p.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(100)))
    attempt = killed_before_complete(db, p)
    sha = hashlib.sha256(p.read_bytes()).hexdigest()

    async def complete(a):
        await a.fetchrow(
            "SELECT * FROM pgingest.complete($1, $2, 'csv', false, true)", attempt["id"], sha
        )

    async def claim(b):
        st = p.stat()
        return await b.fetchrow(
            CLAIM, str(p), st.st_size, st.st_mtime_ns, None, db.schema, attempt["run_id"]
        )

    theirs = asyncio.run(behind_an_open_transaction(db.dsn, complete, claim))
    assert (theirs["action"], theirs["reason"]) == ("skip", "already loaded"), dict(theirs)
    assert db.count("t") == 100


def test_two_names_of_one_content_completing_at_once_keep_it_once(tmp_path, db):
    """Two copies of one content, both loaded, completed at the same moment: the second
    must see the first's completion (both take the content's lock) and hand its rows back,
    or the content is in the table twice."""
    p = tmp_path / "p.csv"
    p.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(100)))
    q = tmp_path / "q.csv"
    shutil.copy(p, q)
    first = killed_before_complete(db, p)
    # Its hash not known yet (as while a large file still loads): q is not taken for it.
    db.execute(f"UPDATE pgingest.files SET sha256 = NULL WHERE id = {first['id']}")
    second = killed_before_complete(db, q)
    assert db.count("t") == 200  # each loaded its rows; neither is recorded yet
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    complete = "SELECT * FROM pgingest.complete($1, $2, 'csv', false, true)"

    async def complete_first(a):
        await a.fetchrow(complete, first["id"], sha)

    async def complete_second(b):
        return await b.fetchrow(complete, second["id"], sha)

    theirs = asyncio.run(behind_an_open_transaction(db.dsn, complete_first, complete_second))
    assert theirs["duplicate_of"] == first["id"], dict(theirs)
    assert db.count("t") == 100
    assert db.val(f'SELECT count(DISTINCT id) FROM "{db.schema}".t') == 100


def test_a_claim_does_not_resume_an_attempt_another_claim_is_abandoning(tmp_path, db):
    """Issue 12 named the race untested: file p was interrupted with a batch committed; p
    then changed (another size), and the claim of its new version abandons the old attempt
    (its rows removed, marked failed) while a copy of p's old content (another path, the same
    hash) is claimed. The abandoning claim releases the attempt's lock before it commits, so
    the other claim took it and resumed after batches whose rows were being removed: it must
    see the abandonment and load its file whole instead."""

    p = tmp_path / "p.csv"
    p.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(5_000)))
    old_content = p.read_bytes()
    killed = pgingest(
        "load", str(p), "--dsn", db.dsn, "--schema", db.schema, "--table", "t",
        "--batch-size", "1000", "--internal-concurrency", "1",
        crash="batch-committed:1",
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sha = hashlib.sha256(old_content).hexdigest()
    [attempt] = db.fetch("SELECT id, run_id FROM pgingest.files WHERE path = $1", str(p))
    db.execute(f"UPDATE pgingest.files SET sha256 = '{sha}' WHERE id = {attempt['id']}")
    copy = tmp_path / "copy.csv"
    shutil.copy(p, copy)
    with p.open("a") as handle:
        handle.write("5000,n5000\n")

    claim = CLAIM

    async def mine(a):
        st = p.stat()
        row = await a.fetchrow(
            claim, str(p), st.st_size, st.st_mtime_ns, None, db.schema, attempt["run_id"]
        )
        assert row["action"] == "load"
        assert row["file_id"] != attempt["id"]

    async def theirs_(b):
        st = copy.stat()
        return await b.fetchrow(
            claim, str(copy), st.st_size, st.st_mtime_ns, sha, db.schema, attempt["run_id"]
        )

    theirs = asyncio.run(behind_an_open_transaction(db.dsn, mine, theirs_))
    assert theirs["action"] == "load"
    assert list(theirs["done_batches"]) == [], dict(theirs)  # not a resume of removed rows
    assert theirs["file_id"] != attempt["id"]
    assert db.count("t") == 0  # the abandoned attempt's rows are gone, none resumed


def test_a_changed_file_does_not_abandon_its_old_version_while_that_completes(tmp_path, db):
    """The claim of a changed file abandons its path's unfinished attempt (rows removed,
    marked failed); an attempt whose ``complete`` is committing is not unfinished: its rows
    and its record as loaded stay (the new version then replaces it as a loaded one)."""
    p = tmp_path / "p.csv"
    p.write_text("id,name\n" + "".join(f"{i},n{i}\n" for i in range(100)))
    attempt = killed_before_complete(db, p)
    sha = hashlib.sha256(p.read_bytes()).hexdigest()
    with p.open("a") as handle:
        handle.write("100,n100\n")

    async def complete(a):
        await a.fetchrow(
            "SELECT * FROM pgingest.complete($1, $2, 'csv', false, true)", attempt["id"], sha
        )

    async def claim(b):
        st = p.stat()
        return await b.fetchrow(
            CLAIM, str(p), st.st_size, st.st_mtime_ns, None, db.schema, attempt["run_id"]
        )

    theirs = asyncio.run(behind_an_open_transaction(db.dsn, complete, claim))
    assert theirs["action"] == "load"
    assert theirs["file_id"] != attempt["id"]
    [old] = db.fetch("SELECT status, rows, error FROM pgingest.files WHERE id = $1", attempt["id"])
    assert (old["status"], old["rows"], old["error"]) == ("success", 100, None)
    assert db.count("t") == 100

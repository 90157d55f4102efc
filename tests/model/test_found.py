"""Examples the model-based test (``test_tool_model.py``) found, each kept as a plain test."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import signal
from pathlib import Path

import asyncpg

from pgingest.manifest import store
from processes import finish, pgingest, running, wait_for


def load(db, *args: str) -> tuple[int, str]:
    done = pgingest("load", "--dsn", db.dsn, "--schema", db.schema, "--no-progress", *args)
    return done.returncode, done.stdout + done.stderr


def rows(db, table: str) -> list[tuple[int, str]]:
    return sorted((r[0], r[1]) for r in db.fetch(f'SELECT id, v FROM "{db.schema}"."{table}"'))


def test_a_replace_of_two_copies_holds_their_content_once(tmp_path: Path, db) -> None:
    # Found: the second copy was skipped as "being loaded from" the first, and the replace
    # refused to swap ("not in it"); its resume then loaded the copy as well (rows twice).
    a = tmp_path / "a.csv"
    a.write_text("id,v\n1,x\n2,y\n")
    shutil.copyfile(a, tmp_path / "b.csv")
    (tmp_path / "c.csv").write_text("id,v\n3,z\n")
    paths = [str(tmp_path / n) for n in ("a.csv", "b.csv", "c.csv")]
    for _ in range(2):
        code, out = load(db, *paths, "--table", "t", "--mode", "replace")
        assert code == 0, out
        assert rows(db, "t") == [(1, "x"), (2, "y"), (3, "z")]


def test_a_copy_keeps_its_content_when_the_original_changes(tmp_path: Path, db) -> None:
    # Found (log rotation): the copy was skipped as "same content already loaded", then the
    # original's new version replaced the old version's rows: the copy's content was gone.
    log, rotated = tmp_path / "app.csv", tmp_path / "app.1.csv"
    log.write_text("id,v\n1,old\n")
    assert load(db, str(log), "--table", "t")[0] == 0
    shutil.copyfile(log, rotated)
    log.write_text("id,v\n2,new\n")
    code, out = load(db, str(rotated), str(log), "--table", "t")
    assert code == 0, out
    assert rows(db, "t") == [(1, "old"), (2, "new")]
    log.write_text("id,v\n3,newer\n")
    assert load(db, str(rotated), str(log), "--table", "t")[0] == 0
    assert rows(db, "t") == [(1, "old"), (3, "newer")]
    # Reverting the copy takes its content out, whichever name loaded it.
    assert pgingest("revert", "--dsn", db.dsn, "--file", str(rotated)).returncode == 0
    assert rows(db, "t") == [(3, "newer")]
    assert load(db, str(rotated), "--table", "t")[0] == 0
    assert rows(db, "t") == [(1, "old"), (3, "newer")]


def test_an_interrupted_upsert_whose_file_changed_keeps_the_keys(tmp_path: Path, db) -> None:
    # Known from an earlier try: the interrupted attempt's rows were deleted when its file
    # changed, and with them the keys earlier files had loaded (1 and 2 here).
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n1,a1\n2,a2\n3,a3\n4,a4\n")
    b.write_text("id,v\n1,b1\n2,b2\n3,b3\n4,b4\n")
    upsert = ("--table", "t", "--mode", "upsert", "--pk", "id", "--batch-size", "2")
    assert load(db, str(a), *upsert)[0] == 0
    killed = pgingest(
        "load",
        str(b),
        "--dsn",
        db.dsn,
        "--schema",
        db.schema,
        *upsert,
        crash="batch-committed:1",
    )
    assert killed.returncode == -signal.SIGKILL
    b.write_text("id,v\n5,c5\n6,c6\n")
    assert load(db, str(b), *upsert)[0] == 0
    assert rows(db, "t") == [(1, "b1"), (2, "b2"), (3, "a3"), (4, "a4"), (5, "c5"), (6, "c6")]


def test_a_changed_file_loaded_with_its_copy_replaces_its_old_version(tmp_path: Path, db) -> None:
    # Found: the new version was skipped as "same content being loaded from" its copy (or
    # "already loaded from" it), so the old version's rows stayed beside the new ones.
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n1,old\n")
    assert load(db, str(a), "--table", "t")[0] == 0
    for n in range(3):
        a.write_text(f"id,v\n2,new{n}\n3,new{n}\n")
        shutil.copyfile(a, b)
        # b first: its content loads (or is loaded) under b's name while a is claimed.
        code, out = load(db, str(b), str(a), "--table", "t")
        assert code == 0, out
        assert rows(db, "t") == [(2, f"new{n}"), (3, f"new{n}")], out


def test_two_copies_loaded_with_force_hold_their_content_once(tmp_path: Path, db) -> None:
    # Found: with --force the later of two copies loading at once was not taken as the same
    # content, and the table held it twice.
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n1,x\n2,y\n")
    shutil.copyfile(a, b)
    for _ in range(2):
        code, out = load(db, str(a), str(b), "--table", "t", "--force")
        assert code == 0, out
        assert rows(db, "t") == [(1, "x"), (2, "y")], out


def test_a_resumed_forced_upsert_file_wins_over_the_files_before_it(tmp_path: Path, db) -> None:
    # Found (known from an earlier try): killed after b's batches committed, before b was
    # marked loaded; the re-run with --force wrote a again and only completed b, so a's value
    # of key 6 won although b comes after a.
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n5,a5\n6,a6\n")
    b.write_text("id,v\n9,b9\n0,b0\n7,b7\n6,b6\n")
    upsert = ("--table", "t", "--mode", "upsert", "--pk", "id", "--batch-size", "2", "--force")
    args = ("load", str(a), str(b), "--dsn", db.dsn, "--schema", db.schema, *upsert)
    killed = pgingest(*args, crash="before-complete:2")
    assert killed.returncode == -signal.SIGKILL
    assert pgingest(*args).returncode == 0
    assert dict(rows(db, "t"))[6] == "b6"


def test_a_changed_file_forced_beside_its_loaded_copy_replaces_its_old_version(
    tmp_path: Path, db
) -> None:
    # Found: with --force, the changed file replaced its copy's record (same content) instead
    # of its own old version, whose rows stayed.
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n1,old\n")
    assert load(db, str(a), "--table", "t")[0] == 0
    a.write_text("id,v\n2,new\n")
    shutil.copyfile(a, b)
    assert load(db, str(b), "--table", "t")[0] == 0
    code, out = load(db, str(a), str(b), "--table", "t", "--force")
    assert code == 0, out
    assert rows(db, "t") == [(2, "new")], out


def test_each_copy_resumes_its_own_attempt_after_a_crash(tmp_path: Path, db) -> None:
    # Found (soak profile): two copies of one content claimed by a run that was killed, then
    # claimed again by its resume. The first copy took over the second's attempt (the later
    # id), renamed it to its own path, and left its own attempt running for ever: the
    # manifest said a file was loading that nothing loaded. The race made deterministic.
    (tmp_path / "other.csv").write_text("id,v\n1,x\n")
    assert load(db, str(tmp_path / "other.csv"), "--table", "t")[0] == 0  # manifest, a run
    run_id = db.val("SELECT max(id) FROM pgingest.runs")
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("id,v\n8,a\n1,a\n")
    shutil.copy(first, second)
    sha = hashlib.sha256(first.read_bytes()).hexdigest()

    stats = {path: path.stat() for path in (first, second)}

    async def claim(conn: asyncpg.Connection, path: Path) -> store.Claim:
        stat = stats[path]
        return await store.claim_file(
            conn, path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns, sha256=sha,
            schema=db.schema, table="t", fmt="csv", run_id=run_id, chunking={}, force=False,
            on_changed="replace",
        )  # fmt: skip

    async def main() -> tuple[list[int | None], list[tuple[str, int | None]]]:
        killed = [await asyncpg.connect(db.dsn) for _ in range(2)]
        pairs = zip(killed, (first, second), strict=True)
        attempts = [(await claim(conn, path)).file_id for conn, path in pairs]
        for conn in killed:  # the run dies: its locks go with its sessions
            await conn.close()
        again = []
        for path in (first, second):
            conn = await asyncpg.connect(db.dsn)
            try:
                claimed = await claim(conn, path)
                again.append((claimed.action, claimed.file_id))
            finally:
                await conn.close()
        return attempts, again

    attempts, again = asyncio.run(main())
    assert again == [("load", attempts[0]), ("load", attempts[1])]


def test_a_changed_rowless_copy_leaves_the_rows_with_the_name_that_holds_them(
    tmp_path: Path, db
) -> None:
    # Found (soak, where a crash had made the copy the holder): the name recorded without rows
    # of its own got a new version, and the hand-over of "its rows" set the holder's row count
    # to its 0 (the table kept the rows; status said the file that held them had none).
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("id,v\n1,x\n2,y\n")
    shutil.copyfile(a, b)
    assert load(db, str(a), "--table", "t")[0] == 0
    assert load(db, str(b), "--table", "t")[0] == 0  # same content: loaded, no rows of its own
    b.write_text("id,v\n3,z\n")
    code, out = load(db, str(b), "--table", "t")
    assert code == 0, out
    assert rows(db, "t") == [(1, "x"), (2, "y"), (3, "z")]
    held = db.fetch(
        "SELECT path, rows FROM pgingest.files WHERE table_schema = $1 AND table_name = 't'"
        " AND status = 'success' ORDER BY path",
        db.schema,
    )
    assert [(r["path"], r["rows"]) for r in held] == [(str(a), 2), (str(b), 1)]
    # And after a TRUNCATE, a's rows are seen gone and loaded again.
    db.execute(f'TRUNCATE "{db.schema}".t')
    code, out = load(db, str(a), str(b), "--table", "t")
    assert code == 0, out
    assert rows(db, "t") == [(1, "x"), (2, "y"), (3, "z")]


def test_a_forced_upsert_waits_for_a_later_file_another_process_holds(tmp_path: Path, db) -> None:
    # Found (two processes, --mode upsert --force, files sharing a key): the second process
    # loaded the earlier file again while the first was loading the later one, and skipped
    # the later one (held by the first): the earlier file's older value of the key won. Here
    # the later file is long, its shared key in its first batch, so the second process's
    # reload falls inside the first's load of it.
    early, late = tmp_path / "f0.csv", tmp_path / "f1.csv"
    early.write_text("id,v\n" + "".join(f"{i},a\n" for i in range(1000, 101_000)) + "8,old\n")
    late.write_text("id,v\n8,new\n" + "".join(f"{i},b\n" for i in range(200_000, 800_000)))
    args = ["load", str(early), str(late), "--dsn", db.dsn, "--schema", db.schema]
    args += ["--table", "t", "--mode", "upsert", "--pk", "id", "--force", "--no-progress"]

    def loading(path: Path) -> bool:
        if not db.fetch("SELECT to_regclass('pgingest.files') IS NOT NULL")[0][0]:
            return False
        return bool(
            db.fetch(
                "SELECT 1 FROM pgingest.files WHERE path = $1 AND table_schema = $2"
                " AND status = 'running'",
                str(path),
                db.schema,
            )
        )

    with running(*args) as first:
        wait_for(lambda: loading(early), what="the first process loading the earlier file")
        second = pgingest(*args)
        code, out, err = finish(first)
    assert code == 0, out + err
    assert second.returncode == 0, second.stdout + second.stderr
    assert db.fetch(f'SELECT v FROM "{db.schema}".t WHERE id = 8')[0][0] == "new"

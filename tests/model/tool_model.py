"""A plain in-memory model of what DESIGN.md says the tables hold, and the state machine that
drives the real command (subprocesses of ``pgingest``) against it (issue 12).

The model, per table:

- **contents**: a file's bytes. Every created or changed file gets rows never seen before (a
  fresh token per row), so two files hold one content only when one is a copy (or the rename)
  of the other.
- **holders**: the paths that hold a content in the table: the path that loaded it, and every
  path skipped as "same content already loaded" (a copy, a rename, a rotated log). A content's
  rows are in the table while some path holds it; a path that gets a new version stops holding
  its old one (``--on-changed replace``), whose rows go when nobody holds it any more.
- **append** (table ``ta``): the table is the union of the held contents' rows.
- **upsert** (table ``tu``, key ``id``): each key's row is the last one written, in path-list
  order, by the loads that wrote (not skipped) a content. A new version of a file is upserted
  over the table as it is (its old version's rows stay: later files may have updated them),
  and its old version stays loaded in the manifest. Its revert is refused (the values it
  overwrote are not kept).
- **replace** (table ``tr``): the table is what an append of the path list into an empty table
  makes.
- Loading a path list with ``--force`` writes every file again; the table is the one a load
  without ``--force`` would leave, except under upsert, where the files rewritten win again.
- Several processes given one path list make the table one load of that list makes.
- A load killed at a crash point, then run again, makes the table the second run alone makes.
- ``revert --file P`` takes P's content out (every holder of it); ``revert --run R`` every
  content R loaded that is still loaded from R's records.
- DROP, TRUNCATE or recreating a table empties it and forgets what it held: the next load
  loads every file given again.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from tests.conftest import fetch

from processes import environment, pgingest, race

TIMEOUT = 120
"""Seconds one pgingest process may take before the step fails."""

BATCH = 2
"""Rows per batch: a file of a few rows has several batches, so batch crash points differ."""

TABLES = {"append": "ta", "upsert": "tu", "replace": "tr"}

LOAD_POINTS = (
    "run-started",
    "claimed",
    "batch-copied",
    "batch-committed",
    "before-complete",
    "completed",
    "table-created",
)
REPLACE_POINTS = (*LOAD_POINTS, "replace-loaded", "swap-before-commit", "swap-committed")

Row = tuple[int, str]
Content = tuple[Row, ...]


@dataclass
class TableModel:
    """What one table must hold (see the module docstring)."""

    mode: str
    holders: dict[Content, set[str]] = field(default_factory=dict)
    held: dict[str, Content] = field(default_factory=dict)
    keys: dict[int, tuple[str, Content]] = field(default_factory=dict)
    run_of: dict[Content, int | None] = field(default_factory=dict)
    touched: bool = False
    """Changed by hand (DROP, TRUNCATE, recreate) since pgingest last loaded it: the manifest
    learns of that at the next load only."""

    def rows(self) -> Counter[Row]:
        if self.mode == "upsert":
            return Counter((k, v) for k, (v, _) in self.keys.items())
        return Counter(row for content in self.holders for row in content)

    def forget(self) -> None:
        self.holders.clear()
        self.held.clear()
        self.keys.clear()
        self.run_of.clear()

    def _release(self, path: str) -> None:
        old = self.held.pop(path, None)
        if old is None:
            return
        holders = self.holders[old]
        holders.discard(path)
        if not holders:
            self._remove(old)

    def _remove(self, content: Content) -> None:
        for path in self.holders.pop(content, set()):
            self.held.pop(path, None)
        self.run_of.pop(content, None)
        if self.mode == "upsert":
            for key in [k for k, (_, c) in self.keys.items() if c == content]:
                del self.keys[key]

    def _write(self, content: Content) -> None:
        if self.mode == "upsert":
            for key in [k for k, (_, c) in self.keys.items() if c == content]:
                del self.keys[key]
            for key, value in content:
                self.keys[key] = (value, content)

    def load(self, files: list[tuple[str, Content]], force: bool, run: int | None) -> None:
        """One load of ``files`` (in path-list order)."""
        if self.mode == "replace":
            self.forget()
        if self.mode == "upsert":
            self._upsert(files, force)
            return
        for path, content in files:
            if content in self.holders:
                if self.held.get(path) != content:
                    self._release(path)
                    self.holders[content].add(path)
                    self.held[path] = content
                if force and self.mode != "replace":
                    self._write(content)
                    self.run_of[content] = run
                continue
            self._release(path)
            self.holders[content] = {path}
            self.held[path] = content
            self.run_of[content] = run
            self._write(content)

    def _upsert(self, files: list[tuple[str, Content]], force: bool) -> None:
        # A new version of a file is upserted over the table as it is: its old version's
        # rows stay (later files may have updated them), and so does its manifest record.
        for path, content in files:
            if content not in self.holders or force:
                for key, value in content:
                    self.keys[key] = (value, content)
            self.holders.setdefault(content, set()).add(path)

    def revert_path(self, path: str) -> None:
        content = self.held.get(path)
        if content is not None:
            self._remove(content)

    def revert_run(self, run: int) -> None:
        for content in [c for c, r in self.run_of.items() if r == run]:
            self._remove(content)


def render(content: Content) -> str:
    return "id,v\n" + "".join(f"{k},{v}\n" for k, v in content)


def sha256(content: Content) -> str:
    return hashlib.sha256(render(content).encode()).hexdigest()


class Settings:
    """Set by the test before it runs the machine: the server, and a folder for files."""

    dsn: str = ""
    tmp: Path = Path()
    steps: int = 0
    timed_kills: bool = False


class ToolMachine(RuleBasedStateMachine):
    """Files created and changed, loaded by real pgingest processes, compared to the model."""

    def __init__(self) -> None:
        super().__init__()
        self.dsn = Settings.dsn
        self.schema = "m_" + uuid.uuid4().hex[:12]
        fetch(self.dsn, f'CREATE SCHEMA "{self.schema}"')
        self.folder = Settings.tmp / self.schema
        self.folder.mkdir(parents=True)
        self.files: dict[str, Content] = {}
        self.names = itertools.count()
        self.tokens = itertools.count()
        self.tables = {mode: TableModel(mode) for mode in TABLES}
        self.runs: list[tuple[int, str]] = []
        self.log: list[str] = []

    def teardown(self) -> None:
        fetch(self.dsn, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- files -------------------------------------------------------------------------

    def _rows(self, keys: list[int]) -> Content:
        return tuple((k, f"v{next(self.tokens):05d}") for k in keys)

    def _write(self, path: str, content: Content) -> None:
        Path(path).write_text(render(content))
        self.files[path] = content

    def _new_path(self) -> str:
        return str(self.folder / f"f{next(self.names):03d}.csv")

    keys = st.lists(st.integers(0, 9), min_size=1, max_size=5)

    @initialize(keys=keys)
    def first_file(self, keys: list[int]) -> None:
        self.create(keys)

    @rule(keys=keys)
    def create(self, keys: list[int]) -> None:
        path = self._new_path()
        self._write(path, self._rows(keys))
        self.log.append(f"create {Path(path).name} {self.files[path]}")

    @precondition(lambda self: self.files)
    @rule(data=st.data(), keys=st.lists(st.integers(0, 9), min_size=1, max_size=2))
    def append_rows(self, data: st.DataObject, keys: list[int]) -> None:
        path = data.draw(st.sampled_from(sorted(self.files)))
        self._write(path, self.files[path] + self._rows(keys))
        self.log.append(f"append to {Path(path).name}: {self.files[path]}")

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def modify_same_size(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.files)))
        old = self.files[path]
        at = data.draw(st.integers(0, len(old) - 1))
        (changed,) = self._rows([old[at][0]])
        self._write(path, (*old[:at], changed, *old[at + 1 :]))
        self.log.append(f"modify {Path(path).name}: {self.files[path]}")

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def rename(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.files)))
        new = self._new_path()
        Path(path).rename(new)
        self.files[new] = self.files.pop(path)
        self.log.append(f"rename {Path(path).name} -> {Path(new).name}")

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.files)))
        Path(path).unlink()
        del self.files[path]
        self.log.append(f"delete {Path(path).name}")

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def copy(self, data: st.DataObject) -> None:
        path = data.draw(st.sampled_from(sorted(self.files)))
        new = self._new_path()
        shutil.copyfile(path, new)
        self.files[new] = self.files[path]
        self.log.append(f"copy {Path(path).name} -> {Path(new).name}")

    # ---- loads ---------------------------------------------------------------------------

    def _command(self, mode: str, paths: list[str], force: bool, workers: int = 1) -> list[str]:
        args = [
            "load",
            *paths,
            "--dsn",
            self.dsn,
            "--schema",
            self.schema,
            "--table",
            TABLES[mode],
            "--mode",
            mode,
            "--batch-size",
            str(BATCH),
            "--no-progress",
        ]
        if mode == "upsert":
            args += ["--pk", "id"]
        if force:
            args.append("--force")
        if workers > 1:
            args += ["--workers", str(workers)]
        return args

    def _run(self, args: list[str], crash: str | None = None) -> subprocess.CompletedProcess[str]:
        return pgingest(*args, crash=crash, timeout=TIMEOUT)

    def _last_run(self) -> int:
        return int(fetch(self.dsn, "SELECT max(id) FROM pgingest.runs")[0][0])

    @precondition(lambda self: self.files)
    @rule(
        data=st.data(),
        mode=st.sampled_from(sorted(TABLES)),
        force=st.booleans(),
        processes=st.sampled_from([1, 1, 1, 2, 3]),
        workers=st.sampled_from([1, 1, 2]),
    )
    def load(
        self, data: st.DataObject, mode: str, force: bool, processes: int, workers: int
    ) -> None:
        paths = data.draw(
            st.lists(st.sampled_from(sorted(self.files)), min_size=1, max_size=4, unique=True)
        )
        paths.sort()
        # --workers: one run of loader processes, held to the same model as one process
        # (not with replace, which refuses it).
        workers = 1 if mode == "replace" or processes > 1 else workers
        args = self._command(mode, paths, force, workers)
        names = [Path(p).name for p in paths]
        self.log.append(f"load {mode} force={force} x{processes} workers={workers} {names}")
        if processes == 1:
            done = self._run(args)
            assert done.returncode == 0, done.stdout + done.stderr
            run: int | None = self._last_run()
            self.runs.append((run, mode))
        else:
            out = race([args] * processes, self._scratch())
            codes = [r[0] for r in out]
            if mode == "replace":
                assert 0 in codes, out
                assert set(codes) <= {0, 1}, out
                for code, stdout, stderr in out:
                    if code:
                        assert "replac" in (stdout + stderr).lower(), (stdout, stderr)
            else:
                assert set(codes) == {0}, out
            run = None
        table = self.tables[mode]
        table.load([(p, self.files[p]) for p in paths], force, run)
        table.touched = False

    def _scratch(self) -> Path:
        scratch = self.folder / ("race" + uuid.uuid4().hex[:6])
        scratch.mkdir()
        return scratch

    @precondition(lambda self: self.files)
    @rule(
        data=st.data(),
        mode=st.sampled_from(sorted(TABLES)),
        force=st.booleans(),
        nth=st.integers(1, 3),
        resume=st.booleans(),
    )
    def crash_then_again(
        self, data: st.DataObject, mode: str, force: bool, nth: int, resume: bool
    ) -> None:
        paths = data.draw(
            st.lists(st.sampled_from(sorted(self.files)), min_size=1, max_size=3, unique=True)
        )
        paths.sort()
        point = data.draw(st.sampled_from(REPLACE_POINTS if mode == "replace" else LOAD_POINTS))
        args = self._command(mode, paths, force)
        self.log.append(
            f"load {mode} force={force} {[Path(p).name for p in paths]} killed at {point}:{nth}"
        )
        crashed = self._run(args, crash=f"{point}:{nth}")
        assert crashed.returncode in (0, -signal.SIGKILL), crashed.stdout + crashed.stderr
        if crashed.returncode and resume:
            # The killed run, continued with its own options (its id: the latest run).
            self.log.append("resume")
            again = self._run(["resume", "--dsn", self.dsn, "--no-progress"])
        else:
            again = self._run(args)
        assert again.returncode == 0, again.stdout + again.stderr
        table = self.tables[mode]
        if crashed.returncode == 0:  # the point was not reached that often: a plain load
            table.load([(p, self.files[p]) for p in paths], force, None)
        table.load([(p, self.files[p]) for p in paths], force, None)
        table.touched = False

    @precondition(lambda self: self.files and Settings.timed_kills)
    @rule(
        data=st.data(),
        mode=st.sampled_from(sorted(TABLES)),
        force=st.booleans(),
        delay=st.floats(0.0, 1.0),
    )
    def killed_at_random(self, data: st.DataObject, mode: str, force: bool, delay: float) -> None:
        """Soak only: SIGKILL after ``delay`` seconds, wherever the load is (not replayable)."""
        paths = data.draw(
            st.lists(st.sampled_from(sorted(self.files)), min_size=1, max_size=4, unique=True)
        )
        paths.sort()
        args = self._command(mode, paths, force)
        self.log.append(
            f"load {mode} force={force} {[Path(p).name for p in paths]} killed at {delay:.2f} s"
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "pgingest", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment(),
        )
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
        proc.wait(timeout=TIMEOUT)
        again = self._run(args)
        assert again.returncode == 0, again.stdout + again.stderr
        table = self.tables[mode]
        table.load([(p, self.files[p]) for p in paths], force, None)
        table.touched = False

    # ---- revert --------------------------------------------------------------------------

    @rule(data=st.data())
    def revert_file(self, data: st.DataObject) -> None:
        loaded = sorted({p for t in self.tables.values() for ps in t.holders.values() for p in ps})
        if not loaded:
            return
        path = data.draw(st.sampled_from(loaded))
        self.log.append(f"revert --file {Path(path).name}")
        owns = {mode: self._owns(mode, path) for mode in TABLES}
        done = self._run(["revert", "--dsn", self.dsn, "--file", path])
        if owns["upsert"]:
            # An upsert overwrote rows in place: its revert is refused, nothing changes.
            assert done.returncode != 0, done.stdout + done.stderr
            assert "upsert" in done.stderr, done.stderr
        elif any(owns.values()):
            assert done.returncode == 0, done.stdout + done.stderr
            for mode, table in self.tables.items():
                if owns[mode]:
                    table.revert_path(path)

    def _owns(self, mode: str, path: str) -> bool:
        """Whether the manifest has ``path``'s own record loaded (not a skipped holder)."""
        return bool(
            fetch(
                self.dsn,
                "SELECT 1 FROM pgingest.files WHERE path = $1 AND table_schema = $2"
                " AND table_name = $3 AND status = 'success'",
                path,
                self.schema,
                TABLES[mode],
            )
        )

    @precondition(lambda self: self.runs)
    @rule(data=st.data())
    def revert_run(self, data: st.DataObject) -> None:
        run, mode = data.draw(st.sampled_from(self.runs))
        self.log.append(f"revert --run {run} ({mode})")
        table = self.tables[mode]
        reverts = any(r == run for r in table.run_of.values())
        done = self._run(["revert", "--dsn", self.dsn, "--run", str(run)])
        if mode == "upsert" and reverts:
            assert done.returncode != 0, done.stdout + done.stderr
            return
        assert done.returncode in (0, 1), done.stdout + done.stderr
        table.revert_run(run)

    # ---- the table changed by hand ---------------------------------------------------------

    @rule(mode=st.sampled_from(sorted(TABLES)), how=st.sampled_from(["drop", "truncate", "new"]))
    def change_table(self, mode: str, how: str) -> None:
        name = f'"{self.schema}"."{TABLES[mode]}"'
        if not fetch(self.dsn, "SELECT to_regclass($1) IS NOT NULL AS t", name)[0][0]:
            return
        self.log.append(f"{how} {TABLES[mode]}")
        if how == "drop":
            fetch(self.dsn, f"DROP TABLE {name}")
        elif how == "truncate":
            fetch(self.dsn, f"TRUNCATE {name}")
        else:
            old = f'"{self.schema}"."old_{TABLES[mode]}"'
            fetch(self.dsn, f"ALTER TABLE {name} RENAME TO old_{TABLES[mode]}")
            fetch(self.dsn, f"CREATE TABLE {name} (LIKE {old} INCLUDING ALL)")
            fetch(self.dsn, f"DROP TABLE {old}")
        table = self.tables[mode]
        table.forget()
        table.touched = True

    # ---- what must hold after every step ----------------------------------------------------

    @invariant()
    def tables_hold_the_model(self) -> None:
        Settings.steps += 1
        for mode, name in TABLES.items():
            exists = fetch(
                self.dsn, "SELECT to_regclass($1) IS NOT NULL", f'"{self.schema}"."{name}"'
            )[0][0]
            actual: Counter[Row] = Counter()
            if exists:
                actual = Counter(
                    (int(r[0]), str(r[1]))
                    for r in fetch(self.dsn, f'SELECT id, v FROM "{self.schema}"."{name}"')
                )
            expected = self.tables[mode].rows()
            assert actual == expected, self._explain(name, actual, expected)

    @invariant()
    def manifest_tells_the_truth(self) -> None:
        if not fetch(self.dsn, "SELECT to_regclass('pgingest.files') IS NOT NULL")[0][0]:
            assert not any(t.holders for t in self.tables.values())
            return
        records = fetch(
            self.dsn,
            "SELECT table_name, path, sha256, status, rows FROM pgingest.files"
            " WHERE table_schema = $1",
            self.schema,
        )
        unfinished = [dict(r) for r in records if r["status"] not in ("success", "reverted")]
        unfinished = [r for r in unfinished if r["status"] != "failed"]
        assert unfinished == [], unfinished
        for mode, name in TABLES.items():
            table = self.tables[mode]
            if table.touched:
                continue
            loaded: dict[str, list[int]] = {}
            for r in records:
                if r["table_name"] == name and r["status"] == "success":
                    loaded.setdefault(r["sha256"], []).append(r["rows"])
            expected = {sha256(c): c for c in table.holders}
            assert set(loaded) == set(expected), self._explain(
                f"manifest of {name}", Counter(set(loaded)), Counter(set(expected))
            )
            for sha, rows in loaded.items():
                # One record of a content holds its rows; its other names hold none (upsert:
                # --force loads it again under a record of its own).
                size = len(expected[sha])
                if mode == "upsert":
                    assert set(rows) <= {0, size}, (name, rows, size)
                else:
                    assert sorted(rows) == [0] * (len(rows) - 1) + [size], (name, rows, size)

    @invariant()
    def no_staging_table_is_left(self) -> None:
        left = fetch(
            self.dsn,
            "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1 AND relname LIKE '%pgingest%'",
            self.schema,
        )
        assert [r[0] for r in left] == []

    def _explain(self, what: str, actual: Counter[Any], expected: Counter[Any]) -> str:
        text = (
            f"{what}: extra {dict(actual - expected)}, missing {dict(expected - actual)}\n"
            + "\n".join(self.log)
        )
        trace = os.environ.get("PGINGEST_MODEL_TRACE")
        if trace:  # a failure that does not replay (timing) is still told
            with open(trace, "a") as out:
                out.write(text + "\n\n")
        return text

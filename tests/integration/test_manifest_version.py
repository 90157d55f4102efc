"""Loaders of different versions on one manifest: a newer loader migrates an older manifest
(``test_table_identity``, ``test_manifest``), an older one refuses a newer manifest in one
line with its own exit code, and writes nothing: ``load``, ``resume``, ``status``,
``revert`` and ``rejects`` alike."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrity import csv_of, fresh_database, run
from pgingest.errors import ManifestVersionError
from pgingest.manifest.schema import SCHEMA_VERSION, check_version

EXIT_MANIFEST_NEWER = 3


@given(st.integers(min_value=0, max_value=10_000))
def test_a_manifest_is_ours_older_or_refused_by_its_version(found):
    if found > SCHEMA_VERSION:
        with pytest.raises(ManifestVersionError, match=f"version {found}, newer"):
            check_version(found)
    else:
        assert check_version(found) is (found == SCHEMA_VERSION)


@pytest.mark.parametrize("ahead", [1, 40])
def test_an_older_loader_refuses_a_newer_manifest_and_writes_nothing(
    tmp_path, pg_dsn, db_class, ahead
):
    first = csv_of(tmp_path / "a.csv", range(3))
    second = csv_of(tmp_path / "b.csv", range(3, 8))
    with fresh_database(pg_dsn) as dsn:
        db = db_class(dsn, "public")
        done = run(dsn, "load", str(first), "--table", "t")
        assert done.returncode == 0, done.stderr
        # What a newer pgingest's migration leaves: its version row (and objects this one
        # does not know, here a column).
        db.execute(f"INSERT INTO pgingest.version (version) VALUES ({SCHEMA_VERSION + ahead})")
        db.execute("ALTER TABLE pgingest.files ADD COLUMN from_the_future text")
        before = db.fetch("SELECT id, status, rows FROM pgingest.files ORDER BY id")
        runs = db.val("SELECT count(*) FROM pgingest.runs")
        expected = f"version {SCHEMA_VERSION + ahead}, newer than this pgingest knows"
        for verb, *args in (
            ("load", str(second), "--table", "t"),
            ("load", str(second), "--table", "t", "--json"),
            ("load", str(second), "--table", "t", "--workers", "2"),  # (started, then told)
            ("resume",),
            ("status",),
            ("status", "--json"),
            ("revert", "--file", str(first)),
            ("rejects", str(first)),
        ):
            done = run(dsn, verb, *args)
            assert done.returncode == EXIT_MANIFEST_NEWER, (verb, args, done.stdout, done.stderr)
            lines = done.stderr.strip().splitlines()
            assert len(lines) == 1, (verb, done.stderr)
            assert lines[0].startswith("error: the manifest"), (verb, lines)
            assert expected in lines[0], lines
            assert "upgrade pgingest" in lines[0], lines
            assert "Traceback" not in done.stderr
            if "--json" in args and verb == "load":
                assert json.loads(done.stdout)["run"]["exit_code"] == EXIT_MANIFEST_NEWER
        assert db.fetch("SELECT id, status, rows FROM pgingest.files ORDER BY id") == before
        assert db.val("SELECT count(*) FROM pgingest.runs") == runs
        assert db.val("SELECT max(version) FROM pgingest.version") == SCHEMA_VERSION + ahead
        assert db.count("t") == 3

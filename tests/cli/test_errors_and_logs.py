"""Issue 14's "Errors and logs" items of the command line, each through the real command
against the test server."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.conftest import Db


def _csv(tmp_path: Path, name: str = "people.csv") -> Path:
    path = tmp_path / name
    path.write_text("id,name\n1,ann\n2,bob\n")
    return path


def _key_value(url: str) -> str:
    """The test server's URL as a libpq key=value string."""
    parts = urlsplit(url)
    pairs = {
        "host": parts.hostname,
        "port": parts.port,
        "dbname": unquote(parts.path.lstrip("/")),
        "user": parts.username,
        "password": parts.password,
        **dict(parse_qsl(parts.query)),  # the embedded server's socket: ?host=/tmp/...
    }
    return " ".join(f"{k}='{v}'" for k, v in pairs.items() if v)


def test_dsn_in_key_value_form(cli: Any, db: Db, tmp_path: Path) -> None:
    src = _csv(tmp_path)
    dsn = _key_value(db.dsn)
    code, _out, err = cli("load", str(src), "--dsn", dsn, "--schema", db.schema, dsn=False)
    assert code == 0, err
    assert db.rows("people", "id") == [(1, "ann"), (2, "bob")]


def test_config_value_is_validated_like_the_flag(cli: Any, db: Db, tmp_path: Path) -> None:
    src = _csv(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("batch_size: notanumber\n")
    code, _out, from_file = cli("load", str(src), "--config", str(config))
    assert code == 2
    code, _out, from_flag = cli("load", str(src), "--batch-size", "notanumber")
    assert code == 2
    assert "Invalid value for '--batch-size'" in from_flag
    assert from_file.splitlines()[-1] == from_flag.splitlines()[-1]
    assert "TypeError" not in from_file
    assert db.val("SELECT to_regclass($1)", f"{db.schema}.people") is None


def test_config_key_is_pk(cli: Any, db: Db, tmp_path: Path) -> None:
    src = _csv(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("mode: upsert\nkey: [id]\n")
    assert cli("load", str(src), "--config", str(config))[0] == 0
    src.write_text("id,name\n2,bea\n3,cy\n")
    assert cli("load", str(src), "--config", str(config))[0] == 0
    assert db.rows("people", "id") == [(1, "ann"), (2, "bea"), (3, "cy")]


def test_own_schema_is_refused_before_anything_changes(cli: Any, db: Db, tmp_path: Path) -> None:
    src = _csv(tmp_path)
    # The manifest exists (an earlier load), so a change to it would show.
    assert cli("load", str(src))[0] == 0
    runs = db.val("SELECT count(*) FROM pgingest.runs")
    columns = db.val("SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgingest.runs'::regclass")
    for schema in ("pgingest", "PGINGEST"):
        code, _out, err = cli(
            "load", str(src), "--dsn", db.dsn, "--schema", schema, "--force", dsn=False
        )
        assert code == 2
        assert err.strip().splitlines() == [
            f"error: --schema {schema}: that schema holds pgingest's own bookkeeping;"
            " load into another one"
        ]
    assert db.val("SELECT count(*) FROM pgingest.runs") == runs
    after = db.val("SELECT count(*) FROM pg_attribute WHERE attrelid = 'pgingest.runs'::regclass")
    assert after == columns


def test_json_logs_make_the_final_error_line_json(cli: Any, db: Db, tmp_path: Path) -> None:
    src = _csv(tmp_path)
    cases = [
        ("--schema", "pgingest"),  # a ConfigError
        ("--batch-size", "0"),  # refused by the option's type
        ("--max-retries", "0"),  # the server cannot be reached: a PgIngestError
    ]
    for extra in cases:
        dsn = "postgresql://nobody@127.0.0.1:9/none" if "--max-retries" in extra else db.dsn
        code, _out, err = cli(
            "load", str(src), "--dsn", dsn, "--log-format", "json", *extra, dsn=False
        )
        assert code in (1, 2), extra
        lines = err.strip().splitlines()
        assert lines, extra
        for line in lines:
            json.loads(line)  # stderr carries JSON only
        last = json.loads(lines[-1])
        assert last["level"] == "error"
        assert last["message"], extra
        if "pgingest" in extra:
            assert last["message"].startswith("--schema pgingest: that schema holds")


def _console_script() -> Path:
    """The installed ``pgingest`` command: unlike ``python -m``, it does not put the current
    directory on ``sys.path``."""
    script = Path(sys.executable).with_name("pgingest")
    assert script.exists(), f"{script}: the package is not installed in this environment"
    return script


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(_console_script()), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_commands_log_handlers_go_with_it(
    cli: Any, db: Db, tmp_path: Path, caplog: Any
) -> None:
    """A process that goes on after a command (a test suite, a notebook) must not log to the
    stream that command wrote to and closed, nor lose its records to our handler: CI's
    shuffled order once sent a later test's warnings there, and its caplog saw nothing."""
    src = _csv(tmp_path)
    for flags in (("--log-format", "json"), ("--verbose",), ("--log-file", str(tmp_path / "l"))):
        assert cli("load", str(src), "--mode", "replace", *flags)[0] == 0, flags
        ours = logging.getLogger("pgingest")
        assert [h for h in ours.handlers if h.get_name() == "pgingest"] == [], flags
        assert ours.propagate, flags
        with caplog.at_level(logging.WARNING, logger="pgingest.run"):
            logging.getLogger("pgingest.run").warning("after %s", flags[0])
        assert f"after {flags[0]}" in caplog.text


def test_transform_module_in_the_current_directory(db: Db, tmp_path: Path) -> None:
    _csv(tmp_path)
    module = f"tr_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "import pyarrow.compute as pc\n"
        "def upper(batch):\n"
        "    i = batch.schema.get_field_index('name')\n"
        "    return batch.set_column(i, 'name', pc.utf8_upper(batch.column(i)))\n"
    )
    args = ["load", "people.csv", "--dsn", db.dsn, "--schema", db.schema, "-q"]
    result = _run([*args, "--transform", f"{module}:upper"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert db.rows("people", "id") == [(1, "ANN"), (2, "BOB")]


def test_bad_transform_is_refused_up_front_in_one_line(db: Db, tmp_path: Path) -> None:
    _csv(tmp_path)
    _csv(tmp_path, "more.csv")
    module = f"tr_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("raise RuntimeError('broken at import')\n")
    args = ["load", "people.csv", "more.csv", "--dsn", db.dsn, "--schema", db.schema]
    for spec, problem in [
        (f"{module}:fix", "RuntimeError: broken at import"),
        ("no_such_module_here:fix", "No module named 'no_such_module_here'"),
    ]:
        result = _run([*args, "--transform", spec], tmp_path)
        assert result.returncode == 2, result.stderr
        assert result.stderr.strip().splitlines() == [
            f"error: --transform {spec}: cannot import {spec.partition(':')[0]}: {problem}"
            if "RuntimeError" in problem
            else f"error: --transform {spec}: cannot import no_such_module_here:"
            f" ModuleNotFoundError: {problem}"
        ]
    # Refused before any file was claimed or any table made.
    assert db.val("SELECT to_regclass($1)", f"{db.schema}.people") is None
    if db.val("SELECT to_regclass('pgingest.files')") is not None:
        files = db.val("SELECT count(*) FROM pgingest.files WHERE path LIKE $1", f"{tmp_path}/%")
        assert files == 0
    debug = _run(["--debug", *args, "--transform", f"{module}:fix"], tmp_path)
    assert debug.returncode == 2
    assert "Traceback" in debug.stderr
    assert "RuntimeError: broken at import" in debug.stderr


def test_a_failed_file_whose_name_holds_a_tab_is_named_once(
    cli: Any, db: Db, tmp_path: Path
) -> None:
    """Found by hand: a name holding a tab (shown with a space, as every message is on one
    line) was named two or three times before the error, the raw name not being found in the
    one-line message."""
    src = tmp_path / "we'ird \"na;me\tx.ndjson"
    src.write_text('{"id": 1}\nnot json\n')
    code, _out, err = cli("load", str(src), "--schema", db.schema, "--table", "t")
    assert code == 1, err
    shown = " ".join(str(src).split())
    lines = [line for line in err.splitlines() if "not valid JSON" in line]
    assert lines, err
    for line in lines:  # the file's line and the summary's
        assert line.count("x.ndjson") == 1, line
        assert f"{shown}: line 2: not valid JSON" in line, line
    assert db.val("SELECT to_regclass($1)", f'"{db.schema}".t') is None  # nothing kept

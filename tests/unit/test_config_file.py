"""The YAML config file: options, nested folder overrides, sources, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.config import LoadOptions, options_with, redact_dsn
from pgingest.config_file import load_config
from pgingest.errors import ConfigError
from pgingest.pipeline.discover import folder_table_name, plan_targets


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_options_folders_sources(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            "dsn: postgresql://u@h/db\nschema: raw\nheader-row: 2\nsheet: Data\n"
            "paths: [drop]\n"
            "folders:\n  sales:\n    sheet: Summary\n    folders:\n      emea:\n        table: e\n"
            "  hr/people: {header_row: 4, mode: append}\n"
            "sources:\n  - path: 'x/*.csv'\n    table: xs\n  - 'y/*.parquet'\n",
        )
    )
    assert config.dsn == "postgresql://u@h/db"
    assert config.paths == (str(tmp_path / "drop"),)  # beside the config file
    options = options_with(LoadOptions(), config.options)
    assert (options.schema, options.header_row, options.sheet) == ("raw", 2, "Data")
    assert options.folders == {
        "sales": {"sheet": "Summary"},
        "sales/emea": {"table": "e"},
        "hr/people": {"header_row": 4, "mode": "append"},  # a real option since issue 4
    }
    assert options.sources == (
        {"table": "xs", "path": str(tmp_path / "x/*.csv")},
        {"path": str(tmp_path / "y/*.parquet")},
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope: 1\n", "unknown option 'nope'"),
        ("folders:\n  a:\n    key: [id]\n", "pk can only be set for the whole run"),
        ("folders:\n  a:\n    analyze: false\n", "analyze can only be set for the whole run"),
        ("folders:\n  a:\n    sources: []\n", "only allowed at the top"),
        ("sources:\n  - table: t\n", "needs a 'path'"),
        ("[1, 2]\n", "must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "none.yaml")


def test_folder_tables_and_nested_overrides(tmp_path: Path) -> None:
    root = tmp_path / "root"
    for rel in ("sales/emea/q1.xlsx", "sales/emea/deep/x.csv", "sales/us/q1.xlsx", "top.csv"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("a\n1\n")
    (root / "sales" / "emea" / "~$q1.xlsx").write_text("lock")
    assert folder_table_name(str(root / "sales/emea/q1.xlsx"), str(root)) == "sales_emea"
    assert folder_table_name(str(root / "top.csv"), str(root)) == "root"
    assert folder_table_name(str(root / "ventes/売上/q.xlsx"), str(root)) == "ventes"
    assert folder_table_name(str(root / "売上/q.xlsx"), str(root)).startswith("folder_")
    options = LoadOptions(
        table_from="folder",
        folders={
            "sales": {"sheet": "S"},
            "sales/emea": {"header_row": 3},
            "sales/us": {"table": "u"},
        },
    )
    targets, missing = plan_targets([str(root)], options)
    assert not missing
    by_name = {Path(t.path).relative_to(root).as_posix(): dict(t.overrides) for t in targets}
    assert by_name == {
        "sales/emea/q1.xlsx": {"sheet": "S", "header_row": 3, "table": "sales_emea"},
        "sales/emea/deep/x.csv": {"sheet": "S", "header_row": 3, "table": "sales_emea_deep"},
        "sales/us/q1.xlsx": {"sheet": "S", "table": "u"},
        "top.csv": {"table": "root"},
    }


def test_yaml_error_never_quotes_the_dsn_line(tmp_path: Path) -> None:
    # Issue 12 case 8: the parser's own message quotes the offending line, password included.
    path = _write(
        tmp_path, "schema: x\ndsn: [postgresql://postgres:S3cretPW@db.example/warehouse\nmode: a\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "S3cretPW" not in message
    assert "line 3, column 5" in message
    assert caught.value.__cause__ is None  # not chained: a traceback would print the line


def test_cli_yaml_error_prints_no_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pgingest.cli.app import main

    path = _write(tmp_path, "dsn: {postgresql://postgres:S3cretPW@db.example/w\nschema: x\n")
    with pytest.raises(SystemExit) as exited:
        main(["--debug", "load", "--config", str(path)])
    out, err = capsys.readouterr()
    assert exited.value.code == 2
    assert "S3cretPW" not in out + err
    assert "not valid YAML at line 2" in err


@given(
    user=st.text(
        alphabet=st.characters(blacklist_characters=":/@", whitelist_categories=("L", "N")),
        max_size=8,
    ),
    password=st.text(
        alphabet=st.characters(blacklist_characters="@", blacklist_categories=("Z", "C")),
        min_size=1,
        max_size=16,
    ),
    before=st.text(max_size=20),
    after=st.text(
        alphabet=st.characters(blacklist_categories=("Z", "C"), blacklist_characters="@"),
        max_size=20,
    ),
)
def test_redaction_finds_a_password_anywhere_in_a_message(
    user: str, password: str, before: str, after: str
) -> None:
    dsn = f"postgresql://{user}:{password}@db.example:5432/w"
    for text in (dsn, f"{before} {dsn} {after}", f"{dsn}?password={password}"):
        redacted = redact_dsn(text)
        assert f":{password}@" not in redacted
        assert redacted.count("***") >= 1


def test_seed_design_folder_config_as_written(tmp_path: Path) -> None:
    # Issue 13 case 10: the seed's etl_config.yaml was refused ("unknown option
    # 'default_sheet'"). A default sheet, then folders as top-level keys, nested as keys.
    config = load_config(
        _write(
            tmp_path,
            "default_sheet: Sheet1\n"
            "folder_a:\n  sheet: DataSheet\n"
            "folder_b:\n  nested:\n    sheet: NestedData\n"
            "schema: raw\n",  # an option's name is the option, never a folder
        )
    )
    options = options_with(LoadOptions(), config.options)
    assert options.sheet == "Sheet1"
    assert options.schema == "raw"
    assert options.folders == {
        "folder_a": {"sheet": "DataSheet"},
        "folder_b": {},
        "folder_b/nested": {"sheet": "NestedData"},
    }
    root = tmp_path / "drop"
    for rel in ("folder_a/x.xlsx", "folder_b/nested/y.xlsx", "folder_b/z.xlsx", "top.xlsx"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("a\n1\n")
    targets, _ = plan_targets([str(root)], options)
    sheets = {
        Path(t.path).relative_to(root).as_posix(): options_with(options, t.overrides).sheet
        for t in targets
    }
    assert sheets == {
        "folder_a/x.xlsx": "DataSheet",
        "folder_b/nested/y.xlsx": "NestedData",
        "folder_b/z.xlsx": "Sheet1",
        "top.xlsx": "Sheet1",
    }


def test_a_top_level_key_with_a_value_is_still_an_unknown_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option 'shet'"):
        load_config(_write(tmp_path, "shet: Data\n"))
    with pytest.raises(ConfigError, match=r"folder 'a': unknown option 'hedaer_row'"):
        load_config(_write(tmp_path, "a:\n  hedaer_row: 3\n"))


@pytest.mark.parametrize(
    ("dsn", "url"),
    [
        ("postgresql://u:p@h:5/d?sslmode=require", "postgresql://u:p@h:5/d?sslmode=require"),
        ("host=h port=5433 dbname=d user=u", "postgresql://u@/d?host=h&port=5433"),
        ("dbname = d   user=u", "postgresql://u@/d"),
        ("host=/run/pg dbname='my db'", "postgresql:///my%20db?host=%2Frun%2Fpg"),
        (r"user=u password='it\'s a \\ secret'", "postgresql://u:it%27s%20a%20%5C%20secret@/"),
        ("dbname=d sslmode=verify-full", "postgresql:///d?sslmode=verify-full"),
    ],
)
def test_key_value_dsn_becomes_a_url(dsn: str, url: str) -> None:
    from pgingest.config import ConnectionSettings, dsn_url

    assert dsn_url(dsn) == url
    assert ConnectionSettings(dsn=dsn).dsn == url


@pytest.mark.parametrize(
    "dsn",
    ["host=h password=hunter2 'oops'", "host=h 'oops' password=hunter2", "password=hunter2 ="],
)
def test_key_value_dsn_that_does_not_parse_is_refused_without_its_password(dsn: str) -> None:
    from pgingest.config import ConnectionSettings, dsn_url

    with pytest.raises(ConfigError, match="expected key=value") as caught:
        dsn_url(dsn)
    assert "hunter2" not in str(caught.value)
    assert "hunter2" not in repr(ConnectionSettings(dsn="host=h password=hunter2"))


_VALUES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12)


@given(user=_VALUES, password=_VALUES, dbname=_VALUES, host=_VALUES)
def test_key_value_dsn_keeps_every_value(user: str, password: str, dbname: str, host: str) -> None:
    """Any value, quoted as libpq wants it, reaches the URL intact (spaces, quotes, @, /...)."""
    from urllib.parse import parse_qs, unquote, urlsplit

    from pgingest.config import dsn_url

    def quoted(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    dsn = (
        f"user={quoted(user)} password={quoted(password)}"
        f" dbname={quoted(dbname)} host={quoted(host)}"
    )
    parts = urlsplit(dsn_url(dsn))
    auth = parts.netloc.rpartition("@")[0]
    got_user, _, got_password = auth.partition(":")
    assert (unquote(got_user), unquote(got_password)) == (user, password)
    assert unquote(parts.path[1:]) == dbname
    assert parse_qs(parts.query) == {"host": [host]}

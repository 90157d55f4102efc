"""The YAML config file: options, nested folder overrides, sources, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgingest.config import LoadOptions, load_config, options_with
from pgingest.errors import ConfigError
from pgingest.pipeline.plan import folder_table_name, plan_targets


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
        ("folders:\n  a:\n    key: [id]\n", "'key' is not supported by this version"),
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

"""``load``'s options come from LoadOptions, and flags, environment, config file and defaults
merge in one place (click's), in that order."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import click
import pytest

from pgingest.cli.app import Ctx, load
from pgingest.cli.options import option_env
from pgingest.cli.reference import render
from pgingest.config import SECTIONS, LoadOptions

ROOT = Path(__file__).resolve().parents[2]


def _params(*args: str) -> dict[str, Any]:
    """What ``pgingest load ARGS`` would call the command with (nothing runs)."""
    ctx = load.make_context("load", ["x.csv", *args], obj=Ctx())
    return dict(ctx.params)


def _option(name: str) -> click.Option:
    for param in load.params:
        if isinstance(param, click.Option) and param.name == name:
            return param
    raise AssertionError(f"no option for {name}")


def _literal_values(hint: Any) -> set[str]:
    if get_origin(hint) is Literal:
        return {str(v) for v in get_args(hint)}
    return set().union(*(_literal_values(arg) for arg in get_args(hint)))


def test_every_field_is_an_option_with_its_help_section_and_default() -> None:
    hints = get_type_hints(LoadOptions)
    for item in fields(LoadOptions):
        meta = item.metadata
        assert meta["help"], item.name
        assert meta["section"] in SECTIONS, item.name
        if not meta["cli"]:
            continue
        option = _option(item.name)
        assert option.help == meta["help"]
        assert "default" not in option.help.lower(), f"{item.name}: a default typed into help"
        default = item.default if item.default is not MISSING else None
        if default is not None and default is not False:
            assert option.default == default, item.name
        literal = _literal_values(hints[item.name])
        if literal:
            assert isinstance(option.type, click.Choice), item.name
            assert set(option.type.choices) == literal, item.name


def test_defaults_are_the_dataclass_defaults() -> None:
    options = {k: v for k, v in _params().items() if k in {f.name for f in fields(LoadOptions)}}
    built = LoadOptions(**{k: v for k, v in options.items() if v is not None})
    assert built == LoadOptions()


def test_flags_beat_environment_beat_config_beat_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("batch_size: 300\nconcurrency: 3\nmode: upsert\nkey: [id]\ntolerant: true\n")
    monkeypatch.setenv(option_env("--batch-size"), "200")
    monkeypatch.setenv(option_env("--concurrency"), "2")
    params = _params("--config", str(config), "--batch-size", "100")
    assert params["batch_size"] == 100  # flag over variable and file
    assert params["concurrency"] == 2  # variable over file
    assert (params["mode"], params["pk"]) == ("upsert", ("id",))  # file (key: is pk)
    assert params["tolerant"] is True
    assert _params("--config", str(config), "--no-tolerant")["tolerant"] is False
    assert params["internal_concurrency"] == LoadOptions().internal_concurrency  # default


def test_config_values_are_converted_like_flags(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "types: {zip: text}\nnull_strings: [NA, '-']\nheaders: [a, b]\nsheet: 2\nmax_errors: 5\n"
    )
    params = _params("--config", str(config))
    assert params["types"] == {"zip": "text"}
    assert tuple(params["null_strings"]) == ("NA", "-")
    assert params["headers"] == ("a", "b")
    assert (params["sheet"], params["max_errors"]) == ("2", "5")
    flags = _params("--types", "zip=text", "--null-string", "NA", "--headers", "a, b")
    assert (flags["types"], flags["headers"]) == ({"zip": "text"}, ("a", "b"))


def test_help_is_in_sections() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pgingest", "load", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    titles = [line for line in result.stdout.splitlines() if line.endswith(" options:")]
    assert titles == (
        ["Common options:"] + [f"{s.capitalize()} options:" for s in SECTIONS] + ["Other options:"]
    )
    # one line of help per option: a line that is not an option's is the help of an option
    # whose names filled their column, and never a second line of help
    listed = result.stdout.split("Common options:")[1].split("Each option's whole help")[0]
    previous = ""
    for line in listed.splitlines():
        if line and not line.endswith(" options:") and not line.lstrip().startswith("-"):
            assert previous.lstrip().startswith("-"), line
            assert "  " not in previous.strip(), line
        previous = line
    whole = subprocess.run(
        [sys.executable, "-m", "pgingest", "load", "--help-all"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "[default: 50000; x>=1]" in " ".join(whole.split())
    assert "Common options:" not in whole


def test_the_committed_option_reference_is_current() -> None:
    page = ROOT / "docs" / "options.md"
    assert page.read_text(encoding="utf-8") == render(), "run scripts/options-reference"
    for item in fields(LoadOptions):
        if item.metadata["cli"]:
            assert f"`{item.name}`" in page.read_text(encoding="utf-8")

"""The public surface: ``pgingest.__all__`` sorted and complete, every CLI command documented."""

from __future__ import annotations

import inspect
import subprocess
import sys

import click
import pytest

import pgingest
from pgingest.cli.app import cli


def test_all_is_sorted_and_complete():
    assert pgingest.__all__ == sorted(pgingest.__all__)
    # Each name is imported from its module when first used (pgingest/__init__.py).
    for name in pgingest.__all__:
        assert getattr(pgingest, name) is getattr(
            sys.modules[getattr(pgingest, name).__module__], name
        )
    assert dir(pgingest) == sorted([*pgingest.__all__, "__version__"])
    with pytest.raises(AttributeError):
        _ = pgingest.no_such_name


def test_importing_the_package_imports_nothing_else():
    """A Ctrl-C while the command line starts is caught from its first line (pgingest's
    __main__): the package's own import before it must be next to nothing."""
    code = (
        "import sys; before = set(sys.modules); import pgingest;"
        " print(sorted(set(sys.modules) - before - {'__future__'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['pgingest']"


def test_every_public_symbol_has_a_docstring():
    for name in pgingest.__all__:
        assert inspect.getdoc(getattr(pgingest, name)), name


def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in group.commands.items():
        found.append((prefix + name, command))
        if isinstance(command, click.Group):
            found += _commands(command, prefix + name + " ")
    return found


def test_every_command_and_option_has_help_text():
    for name, command in _commands(cli):
        assert command.help, f"command {name!r} has no help"
        for param in command.params:
            if isinstance(param, click.Option):
                assert param.help, f"{name} {param.opts[0]} has no help"

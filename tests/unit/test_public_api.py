"""The public surface: ``pgingest.__all__`` sorted and complete, every CLI command documented."""

from __future__ import annotations

import inspect

import click

import pgingest
from pgingest.cli.app import cli


def test_all_is_sorted_and_complete():
    assert pgingest.__all__ == sorted(pgingest.__all__)
    public = {
        name
        for name, value in vars(pgingest).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert public == set(pgingest.__all__)


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

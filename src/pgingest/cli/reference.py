"""The option reference of ``pgingest load`` as Markdown (``docs/options.md``), drawn from the
command itself, whose options are drawn from :class:`~pgingest.config.LoadOptions`."""

from __future__ import annotations

import click

from pgingest.config import SECTIONS

__all__ = ["render"]

_HEADER = """\
# `pgingest load` options

Generated from `LoadOptions` by `scripts/options-reference`; do not edit by hand (a test checks
that this page is current).

Each option is read, in this order of precedence, from the command line, from its environment
variable, from the config file given with `--config` (by the key shown, `-` or `_` alike), and
last from its default. Options without a config key exist on the command line only.
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "\\<").replace("\n", " ")


def _default(param: click.Option) -> str:
    shown = param.show_default
    if isinstance(shown, str):
        return _cell(shown)
    if param.default is None or param.default is False or shown is False:
        return ""
    if shown and not callable(param.default):
        return f"`{param.default}`"
    return ""


def render() -> str:
    """The reference page: one table per section (option, variable, config key, default,
    meaning).

    Returns:
        Markdown text.
    """
    from pgingest.cli.app import load

    ctx = click.Context(load, info_name="load")
    rows: dict[str, list[str]] = {}
    for param in load.get_params(ctx):
        if not isinstance(param, click.Option) or "--help" in param.opts:
            continue
        names = " / ".join(f"`{n}`" for n in (*param.opts, *param.secondary_opts))
        if isinstance(param.type, click.Choice):
            names += " " + "\\|".join(str(c) for c in param.type.choices)
        env = param.envvar
        envs = [env] if isinstance(env, str) else list(env or ())
        variable = ", ".join(f"`{e}`" for e in envs)
        key = f"`{param.name}`" if _config_key(param) else ""
        line = f"| {names} | {variable} | {key} | {_default(param)} | {_cell(param.help or '')} |"
        rows.setdefault(getattr(param, "section", "other"), []).append(line)
    out = [_HEADER]
    for section in (*SECTIONS, "other"):
        if section not in rows:
            continue
        out.append(f"## {section.capitalize()}\n")
        out.append("| option | variable | config key | default | meaning |")
        out.append("| --- | --- | --- | --- | --- |")
        out.extend(rows[section])
        out.append("")
    return "\n".join(out)


def _config_key(param: click.Option) -> bool:
    """Whether a config file can set this option: every :class:`LoadOptions` field, and the
    DSN."""
    from dataclasses import fields

    from pgingest.config import LoadOptions

    return param.name == "dsn" or param.name in {f.name for f in fields(LoadOptions)}

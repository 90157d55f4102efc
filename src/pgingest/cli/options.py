"""Click options: ``load``'s made from :class:`~pgingest.config.LoadOptions`, the config file
read into click's ``default_map``, and help printed in sections.

One place merges flags, ``PGINGEST_*`` variables, the config file and defaults: click itself
(a flag wins over its variable, the variable over the config file's ``default_map``, that over
the dataclass's default), so a config file's value is converted and refused exactly like the
flag's.
"""

from __future__ import annotations

import types as pytypes
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, fields
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import click

from pgingest.config import ENV_PREFIX, SECTIONS, LoadOptions, Section

__all__ = [
    "SectionedCommand",
    "SectionedOption",
    "config_option",
    "dsn_option",
    "load_options",
    "option_env",
]


class SectionedOption(click.Option):
    """A click option that knows its ``--help`` section."""

    def __init__(self, *args: Any, section: Section = "output", **kwargs: Any) -> None:
        """Take ``section`` beside click's own arguments."""
        super().__init__(*args, **kwargs)
        self.section = section


COMMON_OPTIONS = (
    "config_file",
    "dsn",
    "table",
    "format",
    "mode",
    "pk",
    "on_error",
    "concurrency",
    "dry_run",
)
"""What most runs set: listed first in ``--help``, under their own title."""


class SectionedCommand(click.Command):
    """A command whose ``--help`` lists its options in :data:`~pgingest.config.SECTIONS`,
    the common ones first, one line each (their first sentence); ``--help-all`` prints every
    option's whole text with its default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Add ``--help-all`` to click's own parameters."""
        super().__init__(*args, **kwargs)
        self.params.append(
            click.Option(
                ["--help-all"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=self._help_all,
                help="Show every option's whole help, with its default, and exit.",
            )
        )
        self._whole = False

    def _help_all(self, ctx: click.Context, _param: click.Parameter, value: bool) -> None:
        if value and not ctx.resilient_parsing:
            self._whole = True
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit()

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """Write one titled list of options per section, in the sections' order, the common
        options in a first list of their own."""
        groups: dict[str, list[tuple[str, str]]] = {}
        width = max(30, formatter.width - 42)
        for param in self.get_params(ctx):
            if not isinstance(param, click.Option):
                continue  # the arguments are in the usage line
            record = param.get_help_record(ctx)
            if record is None:
                continue
            section = getattr(param, "section", "other")
            if not self._whole:
                record = (record[0], _first_sentence(param.help or "", width))
                if param.name in COMMON_OPTIONS:
                    section = "common"
            groups.setdefault(section, []).append(record)
        for section in ("common", *SECTIONS, "other"):
            if section in groups:
                with formatter.section(f"{section.capitalize()} options"):
                    formatter.write_dl(groups[section], col_max=36)
        if not self._whole:
            formatter.write_paragraph()
            formatter.write_text(
                "Each option's whole help and default: --help-all (or docs/options.md)."
            )


def _first_sentence(text: str, width: int) -> str:
    """``text``'s first sentence, cut at a word to ``width`` characters (``...`` then)."""
    words: list[str] = []
    depth = 0
    for word in text.split():
        words.append(word)
        depth += word.count("(") - word.count(")")
        if depth <= 0 and word.endswith(".") and not word.endswith(("..", "e.g.", "i.e.")):
            break
    line = " ".join(words).removesuffix(".")
    if len(line) <= width:
        return line
    return line[: line.rfind(" ", 0, width - 3)].rstrip(",;:") + "..."


def option_env(flag: str) -> str:
    """The environment variable of a flag: ``--batch-size`` -> ``PGINGEST_BATCH_SIZE``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


dsn_option = click.option(
    "--dsn",
    cls=SectionedOption,
    section="target",
    envvar=["PGINGEST_DSN", "DATABASE_URL"],
    help="Server to load into: a libpq URL (postgresql://user@host/db) or key=value string"
    " (host=... dbname=... user=...).",
    show_default="DATABASE_URL, else the embedded server",
)
"""``--dsn``, also read from PGINGEST_DSN or DATABASE_URL."""


class _CommaList(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.3+
    """``a,b,c`` (or a list, from a config file) as a tuple of names."""

    name = "a,b,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple | list):
            return tuple(str(v).strip() for v in value)
        return tuple(part.strip() for part in str(value).split(","))


class _TypeMap(click.ParamType):  # type: ignore[type-arg]  # generic only in click 8.3+
    """``col=type,...`` (or a mapping, from a config file) as column -> type."""

    name = "col=type,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Mapping):
            return dict(value)
        # Imported only when given: the inference module pulls in pyarrow.compute and numpy.
        from pgingest.errors import ConfigError
        from pgingest.schema.infer import parse_type_overrides

        try:
            return parse_type_overrides(str(value))
        except ConfigError as exc:
            self.fail(str(exc), param, ctx)


def _choices(hint: Any) -> tuple[str, ...] | None:
    """The values of a ``Literal`` (or ``Literal | None``) annotation, else ``None``."""
    if get_origin(hint) is Literal:
        return tuple(str(v) for v in get_args(hint))
    if get_origin(hint) in (Union, pytypes.UnionType):
        for arg in get_args(hint):
            found = _choices(arg)
            if found is not None:
                return found
    return None


def _base(hint: Any) -> Any:
    """The annotation without ``| None``."""
    if get_origin(hint) in (Union, pytypes.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        return args[0] if len(args) == 1 else hint
    return hint


def _default(item: Field[Any]) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return None


def _click_option(item: Field[Any], hint: Any) -> click.Option:
    """The click option of one :class:`LoadOptions` field."""
    meta = item.metadata
    flags: tuple[str, ...] = meta["flags"] or ("--" + item.name.replace("_", "-"),)
    kwargs: dict[str, Any] = {
        "help": meta["help"],
        "section": meta["section"],
        "envvar": option_env(flags[0]),
        "default": _default(item),
    }
    base = _base(hint)
    shown = meta["shown"]
    if base is bool:
        on = [f for f in flags if not f.startswith("--no-") and f != "--preserve-types"]
        off = [f for f in flags if f not in on] or ["--no-" + on[0].removeprefix("--")]
        decls = [f"{on[0]}/{off[0]}", item.name]
        # An off switch shows no default: a flag that is off unless given is the usual.
        kwargs["show_default"] = shown or (on[0] if kwargs["default"] else False)
    else:
        decls = [*flags, item.name]
        choices = meta["choices"] or _choices(hint)
        minimum = meta["minimum"]
        if choices is not None:
            kwargs["type"] = click.Choice(choices)
        elif base is int and minimum is not None:
            kwargs["type"] = click.IntRange(min=int(minimum), min_open=meta["above"])
        elif base is float and minimum is not None:
            kwargs["type"] = click.FloatRange(min=minimum, min_open=meta["above"])
        elif meta["existing_file"]:
            kwargs["type"] = click.Path(dir_okay=False, exists=True)
        elif item.name == "types":
            kwargs["type"] = _TypeMap()
        elif item.name == "null_strings":
            kwargs["multiple"] = True
        elif get_origin(base) is tuple:
            kwargs["type"] = _CommaList()
        else:
            kwargs["type"] = click.STRING
        if shown is not None:
            kwargs["show_default"] = shown
        elif kwargs["default"] is not None:
            kwargs["show_default"] = True
        if kwargs["default"] in ((), {}):
            kwargs["default"] = None
    return SectionedOption(decls, **kwargs)


def _load_fields() -> Iterator[click.Option]:
    hints = get_type_hints(LoadOptions)
    for item in fields(LoadOptions):
        if item.metadata.get("cli", False):
            yield _click_option(item, hints[item.name])


def load_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add an option for every :class:`LoadOptions` field to ``command`` (a click command
    function); each value reaches it as a keyword named like the field."""
    params = getattr(command, "__click_params__", [])
    # click lists decorators' options in reverse order of application.
    params.extend(reversed(list(_load_fields())))
    command.__click_params__ = params  # type: ignore[attr-defined]
    return command


def _read_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read the config file into the command's ``default_map`` (before any other option is
    looked at: this option is eager); what no option takes goes into ``ctx.meta``."""
    if value is None:
        return None
    from pgingest.config_file import load_config  # (--config only)

    config = load_config(value)
    defaults = dict(ctx.default_map or {})
    names = {p.name for p in ctx.command.params}
    rest: dict[str, Any] = {}
    for name, item in config.options.items():
        if name in names:
            defaults[name] = list(item) if isinstance(item, tuple) else item
        else:
            rest[name] = item
    if config.dsn is not None:
        defaults["dsn"] = config.dsn
    ctx.default_map = defaults
    ctx.meta["pgingest.config"] = (rest, config.paths, config.home)
    return value


config_option = click.option(
    "--config",
    "config_file",
    cls=SectionedOption,
    section="input",
    type=click.Path(dir_okay=False),
    envvar=option_env("--config"),
    is_eager=True,
    expose_value=True,
    callback=_read_config,
    help="YAML file of load options (by name, as here without the dashes), per-folder"
    " overrides and sources; a key that is no option is a folder. Flags and PGINGEST_*"
    " variables win over it.",
)
"""``--config FILE``: the config file, read into the ``default_map`` of the command."""


def config_extras(ctx: click.Context) -> tuple[dict[str, Any], tuple[str, ...], str | None]:
    """What the config file holds beside options: ``(folders and sources, paths, home)``."""
    rest, paths, home = ctx.meta.get("pgingest.config", ({}, (), None))
    return dict(rest), tuple(paths), home

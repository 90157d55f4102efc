"""``pgingest db``: the embedded PostgreSQL server (data in PGINGEST_HOME)."""

from __future__ import annotations

import subprocess
import sys

import click

from pgingest.config import ConnectionSettings, connection_from_env

__all__ = ["db"]


@click.group()
def db() -> None:
    """Manage the embedded PostgreSQL server (data in PGINGEST_HOME)."""


def _settings() -> ConnectionSettings:
    return connection_from_env(dsn="")


@db.command()
def start() -> None:
    """Start the embedded server (or find it running) and print its URI."""
    from pgingest.pg import embedded

    settings = _settings()
    click.echo(embedded.start(settings.data_dir))


@db.command()
def stop() -> None:
    """Stop the embedded server."""
    from pgingest.pg import embedded

    settings = _settings()
    if embedded.stop(settings.data_dir):
        click.echo(f"stopped the embedded server in {settings.data_dir}")
    else:
        click.echo(f"the embedded server in {settings.data_dir} is not running")


@db.command()
def uri() -> None:
    """Print the embedded server's connection URI (starting it when needed)."""
    from pgingest.pg import embedded

    click.echo(embedded.start(_settings().data_dir))


@db.command(context_settings={"ignore_unknown_options": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def psql(args: tuple[str, ...]) -> None:
    """Open psql on the embedded server (extra arguments go to psql)."""
    from pgingest.pg import embedded

    argv = embedded.psql_command(_settings().data_dir) + list(args)
    sys.exit(subprocess.call(argv))  # noqa: S603 - the embedded server's own psql

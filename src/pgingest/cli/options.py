"""Click options shared by several commands."""

from __future__ import annotations

import click

__all__ = ["dsn_option"]

dsn_option = click.option(
    "--dsn",
    envvar=["PGINGEST_DSN", "DATABASE_URL"],
    help="Server (default: DATABASE_URL, else the embedded server).",
)
"""``--dsn``, also read from PGINGEST_DSN or DATABASE_URL."""

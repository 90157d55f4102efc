"""Translate driver errors into pgingest errors, once, by SQLSTATE and exception type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgingest.config import redact_dsn
from pgingest.errors import (
    ConnectionLostError,
    ConstraintError,
    DatabaseError,
    PgIngestError,
    RecordFormatError,
    RowError,
    SchemaError,
)

_RETRYABLE_STATES = {"40001", "40P01", "57P01", "57P02", "57P03", "53300"}
# COPY's error context: 'COPY t, line 5, column i: "abc"' (column and value are optional).
_COPY_CONTEXT = re.compile(r'COPY [^,]+, line (\d+)(?:, column ([^:]+?))?(?::\s*"?(.*?)"?)?$', re.S)


@dataclass(frozen=True, slots=True)
class CopyPosition:
    """Where in a COPY stream the server found a bad value."""

    line: int
    column: str | None
    value: str | None


def copy_position(exc: BaseException) -> CopyPosition | None:
    """The line, column and value a COPY error points at, from the server's error context."""
    context = getattr(exc, "context", None)
    if not isinstance(context, str):
        return None
    for part in context.splitlines():
        match = _COPY_CONTEXT.search(part.strip())
        if match:
            value = match.group(3)
            if value is not None and len(value) > 80:
                value = value[:77] + "..."
            return CopyPosition(int(match.group(1)), match.group(2), value)
    return None


def connection_gone(exc: BaseException) -> bool:
    """True when the driver says the connection is closed or lost (not an API misuse).

    A pooled connection that the server or the network closed is given back to its pool by
    the driver, which detaches the holder's handle: every later call on it raises "connection
    has been released back to the pool". pgingest never uses a handle after releasing it
    itself, so that too means the connection was cut.
    """
    if isinstance(exc, asyncpg.ConnectionDoesNotExistError | asyncpg.InternalClientError):
        return True  # the latter: the protocol left in a state a cut stream can leave it
    if isinstance(exc, asyncpg.InterfaceError):
        text = str(exc).lower()
        return (
            "closed" in text
            or ("connection" in text and "lost" in text)
            or "released back to the pool" in text
        )
    return False


def is_gone(conn: Any) -> bool:
    """Whether ``conn`` (a pooled handle or a connection) can no longer be used: closed, or
    detached by its pool when it was closed (asking a detached handle raises)."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:
        return True


def server_pid(conn: Any) -> int | None:
    """The server process of ``conn`` (``None`` for no connection or a detached handle)."""
    if conn is None:
        return None
    try:
        return int(conn.get_server_pid())
    except asyncpg.InterfaceError:
        return None


def is_driver_error(exc: BaseException) -> bool:
    """True for exceptions that :func:`translate` knows."""
    return isinstance(
        exc,
        asyncpg.PostgresError
        | asyncpg.InterfaceError
        | asyncpg.InternalClientError
        | OSError
        | ConnectionError,
    )


def translate(exc: BaseException, *, path: str | None = None, first_line: int = 1) -> PgIngestError:
    """Map a driver exception to the pgingest error tree.

    Args:
        exc: what asyncpg (or the socket) raised.
        path: the file being loaded, for row errors.
        first_line: the file line of the first record of the COPY stream, so that the server's
            "line N" becomes a line of the file.

    Returns:
        The pgingest error to raise ``from exc``.
    """
    if isinstance(exc, PgIngestError):
        return exc
    message = redact_dsn(str(exc).strip() or type(exc).__name__)
    if isinstance(exc, asyncpg.PostgresError):
        state = str(exc.sqlstate or "")
        detail = getattr(exc, "detail", None)
        if state.startswith("08") or state in _RETRYABLE_STATES:
            return ConnectionLostError(f"connection problem ({state}): {message}", sqlstate=state)
        if state.startswith("22"):
            position = copy_position(exc)
            if position is not None:
                line = first_line + position.line - 1
                where = f"{path}: line {line}" if path else f"line {line}"
                if position.column:
                    where += f", column {position.column}"
                kind = RecordFormatError if state == "22P04" else RowError
                return kind(
                    f"{where}: {message}",
                    path=path,
                    line=line,
                    column=position.column,
                    value=position.value,
                )
            kind = RecordFormatError if state == "22P04" else RowError
            return kind(f"{path}: {message}" if path else message, path=path)
        if state.startswith("23"):
            constraint = getattr(exc, "constraint_name", None)
            text = f"{message} (constraint {constraint})" if constraint else message
            if detail:
                text += f": {detail}"
            return ConstraintError(text, sqlstate=state)
        if state in {"42703", "42P01", "42804", "42P16"}:
            return SchemaError(message)
        return DatabaseError(f"{message} (SQLSTATE {state})", sqlstate=state)
    if isinstance(exc, OSError | ConnectionError | TimeoutError) or connection_gone(exc):
        return ConnectionLostError(f"connection problem: {message}")
    return DatabaseError(message)

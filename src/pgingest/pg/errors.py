"""The one boundary where driver errors become pgingest errors: by SQLSTATE, from one table.

:data:`SQLSTATES` maps a SQLSTATE, or its class (first two characters), to the kind of error:
a short stable name (a metric label) and the pgingest class it becomes, whose ``retryable``
flag says whether another try may succeed. Socket errors and a connection the driver lost
are connection losses; a driver ``InterfaceError`` (a call on a closed connection) is one
only when the connection says it is closed (:func:`is_gone`): never from its message text.

The pipeline calls :func:`translate` at its two boundaries only, the file's task and the
batch writer (see docs/architecture.md); retries ask :func:`is_retryable` of what they meet,
a driver's error or a translated one alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from pgingest.config import redact_dsn
from pgingest.errors import (
    ConflictError,
    ConnectionLostError,
    ConstraintError,
    DatabaseError,
    PgIngestError,
    RecordFormatError,
    RowError,
    SchemaError,
    SourceError,
)

# COPY's error context: 'COPY t, line 5, column i: "abc"' (column and value are optional).
_COPY_CONTEXT = re.compile(r'COPY [^,]+, line (\d+)(?:, column ([^:]+?))?(?::\s*"?(.*?)"?)?$', re.S)


@dataclass(frozen=True, slots=True)
class ErrorKind:
    """What a SQLSTATE means to pgingest."""

    name: str
    """Short and stable (a metric label: no message text in it)."""
    error: type[PgIngestError]
    """The class it becomes; its ``retryable`` flag decides retries."""

    @property
    def retryable(self) -> bool:
        """Whether another try may succeed (the connection or the server's state)."""
        return self.error.retryable


SQLSTATES: dict[str, ErrorKind] = {
    # Exact SQLSTATEs first: the connection or the server's state (retryable).
    "57P01": ErrorKind("admin_shutdown", ConnectionLostError),
    "57P02": ErrorKind("crash_shutdown", ConnectionLostError),
    "57P03": ErrorKind("cannot_connect_now", ConnectionLostError),
    "53300": ErrorKind("too_many_connections", ConnectionLostError),
    "53400": ErrorKind("configuration_limit_exceeded", ConnectionLostError),
    "40001": ErrorKind("serialization_failure", ConflictError),
    "40P01": ErrorKind("deadlock", ConflictError),
    "55P03": ErrorKind("lock_not_available", ConflictError),
    # ... the data (not retryable) ...
    "22P04": ErrorKind("data", RecordFormatError),
    "23505": ErrorKind("unique_violation", ConstraintError),
    "23502": ErrorKind("not_null_violation", ConstraintError),
    "23503": ErrorKind("foreign_key_violation", ConstraintError),
    "23514": ErrorKind("check_violation", ConstraintError),
    "42703": ErrorKind("schema", SchemaError),
    "42P01": ErrorKind("schema", SchemaError),
    "42804": ErrorKind("schema", SchemaError),
    "42P16": ErrorKind("schema", SchemaError),
    # ... then classes (the first two characters).
    "08": ErrorKind("connection", ConnectionLostError),
    "22": ErrorKind("data", RowError),
    "23": ErrorKind("constraint", ConstraintError),
    "42": ErrorKind("schema", DatabaseError),
    "53": ErrorKind("resources", DatabaseError),
    "57": ErrorKind("operator_intervention", DatabaseError),
    "XX": ErrorKind("internal", DatabaseError),
}
"""SQLSTATE (or its two-character class) -> what it means; the only such table."""
OTHER = ErrorKind("other", DatabaseError)
"""Any SQLSTATE the table does not know."""
CONNECTION = SQLSTATES["08"]
"""A lost connection without a SQLSTATE (a socket error, a connection the driver closed)."""


def kind_of(sqlstate: str | None) -> ErrorKind:
    """The kind of ``sqlstate``: its exact entry, else its class's, else :data:`OTHER`."""
    state = sqlstate or ""
    return SQLSTATES.get(state) or SQLSTATES.get(state[:2]) or OTHER


def is_connection_lost(exc: BaseException, conn: Any = None) -> bool:
    """True when ``exc`` says the connection is gone: a socket error, a connection the driver
    lost in the middle of an operation, or a call refused because ``conn`` is closed (the
    connection is asked, not the message read)."""
    if isinstance(exc, asyncpg.PostgresError):
        return False
    if isinstance(exc, asyncpg.ConnectionDoesNotExistError | asyncpg.InternalClientError):
        return True  # the latter: the protocol left in a state a cut stream can leave it
    if isinstance(exc, RuntimeError):
        # uvloop's transport refuses a write once the connection is lost (asyncio's ignores
        # it): the driver's COPY writes its end (CopyDone) without asking.
        return conn is not None and is_gone(conn)
    if isinstance(exc, asyncpg.InterfaceError):
        if conn is not None and is_gone(conn):
            return True
        # A call refused while the connection was failing (the rollback after the server's
        # FATAL error or a cut stream, before the driver marked it closed): what it was
        # handling says.
        context = _failing_context(exc)
        return context is not None and is_retryable(context)
    return isinstance(exc, OSError | ConnectionError | TimeoutError) and not is_file_fault(exc)


def _failing_context(exc: BaseException) -> BaseException | None:
    """The error a driver ``InterfaceError`` was raised while handling: the server's, or the
    loss of the connection (``None`` for anything else)."""
    context = exc.__context__
    failing = (
        asyncpg.PostgresError
        | asyncpg.ConnectionDoesNotExistError
        | asyncpg.InternalClientError
        | OSError
    )
    return context if isinstance(context, failing) and context is not exc else None


def is_file_fault(exc: BaseException) -> bool:
    """An error of a file (it names one: no permission, deleted since it was found), not of
    the connection: it fails the file at once."""
    return isinstance(exc, OSError) and exc.filename is not None


def classify(exc: BaseException, conn: Any = None) -> str:
    """A short, stable name for the kind of error (a metric label: no message text in it)."""
    if isinstance(exc, asyncpg.PostgresError):
        return kind_of(exc.sqlstate).name
    if isinstance(exc, DatabaseError) and exc.sqlstate:  # translated: the same name
        return kind_of(exc.sqlstate).name
    if isinstance(exc, ConnectionLostError) or is_connection_lost(exc, conn):
        return CONNECTION.name
    if isinstance(exc, TimeoutError):
        return "timeout"
    return OTHER.name


def is_retryable(exc: BaseException, conn: Any = None) -> bool:
    """Whether another try may succeed: a pgingest error's ``retryable`` flag, a driver
    error's by the table; ``conn`` (the connection it was raised on) is asked whether it is
    closed."""
    if isinstance(exc, PgIngestError):
        return exc.retryable
    if isinstance(exc, asyncpg.PostgresError):
        return kind_of(exc.sqlstate).retryable
    return is_connection_lost(exc, conn)


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


def translate(
    exc: BaseException, *, path: str | None = None, first_line: int = 1, conn: Any = None
) -> PgIngestError:
    """Map a driver exception to the pgingest error tree, by :data:`SQLSTATES`.

    Args:
        exc: what asyncpg (or the socket) raised.
        path: the file being loaded, named in row errors.
        first_line: the file line of the first record of the COPY stream, so that the server's
            "line N" becomes a line of the file.
        conn: the connection ``exc`` was raised on, asked whether it is closed.

    Returns:
        The pgingest error to raise ``from exc``.
    """
    if isinstance(exc, PgIngestError):
        return exc
    context = _failing_context(exc) if isinstance(exc, asyncpg.InterfaceError) else None
    if context is not None:  # that error is what happened; the refusal only followed it
        return translate(context, path=path, first_line=first_line, conn=conn)
    message = redact_dsn(str(exc).strip() or type(exc).__name__)
    if isinstance(exc, asyncpg.PostgresError):
        state = str(exc.sqlstate or "")
        kind = kind_of(state)
        if issubclass(kind.error, ConnectionLostError):
            return kind.error(f"connection lost ({kind.name}, {state}): {message}", sqlstate=state)
        if issubclass(kind.error, ConflictError):
            return kind.error(f"{kind.name.replace('_', ' ')} ({state}): {message}", sqlstate=state)
        if issubclass(kind.error, RowError):
            return _row_error(exc, kind.error, message, path, first_line)
        if issubclass(kind.error, ConstraintError):
            constraint = getattr(exc, "constraint_name", None)
            detail = getattr(exc, "detail", None)
            text = f"{message} (constraint {constraint})" if constraint else message
            if detail:
                text += f": {detail}"
            return ConstraintError(text, sqlstate=state)
        if issubclass(kind.error, SchemaError):
            return SchemaError(message)
        return DatabaseError(f"{message} (SQLSTATE {state})", sqlstate=state)
    if isinstance(exc, OSError) and is_file_fault(exc):
        name = str(exc.filename)
        why = (exc.strerror or message).lower()
        return SourceError(f"{name}: cannot read the file: {why}", path=name)
    if is_connection_lost(exc, conn):
        return ConnectionLostError(f"connection lost: {message}")
    return DatabaseError(message)


def _row_error(
    exc: BaseException, kind: type[PgIngestError], message: str, path: str | None, first_line: int
) -> PgIngestError:
    """A data error, at the file's line, column and value the server's COPY context names."""
    row_kind = RecordFormatError if kind is RecordFormatError else RowError
    position = copy_position(exc)
    if position is None:
        return row_kind(f"{path}: {message}" if path else message, path=path)
    line = first_line + position.line - 1
    where = f"{path}: line {line}" if path else f"line {line}"
    if position.column:
        where += f", column {position.column}"
    return row_kind(
        f"{where}: {message}",
        path=path,
        line=line,
        column=position.column,
        value=position.value,
    )


def describe(exc: BaseException, what: str, conn: Any = None) -> str:
    """In plain words what happened during ``what`` (``the COPY of batch 2``, ``connecting``):
    ``connection lost during the COPY of batch 2``, not the driver's words."""
    known = is_driver_error(exc) or is_connection_lost(exc, conn)
    error = translate(exc, conn=conn) if known else exc
    kind = classify(exc, conn)
    why = "" if kind in ("connection", "other") else f" ({kind.replace('_', ' ')})"
    if isinstance(error, ConnectionLostError):
        text = str(error)
        if text.startswith("connection lost during"):  # the stall monitor's own words
            return text
        if what == "connecting":
            return f"cannot connect{why}"
        return f"connection lost during {what}{why}"
    if isinstance(error, ConflictError):
        return f"{kind.replace('_', ' ')} during {what}"
    return " ".join(str(error).split()) or type(error).__name__

"""Which database errors are worth another try, and how long to wait before it.

Errors are classified once, by SQLSTATE for server errors and by exception type for the
socket and the driver. A transient error (the connection, the server's state, a lock
conflict) is retried with exponential backoff and full jitter; anything else fails at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg

from pgingest.errors import ConnectionLostError, PgIngestError
from pgingest.pg.errors import connection_gone

# SQLSTATE -> error class of the transient server errors.
_TRANSIENT_STATES = {
    "57P01": "admin_shutdown",
    "57P02": "crash_shutdown",
    "57P03": "cannot_connect_now",
    "53300": "too_many_connections",
    "53400": "configuration_limit_exceeded",
    "40001": "serialization_failure",
    "40P01": "deadlock",
    "55P03": "lock_not_available",
}
# SQLSTATE class (first two characters) -> error class, for the errors that are not retried.
_STATE_CLASSES = {
    "08": "connection",
    "22": "data",
    "23": "constraint",
    "42": "schema",
    "53": "resources",
    "57": "operator_intervention",
    "XX": "internal",
}
_CONSTRAINTS = {
    "23505": "unique_violation",
    "23502": "not_null_violation",
    "23503": "foreign_key_violation",
    "23514": "check_violation",
}


def classify(exc: BaseException) -> str:
    """A short, stable name for the kind of error (a metric label: no message text in it)."""
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state in _TRANSIENT_STATES:
            return _TRANSIENT_STATES[state]
        if state in _CONSTRAINTS:
            return _CONSTRAINTS[state]
        return _STATE_CLASSES.get(state[:2], "other")
    if isinstance(exc, ConnectionLostError):
        return "connection"
    if isinstance(exc, PgIngestError):
        return "other"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if connection_gone(exc) or isinstance(exc, OSError | ConnectionError):
        return "connection"
    return "other"


def is_transient(exc: BaseException) -> bool:
    """True when trying again may succeed: the connection or the server's state, not the data.

    ``08*`` (connection exceptions) are transient; a driver ``InterfaceError`` is only when it
    says the connection is gone (using a closed connection), never for misuse of the API.
    """
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state.startswith("08") or state in _TRANSIENT_STATES
    if isinstance(exc, PgIngestError):
        return exc.retryable
    return connection_gone(exc) or isinstance(exc, OSError | ConnectionError | TimeoutError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times to retry and how long to wait: ``base * 2**(attempt-1)`` seconds, at
    most ``max_delay``, each wait drawn uniformly from its upper half (jitter spreads the
    retries of parallel workers so they do not hit a recovering server together)."""

    max_retries: int = 3
    base: float = 1.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first)."""
        ceiling = min(self.max_delay, self.base * 2.0 ** max(0, attempt - 1))
        return ceiling * (0.5 + random.random() / 2)  # noqa: S311 - jitter, not crypto

"""The one SQLSTATE table and the one retry helper, without a database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from pgingest.errors import (
    ConflictError,
    ConnectionLostError,
    ConstraintError,
    DatabaseError,
    RecordFormatError,
    RowError,
    SchemaError,
    SourceError,
)
from pgingest.pg.errors import (
    SQLSTATES,
    classify,
    describe,
    is_retryable,
    kind_of,
    translate,
)
from pgingest.pg.retry import RetryPolicy, retry


def server_error(sqlstate: str, message: str = "boom") -> asyncpg.PostgresError:
    """A server error as asyncpg raises it for ``sqlstate``."""
    cls = asyncpg.PostgresError
    for sub in asyncpg.exceptions.__dict__.values():
        if (
            isinstance(sub, type)
            and issubclass(sub, cls)
            and getattr(sub, "sqlstate", None) == sqlstate
        ):
            cls = sub
            break
    exc = cls.new({"C": sqlstate, "M": message})
    return exc


@pytest.mark.parametrize(
    ("state", "name", "error", "retryable"),
    [
        ("08006", "connection", ConnectionLostError, True),
        ("57P01", "admin_shutdown", ConnectionLostError, True),
        ("57P03", "cannot_connect_now", ConnectionLostError, True),
        ("53300", "too_many_connections", ConnectionLostError, True),
        ("53400", "configuration_limit_exceeded", ConnectionLostError, True),
        ("40001", "serialization_failure", ConflictError, True),
        ("40P01", "deadlock", ConflictError, True),
        ("55P03", "lock_not_available", ConflictError, True),
        ("22P02", "data", RowError, False),
        ("22P04", "data", RecordFormatError, False),
        ("23505", "unique_violation", ConstraintError, False),
        ("23P01", "constraint", ConstraintError, False),
        ("42703", "schema", SchemaError, False),
        ("42501", "schema", DatabaseError, False),
        ("53100", "resources", DatabaseError, False),
        ("57014", "operator_intervention", DatabaseError, False),
        ("XX000", "internal", DatabaseError, False),
        ("28P01", "other", DatabaseError, False),
    ],
)
def test_each_sqlstate_has_one_meaning(state, name, error, retryable):
    kind = kind_of(state)
    assert (kind.name, kind.error, kind.retryable) == (name, error, retryable)
    exc = server_error(state)
    assert classify(exc) == name
    assert is_retryable(exc) is retryable
    translated = translate(exc, path="f.csv")
    assert type(translated) is error
    assert translated.retryable is retryable
    if retryable:  # retried after the task's boundary translated it: said the same way
        assert classify(translated) == name
        assert describe(translated, "the load of f.csv") == describe(exc, "the load of f.csv")


def test_the_table_keys_are_sqlstates_or_classes():
    assert all(len(key) in (2, 5) for key in SQLSTATES)
    # Every retryable kind is a connection fault or a conflict: never the data.
    assert {k.error for k in SQLSTATES.values() if k.retryable} == {
        ConnectionLostError,
        ConflictError,
    }


class _Closed:
    """A connection that says it is closed."""

    def is_closed(self) -> bool:
        return True


class _Open:
    def is_closed(self) -> bool:
        return False


def test_an_interface_error_is_a_lost_connection_only_when_the_connection_says_so():
    exc = asyncpg.InterfaceError("cannot call Transaction.__aexit__(): it is closed")
    assert not is_retryable(exc)
    assert not is_retryable(exc, _Open())
    assert is_retryable(exc, _Closed())
    assert isinstance(translate(exc, conn=_Closed()), ConnectionLostError)
    assert not isinstance(translate(exc, conn=_Open()), ConnectionLostError)
    assert is_retryable(ConnectionResetError())
    assert is_retryable(asyncpg.ConnectionDoesNotExistError("gone"))


def test_a_refused_write_is_a_lost_connection_only_when_the_connection_says_so():
    # uvloop's transport, written to after the loss (the driver's CopyDone)
    exc = RuntimeError("unable to perform operation on <UnixTransport closed=True>")
    assert not is_retryable(exc)
    assert not is_retryable(exc, _Open())
    assert is_retryable(exc, _Closed())
    assert isinstance(translate(exc, conn=_Closed()), ConnectionLostError)
    assert describe(exc, "the COPY of batch 0", _Closed()) == (
        "connection lost during the COPY of batch 0"
    )


def test_a_retry_says_what_happened_in_plain_words():
    exc = asyncpg.InterfaceError("cannot call Transaction.__aexit__(): the connection is closed")
    said = describe(exc, "the COPY of batch 2", _Closed())
    assert said == "connection lost during the COPY of batch 2"
    assert describe(server_error("57P01"), "the COPY of batch 3") == (
        "connection lost during the COPY of batch 3 (admin shutdown)"
    )
    assert (
        describe(server_error("40P01"), "the COPY of batch 1")
        == "deadlock during the COPY of batch 1"
    )
    assert describe(ConnectionRefusedError(111, "refused"), "connecting") == "cannot connect"


def test_retry_retries_only_retryable_errors_within_the_policy():
    policy = RetryPolicy(max_retries=2, base=0.0, max_delay=0.0)
    calls: list[int] = []
    retried: list[int] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionLostError("cut")
        return "ok"

    assert asyncio.run(retry(flaky, policy, on_retry=lambda n, d, e: retried.append(n))) == "ok"
    assert retried == [1, 2]

    calls.clear()

    async def always() -> None:
        calls.append(1)
        raise ConnectionLostError("cut")

    with pytest.raises(ConnectionLostError):
        asyncio.run(retry(always, policy))
    assert len(calls) == 3  # the try and two retries

    calls.clear()

    async def bad_data() -> None:
        calls.append(1)
        raise SourceError("f.csv: unreadable")

    with pytest.raises(SourceError):
        asyncio.run(retry(bad_data, policy))
    assert len(calls) == 1


def test_retry_policy_waits_are_bounded():
    policy = RetryPolicy(max_retries=10, base=1.0, max_delay=5.0)
    for attempt in range(1, 11):
        assert 0 < policy.delay(attempt) <= 5.0


def test_a_refused_rollback_after_a_server_error_is_that_error():
    # The server's FATAL error arrives before the driver sees the socket close: the rollback
    # that follows is refused ("another operation is in progress"); what happened is the
    # server's error, and the connection (not yet known closed) is not asked.
    try:
        try:
            raise server_error("57P01", "terminating connection due to administrator command")
        except asyncpg.PostgresError:
            raise asyncpg.InterfaceError(
                "cannot perform operation: another operation is in progress"
            ) from None
    except asyncpg.InterfaceError as exc:
        refused = exc
    assert is_retryable(refused, _Open())
    assert isinstance(translate(refused, conn=_Open()), ConnectionLostError)
    try:
        try:
            raise server_error("22P02", 'invalid input syntax for type integer: "x"')
        except asyncpg.PostgresError:
            raise asyncpg.InterfaceError("another operation is in progress") from None
    except asyncpg.InterfaceError as exc:
        masked = exc
    assert not is_retryable(masked, _Open())
    assert isinstance(translate(masked, path="f.csv"), RowError)


def test_a_refused_rollback_after_a_cut_stream_is_a_lost_connection():
    try:
        try:
            raise asyncpg.ConnectionDoesNotExistError("connection was closed in the middle")
        except asyncpg.ConnectionDoesNotExistError:
            raise asyncpg.InterfaceError("another operation is in progress") from None
    except asyncpg.InterfaceError as exc:
        refused = exc
    assert is_retryable(refused, _Open())
    assert isinstance(translate(refused), ConnectionLostError)
    assert not is_retryable(asyncpg.InterfaceError("another operation is in progress"), _Open())

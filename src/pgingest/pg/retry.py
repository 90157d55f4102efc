"""The one retry helper: every retry of pgingest goes through :func:`retry`.

Whether an error is worth another try is its ``retryable`` flag (a driver error's, by the
SQLSTATE table of :mod:`pgingest.pg.errors`); how often and how long to wait is the
:class:`RetryPolicy`: exponential backoff with full jitter, every wait bounded.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pgingest.pg.errors import is_retryable

T = TypeVar("T")


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


async def retry(
    step: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    on_retry: Callable[[int, float, BaseException], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    retryable: Callable[[BaseException], bool] | None = None,
    connection: Callable[[], Any] | None = None,
) -> T:
    """Run ``step``; after a retryable error, wait and run it again, at most
    ``policy.max_retries`` times; then (or after any other error) raise what it raised.

    Args:
        step: one try (it takes a fresh connection, or checks its own, as it needs).
        policy: how many retries and how long each wait.
        on_retry: called with (retry number, seconds to wait, error) before each wait.
        on_error: called with every error ``step`` raises (counted, reported), before the
            decision.
        retryable: which errors are retried (default: :func:`~pgingest.pg.errors.is_retryable`
            asking ``connection()`` whether it is closed).
        connection: the connection ``step`` used, asked after an error.

    Returns:
        What ``step`` returned.
    """
    attempt = 0
    while True:
        try:
            return await step()
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            if retryable is not None:
                again = retryable(exc)
            else:
                again = is_retryable(exc, connection() if connection is not None else None)
            if not again or attempt >= policy.max_retries:
                raise
            attempt += 1
            delay = policy.delay(attempt)
            if on_retry is not None:
                on_retry(attempt, delay, exc)
            await asyncio.sleep(delay)

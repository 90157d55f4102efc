"""The event loop every synchronous entry point runs its coroutine in.

uvloop where it is installed (every platform but Windows): the driver wakes the loop once per
message the server flushes (a notice per skipped value, a reply per statement of a small
file), and uvloop's wake-up costs about a third of asyncio's. Elsewhere, asyncio's own loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # (Windows: no uvloop)
        return None
    return uvloop.new_event_loop


_GIVEN_BACK_IN_TRANSACTION = "Resetting connection with an active transaction"
"""What the driver says of a connection given back to its pool inside a transaction."""


def _unretrieved_loss(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """The loop's handler of errors nobody awaited: a lost connection's goes to the debug log.

    uvloop refuses a write once the connection is lost, so the driver's COPY raises there
    (a retry follows, which says the connection was lost) and never awaits the future on
    which the driver recorded the loss. A connection given back inside a transaction goes
    there too. Anything else goes to the default handler.
    """
    from pgingest.pg.errors import CONNECTION, classify  # (the driver: not for every import)

    exc = context.get("exception")
    if "future" in context and exc is not None and classify(exc) == CONNECTION.name:
        log.debug("%s: %r", context.get("message"), exc)
        return
    if str(context.get("message", "")).startswith(_GIVEN_BACK_IN_TRANSACTION):
        # A batch's task cancelled mid-transaction (another worker of its file failed): the
        # pool's reset rolls the transaction back, as it should. Not an error of the load.
        log.debug("%s", context.get("message"))
        return
    loop.default_exception_handler(context)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``, on uvloop where it is installed."""
    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.get_loop().set_exception_handler(_unretrieved_loss)
            return runner.run(coro)
    finally:
        close_unstarted(coro)


def close_unstarted(coro: Coroutine[Any, Any, Any]) -> None:
    """Close ``coro`` if it never ran: a Ctrl-C while the loop was being set up (uvloop
    imported, the loop made) stops the command before the loop starts it, and Python would
    say "coroutine ... was never awaited" on the way out."""
    if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        coro.close()

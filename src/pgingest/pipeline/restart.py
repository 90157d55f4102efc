"""Starting a piece of work over: the one restart loop of a load, and why it restarts as data.

A restart is not the retry of a fault (that is :func:`pgingest.pg.retry.retry`'s, driven by
the errors' ``retryable`` flag): the work ran into something that tells it how to go on, and
it goes on from a new start. A file whose table changed under it is loaded again from its
start; a file the server's CSV parser refused is loaded again parsed client-side; a batch the
server refused is sent again, the table widened or its bad rows set aside. Whoever learns it
returns a :class:`Restart`, a value: the :class:`Reason` (named, with its bound) and the start
of the next try. :func:`restarting` is the loop every restart goes through.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a piece of work starts over, and how often it may."""

    name: str
    """Short and stable (a log field: no message text in it)."""
    tries: int | None
    """Tries in all for this reason (the first one included) before the error stands;
    ``None``: bounded by the work itself (each restart removes what made it: a batch's bad
    rows, a column too narrow)."""


TABLE_CHANGED = Reason("table_changed", tries=3)
"""The file's table was truncated or recreated under it, taking its committed rows, or
another load changed its columns' types after the file was planned: the file is claimed
again, from its start or after its committed batches, and planned against the table as it
is."""
CLIENT_PARSE = Reason("client_parse", tries=2)
"""The server's CSV parser refused the file's records (a quote inside a field, a blank line, a
ragged row); nothing of it was kept: it is loaded again, parsed client-side."""
WIDENED = Reason("widened", tries=64)
"""upsert and merge: a value of the file needed a wider column, and the table was widened;
the file is claimed again after its committed batches and planned for the wider table. Each
restart follows a widening, and a column widens a few times at most (``integer -> bigint ->
numeric``): the bound only stops a loop that would be a bug."""
BATCH_RECOVERED = Reason("batch_recovered", tries=None)
"""A batch the server refused for its data: the table widened, missing-value markers made NULL
or (``--on-error skip``) its bad rows set aside; the batch is sent again as it is now."""


@dataclass(frozen=True, slots=True)
class Restart(Generic[S]):
    """Start over, for ``reason``, from ``start``."""

    reason: Reason
    start: S
    """What the next try starts from (the file's parse mode, the batch's new payload)."""
    note: str | None = None
    """What to say when it does (``None``: nothing worth saying)."""


async def restarting(
    step: Callable[[S], Awaitable[T]],
    start: S,
    decide: Callable[[Exception, S], Awaitable[Restart[S] | None]],
    *,
    on_restart: Callable[[Restart[S]], None] | None = None,
) -> T:
    """Run ``step(start)``; when it raises and ``decide`` says how to go on, run it again
    from the restart's start, as often as each reason allows; then, or when ``decide``
    returns ``None``, the error stands.

    Args:
        step: one try, from its start.
        start: the first try's start.
        decide: what an error means: a :class:`Restart`, or ``None`` for an error that
            stands (it may raise another error instead, the one to stand).
        on_restart: told of each restart about to happen (to log or report its note).

    Returns:
        What the last try of ``step`` returned.
    """
    tries: Counter[Reason] = Counter()
    while True:
        try:
            return await step(start)
        except Exception as exc:
            restart = await decide(exc, start)
            if restart is None:
                raise
            tries[restart.reason] += 1
            bound = restart.reason.tries
            if bound is not None and tries[restart.reason] >= bound:
                raise
            if on_restart is not None:
                on_restart(restart)
            start = restart.start

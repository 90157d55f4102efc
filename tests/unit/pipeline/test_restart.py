"""The one restart loop: each reason restarts as often as it allows, from the start its
restart names, and the error stands after that (or at once when nothing restarts it)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pgingest.errors import RecordFormatError, TableChangedError
from pgingest.pipeline.restart import (
    BATCH_RECOVERED,
    CLIENT_PARSE,
    TABLE_CHANGED,
    Reason,
    Restart,
    restarting,
)
from pgingest.pipeline.task import _restart_for

REASONS = (TABLE_CHANGED, CLIENT_PARSE, BATCH_RECOVERED)


class _LearnedError(Exception):
    """A try learned something: restart for ``reason``."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.name)
        self.reason = reason


class _FatalError(Exception):
    """An error nothing restarts."""


# What each try does: learn a reason (restart), fail for good, or succeed.
_OUTCOMES = st.lists(
    st.one_of(st.sampled_from(REASONS), st.just("fatal"), st.just("done")), max_size=12
)


@given(outcomes=_OUTCOMES)
def test_restarts_within_each_reasons_bound_from_the_restarts_start(outcomes):
    starts: list[int] = []
    restarted: list[Restart[int]] = []
    script = iter([*outcomes, "done"])

    async def step(start: int) -> str:
        starts.append(start)
        outcome = next(script)
        if outcome == "done":
            return f"done from {start}"
        if outcome == "fatal":
            raise _FatalError
        raise _LearnedError(outcome)

    async def decide(exc: Exception, start: int) -> Restart[int] | None:
        if isinstance(exc, _LearnedError):
            return Restart(exc.reason, start + 1)
        return None

    # The model: what the loop must do with this script.
    expected_starts = [0]
    counts: Counter[Reason] = Counter()
    expected: type[Exception] | str | None = None
    for outcome in [*outcomes, "done"]:
        if outcome == "done":
            expected = f"done from {expected_starts[-1]}"
            break
        if outcome == "fatal":
            expected = _FatalError
            break
        counts[outcome] += 1
        if outcome.tries is not None and counts[outcome] >= outcome.tries:
            expected = _LearnedError
            break
        expected_starts.append(expected_starts[-1] + 1)

    run = restarting(step, 0, decide, on_restart=restarted.append)
    if isinstance(expected, str):
        assert asyncio.run(run) == expected
    else:
        with pytest.raises(expected):
            asyncio.run(run)
    assert starts == expected_starts
    assert [r.start for r in restarted] == expected_starts[1:]
    for reason in REASONS:
        tries = sum(1 for r in restarted if r.reason is reason) + 1
        assert reason.tries is None or tries <= reason.tries


def test_an_error_decide_raises_stands_in_place_of_the_tries():
    async def step(start: int) -> None:
        raise _FatalError

    async def decide(exc: Exception, start: int) -> Restart[int] | None:
        raise ValueError("translated") from exc

    with pytest.raises(ValueError, match="translated") as raised:
        asyncio.run(restarting(step, 0, decide))
    assert isinstance(raised.value.__cause__, _FatalError)


def test_a_file_restarts_for_its_table_or_its_records_and_nothing_else():
    changed = _restart_for(TableChangedError("t.csv: table truncated"), True, "t.csv")
    assert changed is not None
    assert (changed.reason, changed.start) == (TABLE_CHANGED, True)  # parse mode kept
    parse = _restart_for(RecordFormatError("line 3: extra data"), False, "t.csv")
    assert parse is not None
    assert (parse.reason, parse.start) == (CLIENT_PARSE, True)
    assert parse.note == "t.csv: line 3: extra data; loading it again, parsed client-side"
    assert _restart_for(_FatalError(), False, "t.csv") is None
    assert TABLE_CHANGED.tries == 3
    assert CLIENT_PARSE.tries == 2

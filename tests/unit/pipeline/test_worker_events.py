"""A worker's events reach the run's process in order, a few messages for many events, within
:data:`~pgingest.pipeline.workers.FLUSH_SECONDS` when the worker goes quiet, and its last
message after all it held."""

from __future__ import annotations

import multiprocessing
import time

from pgingest.pipeline import workers


def received(reader, until: float) -> list[list[tuple[str, int, object]]]:
    messages = []
    while reader.poll(max(0.0, until - time.monotonic())):
        messages.append(reader.recv())
        if messages[-1][-1][0] == "report":
            break
    return messages


def test_many_events_go_in_few_messages_in_order_and_the_report_last() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    forward = workers._Forward(writer, 3)
    for n in range(2000):
        forward.file_done(n)
    forward.put(("report", 3, "the report"))
    messages = received(reader, time.monotonic() + 5)
    events = [event for message in messages for event in message]
    assert events == [("file_done", 3, n) for n in range(2000)] + [("report", 3, "the report")]
    assert len(messages) <= 20  # one per FLUSH_SECONDS at most, not one per event


def test_a_quiet_worker_s_events_arrive_without_waiting_for_more() -> None:
    reader, writer = multiprocessing.Pipe(duplex=False)
    forward = workers._Forward(writer, 0)
    forward.message("one")
    started = time.monotonic()
    assert reader.poll(10 * workers.FLUSH_SECONDS)
    assert reader.recv() == [("message", 0, "one")]
    assert time.monotonic() - started < 10 * workers.FLUSH_SECONDS
    forward.put(("report", 0, None))
    assert reader.recv() == [("report", 0, None)]

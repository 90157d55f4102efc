"""A worker's events reach the run's process in order, a few messages for many events, within
:data:`~pgingest.pipeline.workers.FLUSH_SECONDS` when the worker goes quiet, and its last
message after all it held."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time

import pytest

from pgingest.observability.progress import NullReporter
from pgingest.pg import loop
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


@pytest.mark.parametrize("run", [asyncio.run, loop.run], ids=["asyncio", "the command's loop"])
def test_a_report_longer_than_the_pipe_holds_is_read_whole(run) -> None:
    """Found with uvloop: its watch of a pipe made the pipe non-blocking, so a message read
    while only its first part had arrived failed as if the worker had ended; the run said
    'worker 2 died' of a live worker, whose report then met a closed pipe."""
    reader, writer = multiprocessing.Pipe(duplex=False)
    report = "x" * (4 << 20)  # 64 times a pipe's buffer: written in many parts

    def send() -> None:  # a worker's end: its report, then its pipe closes
        workers._Forward(writer, 0).put(("report", 0, report))
        writer.close()

    sender = threading.Thread(target=send)
    crew = object.__new__(workers._Crew)
    crew.procs, crew.readers = [sender], {reader: 0}  # (a thread: join and is_alive are all used)

    async def relayed() -> tuple[list[object], bool]:
        sender.start()
        return await crew.relay(NullReporter())

    assert run(relayed()) == ([report], False)

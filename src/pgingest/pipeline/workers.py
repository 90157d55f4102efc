"""``--workers N``: one run, N loader processes on this machine. This process records the run
(and holds its lock while it lives), starts the workers, passes their progress events on to
its reporter, stops them all on a cancel (bounded), and records the run's end from their
reports merged. The workers share the files through the manifest exactly as separate loaders
do: each claims a file under its lock, skips one another holds, and takes over one whose
loader died."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from functools import partial
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, cast

from pgingest.config import ConnectionSettings, LoadOptions
from pgingest.errors import PgIngestError
from pgingest.manifest import store
from pgingest.model import FileResult, LoadReport
from pgingest.observability.progress import NullReporter, Reporter
from pgingest.pg import connect
from pgingest.pg.loop import run as run_loop
from pgingest.pg.retry import RetryPolicy
from pgingest.pipeline.context import JoinedRun, RunEvents
from pgingest.sources.inputs import is_remote

if TYPE_CHECKING:
    from pgingest.pipeline.discover import Discovered, Target

log = logging.getLogger("pgingest.workers")

STOP_SECONDS = 30.0
"""How long stopped workers get to roll back their batches in flight and record where they
stopped (SIGTERM) before they are killed: a killed worker's files are taken over by the next
run all the same (their locks die with their connections)."""

POLL_SECONDS = 0.2
"""How long the workers' pipes are waited on at a time when they are quiet (seconds): the
event loop also wakes when one of them has a message."""

FLUSH_SECONDS = 0.1
"""How long a worker holds its progress events before it sends them on, together (seconds).
One message per event cost both processes a pipe write and a wake-up each: for 2,000 small
files, 6,000 of them, the run's process 0.6 s of CPU and each worker 0.2 s."""

_RANK = {"loaded": 0, "failed": 1, "skipped": 2}
"""Which of the workers' results for one file the run reports: the one that loaded it, else
the one that failed it, else a skip (every other worker skips a file one worker loads)."""


async def load_async(
    paths: Sequence[str],
    settings: ConnectionSettings,
    options: LoadOptions,
    reporter: Reporter | None = None,
) -> LoadReport:
    """Load ``paths`` with ``options.workers`` worker processes as one run.

    The workers are started first: their interpreters' start and imports (about 0.2 s each)
    overlap this process's connecting, recording the run and finding the files, which it then
    hands them with the run's id (started after it, they began loading 0.3-0.4 s into a
    2,000-file run, each having found all the files again).

    Returns:
        One report: per file the result of the worker that loaded it (or failed it, or, when
        none did, a skip), the stage times summed; the run recorded in the manifest with it.

    Raises:
        PgIngestError: a worker stopped on an error of the run (not of a file): the first.
    """
    reporter = reporter or NullReporter()
    began = time.perf_counter()
    crew = _Crew(paths, settings, options)
    try:
        planned = asyncio.ensure_future(asyncio.to_thread(_plan, paths, options))
        try:
            sessions = connect.session_settings(
                f"pgingest {os.getpid()} workers", None, (socket.gethostname(), os.getpid())
            )
            events = RunEvents(
                reporter, RetryPolicy(options.max_retries, options.retry_base, options.retry_max)
            )

            async def connected() -> Any:
                return await connect.open_connection_retried(
                    settings,
                    events.policy,
                    lambda attempt, delay, exc: events.retrying(exc, attempt, delay, "", "", None),
                    **sessions,
                )

            conn = await connected()
        except BaseException:
            if not planned.done():
                await asyncio.wait({planned})  # (a thread: it cannot be cancelled)
            raise
    except BaseException:
        await asyncio.shield(asyncio.to_thread(crew.abandon))
        raise
    try:
        try:
            plan = await planned  # (an error finding the files is the run's)

            async def started() -> int:  # (retried, on a new connection when it was lost)
                nonlocal conn
                conn = await _alive(conn, connected)
                await store.ensure_manifest(conn)
                run_id: int = await store.start_run(
                    conn,
                    [os.path.abspath(p) for p in paths],  # noqa: ASYNC240 - no I/O
                    store.options_record(options),
                    socket.gethostname(),
                    os.getpid(),
                )
                return run_id

            run_id = await events.with_retries(started)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(crew.abandon))
            raise
        crew.begin(run_id, plan)
        reporter.run_started(run_id)
        report = LoadReport(run_id=run_id)
        status = "interrupted"
        try:
            reports, lost = await crew.relay(reporter)
            _merge(report, reports, reporter, lost)
            # Idle while the workers loaded, this process's session may be gone (the server
            # restarted, an administrator ended it): the run is closed on a new one.
            conn = await _alive(conn, connected)
            if options.analyze:  # once, here: a worker's own would see only its first part
                from pgingest.pipeline.analyze import analyze_written

                held = partial(contextlib.nullcontext, conn)  # the run's own connection
                await analyze_written(held, report, reporter, report.stages)
                report.stages = {k: round(v, 3) for k, v in sorted(report.stages.items())}
            status = "failed" if report.failed else "success"
        except Exception:
            status = "failed"  # an error of the run; a cancel stays "interrupted"
            raise
        finally:
            report.seconds = time.perf_counter() - began
            counts = {
                "loaded": sum(1 for f in report.files if f.status == "loaded"),
                "skipped": sum(1 for f in report.files if f.status == "skipped"),
                "failed": len(report.failed),
                "rows": report.rows,
            }

            async def finished() -> None:  # (retried, on a new connection when it was lost)
                nonlocal conn
                conn = await _alive(conn, connected)
                await store.finish_run(conn, run_id, status, counts)

            with contextlib.suppress(Exception):  # the server gone for good: stays 'running'
                await asyncio.shield(events.with_retries(finished))
    finally:
        with contextlib.suppress(Exception):
            await asyncio.shield(conn.close(timeout=10))
    reporter.run_done(report)
    return report


async def _alive(conn: Any, connected: Callable[[], Awaitable[Any]]) -> Any:
    """``conn``, or a new connection (retried as at the start) when it was lost."""
    if not conn.is_closed():
        return conn
    with contextlib.suppress(Exception):
        await conn.close(timeout=1)
    return await connected()


def worker_options(options: LoadOptions, index: int) -> LoadOptions:
    """Worker ``index``'s options: one process's, with its part of ``--concurrency`` (the
    run's files at once, shared: 4 with two workers is 2 each, never less than 1). With the
    whole of it each, two workers loaded 8 files at once where one process loads 4: twice
    the server's sessions on the same cores, 0.2-0.3 s more of its CPU for 2,000 small
    files, and slower (2.68 s against 2.57 s)."""
    share, extra = divmod(options.concurrency, options.workers)
    return replace(options, workers=1, concurrency=max(1, share + (index < extra)))


Plan = tuple[list["Target"], list["Discovered"]]
"""The run's targets and the inputs that named nothing, as
:func:`~pgingest.pipeline.discover.plan_targets` gives them."""


def _plan(paths: Sequence[str], options: LoadOptions) -> Plan | None:
    """The run's files, found once for all the workers; ``None`` when an input is remote: each
    worker then lists it itself, and so knows each object's identity from its listing (handed
    a plan, it would ask for each object's)."""
    named = [*paths, *(str(source["path"]) for source in options.sources)]
    if any(is_remote(p) for p in named):
        return None
    from pgingest.pipeline.discover import plan_targets

    return plan_targets(paths, options)


class _Crew:
    """The run's worker processes: started at once, each waiting for its start (the run's id
    and the plan) on a pipe of its own; their events passed on, their reports collected."""

    def __init__(
        self, paths: Sequence[str], settings: ConnectionSettings, options: LoadOptions
    ) -> None:
        paths = list(paths)
        spawn = multiprocessing.get_context("spawn")  # never fork a process with threads
        # A pipe each, not one queue: a queue's writers share a lock, and a worker killed
        # while holding it (SIGKILL, the OOM killer) left the others unable to report, the
        # run waiting on them for ever. A killed worker's pipe just ends (a message cut short
        # included).
        count = options.workers
        events = [spawn.Pipe(duplex=False) for _ in range(count)]
        starts = [spawn.Pipe(duplex=False) for _ in range(count)]
        parent = os.getpid()
        self.procs = [
            spawn.Process(
                target=_worker,
                args=(
                    paths,
                    settings,
                    worker_options(options, i),
                    i,
                    count,
                    starting,
                    writer,
                    parent,
                ),
                name=f"pgingest worker {i + 1}/{count}",
                daemon=True,
            )
            for i, ((_reader, writer), (starting, _start)) in enumerate(
                zip(events, starts, strict=True)
            )
        ]
        with _interrupts_held():
            for proc in self.procs:
                proc.start()
        for (_reader, writer), (starting, _start) in zip(events, starts, strict=True):
            writer.close()  # the worker's copies are the only ones left: its ends are theirs
            starting.close()
        self.readers: dict[Connection, int] = {reader: i for i, (reader, _w) in enumerate(events)}
        self.starts: list[Connection] = [start for _starting, start in starts]

    def begin(self, run_id: int, plan: Plan | None) -> None:
        """Start every worker on the run (a worker already gone is found by :meth:`relay`)."""
        for start in self.starts:
            with contextlib.suppress(OSError):
                start.send((run_id, plan))
            start.close()
        self.starts = []

    def abandon(self) -> None:
        """The run did not start: the workers, told so (their start pipes end), end; waited
        for, bounded."""
        for start in self.starts:
            start.close()
        self.starts = []
        _join(self.procs)
        for reader in self.readers:
            reader.close()
        self.readers = {}

    async def relay(self, reporter: Reporter) -> tuple[list[LoadReport], bool]:
        """Pass the workers' events on, and wait for their reports; on a cancel (or any error
        here) stop them all, at most :data:`STOP_SECONDS`. Returns the reports, and whether a
        worker was lost (died, or stopped on an error of its own)."""
        procs, readers = self.procs, self.readers
        relay = _Relay(reporter)
        reports: dict[int, LoadReport] = {}
        errors: list[BaseException] = []
        # The event loop watches the pipes (a message, or a worker's end, makes one
        # readable): a thread waiting on them instead cost a thread hop per message, 1.6 s of
        # this process's CPU for the 6,000 events of 2,000 small files.
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        for reader in readers:
            loop.add_reader(reader.fileno(), readable.set)
            # uvloop's watch (libuv's) makes the pipe non-blocking, and a message read while
            # only its first part had arrived then failed as if the worker had ended: recv
            # reads whole messages, so the pipe stays blocking.
            os.set_blocking(reader.fileno(), True)
        try:
            while readers:
                # (asyncio.wait, not wait_for: wait_for could swallow the run's cancel when
                # the event was set at the same moment, and a SIGTERM went unheard.)
                waiter = asyncio.ensure_future(readable.wait())
                try:
                    await asyncio.wait({waiter}, timeout=POLL_SECONDS)
                finally:
                    waiter.cancel()
                readable.clear()
                for reader in [r for r in list(readers) if r.poll()]:
                    index = readers[reader]
                    while True:  # every message the pipe holds now
                        try:
                            held = reader.recv()
                        except (EOFError, OSError):  # the worker ended
                            del readers[reader]
                            loop.remove_reader(reader.fileno())
                            reader.close()
                            if index not in reports and index not in relay.ended:
                                # Died without a word (killed): its files are the next run's.
                                relay.ended.add(index)
                                code = await asyncio.to_thread(_exit_code, procs[index])
                                errors.append(
                                    PgIngestError(f"worker {index + 1} died (exit code {code})")
                                )
                            break
                        for kind, _index, value in held:
                            if kind == "report":
                                reports[index] = value
                            elif kind == "error":
                                relay.ended.add(index)
                                errors.append(value)
                            else:
                                relay.event(kind, value)
                        if not reader.poll():
                            break
        except BaseException:
            for reader in readers:
                loop.remove_reader(reader.fileno())
            await asyncio.shield(asyncio.to_thread(_stop, procs, list(readers)))
            raise
        finally:
            await asyncio.to_thread(_join, procs)
            for reader in readers:
                loop.remove_reader(reader.fileno())
                reader.close()
        if errors and not reports:
            raise errors[0]
        for error in errors:
            reporter.message(f"a worker stopped: {error}")
        return [reports[i] for i in sorted(reports)], bool(errors)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """The workers started with SIGINT ignored (they keep that through ``exec``) until they
    set their own handler (``_work``): a Ctrl-C reaches the terminal's whole process group,
    and a worker still starting (its interpreter, its imports, waiting for the run's start)
    printed the traceback of a KeyboardInterrupt; the run's process stops them itself. This
    process holds (blocks) SIGINT meanwhile, so that one arriving then comes afterwards
    instead of being lost (Linux keeps a blocked signal pending even while it is ignored)."""
    own = signal.getsignal(signal.SIGINT)
    main = threading.current_thread() is threading.main_thread()
    if not main or own is None or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, own)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


class _Relay:
    """The workers' events, passed on to the run's reporter: the files found once (every
    worker finds them all), a file's end only for the worker that loaded or failed it (the
    skips of the others are the run's end's to sort out)."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.found = False
        self.done: set[tuple[str, str]] = set()
        self.ended: set[int] = set()

    def event(self, kind: str, value: Any) -> None:
        if kind == "files_found":
            if not self.found:
                self.found = True
                self.reporter.files_found(value)
        elif kind == "file_done":
            if value.status != "skipped":
                self.done.add((value.path, value.table))
                self.reporter.file_done(value)
        elif kind not in ("run_started", "run_done"):
            getattr(self.reporter, kind)(value)


def _merge(
    report: LoadReport, reports: Sequence[LoadReport], reporter: Reporter, lost: bool = False
) -> None:
    """The run's report from its workers': one result per file (see :data:`_RANK`), in the
    first worker's order; a file every worker skipped is reported done here. When a worker
    was ``lost``, a file the others skipped because another process held it is failed: it
    may be the lost worker's, left unfinished (the next run resumes it)."""
    best: dict[tuple[str, str], FileResult] = {}
    for part in reports:
        for result in part.files:
            key = (result.path, result.table)
            held = best.get(key)
            if held is None or _RANK[result.status] < _RANK[held.status]:
                best[key] = result
        for stage, seconds in part.stages.items():
            report.stages[stage] = round(report.stages.get(stage, 0.0) + seconds, 3)
        report.retries += part.retries
        report.strategies.update(part.strategies)
    report.files.extend(best.values())
    for result in report.files:
        if result.status != "skipped":
            continue  # reported as it happened
        if lost and result.message == store.HELD_ELSEWHERE:
            result.status = "failed"
            result.error = (
                "not loaded: a worker of this run was lost while the file was held (by it, or"
                " by another loader); the next run loads or resumes it"
            )
        reporter.file_done(result)


def _exit_code(proc: Any) -> int | None:
    """A worker's exit code, once its pipe ended (it may take a moment to be reaped)."""
    proc.join(5)
    return cast("int | None", proc.exitcode)


def _stop(procs: Sequence[Any], readers: Sequence[Connection]) -> None:
    """SIGTERM every live worker (each rolls back its batches in flight and records where it
    stopped), then kill those still alive after :data:`STOP_SECONDS`. Their last events are
    read meanwhile and dropped: a worker cannot end while what it sent fills the pipe."""
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
        for reader in wait(list(readers), 0):
            with contextlib.suppress(EOFError, OSError):
                cast("Connection", reader).recv()
        for proc in procs:
            proc.join(0.05)
    for proc in procs:
        if proc.is_alive():
            log.warning("%s did not stop within %g s: killed", proc.name, STOP_SECONDS)
            proc.kill()


def _join(procs: Sequence[Any]) -> None:
    for proc in procs:
        proc.join(STOP_SECONDS)
        if proc.is_alive():
            proc.kill()
            proc.join(5)


class _Forward:
    """A worker's reporter: its events go to the run's process through the worker's pipe,
    those of each :data:`FLUSH_SECONDS` in one message (a thread sends them; a pipe's
    messages must not interleave). The worker's last message, its report or its error, is
    sent at once, after what it still held."""

    def __init__(self, events: Connection, index: int) -> None:
        self._events = events
        self._index = index
        self._lock = threading.Lock()
        self._held: list[tuple[str, int, Any]] = []
        self._closed = threading.Event()
        self._sender = threading.Thread(
            target=self._send_every, name="pgingest worker events", daemon=True
        )
        self._sender.start()

    def __getattr__(self, kind: str) -> Any:
        def hold(value: Any) -> None:
            with self._lock:
                self._held.append((kind, self._index, value))

        return hold

    def _send_every(self) -> None:
        while not self._closed.wait(FLUSH_SECONDS):
            self._send()

    def _send(self, last: tuple[str, int, Any] | None = None) -> None:
        with self._lock:
            held, self._held = self._held, []
            if last is not None:
                held.append(last)
            if held:
                self._events.send(held)

    def put(self, item: tuple[str, int, Any]) -> None:
        """Send the worker's last message (its report or error) with what it still held."""
        self._closed.set()
        self._sender.join(STOP_SECONDS)
        self._send(item)


def _worker(
    paths: list[str],
    settings: ConnectionSettings,
    options: LoadOptions,
    index: int,
    count: int,
    start: Connection,
    events: Connection,
    parent: int,
) -> None:
    """A worker process: import the loader, wait for the run's start (its pipe ends instead
    when the run did not start: nothing to do), load as part of the run, send the report (or
    the error) back. SIGINT and SIGTERM stop it as they stop a load (batches in flight rolled
    back); it dies with the run's process (Linux: the parent-death signal)."""
    if sys.platform == "linux":
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the run's process died before this one started
        return
    # Imported while the run's process records the run: the run's process, which only
    # starts the workers and passes their events on, never pays for it (0.1 s of CPU).
    from pgingest.pipeline import run

    try:
        run_id, plan = start.recv()
    except (EOFError, OSError):
        return
    finally:
        start.close()
    read_ahead = None
    if plan is not None:
        from pgingest.pipeline.readahead import ReadAhead

        read_ahead = ReadAhead(*plan)
    forward = _Forward(events, index)
    try:
        joined = JoinedRun(run_id, index, count)
        report = run_loop(_work(run, paths, settings, options, read_ahead, joined, forward))
    except BaseException as exc:  # the run's error (its files' are in its report)
        forward.put(("error", index, _portable(exc)))
        return
    forward.put(("report", index, report))


async def _work(
    run: Any,
    paths: list[str],
    settings: ConnectionSettings,
    options: LoadOptions,
    read_ahead: Any,
    joined: JoinedRun,
    reporter: Any,
) -> LoadReport:
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(
        run.load_async(paths, settings, options, reporter, read_ahead, joined)
    )
    for signum in (signal.SIGINT, signal.SIGTERM):  # (SIGINT ignored till now: _interrupts_held)
        loop.add_signal_handler(signum, task.cancel)
    return cast("LoadReport", await task)


def _portable(exc: BaseException) -> BaseException:
    """``exc`` as it can cross to the run's process (pickled): itself when it can, else a
    :class:`PgIngestError` with its message."""
    if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt):
        return PgIngestError("stopped")
    try:
        pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own object, in our own process
    except Exception:
        return PgIngestError(str(exc))
    return exc

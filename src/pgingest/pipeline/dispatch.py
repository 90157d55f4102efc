"""The run's file tasks, dispatched: at most ``--concurrency`` files at once, each after the
files it waits for (shared keys), a worker of a shared run its own share first; the folder
stops of ``--sectional-commit`` and the pauses of ``--pause-every``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from pgingest.manifest import store
from pgingest.model import FileResult, LoadReport
from pgingest.pipeline.context import FileTask, RunContext
from pgingest.pipeline.keyed.modes import Modes
from pgingest.pipeline.task import run_task
from pgingest.sources.inputs import absolute


async def run_tasks(
    ctx: RunContext,
    modes: Modes,
    tasks: Sequence[FileTask],
    refused: dict[int, FileResult],
    files_at_once: int,
    results: list[FileResult | None],
    report: LoadReport,
    first: int = 0,
    share: int | None = None,
) -> None:
    """Run the tasks, at most ``files_at_once`` at a time, each after the files it waits for
    (shared keys), starting at task ``first`` (then on round to those before it);
    ``--sectional-commit`` stops a folder at its first failure, ``--pause-every`` pauses
    between files. Results go to ``results`` as they come.

    ``share``: a worker of a shared run loads its ``share`` of tasks from ``first`` first;
    then of the others only those the run has not loaded yet (one query, not a claim each:
    the others' workers loaded most of them meanwhile), to take over a lost worker's."""
    limit = asyncio.Semaphore(files_at_once)
    own = set(range(first, first + share)) if share is not None else None
    own_left = [len(own or ())]
    own_done = asyncio.Event()
    if not own_left[0]:
        own_done.set()
    loaded: list[set[str]] = []
    loaded_lock = asyncio.Lock()

    async def loaded_by_the_run() -> set[str]:
        async with loaded_lock:
            if not loaded:
                async with ctx.pool.acquire() as conn:
                    loaded.append(await store.loaded_paths(conn, ctx.run_id))
        return loaded[0]

    finished_files = [asyncio.Event() for _ in tasks]
    stopped_folders: dict[str, str] = {}
    finished = [0]
    pause_lock = asyncio.Lock()

    def done(index: int, result: FileResult) -> None:
        results[index] = result
        ctx.reporter.file_done(result)

    async def one(index: int, task: FileTask) -> None:
        try:
            if own is not None and index not in own:
                await own_done.wait()
                if absolute(task.path) in await loaded_by_the_run():
                    return None  # another worker's: its result is the run's
            if index in refused:
                return done(index, refused[index])
            # Wait outside the semaphore: a waiting file holds no slot.
            for earlier in sorted(modes.waits_for(index)):
                await finished_files[earlier].wait()
            blocked = modes.blocked(index)
            if blocked is not None:
                return done(index, blocked)
            async with limit:
                await one_file(index, task)
        finally:
            finished_files[index].set()
            if own is not None and index in own:
                own_left[0] -= 1
                if not own_left[0]:
                    own_done.set()

    async def one_file(index: int, task: FileTask) -> None:
        folder = absolute(task.path).rsplit("/", 1)[0]
        if task.options.sectional_commit and folder in stopped_folders:
            result = FileResult(task.path, "", "skipped")
            result.message = f"not started: {stopped_folders[folder]} failed first"
            return done(index, result)
        result = await run_task(ctx, modes, task, report)
        results[index] = result
        if result.status == "failed" and task.options.sectional_commit:
            stopped_folders.setdefault(folder, task.path)
        finished[0] += 1
        every, seconds = task.options.pause_every, task.options.pause_seconds
        if every and finished[0] % every == 0 and finished[0] < len(tasks):
            async with pause_lock:
                ctx.reporter.message(f"pausing {seconds:g} s after {finished[0]} file(s)")
                await asyncio.sleep(seconds)

    async with asyncio.TaskGroup() as group:
        for index in [*range(first, len(tasks)), *range(first)]:
            group.create_task(one(index, tasks[index]))

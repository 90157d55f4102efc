"""Real ``pgingest`` processes for the tests: one run at a time (optionally killed at a crash
point), or several released together by a barrier file so that they really race."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

# A process imports everything a load needs, says it is ready, then waits for the go file:
# the processes of a race start their commands within milliseconds of each other.
_RACER = """
import os, sys, time
import pgingest.pipeline.run  # noqa: F401  (the load's imports, before the start line)
from pgingest.cli.app import main
ready, go = sys.argv[1], sys.argv[2]
open(ready, "w").close()
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.002)
main(sys.argv[3:])
"""


def environment(crash: str | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test process's environment (or ``base``), with ``PGINGEST_CRASH_AT`` set only when
    asked."""
    env = dict(os.environ if base is None else base)
    env.pop("PGINGEST_CRASH_AT", None)
    if crash is not None:
        env["PGINGEST_CRASH_AT"] = crash
    return env


def pgingest(
    *args: str,
    crash: str | None = None,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``pgingest ARGS`` to its end (or its crash point) and return what it did; ``env``:
    the whole environment to run it in (default: the test process's)."""
    return subprocess.run(
        [sys.executable, "-m", "pgingest", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(crash, env),
        check=False,
    )


@contextlib.contextmanager
def running(*args: str, crash: str | None = None) -> Iterator[subprocess.Popen[str]]:
    """``pgingest ARGS`` in the background while the block runs (killed if it is still
    running when the block ends; ``finish`` waits for its end)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgingest", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(crash),
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    """Wait for a process of :func:`running`: ``(returncode, stdout, stderr)``."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def race(commands: list[list[str]], folder: Path, timeout: float = 120) -> list[Any]:
    """Run each command (``pgingest`` arguments) in its own process, all released at once.

    Returns:
        One ``(returncode, stdout, stderr)`` per command, in order.
    """
    go = folder / "go"
    procs = []
    for n, args in enumerate(commands):
        ready = folder / f"ready{n}"
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _RACER, str(ready), str(go), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment(),
            )
        )
    try:
        deadline = time.monotonic() + 60
        while not all((folder / f"ready{n}").exists() for n in range(len(commands))):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise AssertionError("a racing process did not get ready")
            time.sleep(0.01)
        go.touch()
        outputs = [p.communicate(timeout=timeout) for p in procs]
        return [(p.returncode, *out) for p, out in zip(procs, outputs, strict=True)]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


def wait_for(condition: Any, timeout: float = 30, what: str = "a condition") -> None:
    """Poll ``condition()`` until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)

"""A pseudo-terminal of 120 columns drawn by a terminal emulator (pyte): what a person sees
of a command, not the escape codes it wrote."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte

COLUMNS, LINES = 120, 40
BOUND_SECONDS = 180


def screen_of(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).rstrip()


def screen_lines(screen: str) -> list[str]:
    """The screen's non-blank lines."""
    return [line for line in screen.splitlines() if line.strip()]


def squeezed(text: str) -> str:
    """``text`` without whitespace: a line the terminal wrapped compares equal to the line
    as printed (the screen keeps no mark of where it wrapped, nor a space at the edge)."""
    return "".join(text.split())


def run_on_terminal(*args: str, cwd: Path, lines: int = LINES) -> tuple[int, list[str], str]:
    """Run ``pgingest ARGS`` on a pty of ``lines`` lines; return its exit code, the screens
    seen while it ran (one per read of its output) and the last screen."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", lines, COLUMNS, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": str(COLUMNS), "LINES": str(lines)}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pgingest", *args],
        stdout=follower,
        stderr=follower,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=cwd,
    )
    os.close(follower)
    screen = pyte.Screen(COLUMNS, lines)
    stream = pyte.ByteStream(screen)
    seen: list[str] = []
    deadline = time.monotonic() + BOUND_SECONDS
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            stream.feed(data)
            seen.append(screen_of(screen.display))
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        os.close(leader)
    return code, seen, screen_of(screen.display)

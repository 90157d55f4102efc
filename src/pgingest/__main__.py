"""``python -m pgingest`` and the ``pgingest`` command: the command line, its modules imported
under a guard, so that a Ctrl-C while they load (the first tenth of a second, before anything
is read or written) ends in one line and exit code 130, as it does once a command runs, and
not in a Python traceback. (Here, not in ``pgingest.cli``: importing that package would come
before the guard.)"""

from __future__ import annotations

import sys


def run() -> None:
    """Import the command line, then run it (:func:`pgingest.cli.app.run`)."""
    try:
        from pgingest.cli.app import run as run_command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    run_command()


if __name__ == "__main__":
    # (A ``--workers`` process, which re-imports this module under another name, loads files
    # and needs none of the command line's modules: nothing is imported at the top.)
    run()

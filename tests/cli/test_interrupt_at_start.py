"""A Ctrl-C at any moment of a command's start ends in one line and exit code 130, never in a
traceback; and a run it cut short is finished by running the command again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from processes import environment, pgingest

# From just after the interpreter's first line of Python (the harness's own few statements
# come first), through the command line's imports (about a tenth of a second: a traceback
# there before the fix), into the load.
DELAYS = [0.01, 0.02, 0.035, 0.05, 0.07, 0.09, 0.12, 0.16, 0.22, 0.3, 0.45]

# ``python -m pgingest ARGS``, once the interpreter is up and says so (a Ctrl-C inside the
# interpreter's own start-up is Python's, before any code of pgingest's could run).
_STARTED = (
    "import runpy, sys; sys.stdout.write('up\\n'); sys.stdout.flush();"
    " sys.argv = ['pgingest', *sys.argv[1:]]; runpy.run_module('pgingest', run_name='__main__')"
)


@pytest.mark.parametrize("delay", DELAYS)
def test_ctrl_c_while_the_command_starts_is_one_line(db, tmp_path, delay):
    path = tmp_path / "t.csv"
    path.write_text("id,v\n" + "".join(f"{i},v{i}\n" for i in range(200)))
    args = ["load", str(path), "--dsn", db.dsn, "--schema", db.schema, "--table", "t"]
    proc = subprocess.Popen(
        [sys.executable, "-c", _STARTED, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "up\n"
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "Traceback" not in err, err
    assert "KeyboardInterrupt" not in err, err
    # 0: done before the signal; 130: interrupted, said in a line.
    assert proc.returncode in (0, 130), (proc.returncode, out, err)
    if proc.returncode == 130:
        assert err.strip().splitlines()[-1].startswith("interrupted"), err
    again = pgingest(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert db.count("t") == 200

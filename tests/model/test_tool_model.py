"""The model-based test of the whole tool (issue 12): :class:`tool_model.ToolMachine` drives
real ``pgingest`` processes against the model of DESIGN.md's semantics.

``PGINGEST_MODEL_PROFILE`` picks the profile: ``ci`` (the default: about 300 steps, a few
minutes per server, derandomized so that every run replays the same examples; kills only at
crash points) or ``soak`` (3,000 steps, run by hand; also SIGKILLs at random moments).
``PGINGEST_MODEL_EXAMPLES`` overrides the number of examples; ``PGINGEST_MODEL_SHRINK=1``
shrinks a failure (slow: every replay runs real processes). ``PGINGEST_MODEL_FAILURES=FILE``
appends every failing step's error and the example's steps so far to FILE as it happens: a
soak failure after a SIGKILL at a random moment may not replay, and Hypothesis then reports
only that (``FlakyStrategyDefinition``), the failure itself lost."""

from __future__ import annotations

import functools
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, settings
from hypothesis.stateful import run_state_machine_as_test
from tool_model import Settings, ToolMachine

PROFILES = {
    "ci": {"max_examples": 25, "stateful_step_count": 12},
    "soak": {"max_examples": 120, "stateful_step_count": 25},
}
PROFILE = os.environ.get("PGINGEST_MODEL_PROFILE", "ci")
if os.environ.get("PGINGEST_MODEL_EXAMPLES"):
    PROFILES[PROFILE]["max_examples"] = int(os.environ["PGINGEST_MODEL_EXAMPLES"])


def _failures_written_to(path: str) -> None:
    """Wrap every rule and invariant of the machine: a step that fails appends its error and
    the example's steps so far to ``path``, then fails as it would have."""

    def written(step: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(step)  # (keeps Hypothesis's marks: the rule, its precondition)
        def run(machine: ToolMachine, *args: Any, **kwargs: Any) -> Any:
            try:
                return step(machine, *args, **kwargs)
            except BaseException as exc:
                with open(path, "a", encoding="utf-8") as out:
                    out.write(f"=== {step.__name__}: {exc!r}\n{traceback.format_exc()}")
                    out.write("steps:\n" + "\n".join(machine.log) + "\n")
                raise

        run.writes_failures = True  # type: ignore[attr-defined]
        return run

    for name, step in list(vars(ToolMachine).items()):
        marked = callable(step) and any(k.startswith("hypothesis_stateful") for k in vars(step))
        if marked and not getattr(step, "writes_failures", False):
            setattr(ToolMachine, name, written(step))


if os.environ.get("PGINGEST_MODEL_FAILURES"):
    _failures_written_to(os.environ["PGINGEST_MODEL_FAILURES"])


def test_the_tool_behaves_as_its_model(pg_dsn: str, tmp_path: Path) -> None:
    Settings.dsn = pg_dsn
    Settings.tmp = tmp_path
    Settings.steps = 0
    Settings.timed_kills = PROFILE == "soak"
    started = time.monotonic()
    chosen = PROFILES[PROFILE]
    run_state_machine_as_test(
        ToolMachine,
        settings=settings(
            **chosen,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=PROFILE == "ci",
            # Shrinking replays real processes: minutes; asked for by PGINGEST_MODEL_SHRINK=1.
            phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target]
            + ([Phase.shrink] if os.environ.get("PGINGEST_MODEL_SHRINK") == "1" else []),
            database=None if PROFILE == "ci" else settings.default.database,
        ),
    )
    print(f"model profile {PROFILE}: {Settings.steps} steps in {time.monotonic() - started:.0f} s")

"""The progress bars' arithmetic, whatever the events: a file's bar never passes its total,
the run's bar never goes back nor past the bytes found, and it is full when every file is
done (loaded, skipped or failed)."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from pgingest.cli.progress_bars import BarReporter, amount
from pgingest.model import FileResult
from pgingest.observability.progress import BatchDone, FilesFound, FileStarted

files = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=10**9),  # bytes on disk
        st.one_of(st.none(), st.integers(min_value=1, max_value=10**7)),  # rows known
        st.lists(  # batches: rows and input bytes (decoded bytes may pass the file's size)
            st.tuples(st.integers(0, 10**6), st.integers(0, 10**9)), max_size=8
        ),
        st.sampled_from(["loaded", "skipped", "failed"]),
    ),
    min_size=1,
    max_size=6,
)


def tasks(reporter: BarReporter) -> dict[str, tuple[float, float | None]]:
    return {t.description: (t.completed, t.total) for t in reporter.progress.tasks}


@settings(max_examples=200, deadline=None)
@given(files, st.randoms(use_true_random=False))
def test_bars_add_up(found, rng):
    reporter = BarReporter(Console(file=io.StringIO(), width=120))
    paths = [f"/data/f{i}.csv" for i in range(len(found))]
    sizes = tuple((p, size) for p, (size, *_rest) in zip(paths, found, strict=True))
    reporter.files_found(FilesFound(len(found), sum(n for _, n in sizes), sizes))
    total = tasks(reporter)["all files"][1]
    assert total == max(1, sum(n for _, n in sizes))
    events = []
    for path, (size, rows, batches, status) in zip(paths, found, strict=True):
        steps = [("start", path, size, rows)] if status != "skipped" else []
        steps += [("batch", path, r, b) for r, b in batches] if status != "skipped" else []
        steps.append(("done", path, status, sum(r for r, _ in batches)))
        events.append(steps)
    before = 0.0
    while any(events):  # the files' events interleaved, each file's in its order
        steps = rng.choice([e for e in events if e])
        kind, path, a, b = steps.pop(0)
        if kind == "start":
            reporter.file_started(FileStarted(path, "s.t", "csv", a, b))
        elif kind == "batch":
            reporter.batch_done(BatchDone(path, "s.t", "csv", 0, a, b, 0.01, 1))
        else:
            reporter.file_done(FileResult(path, "s.t", a, rows=b))
        shown = tasks(reporter)
        for name, (completed, task_total) in shown.items():
            if task_total is not None:
                assert completed <= task_total, name
        now = shown["all files"][0]
        assert now >= before - 1e-6
        before = now
    assert tasks(reporter)["all files"][0] == total
    assert list(tasks(reporter)) == ["all files"]  # every file's bar is gone
    reporter.close()


def test_amount_in_one_unit():
    assert amount(4_700_000, 46_600_000, "bytes") == "4.7/46.6 MB"
    assert amount(250_000, 1_000_000, "rows") == "250,000/1,000,000 rows"
    assert amount(512, 900, "bytes") == "512/900 bytes"
    assert amount(3, None, "rows") == "3/? rows"

"""``--workers N -j J``: the run's J files at once shared among its workers, each at least one,
none more than one above another; everything else as one process's options."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from pgingest.config import LoadOptions
from pgingest.pipeline.workers import worker_options


@given(st.integers(min_value=1, max_value=64), st.integers(min_value=2, max_value=16))
def test_the_run_s_concurrency_is_shared_among_its_workers(concurrency, workers):
    options = LoadOptions(concurrency=concurrency, workers=workers, batch_size=7)
    shares = [worker_options(options, i).concurrency for i in range(workers)]
    assert sum(shares) == max(concurrency, workers)
    assert min(shares) >= 1
    assert max(shares) - min(shares) <= 1
    for i in range(workers):
        assert worker_options(options, i) == replace(options, workers=1, concurrency=shares[i])

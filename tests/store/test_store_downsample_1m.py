"""Downsampling a 1,000,000-point series with a single spike (and a single dip) keeps the
global max and min exactly, on both backends, reading rollups instead of the points."""

from __future__ import annotations

import math
import time

import pytest
from sqlalchemy import Engine

import db

N_POINTS = 1_000_000
SPIKE_STEP, DIP_STEP = 654_321, 123_457


@pytest.mark.slow
def test_downsampling_a_million_points_keeps_the_single_spike(engine: Engine) -> None:
    run_id = db.create_run(engine, {"name": "spike"})
    values = [(s, math.sin(s / 5000.0) * 0.1) for s in range(1, N_POINTS + 1)]
    values[SPIKE_STEP - 1] = (SPIKE_STEP, 1e6)
    values[DIP_STEP - 1] = (DIP_STEP, -1e6)
    db.write_points(engine, run_id, {"train/loss": values})

    t0 = time.perf_counter()
    d = db.downsampled_series(engine, run_id, "train/loss", max_buckets=2000)
    elapsed = time.perf_counter() - t0
    assert 1000 <= len(d.steps) <= 2000
    assert d.source_width > 1  # read from rollups, not from the million points
    assert max(d.maxs) == 1e6 and min(d.mins) == -1e6
    spike = d.maxs.index(1e6)
    assert d.steps[spike] <= SPIKE_STEP <= d.last_steps[spike]
    dip = d.mins.index(-1e6)
    assert d.steps[dip] <= DIP_STEP <= d.last_steps[dip]
    assert sum(d.counts) == N_POINTS and d.last_steps[-1] == N_POINTS
    assert sorted(v for i, v in enumerate(d.maxs) if i != spike)[-1] <= 0.1  # only one bucket spikes
    assert elapsed < 5.0  # generous: the benchmark measures the real figure

    for max_buckets in (10, 320):
        small = db.downsampled_series(engine, run_id, "train/loss", max_buckets=max_buckets)
        assert len(small.steps) <= max_buckets and max(small.maxs) == 1e6 and min(small.mins) == -1e6

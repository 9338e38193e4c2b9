"""bench/step_overhead.py runs every strategy of issue 10 (mla and reconboost with the shared
head they need), and MMPareto's step costs less than 1 + M joint steps: its 1 + M gradient
evaluations are restricted to the encoders."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("step_overhead", ROOT / "bench" / "step_overhead.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_new_strategies_run_and_mmpareto_stays_below_one_plus_m_backward_passes() -> None:
    torch.set_num_threads(1)
    bench = _bench()
    names = ["mmpareto", "mla", "reconboost", "gblending", "relearn"]
    res = bench.run_suite("mlp", "cpu", "off", rounds=3, steps=8, only=names)
    assert not res["skipped"], res["skipped"]
    assert set(names) <= set(res["ratio_to_joint"])
    ratio, bound = bench.mmpareto_within_bound(res)
    assert bound == 3.0
    assert ratio < bound, res["ratio_to_joint"]["mmpareto"]

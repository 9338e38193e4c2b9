"""Effect of issue 10's methods on the synthetic set (STRATEGIES.md section 4), 3 seeds,
means against joint training on the same seeds (examples/synthetic-joint.yaml: 20 epochs):
mmpareto, mla and reconboost raise the weak (visual) modality's uni-modal test accuracy;
gblending and relearn do not lower fused test accuracy beyond seed noise.

Settings that differ from the defaults, and why: gblending `super_epoch: 5` (the default 10
gives one estimate in 20 epochs, made from the initial model, which starves the fused head:
fused 0.857 against joint 0.911; the advisory says so); relearn `every: 7` (the default 20
never fires in a 20-epoch run; 7 re-initialises after epochs 6 and 13)."""

from __future__ import annotations

import functools
import statistics

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer

SEEDS = (0, 1, 2)
FUSED_TOLERANCE = 0.01  # seed-to-seed spread of joint's fused test accuracy here (as tests/strategies/test_effect_ogm_ge_opm.py)
WEAK_GAIN = 0.02


@functools.cache
def _means(strategy: str, *overrides: str) -> tuple[float, float]:
    """(fused, visual) test accuracy, means over SEEDS."""
    torch.set_num_threads(1)
    fused, weak = [], []
    for seed in SEEDS:
        cfg = load_config(
            "examples/synthetic-joint.yaml",
            [f"seed={seed}", f"strategies=[{strategy}]", "train.threads=1", *overrides],
        )
        test = Trainer(cfg).fit()["test"]
        fused.append(test["acc"])
        weak.append(test["acc_per_modality"]["visual"])
    return statistics.mean(fused), statistics.mean(weak)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "overrides"),
    [("mmpareto", ()), ("mla", ("model.head=shared",)), ("reconboost", ("model.head=shared",))],
)
def test_weak_modality_rises_over_joint(strategy: str, overrides: tuple[str, ...]) -> None:
    joint, method = _means("joint"), _means(strategy, *overrides)
    report = {"joint (fused, visual)": joint, strategy: method}
    print(report)
    assert method[1] >= joint[1] + WEAK_GAIN, report


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "overrides"),
    [("gblending", ("strategies.0.super_epoch=5",)), ("relearn", ("strategies.0.every=7",))],
)
def test_fused_accuracy_not_lower_than_joint(strategy: str, overrides: tuple[str, ...]) -> None:
    joint, method = _means("joint"), _means(strategy, *overrides)
    report = {"joint (fused, visual)": joint, strategy: method}
    print(report)
    assert method[0] >= joint[0] - FUSED_TOLERANCE, report

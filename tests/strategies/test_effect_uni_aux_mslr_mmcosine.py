"""Effect on the synthetic set, 3 seeds (STRATEGIES.md section 4): uni_aux raises the weak
(visual) modality's uni-modal test accuracy over joint training; mmcosine and mslr do not
lower the fused test accuracy beyond seed noise.

A smaller version of examples/synthetic-joint.yaml so that the 12 runs take well under a
minute on one CPU thread: 2000 samples (1400 train / 300 val / 300 test), 12 epochs, SGD
lr 0.02 (0.01 in the example; doubled because the runs are shorter). In this setting joint
training is past the point where audio dominates (audio 0.69, visual 0.41 uni-modal test
accuracy, fused 0.91; means over seeds 0-2).

Tolerance for "not lower": 0.015 on the 3-seed mean of the fused test accuracy. One test
sample is 0.0033; across seeds the fused accuracy of a method moves by up to ~0.01, and the
binomial standard error of one run's accuracy of 0.9 on 300 samples is 0.017 (the seeds
share the test set, so the mean does not average that away). A method that really costs
fused accuracy loses more than that: halving both encoders' learning rates (mslr with
start_mults [0.5, 0.5] and window 1, i.e. constant) gives 0.877 against joint's 0.908."""

from __future__ import annotations

import statistics

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer

SEEDS = (0, 1, 2)
FUSED_TOLERANCE = 0.015
WEAK_GAIN = 0.05
SETTING = ["dataset.params.num_samples=2000", "train.epochs=12", "optim.lr=0.02", "train.threads=1"]


def _run(strategy: str, seed: int) -> dict:
    cfg = load_config("examples/synthetic-joint.yaml", [f"seed={seed}", f"strategies=[{strategy}]", *SETTING])
    return Trainer(cfg).fit()["test"]


@pytest.mark.slow
def test_uni_aux_helps_the_weak_modality_and_mmcosine_mslr_keep_fused_accuracy() -> None:
    torch.set_num_threads(1)
    names = ("joint", "uni_aux", "mslr", "mmcosine")
    # mmcosine scored by its cosine head: the authors' default (eval_logits: linear, issue 21)
    # scores W h + b with the bias the cosine loss never trains: 0.857 here vs joint's 0.908
    spec = {"mmcosine": "{name: mmcosine, eval_logits: cosine}"}
    results = {s: [_run(spec.get(s, s), seed) for seed in SEEDS] for s in names}
    fused = {s: statistics.mean(r["acc"] for r in rs) for s, rs in results.items()}
    weak = {s: statistics.mean(r["acc_per_modality"]["visual"] for r in rs) for s, rs in results.items()}
    strong = {s: statistics.mean(r["acc_per_modality"]["audio"] for r in rs) for s, rs in results.items()}
    report = {s: (round(fused[s], 3), round(strong[s], 3), round(weak[s], 3)) for s in names}
    print("fused, audio, visual test accuracy (means over 3 seeds):", report)
    assert strong["joint"] > weak["joint"] + 0.1, report  # visual really is the weak modality
    assert weak["uni_aux"] >= weak["joint"] + WEAK_GAIN, report
    for s in ("mslr", "mmcosine"):
        assert fused[s] >= fused["joint"] - FUSED_TOLERANCE, (s, report)

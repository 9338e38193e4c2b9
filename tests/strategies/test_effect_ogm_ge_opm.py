"""The science works: on the synthetic set, over 3 seeds, OGM-GE and OPM raise the weak
modality's test accuracy without lowering fused test accuracy (means)."""

from __future__ import annotations

import statistics

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer

SEEDS = (0, 1, 2)
# Seed-to-seed spread of the fused test accuracy here is about one point; "not lower" is
# checked with that tolerance, the weak-modality gain must clear it by a margin.
FUSED_TOLERANCE = 0.01
WEAK_GAIN = 0.02


def _run(strategy: str, seed: int) -> dict:
    cfg = load_config(
        "examples/synthetic-joint.yaml",
        [f"seed={seed}", f"strategies=[{strategy}]", "train.threads=1"],
    )
    return Trainer(cfg).fit()["test"]


@pytest.mark.slow
def test_ogm_ge_and_opm_help_the_weak_modality() -> None:
    torch.set_num_threads(1)
    results = {s: [_run(s, seed) for seed in SEEDS] for s in ("joint", "ogm_ge", "opm")}
    fused = {s: statistics.mean(r["acc"] for r in rs) for s, rs in results.items()}
    weak = {s: statistics.mean(r["acc_per_modality"]["visual"] for r in rs) for s, rs in results.items()}
    strong = {s: statistics.mean(r["acc_per_modality"]["audio"] for r in rs) for s, rs in results.items()}
    report = {s: (round(fused[s], 3), round(strong[s], 3), round(weak[s], 3)) for s in results}
    print("fused, audio, visual test accuracy (means over 3 seeds):", report)
    assert strong["joint"] > weak["joint"] + 0.1, report  # visual really is the weak modality
    for s in ("ogm_ge", "opm"):
        assert weak[s] >= weak["joint"] + WEAK_GAIN, (s, report)
        assert fused[s] >= fused["joint"] - FUSED_TOLERANCE, (s, report)

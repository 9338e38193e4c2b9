"""End to end: joint training raises a dominance or under-optimised alert naming the weak
modality, and OPM on the same data raises fewer alerts (3 seeds), on the synthetic set
(visual is the weak modality) and on the bundled mfeat demo (zer is)."""

from __future__ import annotations

import collections

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer

SEEDS = (0, 1, 2)
IMBALANCE = ("dominance", "under_optimised")


def _alerts(example: str, strategy: str, seed: int) -> list[dict]:
    cfg = load_config(example, [f"seed={seed}", f"strategies=[{strategy}]", "train.threads=1"])
    return Trainer(cfg).fit()["alerts"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("example", "weak"),
    [("examples/synthetic-joint.yaml", "visual"), ("examples/mfeat-imbalance.yaml", "zer")],
)
def test_joint_names_the_weak_modality_and_opm_raises_fewer_alerts(example: str, weak: str) -> None:
    torch.set_num_threads(1)
    runs = {s: [_alerts(example, s, seed) for seed in SEEDS] for s in ("joint", "opm")}
    counts = {
        s: [
            dict(collections.Counter(f"{a['detector']}:{a['modality']}" for a in alerts))
            for alerts in per_seed
        ]
        for s, per_seed in runs.items()
    }
    print(example, "alerts per seed:", counts)
    for alerts in runs["joint"]:
        assert any(a["detector"] in IMBALANCE and a["modality"] == weak for a in alerts), counts
        first = next(a for a in alerts if a["detector"] in IMBALANCE)
        assert first["modality"] == weak and first["advice"]["strategies"], counts
    total = {s: sum(len(a) for a in per_seed) for s, per_seed in runs.items()}
    assert total["opm"] < total["joint"], counts

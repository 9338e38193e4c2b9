"""An own-loop run streams the native run's per-step keys (CONTRACT.md), and log_step on the
native model's own tensors gives the native step's numbers: the same code computes both."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import Engine

import bml_core
from bml_core.config import load_config
from bml_core.imbalance import UnimodalProbe, discrepancy_ratio
from bml_core.sinks import MetricSink
from bml_core.trainer import Trainer


class Capture(MetricSink):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.steps.append(dict(metrics))


def _native() -> tuple[Trainer, Capture]:
    cfg = load_config(
        {
            "name": "native",
            "dataset": {"name": "synthetic", "params": {"num_samples": 300}},
            "train": {"epochs": 1, "batch_size": 64, "device": "cpu"},
        }
    )
    cap = Capture()
    trainer = Trainer(cfg, sinks=[cap], run_dir=None)
    trainer.fit()
    return trainer, cap


def test_own_loop_keys_are_the_native_keys(engine: Engine) -> None:
    trainer, cap = _native()
    native_keys = set(cap.steps[-1])
    mods = trainer.modalities
    model = trainer.model
    x, y = next(iter(trainer.iter_batches("train")))
    with torch.no_grad():
        feats = model.encode(x)
        logits = model.fusion(feats)
    with bml_core.init(name="own", modalities=mods, num_classes=trainer.num_classes, store=engine) as run:
        u = model.fusion.unimodal_logits(feats)
        run.log_step(logits=logits, unimodal_logits=u, y=y)
        got = run.log_step(logits=logits, unimodal_logits=u, y=y)
    # what only a model / optimiser gives (gradient norms, lr) comes from the Balancer
    assert set(got) == native_keys - {f"grad/norm/{m}" for m in mods} - {"lr"}
    probe = UnimodalProbe(u, y)
    ratio = discrepancy_ratio(probe.scores).tolist()
    for i, m in enumerate(mods):
        assert got[f"imbalance/ratio/{m}"] == pytest.approx(ratio[i], rel=1e-6)
        assert got[f"imbalance/score/{m}"] == pytest.approx(float(probe.scores[i]) / y.shape[0], rel=1e-6)
        assert got[f"train/acc/{m}"] == pytest.approx(float(probe.accuracy[i]))
        assert got[f"train/loss/{m}"] == pytest.approx(float(probe.loss[i]), rel=1e-6)

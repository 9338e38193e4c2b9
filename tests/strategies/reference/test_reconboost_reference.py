"""Ours against the authors' ReconBoost boosting loss (reconboost_official.py, from
huacong/ReconBoost@14ab57a train.py L336-340): the phase-1 loss of a step and the gradients
it leaves agree to 1e-6. The old code (no 1/C factor) is C times larger and fails."""

from __future__ import annotations

import copy

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.strategies.reference.reconboost_official import boosting_loss
from tests.strategies.test_reconboost import _raw


def test_phase_one_loss_and_gradients_match_the_official_code() -> None:
    trainer = Trainer(load_config(_raw()))
    rb = trainer.strategies[0]
    rb.on_fit_start(trainer.context(0))
    rb.on_epoch_start(trainer.context(0))  # stage 0, phase 1: audio
    ref = copy.deepcopy(trainer.model)
    beta = float(ref.extras["reconboost_beta"].value.detach())
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    grads: dict[str, torch.Tensor] = {}
    step = trainer.optimizer_step

    def record() -> None:
        grads.update({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})
        step()

    trainer.optimizer_step = record  # type: ignore[method-assign]
    metrics = trainer.train_step(x, y, epoch=0)
    assert metrics is not None and metrics["reconboost/phase"] == 1
    ref.train()
    ref.encoders["visual"].eval()
    with torch.no_grad():
        join = beta * ref.fusion.fc(ref.encoders["visual"](x["visual"]))
    out_obj = ref.fusion.fc(ref.encoders["audio"](x["audio"]))
    loss = boosting_loss(out_obj, join, y, w1=5.0, w2=1.0)
    assert metrics["train/loss"] == pytest.approx(float(loss.detach()), abs=1e-6)
    loss.backward()
    want = {n: p.grad for n, p in ref.named_parameters() if p.grad is not None}
    assert set(want) <= set(grads)
    for n, g in want.items():
        assert torch.allclose(grads[n], g, atol=1e-6), n

"""Ours against the authors' MLA projection (mla_official.py, from Cecile-hi/Multimodal-Learning-
with-Alternating-Unimodal-Adaptation@ab6c184 utils/utils.py L24-41, main.py L432-442): the
same model, batches and plain SGD; P, the weights after each batch and ||P||_F = 1 agree to
1e-6. Then 1,000 updates: with the authors' rescale the projected head gradient keeps its
size; without it (our old code) P collapses and the gradient with it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import load_config
from bml_core.strategies.mla.impl import (
    initial_projection,
    project_gradient,
    projection_alpha,
    update_projection,
)
from bml_core.trainer import Trainer
from tests.strategies.reference.mla_official import GSPluginReference
from tests.strategies.strategy_helpers import small


def _trainer() -> Trainer:
    raw = small(
        strategies=[{"name": "mla"}],
        train={"epochs": 1, "batch_size": 16, "threads": 1},
        optim={"lr": 0.1, "momentum": 0.0, "weight_decay": 0.0, "scheduler": {"name": "none"}},
    )
    raw["model"] = {**raw["model"], "head": "shared"}
    return Trainer(load_config(raw))


def test_mla_steps_match_the_official_gsplugin() -> None:
    trainer = _trainer()
    mla = trainer.strategies[0]
    mla.on_fit_start(trainer.context(0))
    model = trainer.model
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.1)
    plugin = GSPluginReference(mla.state["P"])  # same start (see FIDELITY.md: official I)
    n = trainer.steps_per_epoch
    for b in range(3):
        x, y = trainer.bundle.train.get_batch(torch.arange(b * 16, b * 16 + 16))  # type: ignore[attr-defined]
        trainer.batch_in_epoch = b
        assert trainer.train_step(x, y, 0) is not None
        ref.train()
        for m in ("audio", "visual"):
            h = ref.encoders[m](x[m])
            F.cross_entropy(ref.fusion.fc(h), y).backward()
            plugin.before_update(ref.fusion.fc.weight, h.detach(), b, n)
            opt.step()
            opt.zero_grad()
        assert torch.allclose(mla.state["P"], plugin.Pl, atol=1e-6)
        assert mla.state["P"].norm().item() == pytest.approx(1.0, abs=1e-6)
        for (k, a), (_, w) in zip(model.state_dict().items(), ref.state_dict().items(), strict=True):
            assert torch.allclose(a, w, atol=1e-6), (b, k)


@pytest.mark.parametrize("normalize", [True, False])
def test_head_gradient_after_1000_updates(normalize: bool) -> None:
    g = torch.Generator().manual_seed(0)
    d = 32
    p = initial_projection(d)
    grad = torch.randn(6, d, generator=g)
    for t in range(1000):
        r = torch.relu(torch.randn(d, generator=g)) + 0.1  # ReLU features, as the encoders give
        p = update_projection(p, r, projection_alpha(t % 50, 50), normalize)
        if normalize:
            assert p.norm().item() == pytest.approx(1.0, abs=1e-5)
    kept = project_gradient(grad, p).norm().item() / grad.norm().item()
    if normalize:  # the official P: ||P||_F = 1, so ||G P|| / ||G|| stays within (0, 1]
        assert 0.05 < kept <= 1.0 + 1e-6  # 0.168 measured
    else:  # the collapse issue 21 found
        assert kept < 1e-3

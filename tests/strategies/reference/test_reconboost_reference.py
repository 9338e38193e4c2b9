"""Ours against the authors' ReconBoost boosting loss and shared head (reconboost_official.py,
from huacong/ReconBoost@14ab57a train.py L336-340 and models/dynamic_net.py L5-15): the head
is d -> 256 -> ReLU -> C by default, and the phase-1 loss of a step and the gradients it leaves
agree to 1e-6 with the authors' Head carrying our weights. The old code (no 1/C factor) is C
times larger and fails; `reconboost.head: linear` keeps one Linear."""

from __future__ import annotations

import copy

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.strategies.reference.reconboost_official import Head, boosting_loss
from tests.strategies.test_reconboost import _raw


def _authors_head(fusion: torch.nn.Module) -> Head:
    """The authors' Head holding our head's weights (the same tensors: gradients land in ours)."""
    d, c = fusion.body[0].in_features, fusion.fc.out_features
    head = Head(d, c)
    head.fc1 = fusion.body[0]
    head.fc2 = fusion.fc
    return head


def test_shared_head_is_the_authors_mlp_by_default() -> None:
    trainer = Trainer(load_config(_raw()))
    fusion = trainer.model.fusion
    d = trainer.model.feature_dims()["audio"]
    layers = sorted(
        ((m.in_features, m.out_features) for m in fusion.modules() if isinstance(m, torch.nn.Linear)),
        key=lambda io: io[0] != d,
    )
    assert layers == [(d, 256), (256, trainer.num_classes)]
    assert any(isinstance(m, torch.nn.ReLU) for m in fusion.modules())
    h = torch.randn(5, d)
    assert torch.equal(fusion.logits(h), _authors_head(fusion)(h))
    # the head's parameters are in the optimizer's head group
    head_group = {id(p) for p in trainer.param_group("head")["params"]}
    assert all(id(p) in head_group for p in fusion.parameters())
    raw = _raw()
    raw["strategies"] = [{**raw["strategies"][0], "head": "linear"}]
    linear = Trainer(load_config(raw)).model.fusion
    assert [(m.in_features, m.out_features) for m in linear.modules() if isinstance(m, torch.nn.Linear)] == [
        (d, trainer.num_classes)
    ]


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
    head = _authors_head(ref.fusion)
    with torch.no_grad():
        join = beta * head(ref.encoders["visual"](x["visual"]))
    out_obj = head(ref.encoders["audio"](x["audio"]))
    loss = boosting_loss(out_obj, join, y, w1=5.0, w2=1.0)
    assert metrics["train/loss"] == pytest.approx(float(loss.detach()), abs=1e-6)
    loss.backward()
    want = {n: p.grad for n, p in ref.named_parameters() if p.grad is not None}
    assert set(want) <= set(grads)
    for n, g in want.items():
        assert torch.allclose(grads[n], g, atol=1e-6), n

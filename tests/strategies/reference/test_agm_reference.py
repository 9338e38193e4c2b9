"""Ours against the authors' AGM step (agm_official.py, lihong2303/AGM@5a65542): with `cnn`
(BatchNorm) encoders, the same model and batch, the coefficients, the trained logits (which
sum to z: v(empty) = 0), the gradients after the (clipped) backward and the BatchNorm buffers
agree to 1e-6. The old code (masked forwards in train mode, v(empty) = f(0, 0), no clip)
fails each of these."""

from __future__ import annotations

import copy

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import bn_buffers, small_cnn
from tests.strategies.reference.agm_official import official_step


def _trainer(**params: object) -> Trainer:
    raw = small_cnn(
        num_samples=64,
        strategies=[{"name": "agm", **params}],
        train={"epochs": 1, "batch_size": 16},
        optim={"lr": 0.5, "momentum": 0.0, "weight_decay": 0.0, "scheduler": {"name": "none"}},
    )
    return Trainer(load_config(raw))


def test_agm_step_with_batchnorm_encoders_matches_the_official_code() -> None:
    trainer = _trainer()
    model = trainer.model
    ref = copy.deepcopy(model)
    x, y = trainer.bundle.train.get_batch(torch.arange(16))  # type: ignore[attr-defined]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    def net(a: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return ref({"audio": a, "visual": v})

    head_w = next(p for p in ref.fusion.parameters() if p.ndim >= 2)
    ref_logits, ca, cv = official_step(ref, net, head_w, x["audio"], x["visual"], y)
    want_grads = {n: p.grad.clone() for n, p in ref.named_parameters() if p.grad is not None}

    captured: dict[str, torch.Tensor] = {}
    agm = trainer.strategies[0]
    original = agm.compute_loss

    def spy(ctx, h, z, u, yy):  # type: ignore[no-untyped-def]
        captured["z"] = z.detach().clone()
        return original(ctx, h, z, u, yy)

    agm.compute_loss = spy  # type: ignore[method-assign]
    # the gradients as the optimizer sees them: stop the step just before optimizer.step()
    grads: dict[str, torch.Tensor] = {}
    step = trainer.optimizer_step

    def record() -> None:
        grads.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        step()

    trainer.optimizer_step = record  # type: ignore[method-assign]
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    assert metrics["agm/coef/audio"] == pytest.approx(ca, abs=1e-6)
    assert metrics["agm/coef/visual"] == pytest.approx(cv, abs=1e-6)
    # trained logits = sum of the Shapley logits = z (the logits evaluation scores)
    assert torch.allclose(captured["z"], ref_logits.detach(), atol=1e-6)
    assert set(grads) == set(want_grads)
    for n, g in want_grads.items():
        assert torch.allclose(grads[n], g, atol=1e-6), n
    # BatchNorm running statistics: only the full (train-mode) forward updates them
    got, want = bn_buffers(model), bn_buffers(ref)
    assert got.keys() == want.keys() and got
    for k in want:
        assert torch.equal(got[k], want[k]), k


def test_masked_forwards_leave_batchnorm_statistics_as_joint_training_does() -> None:
    """N steps of AGM update the BN buffers exactly as N plain train-mode forwards would."""
    trainer = _trainer(alpha=1.0)
    batches = [trainer.bundle.train.get_batch(torch.arange(i * 10, i * 10 + 10)) for i in range(3)]  # type: ignore[attr-defined]
    for x, y in batches:
        ref = copy.deepcopy(trainer.model)
        assert trainer.train_step(x, y, 0) is not None
        ref.train()
        with torch.no_grad():
            ref(x)  # the one train-mode forward of joint training
        got = bn_buffers(trainer.model)
        for k, v in bn_buffers(ref).items():
            assert torch.allclose(got[k], v, atol=1e-6), k


def test_grad_clip_fires_only_when_the_head_gradient_leaves_the_unit_box() -> None:
    trainer = _trainer()
    x, y = trainer.bundle.train.get_batch(torch.arange(16))  # type: ignore[attr-defined]
    agm = trainer.strategies[0]
    ctx = trainer.context(0, y)
    model = trainer.model
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    agm.before_optimizer_step(ctx)  # every entry inside [-1, 1]: untouched
    assert all(torch.all(p.grad == 0.5) for p in model.parameters())
    head_w = next(p for p in model.fusion.parameters() if p.ndim >= 2)
    head_w.grad[0, 0] = -1.5
    agm.before_optimizer_step(ctx)
    total = torch.sqrt(sum((p.grad**2).sum() for p in model.parameters()))
    assert float(total) == pytest.approx(1.0, rel=1e-5)

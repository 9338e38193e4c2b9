"""MLA (STRATEGIES.md 2.9): the projection update on hand numbers, the projected gradient
orthogonal to the stored directions, alpha_t, the dynamic fusion weights; the trainer's
alternating step (one optimizer step per modality, P updated and checkpointed),
`projection: false` leaves the head gradient alone; resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.mla.impl import (
    fuse,
    fusion_weights,
    initial_projection,
    project_gradient,
    projection_alpha,
    update_projection,
)
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise


def test_projection_update_on_hand_numbers() -> None:
    p = torch.eye(2)
    r = torch.tensor([1.0, 0.0])
    # k = P r = [1, 0]; r.k = 1; P - k k^T / (1 + 1)
    assert torch.allclose(
        update_projection(p, r, alpha=1.0, normalize=False), torch.tensor([[0.5, 0.0], [0.0, 1.0]])
    )
    p0 = initial_projection(4)
    assert torch.allclose(p0, torch.eye(4) / 2.0) and p0.norm().item() == pytest.approx(1.0)


def test_alpha_schedule() -> None:
    assert projection_alpha(0, 10) == pytest.approx(0.1)
    assert projection_alpha(5, 10) == pytest.approx(0.1**1.5)


def test_projected_gradient_is_orthogonal_to_the_stored_directions() -> None:
    g = torch.Generator().manual_seed(0)
    r1, r2 = torch.randn(6, generator=g), torch.randn(6, generator=g)
    p = initial_projection(6).double()
    for r in (r1, r2):
        p = update_projection(p, r.double(), alpha=1e-10, normalize=False)
    grad = torch.randn(3, 6, generator=g).double()
    projected = project_gradient(grad, p)
    for r in (r1, r2):
        assert (projected @ r.double()).abs().max().item() < 1e-6 * (grad @ r.double()).abs().max().item()
    # a direction orthogonal to both is kept (up to the 1/sqrt(d) scale of P_0)
    q, _ = torch.linalg.qr(torch.stack([r1, r2], 1).double())
    free = torch.randn(6, generator=g).double()
    free = free - q @ (q.T @ free)
    assert torch.allclose(projected @ free, grad @ free / math.sqrt(6), rtol=1e-6)


def test_dynamic_fusion_weights() -> None:
    # modality a: uniform (entropy ln 2); v: p = [0.75, 0.25]
    u = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]])
    h_v = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    w_a = math.exp(-math.log(2)) / (math.exp(-math.log(2)) + math.exp(-h_v))
    w = fusion_weights(u, "dynamic")
    assert w[0, 0].item() == pytest.approx(w_a) and w[1, 0].item() == pytest.approx(1 - w_a)
    assert torch.allclose(fuse(u, "dynamic"), w_a * u[0] + (1 - w_a) * u[1])
    assert torch.allclose(fuse(u, "equal"), u.mean(0))


def _raw(**params: object) -> dict:
    raw = small(strategies=[{"name": "mla", **params}], train={"epochs": 1, "batch_size": 32, "threads": 1})
    raw["model"] = {**raw["model"], "head": "shared"}
    return raw


def test_alternating_step_projects_the_head_gradient_and_steps_per_modality() -> None:
    trainer = Trainer(load_config(_raw()))
    strategy = trainer.strategies[0]
    strategy.on_fit_start(trainer.context(0))
    p_before = strategy.state["P"].clone()
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    metrics = trainer.train_step(x, y, epoch=0)
    assert metrics is not None
    p = strategy.state["P"]
    assert not torch.equal(p, p_before) and torch.allclose(p, p.T, atol=1e-6)
    # issue 21: the first update of the run is not projected (official utils.py L29), the
    # second is and P is rescaled to ||P||_F = 1 (L38-40)
    assert strategy.state["count"] == 2
    assert p.norm().item() == pytest.approx(1.0, abs=1e-6)
    # M optimizer steps: momentum buffers exist for both encoders and the head
    assert all(trainer.optimizer.state.get(q) for q in trainer.model.parameters())
    assert metrics["mla/weight/audio"] + metrics["mla/weight/visual"] == pytest.approx(1.0)
    assert {
        "train/loss",
        "train/acc",
        "train/acc/visual",
        "grad/norm/audio",
        "imbalance/ratio/visual",
    } <= set(metrics)


def test_projection_false_reproduces_the_released_code() -> None:
    trainer = Trainer(load_config(_raw(projection=False)))
    trainer.strategies[0].on_fit_start(trainer.context(0))
    assert "P" not in trainer.strategies[0].state
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    fc = trainer.model.fusion.fc  # type: ignore[union-attr]
    w0 = fc.weight.detach().clone()  # type: ignore[union-attr]
    # the visual step (last) leaves fc.grad = plain gradient of CE(head(h_v))
    trainer.train_step(x, y, epoch=0)
    assert fc.weight.grad is not None and not torch.equal(fc.weight.detach(), w0)  # type: ignore[union-attr]


def test_evaluation_uses_the_fusion_rule() -> None:
    sink = MemorySink()
    trainer = Trainer(load_config(_raw(fusion_eval="equal")), sinks=[sink])
    summary = trainer.fit()
    feats, y = trainer.encode_split(trainer.bundle.test, "test")
    u = trainer.model.fusion.stacked(feats)  # type: ignore[operator]
    expected = (u.mean(0).argmax(1) == y).float().mean().item()
    assert summary["test_last_epoch"]["acc"] == pytest.approx(expected)
    assert all("mla/weight/audio" in m and "mla/p_norm" in m for _, _, m in sink.steps)


def test_resume_is_bitwise(tmp_path: Path) -> None:
    raw = _raw()
    raw["train"]["epochs"] = 2
    assert_resume_bitwise(raw, tmp_path, stop_after=4)

"""MMPareto (STRATEGIES.md 2.7): the MGDA two-vector weight against the closed form, the
conflict branch, the norm restore and gamma; the trainer's encoder gradients are the combined
per-encoder gradients of L_mm and L_m (torch.autograd.grad restricted to each encoder), heads
get the plain sum; metrics; resume."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.mmpareto.impl import mgda_two, pareto_combine
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise


def test_mgda_two_vector_weight_is_the_closed_form() -> None:
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])
    # min_w ||w g1 + (1-w) g2||^2: d/dw = 0 at 6.5 w = 3.5
    assert mgda_two(g1, g2).item() == pytest.approx(7 / 13)
    # clipped to [0, 1]: g2 inside the segment's far side -> all weight on g2
    assert mgda_two(torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])).item() == pytest.approx(0.0)
    assert mgda_two(torch.tensor([1.0, 0.0]), torch.tensor([3.0, 0.0])).item() == pytest.approx(1.0)


def test_conflict_branch_uses_mgda_and_restores_the_norm() -> None:
    g_mm, g_uni = torch.tensor([1.0, 0.0]), torch.tensor([-0.5, 1.0])
    new, cos, w_uni = pareto_combine(g_mm, g_uni, gamma=1.5)
    assert cos.item() == pytest.approx(-0.5 / math.sqrt(1.25))
    assert w_uni.item() == pytest.approx(6 / 13)
    # 2 (7/13 g_mm + 6/13 g_uni) = [8, 12] / 13, norm sqrt(208)/13 < ||g_mm + g_uni|| = sqrt(1.25)
    direction = torch.tensor([8.0, 12.0]) / math.sqrt(208)
    assert torch.allclose(new, direction * math.sqrt(1.25) * 1.5, atol=1e-6)
    # the min-norm direction is equally aligned with both gradients
    assert (new @ g_mm).item() == pytest.approx((new @ g_uni).item(), rel=1e-5)


def test_norm_restore_scales_a_small_combination_up() -> None:
    g_mm, g_uni = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.1])
    new, cos, _ = pareto_combine(g_mm, g_uni, gamma=1.0)
    assert cos.item() < 0
    assert new.norm().item() == pytest.approx((g_mm + g_uni).norm().item(), rel=1e-5)


def test_no_conflict_is_the_plain_sum_times_gamma() -> None:
    g_mm, g_uni = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    new, cos, w_uni = pareto_combine(g_mm, g_uni, gamma=1.5)
    assert cos.item() == pytest.approx(1 / math.sqrt(2))
    assert w_uni.item() == 0.5
    assert torch.allclose(new, torch.tensor([3.0, 1.5]))


def _cfg() -> object:
    return load_config(small(strategies=[{"name": "mmpareto", "gamma": 1.5}]))


def test_trainer_gradients_are_the_per_encoder_combinations() -> None:
    torch.manual_seed(0)
    cfg = _cfg()
    trainer = Trainer(cfg)  # type: ignore[arg-type]
    model = copy.deepcopy(trainer.model)
    ds = trainer.bundle.train
    idx = torch.arange(32)
    x, y = ds.get_batch(idx)  # type: ignore[attr-defined]
    # expected, from a copy of the model before the step
    feats = model.encode(x)
    l_mm = F.cross_entropy(model.fusion(feats), y)
    assert model.aux_heads is not None
    l_uni = {m: F.cross_entropy(model.aux_heads[m](feats[m]), y) for m in model.modalities}
    expected: dict[str, torch.Tensor] = {}
    for m in model.modalities:
        params = model.encoder_parameters(m)
        g_mm = torch.cat([g.reshape(-1) for g in torch.autograd.grad(l_mm, params, retain_graph=True)])
        g_uni = torch.cat([g.reshape(-1) for g in torch.autograd.grad(l_uni[m], params, retain_graph=True)])
        expected[m] = pareto_combine(g_mm, g_uni, 1.5)[0]
    head_grad = torch.autograd.grad(l_mm + sum(l_uni.values()), model.fusion.fc.weight)[0]  # type: ignore[arg-type]

    metrics = trainer.train_step(x, y, epoch=0)
    assert metrics is not None
    for m in trainer.modalities:
        got = torch.cat([p.grad.reshape(-1) for p in trainer.model.encoder_parameters(m)])  # type: ignore[union-attr]
        assert torch.allclose(got, expected[m], atol=1e-6), m
    assert torch.allclose(trainer.model.fusion.fc.weight.grad, head_grad, atol=1e-6)  # type: ignore[arg-type]
    for m in trainer.modalities:
        assert -1.0 <= metrics[f"mmpareto/cos/{m}"] <= 1.0
        assert 0.0 <= metrics[f"mmpareto/w/{m}"] <= 1.0
        assert f"train/loss_term/mmpareto/uni/{m}" in metrics


def test_metric_families_are_logged_every_step() -> None:
    sink = MemorySink()
    raw = small(strategies=["mmpareto"], train={"epochs": 1, "batch_size": 32, "threads": 1})
    Trainer(load_config(raw), sinks=[sink]).fit()
    for _, _, metrics in sink.steps:
        assert {"mmpareto/cos/audio", "mmpareto/cos/visual", "mmpareto/w/audio", "mmpareto/w/visual"} <= set(
            metrics
        )


def test_resume_is_bitwise(tmp_path: Path) -> None:
    raw = small(strategies=["mmpareto"], train={"epochs": 2, "batch_size": 40, "threads": 1})
    assert_resume_bitwise(raw, tmp_path, stop_after=5)


def test_bb_mmpareto_preset_is_uni_aux_with_split_heads_and_gamma_3() -> None:
    from bml_core.config import PRESET_NOTES

    cfg = load_config({}, preset="bb-mmpareto")
    assert [s.name for s in cfg.strategies] == ["uni_aux"]
    assert cfg.strategies[0].encoder_grad_scale == 3.0  # type: ignore[attr-defined]
    assert cfg.model.heads == "split"
    assert PRESET_NOTES["bb-mmpareto"].startswith("What BalanceBenchmark's MMPareto computes")

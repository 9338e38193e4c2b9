"""AGM (STRATEGIES.md section 2.5): every formula against hand-computed numbers, the plug-in
in the trainer (masked forwards, coefficients, scaled gradients, the official sign in a run,
config errors) and bitwise resume."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import ConfigError, load_config
from bml_core.models import MultimodalModel
from bml_core.models.encoders import MLPEncoder
from bml_core.models.fusion import ConcatFusion
from bml_core.sinks import MemorySink
from bml_core.strategies.agm import SPEC, AGMParams
from bml_core.strategies.agm.impl import (
    AGM,
    agm_coefficients,
    agm_ratios,
    agm_scores,
    check_modalities,
    running_mean,
    scale_gradient,
    shapley_logits,
    shapley_weights,
)
from bml_core.trainer import Trainer
from tests.strategies.strategy_helpers import assert_resume_is_bitwise, small

E = math.e


def test_shapley_weights_m2_and_m3() -> None:
    # M = 2: |S|! (M - |S| - 1)! / M! = 0! 1! / 2! = 1/2 (S empty) and 1! 0! / 2! = 1/2 (S = other)
    assert shapley_weights(2) == [[(0b00, 0.5), (0b10, 0.5)], [(0b00, 0.5), (0b01, 0.5)]]
    # M = 3: empty 0! 2! / 3! = 1/3, singletons 1! 1! / 3! = 1/6, the pair 2! 0! / 3! = 1/3
    w0 = dict(shapley_weights(3)[0])
    assert w0 == pytest.approx({0b000: 1 / 3, 0b010: 1 / 6, 0b100: 1 / 6, 0b110: 1 / 3})
    for pairs in shapley_weights(4):
        assert sum(w for _, w in pairs) == pytest.approx(1.0)  # weights over S sum to one


def test_shapley_logits_m2_formula() -> None:
    # v(empty) = f(0,0) = 1, v(a) = f(a,0) = 3, v(v) = f(0,v) = 2, v(a,v) = f(a,v) = 10 (bit 0 = a)
    values = {
        0b00: torch.tensor([1.0]),
        0b01: torch.tensor([3.0]),
        0b10: torch.tensor([2.0]),
        0b11: torch.tensor([10.0]),
    }
    phi_a, phi_v = shapley_logits(values, 2)
    # phi_a = 1/2 [f(a,v) - f(0,v) + f(a,0) - f(0,0)] = 1/2 [10 - 2 + 3 - 1] = 5
    # phi_v = 1/2 [f(a,v) - f(a,0) + f(0,v) - f(0,0)] = 1/2 [10 - 3 + 2 - 1] = 4
    assert phi_a.item() == 5.0 and phi_v.item() == 4.0
    # what holds: sum phi = f(a,v) - f(0,0) = 9, not f(a,v)
    assert (phi_a + phi_v).item() == 10.0 - 1.0
    # the official code's form (v(empty) = 0): phi_a = 1/2 [10 - 2 + 3] = 5.5, phi_v = 1/2 [10 - 3 + 2]
    # = 4.5, and then the sum is the full logits exactly
    values[0b00] = torch.tensor([0.0])
    phi_a, phi_v = shapley_logits(values, 2)
    assert phi_a.item() == 5.5 and phi_v.item() == 4.5
    assert (phi_a + phi_v).item() == 10.0


def test_shapley_logits_m3_additive_plus_interaction() -> None:
    # v(S) = 0.5 + sum_{j in S} a_j + 6 [0 and 1 both in S], a = (1, 2, 3): the additive part goes to
    # each modality, the interaction 6 is split equally between modalities 0 and 1, the offset 0.5
    # (v(empty)) to nobody: phi = (1 + 3, 2 + 3, 3) = (4, 5, 3)
    a = (1.0, 2.0, 3.0)

    def v(mask: int) -> torch.Tensor:
        s = 0.5 + sum(a[j] for j in range(3) if mask >> j & 1) + (6.0 if mask & 0b011 == 0b011 else 0.0)
        return torch.tensor([[s, -s]])

    phis = shapley_logits({mask: v(mask) for mask in range(8)}, 3)
    assert torch.allclose(torch.stack(phis)[:, 0, 0], torch.tensor([4.0, 5.0, 3.0]))
    assert torch.allclose(sum(phis), v(0b111) - v(0))  # 12 + 0.5 - 0.5


def test_shapley_logits_m4_equal_permutation_average() -> None:
    torch.manual_seed(0)
    values = {mask: torch.randn(3, 5) for mask in range(16)}
    phis = shapley_logits(values, 4)
    # reference: the mean marginal contribution over all 4! orders of adding the modalities
    ref = [torch.zeros(3, 5) for _ in range(4)]
    for order in itertools.permutations(range(4)):
        mask = 0
        for m in order:
            ref[m] += (values[mask | 1 << m] - values[mask]) / 24
            mask |= 1 << m
    for p, r in zip(phis, ref, strict=True):
        assert torch.allclose(p, r, atol=1e-6)
    assert torch.allclose(sum(phis), values[15] - values[0], atol=1e-6)


def test_more_than_four_modalities_is_refused() -> None:
    check_modalities(4)
    with pytest.raises(ValueError, match=r"at most 4 modalities .* 31 extra forwards"):
        check_modalities(5)
    with pytest.raises(ValueError, match="at least 2"):
        check_modalities(1)


def test_scores_are_batch_mean_nll_with_clamp() -> None:
    # modality 0: rows (ln 3, 0) and (0, 0), labels (0, 1): p = 3/4 and 1/2 -> s = (log 4/3 + log 2) / 2
    # modality 1: row 1 has p(y) = e^-100 / (1 + e^-100) < 1e-8 -> clamped: -log 1e-8 = 18.4207
    phis = torch.tensor(
        [
            [[math.log(3.0), 0.0], [0.0, 0.0]],
            [[0.0, 0.0], [0.0, -100.0]],
        ]
    )
    s = agm_scores(phis, torch.tensor([0, 1]))
    assert s[0].item() == pytest.approx((math.log(4 / 3) + math.log(2)) / 2)
    assert s[1].item() == pytest.approx((math.log(2) + 18.420680743952367) / 2)


def test_ratios_m2_is_the_official_exp_difference_and_m3() -> None:
    # M = 2: r_m = exp(2 (mean - s_m)); s = (1, 2): r_a = exp(2 * 0.5) = e = exp(s_v - s_a) (official)
    r = agm_ratios(torch.tensor([1.0, 2.0]))
    assert torch.allclose(r, torch.tensor([E, 1 / E]))
    # M = 3, s = (1, 2, 3): mean 2, factor 3/2: exp(1.5), exp(0), exp(-1.5)
    r = agm_ratios(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(r, torch.tensor([math.exp(1.5), 1.0, math.exp(-1.5)]))


def test_coefficients_official_sign_slows_the_modality_ahead() -> None:
    # audio ahead: its loss-score s_a = 1 < s_v = 2, r = (e, 1/e); running ratios r* = (1, 1).
    # coeff_a = exp(1 * (1 - e)) = exp(-1.718282) = 0.179374 < 1 (slowed)
    # coeff_v = exp(1 * (1 - 1/e)) = exp(0.632121) = 1.881606 > 1 (sped up)
    coeff = agm_coefficients(torch.tensor([E, 1 / E]), torch.tensor([1.0, 1.0]), alpha=1.0)
    assert coeff[0].item() == pytest.approx(0.179374, rel=1e-5)
    assert coeff[1].item() == pytest.approx(1.881606, rel=1e-5)
    assert coeff[0] < 1 < coeff[1]  # the modality ahead is slowed (BalanceBenchmark's flip would speed it)
    # the exponent is capped at 10: r* - r = 20 -> exp(0.5 * 10) = exp(5)
    capped = agm_coefficients(torch.tensor([1.0]), torch.tensor([21.0]), alpha=0.5)
    assert capped.item() == pytest.approx(math.exp(5.0))
    # no cap below: r* - r = -20 -> exp(-20)
    assert agm_coefficients(torch.tensor([21.0]), torch.tensor([1.0]), 1.0).item() == pytest.approx(
        math.exp(-20)
    )


def test_running_mean_over_all_steps() -> None:
    m = torch.tensor(0.0)
    m = running_mean(m, torch.tensor(2.0), 1)  # 0 * 0/1 + 2/1 = 2
    assert m.item() == 2.0
    m = running_mean(m, torch.tensor(4.0), 2)  # 2 * 1/2 + 4/2 = 3
    assert m.item() == 3.0
    m = running_mean(m, torch.tensor(0.0), 3)  # 3 * 2/3 + 0 = 2 = mean(2, 4, 0)
    assert m.item() == pytest.approx(2.0)


def test_gradient_scaling_of_the_shapley_logits() -> None:
    x = torch.tensor([1.0, 2.0], requires_grad=True)
    y = scale_gradient(x * 1.0, torch.tensor(3.0))
    (y**2).sum().backward()
    assert x.grad is not None and torch.equal(x.grad, torch.tensor([6.0, 12.0]))  # 3 * 2x
    # through the M = 2 Shapley logits with coeff (0.5, 2): loss = sum(phi_a' + phi_v') where the
    # gradient into phi_m is scaled by coeff_m. d/d f(a,v) = (0.5 + 2)/2 = 1.25, d/d f(a,0) = (0.5 - 2)/2
    # = -0.75, d/d f(0,v) = (2 - 0.5)/2 = 0.75, d/d f(0,0) = -(0.5 + 2)/2 = -1.25
    values = {mask: torch.zeros(1, 2, requires_grad=True) for mask in range(4)}
    phis = shapley_logits(values, 2)
    coeff = torch.tensor([0.5, 2.0])
    total = sum(scale_gradient(p, coeff[m]) for m, p in enumerate(phis))
    assert isinstance(total, torch.Tensor)
    total.sum().backward()
    grads = {mask: t.grad[0, 0].item() for mask, t in values.items() if t.grad is not None}
    assert grads == pytest.approx({0b11: 1.25, 0b01: -0.75, 0b10: 0.75, 0b00: -1.25})


# ---------------------------------------------------------------- the plug-in in the trainer


def _trainer(**strategy: object) -> Trainer:
    return Trainer(load_config(small(strategies=[{"name": "agm", **strategy}], train={"epochs": 1})))


def test_event_computes_shapley_logits_coefficients_and_scaled_gradients() -> None:
    # our reading of STRATEGIES.md, kept as options (issue 21: the authors' form is the default)
    trainer = _trainer(alpha=1.0, empty_set="zero_input", masked_mode="train")
    agm = trainer.strategies[0]
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    model = trainer.model
    model.train()
    calls: list[set[str]] = []
    original = trainer.forward

    def counting(x: dict, present: set | None = None, zero: str = "input") -> tuple:
        calls.append(set(present or ()))
        return original(x, present, zero)

    trainer.forward = counting  # type: ignore[method-assign]
    ctx = trainer.context(0, y)
    agm.before_forward(ctx, (x, y))
    h = model.encode(x)
    z = model.fusion(h)
    losses = agm.compute_loss(ctx, h, z, {}, y)
    # 2^2 - 1 = 3 masked forwards: audio only, visual only, none (the full one is the trainer's)
    assert sorted(map(sorted, calls)) == [[], ["audio"], ["visual"]]
    with torch.no_grad():
        zero = {m: torch.zeros_like(t) for m, t in x.items()}
        f_av, f_a0 = model(x), model({"audio": x["audio"], "visual": zero["visual"]})
        f_0v, f_00 = model({"audio": zero["audio"], "visual": x["visual"]}), model(zero)
        phi_a = 0.5 * (f_av - f_0v + f_a0 - f_00)
        phi_v = 0.5 * (f_av - f_a0 + f_0v - f_00)
    assert losses["ce"] is not None
    assert losses["ce"].item() == pytest.approx(F.cross_entropy(phi_a + phi_v, y).item(), rel=1e-6)
    scores = agm_scores(torch.stack([phi_a, phi_v]), y)
    # first step: the running means are 0, so r* = exp(0) = 1 and coeff = exp(alpha (1 - r))
    coeff = torch.exp(1.0 - torch.exp(scores.flip(0) - scores))
    logged = ctx.metrics
    assert [logged["agm/coef/audio"], logged["agm/coef/visual"]] == pytest.approx(coeff.tolist(), rel=1e-5)
    assert [logged["agm/score/audio"], logged["agm/score/visual"]] == pytest.approx(scores.tolist(), rel=1e-5)
    assert agm.state["steps"] == 1 and torch.allclose(agm.state["score_mean"], scores)
    # the gradient reaching the parameters is sum_m coeff_m (dphi_m/dtheta)^T dL/dz
    losses["ce"].backward()
    got = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    vals = {3: model(x), 1: model({"audio": x["audio"], "visual": zero["visual"]})}
    vals[2], vals[0] = model({"audio": zero["audio"], "visual": x["visual"]}), model(zero)
    pa, pv = shapley_logits(vals, 2)
    logits = (pa + pv).detach().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(logits, y), logits)
    (coeff[0] * (pa * g).sum() + coeff[1] * (pv * g).sum()).backward()
    want = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(got) == len(want) and all(
        torch.allclose(a, b, atol=1e-6) for a, b in zip(got, want, strict=True)
    )


def test_empty_set_zero_is_the_official_form_with_one_forward_less() -> None:
    trainer = _trainer(empty_set="zero")
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    with torch.no_grad():
        plain = F.cross_entropy(trainer.model(x), y).item()
    calls: list[object] = []
    original = trainer.forward

    def counting(x: dict, present: set | None = None, zero: str = "input") -> tuple:
        calls.append(present)
        return original(x, present, zero)

    trainer.forward = counting  # type: ignore[method-assign]
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None and len(calls) == 2  # f(a,0) and f(0,v); v(empty) = 0
    # phi_a + phi_v = f(a,v) exactly, so the loss value is the plain fused cross-entropy
    assert metrics["train/loss"] == pytest.approx(plain, rel=1e-6)


def test_the_leading_modality_gets_coefficients_below_one_in_a_run() -> None:
    sink = MemorySink()
    Trainer(load_config(small(strategies=["agm"], train={"epochs": 3})), sinks=[sink]).fit()
    steps = [m for _, _, m in sink.steps]
    coef_a = sum(m["agm/coef/audio"] for m in steps) / len(steps)
    coef_v = sum(m["agm/coef/visual"] for m in steps) / len(steps)
    assert sum(m["train/acc/audio"] for m in steps) > sum(m["train/acc/visual"] for m in steps)  # audio leads
    assert coef_a < 1.0 < coef_v, (coef_a, coef_v)  # official sign: the modality ahead is slowed


def test_inactive_epochs_are_joint_training() -> None:
    trainer = _trainer(start_epoch=1)
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    with torch.no_grad():
        expected = F.cross_entropy(trainer.model(x), y).item()
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None and metrics["train/loss"] == pytest.approx(expected, rel=1e-6)
    assert metrics["agm/coef/audio"] == metrics["agm/coef/visual"] == 1.0
    assert trainer.strategies[0].state["steps"] == 0
    assert SPEC.params().end_epoch == 20  # official modulation epochs 0..20


def test_config_errors_five_modalities_and_opm() -> None:
    raw = small(strategies=["agm"])
    raw["dataset"]["params"]["modalities"] += [
        {"name": f"m{i}", "strength": 0.5, "shape": [4]} for i in range(3)
    ]
    with pytest.raises(ConfigError) as exc:
        load_config(raw)
    assert "dataset.params" in exc.value.as_dict() and "at most 4 modalities" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_config(small(strategies=["agm", "opm"]))
    assert "use agm or opm" in str(exc.value)
    # when only the dataset knows the count, building the run refuses it
    enc = {m: MLPEncoder(4, 8, 1, 8) for m in "abcde"}
    model = MultimodalModel(enc, ConcatFusion({m: 8 for m in enc}, 3))
    with pytest.raises(ConfigError, match="at most 4 modalities"):
        AGM(AGMParams(), model, torch.device("cpu"), 0)


def test_four_modalities_train() -> None:
    raw = small(strategies=["agm"], train={"epochs": 1})
    raw["dataset"]["params"]["modalities"] += [
        {"name": f"m{i}", "strength": 0.5, "shape": [4]} for i in range(2)
    ]
    sink = MemorySink()
    Trainer(load_config(raw), sinks=[sink]).fit()
    assert {f"agm/coef/{m}" for m in ("audio", "visual", "m0", "m1")} <= set(sink.steps[-1][2])


@pytest.mark.parametrize("where", [5, "boundary"])
def test_resume_is_bitwise(tmp_path: Path, where: int | str) -> None:
    assert_resume_is_bitwise(tmp_path, [{"name": "agm", "alpha": 1.0}], where)

"""AGM (STRATEGIES.md section 2.5): every formula against hand-computed numbers."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from bml_core.strategies.agm.impl import (
    agm_coefficients,
    agm_ratios,
    agm_scores,
    check_modalities,
    running_mean,
    scale_gradient,
    shapley_logits,
    shapley_weights,
)

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

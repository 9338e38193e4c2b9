"""Evaluation metrics (METHODS.md section 8) against hand-computed values and sklearn."""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score

from bml_core.metrics import (
    accuracy,
    average_precision,
    imbalance_degree,
    macro_f1,
    mean_average_precision,
    shapley_values,
)


def test_accuracy_and_macro_f1_hand_computed() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])
    logits = torch.nn.functional.one_hot(pred, 3).float()
    assert accuracy(logits, y) == pytest.approx(4 / 6)
    # class 0: tp 1, fp 1, fn 1 -> 0.5; class 1: tp 2, fp 1, fn 0 -> 0.8; class 2: tp 1, fp 0, fn 1 -> 2/3
    assert macro_f1(pred, y, 3) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_macro_f1_and_map_match_sklearn_on_random_data() -> None:
    g = torch.Generator().manual_seed(0)
    for c in (2, 6, 31):
        y = torch.randint(0, c, (300,), generator=g)
        scores = torch.randn(300, c, generator=g).softmax(1)
        pred = scores.argmax(1)
        assert macro_f1(pred, y, c) == pytest.approx(
            f1_score(
                y.numpy(), pred.numpy(), average="macro", labels=sorted(set(y.tolist()) | set(pred.tolist()))
            ),
            abs=1e-9,
        )
        expected = [
            average_precision_score((y == k).numpy(), scores[:, k].numpy())
            for k in range(c)
            if (y == k).any()
        ]
        assert mean_average_precision(scores, y) == pytest.approx(sum(expected) / len(expected), abs=1e-9)


def test_average_precision_hand_computed_with_ties() -> None:
    # ranks: 0.9 (pos), 0.8 (neg), 0.8 (pos), 0.1 (pos) -> precision at recall steps 1/1, 2/3, 3/4
    scores = torch.tensor([0.9, 0.8, 0.8, 0.1])
    positive = torch.tensor([True, False, True, True])
    assert average_precision(scores, positive) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert math.isnan(average_precision(scores, torch.zeros(4, dtype=torch.bool)))


def test_shapley_two_modalities_hand_computed() -> None:
    v = {frozenset(): 0.1, frozenset({"a"}): 0.7, frozenset({"v"}): 0.3, frozenset({"a", "v"}): 0.9}
    phi = shapley_values(["a", "v"], v.__getitem__)
    # phi_a = 1/2 (0.7 - 0.1) + 1/2 (0.9 - 0.3) = 0.6; phi_v = 1/2 (0.2) + 1/2 (0.2) = 0.2
    assert phi["a"] == pytest.approx(0.6) and phi["v"] == pytest.approx(0.2)
    assert sum(phi.values()) == pytest.approx(v[frozenset({"a", "v"})] - v[frozenset()])  # efficiency
    assert imbalance_degree(phi) == pytest.approx(0.4)


def test_shapley_three_modalities_hand_computed() -> None:
    # additive game: v(S) = sum of weights in S -> phi_m = weight_m exactly
    w = {"a": 0.5, "b": 0.2, "c": 0.1}
    phi = shapley_values(list(w), lambda s: sum(w[m] for m in s))
    assert phi == pytest.approx(w)
    # degree = mean of |0.5-0.2|, |0.5-0.1|, |0.2-0.1| = (0.3 + 0.4 + 0.1) / 3
    assert imbalance_degree(phi) == pytest.approx(0.8 / 3)


def test_linear_probe_separable_and_random_features() -> None:
    from bml_core.metrics import linear_probe_accuracy

    g = torch.Generator().manual_seed(0)
    y = torch.arange(600) % 6
    centers = torch.randn(6, 16, generator=g) * 4
    x = centers[y] + torch.randn(600, 16, generator=g)
    assert linear_probe_accuracy(x[:400], y[:400], x[400:], y[400:], 6) > 0.95
    noise = torch.randn(600, 16, generator=g)
    assert linear_probe_accuracy(noise[:400], y[:400], noise[400:], y[400:], 6) < 0.35  # chance is 1/6

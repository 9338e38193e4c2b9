"""mmcosine (STRATEGIES.md section 2.3): the formulas against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from bml_core.strategies.mmcosine.impl import cosine_logits, mmcosine_logits


def test_cosine_logits_are_scaled_cosines_with_normalised_rows() -> None:
    # h = [3, 4] (norm 5); class rows [1, 0], [0, 2], [-1, -1] normalise to [1, 0], [0, 1], -[1, 1]/sqrt 2
    # cos = [3/5, 4/5, -7/(5 sqrt 2)]; s = 10 -> [6, 8, -7 sqrt 2]
    h = torch.tensor([[3.0, 4.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    assert cosine_logits(h, w, 10.0).tolist()[0] == pytest.approx([6.0, 8.0, -7 * math.sqrt(2)])
    # invariant to the scale of the feature and of each class row (only directions count)
    w2 = w * torch.tensor([[5.0], [0.1], [3.0]])
    assert torch.allclose(cosine_logits(7 * h, w2, 10.0), cosine_logits(h, w, 10.0))


def test_fused_logits_sum_the_per_modality_cosines_without_bias() -> None:
    # concat head weight [C = 2, d_a + d_v = 2 + 1]: W_a = [[1, 0], [0, 2]], W_v = [[2], [-3]]
    # sample 0: h_a = [3, 4], h_v = [-2]
    #   u_a = 10 * [3/5, 4/5] = [6, 8]; u_v = 10 * [cos(-2, 2), cos(-2, -3)] = 10 * [-1, 1] = [-10, 10]
    #   z = [-4, 18]
    # sample 1: h_a = [0, -1], h_v = [0.5]
    #   u_a = 10 * [0, -1] = [0, -10]; u_v = 10 * [1, -1] = [10, -10]; z = [10, -20]
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 2.0, -3.0]])
    offsets = {"a": (0, 2), "v": (2, 3)}
    feats = {"a": torch.tensor([[3.0, 4.0], [0.0, -1.0]]), "v": torch.tensor([[-2.0], [0.5]])}
    z, u = mmcosine_logits(feats, weight, offsets, 10.0)
    torch.testing.assert_close(u["a"], torch.tensor([[6.0, 8.0], [0.0, -10.0]]))
    torch.testing.assert_close(u["v"], torch.tensor([[-10.0, 10.0], [10.0, -10.0]]))
    torch.testing.assert_close(z, torch.tensor([[-4.0, 18.0], [10.0, -20.0]]))
    # every logit is bounded by the scale: |u_m[k]| <= s, |z[k]| <= M s
    assert float(z.abs().max()) <= 2 * 10.0 + 1e-6


def test_gradients_reach_features_and_weight_blocks() -> None:
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 2.0, -3.0]], requires_grad=True)
    feats = {
        "a": torch.tensor([[3.0, 4.0]], requires_grad=True),
        "v": torch.tensor([[-2.0]], requires_grad=True),
    }
    z, _ = mmcosine_logits(feats, weight, {"a": (0, 2), "v": (2, 3)}, 10.0)
    torch.nn.functional.cross_entropy(z, torch.tensor([0])).backward()
    assert weight.grad is not None and feats["a"].grad is not None
    # d cos(h, w)/dh is orthogonal to h: the feature gradient has no radial part
    assert float((feats["a"].grad * feats["a"].detach()).sum()) == pytest.approx(0.0, abs=1e-5)
    # a 1-d block has no direction to change: its (normalised) gradient vanishes
    assert feats["v"].grad is not None and float(feats["v"].grad.abs().max()) == pytest.approx(0.0, abs=1e-6)

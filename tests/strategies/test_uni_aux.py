"""uni_aux (STRATEGIES.md section 2.1): the formulas against hand-computed numbers."""

from __future__ import annotations

import math

import pytest
import torch

from bml_core.strategies.uni_aux.impl import (
    scale_gradients_,
    uni_aux_loss,
    uni_aux_terms,
    unimodal_cross_entropy,
)

LN = math.log
# Two modalities, two samples, two classes, y = [0, 1]:
#   u_a: sample 0 [0, 0]     -> p(y=0) = 1/2  -> CE = ln 2
#        sample 1 [0, ln 3]  -> p(y=1) = 3/4  -> CE = ln 4/3       mean_a = (ln 2 + ln 4/3) / 2 = ln(8/3) / 2
#   u_v: sample 0 [ln 3, 0]  -> p(y=0) = 3/4  -> CE = ln 4/3
#        sample 1 [ln 3, 0]  -> p(y=1) = 1/4  -> CE = ln 4         mean_v = (ln 4/3 + ln 4) / 2 = ln(16/3) / 2
#   z = u_a + u_v: sample 0 [ln 3, 0] -> ln 4/3; sample 1 [ln 3, ln 3] -> ln 2
#                                                                  CE(z) = (ln 4/3 + ln 2) / 2 = ln(8/3) / 2
U = torch.tensor(
    [
        [[0.0, 0.0], [0.0, LN(3)]],
        [[LN(3), 0.0], [LN(3), 0.0]],
    ]
)
Y = torch.tensor([0, 1])


def test_unimodal_cross_entropy_per_modality() -> None:
    got = unimodal_cross_entropy(U, Y)
    assert got.tolist() == pytest.approx([LN(8 / 3) / 2, LN(16 / 3) / 2])


def test_loss_is_fused_ce_plus_weighted_unimodal_ce() -> None:
    z = U.sum(0)
    lambdas = torch.tensor([1.0, 0.5])
    # terms: 1 * ln(8/3)/2 and 0.5 * ln(16/3)/2 = ln(16/3)/4
    assert uni_aux_terms(U, Y, lambdas).tolist() == pytest.approx([LN(8 / 3) / 2, LN(16 / 3) / 4])
    # L = ln(8/3)/2 + ln(8/3)/2 + ln(16/3)/4 = ln(8/3) + ln(16/3)/4
    assert float(uni_aux_loss(z, U, Y, lambdas)) == pytest.approx(LN(8 / 3) + LN(16 / 3) / 4)
    # lambda_m = 1 (the default): ln(8/3)/2 + ln(8/3)/2 + ln(16/3)/2
    ones = torch.ones(2)
    assert float(uni_aux_loss(z, U, Y, ones)) == pytest.approx(LN(8 / 3) + LN(16 / 3) / 2)


def test_split_heads_train_their_own_block_and_the_shared_bias() -> None:
    # concat head, C = 2, d_a = d_v = 1: W = [[1, 0], [0, 1]] (columns: a | v), b = [0.4, -0.2].
    # u_a = W_a h_a + b/2 with h_a = [1]: [1 + 0.2, 0 - 0.1] = [1.2, -0.1], y = 0.
    # dCE/du_a = softmax(u_a) - onehot(0); softmax([1.2, -0.1]) = [1/(1+e^-1.3), e^-1.3/(1+e^-1.3)]
    #          = [0.785835, 0.214165] -> [-0.214165, 0.214165]
    # dCE/dW_a = (dCE/du_a) * h_a = [-0.214165, 0.214165]; dCE/dW_v = 0; dCE/db = (dCE/du_a) / 2
    from bml_core.models.fusion import ConcatFusion

    head = ConcatFusion({"a": 1, "v": 1}, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.fc.bias.copy_(torch.tensor([0.4, -0.2]))
    feats = {"a": torch.tensor([[1.0]]), "v": torch.tensor([[2.0]])}
    u = head.unimodal_logits(feats)
    assert u["a"][0].tolist() == pytest.approx([1.2, -0.1])
    term = uni_aux_terms(u["a"][None], torch.tensor([0]), torch.ones(1))
    term.sum().backward()
    p = 1 / (1 + math.exp(-1.3))
    g = head.fc.weight.grad
    assert g is not None and head.fc.bias.grad is not None
    assert g[:, 0].tolist() == pytest.approx([p - 1, 1 - p], abs=1e-6)
    assert g[:, 1].tolist() == [0.0, 0.0]
    assert head.fc.bias.grad.tolist() == pytest.approx([(p - 1) / 2, (1 - p) / 2], abs=1e-6)


def test_encoder_grad_scale_multiplies_in_place() -> None:
    g1, g2 = torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])
    scale_gradients_([g1, g2], 3.0)
    assert g1.tolist() == [3.0, -6.0] and g2.tolist() == [[9.0]]
    scale_gradients_([g1], 1.0)  # gamma = 1: untouched
    assert g1.tolist() == [3.0, -6.0]

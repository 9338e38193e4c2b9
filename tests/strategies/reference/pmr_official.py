"""The authors' PMR step and prototypes, re-implemented from
fanyunfeng-bit/Modal-Imbalance-PMR@3615e48983555089b0e693380087617c3797a641
main_Prototype_grad.py (torch only, no bml_core imports).

- L69-75 EU_dist: d[i, j] = sqrt((x_i - c_j) . (x_i - c_j)).
- L133-140 (concat): out_a, out_v from the fc_out weight halves (not used by the PMR loss).
- L152-153: audio_sim = -EU_dist(a, audio_proto), visual_sim = -EU_dist(v, visual_proto).
- L155-178 (modulation Proto, modulation_starts <= epoch <= modulation_ends):
  score_p = sum over the batch of softmax(sim)[i][y_i]; ratio_a_p = score_a_p / score_v_p;
  ratio > 1 -> beta = 0, lam = alpha; ratio < 1 -> beta = alpha, lam = 0; else both 0;
  loss = CE(out, y) + beta CE(audio_sim, y) + lam CE(visual_sim, y); L257 loss.backward().
- L383-441 calculate_prototype: model.eval(), no grad, class sums of a and v over the first
  all_num // 10 batches, divided by the class counts; epoch <= 0 -> no EMA, else
  (1 - momentum_coef) new + momentum_coef old. main() L539 computes them before epoch 0 with
  epoch = 0 and L557 after each epoch with that epoch's index: the prototypes of epoch 1 are
  not averaged, the EMA starts with those of epoch 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def eu_dist(x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    d = torch.zeros(x1.shape[0], x2.shape[0])
    for i in range(x1.shape[0]):
        for j in range(x2.shape[0]):
            d[i, j] = torch.sqrt(torch.dot(x1[i] - x2[j], x1[i] - x2[j]))
    return d


def calculate_prototype(
    model: nn.Module,
    encode: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
    batches: Sequence[tuple[Any, torch.Tensor]],
    n_classes: int,
    epoch: int,
    a_proto: torch.Tensor | None = None,
    v_proto: torch.Tensor | None = None,
    momentum_coef: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`batches` are the loader's batches of this pass (the first all_num // 10 are used)."""
    audio, visual = None, None
    count = [0] * n_classes
    model.eval()
    with torch.no_grad():
        sample_count = 0
        all_num = len(batches)
        for x, label in batches:
            a, v = encode(x)
            if audio is None:
                audio = torch.zeros(n_classes, a.shape[1])
                visual = torch.zeros(n_classes, v.shape[1])
            for c, lbl in enumerate(label):
                count[int(lbl)] += 1
                audio[int(lbl), :] += a[c, :]
                visual[int(lbl), :] += v[c, :]
            sample_count += 1  # noqa: SIM113 (the authors' counter, kept as written)
            if sample_count >= all_num // 10:
                break
    model.train()
    assert audio is not None and visual is not None
    for c in range(n_classes):
        audio[c, :] /= count[c]
        visual[c, :] /= count[c]
    if epoch <= 0:
        return audio, visual
    assert a_proto is not None and v_proto is not None
    return (
        (1 - momentum_coef) * audio + momentum_coef * a_proto,
        (1 - momentum_coef) * visual + momentum_coef * v_proto,
    )


def official_step(
    model: nn.Module,
    encode: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
    head: nn.Module,
    x: Any,
    label: torch.Tensor,
    audio_proto: torch.Tensor,
    visual_proto: torch.Tensor,
    alpha: float = 1.0,
) -> dict[str, Any]:
    """One modulated step up to loss.backward(); the gradients stay in the parameters."""
    model.train()
    a, v = encode(x)
    out = head(torch.cat([a, v], dim=1))
    audio_sim = -eu_dist(a, audio_proto)
    visual_sim = -eu_dist(v, visual_proto)
    idx = torch.arange(len(label))
    score_a_p = audio_sim.softmax(1)[idx, label].sum()
    score_v_p = visual_sim.softmax(1)[idx, label].sum()
    ratio_a_p = float((score_a_p / score_v_p).detach())
    loss_proto_a = F.cross_entropy(audio_sim, label)
    loss_proto_v = F.cross_entropy(visual_sim, label)
    if ratio_a_p > 1:
        beta, lam = 0.0, 1 * alpha
    elif ratio_a_p < 1:
        beta, lam = 1 * alpha, 0.0
    else:
        beta, lam = 0.0, 0.0
    ce = F.cross_entropy(out, label)
    loss = ce + beta * loss_proto_a + lam * loss_proto_v
    loss.backward()
    return {
        "beta": beta,
        "lam": lam,
        "ce": float(ce.detach()),
        "proto": float((beta * loss_proto_a + lam * loss_proto_v).detach()),
        "score_a": float(score_a_p.detach()),
        "score_v": float(score_v_p.detach()),
    }

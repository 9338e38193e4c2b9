"""The authors' MMPareto gradient combination for one encoder, re-implemented from
GeWu-Lab/MMPareto_ICML2024@a339db39cc25b157df376b50bb894917dc6c01d6 (torch only):

- code/MMPareto.py L149-150: cos over the concatenated gradients of the encoder;
- L165-174: cos > 0 -> k = (0.5, 0.5), else MinNormSolver.find_min_norm_element over the
  two gradient lists (code/min_norm_solvers.py L9-30: the two-vector closed form, which
  is the solution for two tasks);
- L184-207: PER TENSOR, three_norm = ||grad of loss_mm + loss_a + loss_v|| (for an encoder
  tensor: g_mm + g_m), new = 2 k0 g_mm + 2 k1 g_m, diff = three_norm / ||new||,
  grad = diff * new * gamma if diff > 1 else new * gamma (gamma = 1.5, L178).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _from2(v1v1: float, v1v2: float, v2v2: float) -> float:
    if v1v2 >= v1v1:
        return 0.999
    if v1v2 >= v2v2:
        return 0.001
    return -1.0 * ((v1v2 - v2v2) / (v1v1 + v2v2 - 2 * v1v2))


def official_encoder_grads(g_mm: list[torch.Tensor], g_uni: list[torch.Tensor], gamma: float = 1.5):
    """New gradients (one per tensor), the cosine and the weight on the uni-modal gradient."""
    cos = F.cosine_similarity(
        torch.cat([g.flatten() for g in g_mm]), torch.cat([g.flatten() for g in g_uni]), dim=0
    )
    if cos > 0:
        k = [0.5, 0.5]
    else:
        dot = lambda a, b: float(sum(torch.mul(x, y).sum() for x, y in zip(a, b, strict=False)))  # noqa: E731
        c = _from2(dot(g_mm, g_mm), dot(g_mm, g_uni), dot(g_uni, g_uni))
        k = [c, 1 - c]
    out = []
    for gm, gu in zip(g_mm, g_uni, strict=False):
        three_norm = torch.norm(gm + gu)
        new = 2 * k[0] * gm + 2 * k[1] * gu
        diff = three_norm / torch.norm(new)
        out.append(diff * new * gamma if diff > 1 else new * gamma)
    return out, float(cos), k[1]

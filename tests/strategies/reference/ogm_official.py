"""The authors' OGM step, re-implemented from GeWu-Lab/OGM-GE_CVPR2022@343dc1d95c9bda88f105c0da8d24f185e0e98b54
main.py `train_epoch` (torch only, no bml_core imports).

- L79-86 (concat): out_v = v W[:, d:]^T + b / 2, out_a = a W[:, :d]^T + b / 2.
- L88-91: loss = CE(out, y); loss.backward().
- L98-99: score = sum over the batch of softmax(out_m)[i][y_i]; ratio_v = s_v / s_a,
  ratio_a = 1 / ratio_v.
- L111-116: ratio_v > 1 -> coeff_v = 1 - tanh(alpha relu(ratio_v)), coeff_a = 1; else
  coeff_a = 1 - tanh(alpha relu(ratio_a)), coeff_v = 1.
- L124-139 (modulation OGM, modulation_starts <= epoch <= modulation_ends): every 4-D gradient
  (the conv weights) of the audio / visual encoder is multiplied by its coefficient.
  OGM_GE adds N(0, std(g) + 1e-8) noise to those (not reproduced here: a random draw).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def official_step(
    model: nn.Module,
    encode: Callable[[Any], tuple[torch.Tensor, torch.Tensor]],
    head: nn.Linear,
    audio_net: nn.Module,
    visual_net: nn.Module,
    x: Any,
    label: torch.Tensor,
    alpha: float,
) -> tuple[float, float]:
    """One OGM step up to optimizer.step(); the modulated gradients stay in the parameters.
    Returns (coeff_a, coeff_v)."""
    model.train()
    a, v = encode(x)
    d = a.shape[1]
    out = head(torch.cat([a, v], dim=1))
    out_v = torch.mm(v, head.weight[:, d:].t()) + head.bias / 2
    out_a = torch.mm(a, head.weight[:, :d].t()) + head.bias / 2
    F.cross_entropy(out, label).backward()
    with torch.no_grad():
        idx = torch.arange(len(label))
        score_v = float(out_v.softmax(1)[idx, label].sum())
        score_a = float(out_a.softmax(1)[idx, label].sum())
    ratio_v = score_v / score_a
    ratio_a = 1 / ratio_v
    if ratio_v > 1:
        coeff_v, coeff_a = 1 - math.tanh(alpha * max(ratio_v, 0.0)), 1.0
    else:
        coeff_a, coeff_v = 1 - math.tanh(alpha * max(ratio_a, 0.0)), 1.0
    for net, coeff in ((audio_net, coeff_a), (visual_net, coeff_v)):
        for p in net.parameters():
            if p.grad is not None and p.grad.dim() == 4:
                p.grad *= coeff
    return coeff_a, coeff_v

"""mmcosine (STRATEGIES.md section 2.3): the formulas.

Xu, Wei, Hu, "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual Fine-Grained
Learning", ICASSP 2023; official code GeWu-Lab/MMCosine_ICASSP23. Each modality's logits
are scaled cosine similarities between its L2-normalised feature and each class's
L2-normalised weight block of the concat head (no bias):

    u_m[k] = s * cos(h_m, W_m[k]),   z = sum_m u_m,   loss CE(z),

and the same head is used at evaluation. s = `scale` (10 in the official scripts)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORM_EPS = 1e-12  # F.normalize's default floor on the norm


def cosine_logits(h: torch.Tensor, w: torch.Tensor, scale: float) -> torch.Tensor:
    """s * cos(h_i, w_k) for every sample i and class k: h [B, d], w [C, d] -> [B, C]."""
    return scale * (F.normalize(h, dim=1, eps=NORM_EPS) @ F.normalize(w, dim=1, eps=NORM_EPS).t())


def mmcosine_logits(
    feats: dict[str, torch.Tensor],
    weight: torch.Tensor,
    offsets: dict[str, tuple[int, int]],
    scale: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(z, {m: u_m}) from the concat head's weight [C, sum_m d_m] split into per-modality
    column blocks W_m = weight[:, s_m:e_m]; the head's bias is not used."""
    u = {m: cosine_logits(feats[m], weight[:, s:e], scale) for m, (s, e) in offsets.items()}
    z = torch.stack(list(u.values())).sum(0)
    return z, u

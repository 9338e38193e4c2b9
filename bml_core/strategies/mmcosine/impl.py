"""mmcosine (STRATEGIES.md section 2.3): the formulas.

Xu, Wei, Hu, "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual Fine-Grained
Learning", ICASSP 2023; official code GeWu-Lab/MMCosine_ICASSP23. Each modality's logits
are scaled cosine similarities between its L2-normalised feature and each class's
L2-normalised weight block of the concat head (no bias):

    u_m[k] = s * cos(h_m, W_m[k]),   z = sum_m u_m,   loss CE(z),

and the same head is used at evaluation. s = `scale` (10 in the official scripts)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bml_core.config import ConfigError
from bml_core.models.fusion import ConcatFusion
from bml_core.strategies.base import Feats, StepContext, Strategy
from bml_core.strategies.mmcosine import MMCosineParams

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


class MMCosine(Strategy):
    """Replaces the fused logits by the MMCosine head in training and at evaluation
    (`on_logits`), using the concat head's weight blocks; logs per step the batch mean of
    cos(h_m, W_m[y]) (`mmcosine/cos/<m>`) and the cosine head's uni-modal batch accuracy
    (`mmcosine/acc/<m>`). The head's bias is unused (it gets no gradient)."""

    params: MMCosineParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        fusion = self.model.fusion
        if not isinstance(fusion, ConcatFusion):
            raise ConfigError(
                [("model.fusion", f"mmcosine needs fusion: concat, not {type(fusion).__name__}")]
            )
        self.fusion = fusion
        self._names = [f"mmcosine/{k}/{m}" for k in ("cos", "acc") for m in self.modalities]

    def on_logits(self, ctx: StepContext, h: Feats, z: torch.Tensor, training: bool) -> torch.Tensor:
        if not training and self.params.eval_logits == "linear":
            return z  # official main_CD.py L181/L196: the plain linear logits are scored
        scale = self.params.scale
        fused, u = mmcosine_logits(h, self.fusion.fc.weight, self.fusion.offsets, scale)
        if training and ctx.y is not None:
            y = ctx.y[:, None]
            with torch.no_grad():
                stacked = torch.stack([u[m] for m in self.modalities]).float()  # [M, B, C]
                cos_true = stacked.gather(2, y.expand(len(self.modalities), -1, -1)).mean((1, 2)) / scale
                acc = (stacked.argmax(2) == ctx.y).float().mean(1)
            ctx.log(self._names, torch.cat([cos_true, acc]))
        return fused

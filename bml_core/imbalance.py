"""The imbalance probe (METHODS.md sections 2-3): uni-modal logits, per-modality scores s_m
and the discrepancy ratio rho_m, all vectorised and free of host syncs."""

from __future__ import annotations

import torch

from bml_core.models import MultimodalModel

RATIO_EPS = 1e-8


@torch.no_grad()
def probe_unimodal_logits(model: MultimodalModel, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """u_m from detached features; never part of the autograd graph, so it cannot change training."""
    return model.fusion.unimodal_logits({m: h.detach() for m, h in feats.items()})


def modality_scores(unimodal_logits: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """s_m = sum_i softmax(u_m,i)[y_i] for every modality, as one tensor [M]."""
    return UnimodalProbe(unimodal_logits, y).scores


class UnimodalProbe:
    """The probe's per-step numbers for all modalities at once, from the stacked uni-modal
    logits [M, B, C]: scores s_m, uni-modal cross-entropy and accuracy (each [M])."""

    def __init__(self, unimodal_logits: dict[str, torch.Tensor], y: torch.Tensor):
        self.logits = unimodal_logits
        u = torch.stack(list(unimodal_logits.values())).float()
        target = y.expand(u.shape[0], -1).unsqueeze(2)
        log_p_true = u.log_softmax(-1).gather(2, target).squeeze(2)  # [M, B]
        self.scores = log_p_true.exp().sum(1)
        self.loss = -log_p_true.mean(1)
        self.accuracy = (u.argmax(2) == target.squeeze(2)).float().mean(1)


def official_loop_score(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The official codes' per-sample loop (O(B^2 C), a host sync per sample); kept only
    as the reference for tests and benchmarks."""
    softmax = torch.nn.Softmax(dim=1)
    return sum([softmax(logits)[i][y[i]] for i in range(logits.size(0))])


def discrepancy_ratio(
    scores: torch.Tensor, kind: str = "pairwise_mean", eps: float = RATIO_EPS
) -> torch.Tensor:
    """rho_m from scores [M].

    pairwise_mean: mean_{j != m} s_m / (s_j + eps)  (M = 2: the official s_1 / s_2)
    vs_rest:       s_m / (sum_{j != m} s_j + eps)
    vs_min:        s_m / (min_j s_j + eps)
    """
    m = scores.shape[0]
    if kind == "pairwise_mean":
        # sum over all j, minus the j = m term
        return ((scores[:, None] / (scores[None, :] + eps)).sum(1) - scores / (scores + eps)) / (m - 1)
    if kind == "vs_rest":
        return scores / (scores.sum() - scores + eps)
    if kind == "vs_min":
        return scores / (scores.min() + eps)
    raise ValueError(f"unknown ratio {kind!r}")


def discrepancy_ratio_host(
    scores: list[float], kind: str = "pairwise_mean", eps: float = RATIO_EPS
) -> list[float]:
    """The same formulas on plain floats (CPU runs, where reading the scores costs nothing)."""
    m = len(scores)
    if kind == "pairwise_mean":
        return [
            sum(s / (t + eps) for j, t in enumerate(scores) if j != i) / (m - 1) for i, s in enumerate(scores)
        ]
    if kind == "vs_rest":
        total = sum(scores)
        return [s / (total - s + eps) for s in scores]
    if kind == "vs_min":
        low = min(scores)
        return [s / (low + eps) for s in scores]
    raise ValueError(f"unknown ratio {kind!r}")

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
    idx = y[:, None]
    return torch.stack([u.float().softmax(-1).gather(1, idx).sum() for u in unimodal_logits.values()])


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
        pair = scores[:, None] / (scores[None, :] + eps)
        off_diag = ~torch.eye(m, dtype=torch.bool, device=scores.device)
        return (pair * off_diag).sum(1) / (m - 1)
    if kind == "vs_rest":
        return scores / (scores.sum() - scores + eps)
    if kind == "vs_min":
        return scores / (scores.min() + eps)
    raise ValueError(f"unknown ratio {kind!r}")

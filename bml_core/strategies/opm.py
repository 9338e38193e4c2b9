"""OPM: On-the-fly Prediction Modulation. Wei, Hu, Du, Wen, "On-the-fly Modulation for
Balanced Multimodal Learning", IEEE T-PAMI 2024 (arXiv 2410.11582); METHODS.md section 5.
Drops the dominant modality's features with a dynamic probability in the forward pass."""

from __future__ import annotations

from typing import Any

import torch

from bml_core.config import OPMParams
from bml_core.strategies.base import StepContext, Strategy, register_strategy


def opm_drop_probability(rho: torch.Tensor, q_base: float, lam: float) -> torch.Tensor:
    """q_m = clip(q_base (1 + lam tanh(relu(rho_m - 1))), 0, 1) if rho_m > 1 else 0."""
    q = torch.clamp(q_base * (1 + lam * torch.tanh(torch.relu(rho - 1))), 0.0, 1.0)
    return torch.where(rho > 1, q, torch.zeros_like(q))


def opm_rescale_factors(q: torch.Tensor, dims: torch.Tensor, rescale: str) -> torch.Tensor:
    """Per-modality feature scale for kept features: global 1/(1-theta) with
    theta = sum d_m q_m / sum d_m; per_modality 1/(1-q_m); none 1."""
    if rescale == "global":
        theta = (dims * q).sum() / dims.sum()
        keep = 1 - theta
        return torch.where(keep > 0, 1 / keep.clamp_min(1e-12), torch.zeros_like(keep)).expand_as(q)
    if rescale == "per_modality":
        keep = 1 - q
        return torch.where(keep > 0, 1 / keep.clamp_min(1e-12), torch.zeros_like(keep))
    if rescale == "none":
        return torch.ones_like(q)
    raise ValueError(f"unknown rescale {rescale!r}")


def _feature_dims(feats: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """d_m: the number of feature values per sample of each modality."""
    return torch.tensor([feats[m][0].numel() for m in feats], dtype=like.dtype, device=like.device)


def opm_drop(
    feats: dict[str, torch.Tensor],
    q: torch.Tensor,
    p_exe: float,
    rescale: str,
    generator: torch.Generator,
    feature_dims: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop features per sample and modality. Returns (features, keep mask [B, M], gate
    (0-dim bool), alive [B] bool: samples with at least one modality kept)."""
    names = list(feats)
    first = feats[names[0]]
    b, device = first.shape[0], first.device
    gate = torch.rand((), generator=generator, device=device) < p_exe
    keep = torch.rand((b, len(names)), generator=generator, device=device) >= q[None, :]
    keep = keep | ~gate
    dims = feature_dims if feature_dims is not None else _feature_dims(feats, q)
    factor = torch.where(gate, opm_rescale_factors(q, dims, rescale), torch.ones_like(q))
    scale = keep.to(first.dtype) * factor.to(first.dtype)[None, :]
    out = {}
    for i, m in enumerate(names):
        shape = (b,) + (1,) * (feats[m].dim() - 1)
        out[m] = feats[m] * scale[:, i].reshape(shape)
    return out, keep, gate, keep.any(1)


@register_strategy("opm")
class OPM(Strategy):
    """Drops the dominant modality's features with probability q_m, rescaling the rest."""

    params: OPMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.previous_rho: torch.Tensor | None = None
        self.forced_q: torch.Tensor | None = None  # for tests and ablations: overrides q
        self._dims: torch.Tensor | None = None

    def transform_features(
        self, feats: dict[str, torch.Tensor], ctx: StepContext
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        rho = ctx.ratio(self.params.ratio)
        source = rho if self.params.q_source == "batch" or self.previous_rho is None else self.previous_rho
        self.previous_rho = rho.detach()
        zero = torch.zeros((), device=rho.device)
        if not self.active(ctx.epoch):
            for m in self.modalities:
                ctx.metrics[f"opm/drop_prob/{m}"] = zero
                ctx.metrics[f"opm/dropped/{m}"] = zero
            ctx.metrics["opm/gate"] = zero
            return feats, None
        q = (
            self.forced_q
            if self.forced_q is not None
            else opm_drop_probability(source, self.params.q_base, self.params.lam)
        )
        q = q.to(rho.device, rho.dtype)
        if self._dims is None:
            self._dims = _feature_dims(feats, q)
        out, keep, gate, alive = opm_drop(
            feats, q, self.params.p_exe, self.params.rescale, self.generator, self._dims
        )
        dropped = 1 - keep.float().mean(0)
        for i, m in enumerate(self.modalities):
            ctx.metrics[f"opm/drop_prob/{m}"] = q[i]
            ctx.metrics[f"opm/dropped/{m}"] = dropped[i]
        ctx.metrics["opm/gate"] = gate.float()
        return out, alive

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "previous_rho": self.previous_rho}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.previous_rho = state.get("previous_rho")

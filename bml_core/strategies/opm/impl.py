"""OPM (implementation): On-the-fly Prediction Modulation. Wei, Hu, Du, Wen, "On-the-fly
Modulation for Balanced Multimodal Learning", IEEE T-PAMI 2024 (arXiv 2410.11582); METHODS.md
section 5. Drops the dominant modality's features with a dynamic probability in the forward
pass (event: on_features)."""

from __future__ import annotations

import math
from typing import Any

import torch

from bml_core.strategies.base import Feats, StepContext, Strategy, register_strategy
from bml_core.strategies.opm import OPMParams


def opm_drop_probability(rho: torch.Tensor, q_base: float, lam: float) -> torch.Tensor:
    """q_m = clip(q_base (1 + lam tanh(relu(rho_m - 1))), 0, 1) if rho_m > 1 else 0."""
    q = torch.tanh(torch.relu(rho - 1)).mul_(q_base * lam).add_(q_base).clamp_(0.0, 1.0)
    return q.mul_(rho > 1)


def opm_drop_probability_host(rho: list[float], q_base: float, lam: float) -> list[float]:
    """opm_drop_probability on plain floats (CPU runs)."""
    return [min(max(q_base * (1 + lam * math.tanh(r - 1)), 0.0), 1.0) if r > 1 else 0.0 for r in rho]


def opm_rescale_factors_host(q: list[float], weights: list[float], rescale: str) -> list[float]:
    """opm_rescale_factors on plain floats (CPU runs)."""
    if rescale == "global":
        theta = sum(w * qm for w, qm in zip(weights, q, strict=True))
        return [1 / max(1 - theta, 1e-12)] * len(q)
    if rescale == "per_modality":
        return [1 / max(1 - qm, 1e-12) for qm in q]
    if rescale == "none":
        return [1.0] * len(q)
    raise ValueError(f"unknown rescale {rescale!r}")


def opm_rescale_factors(q: torch.Tensor, weights: torch.Tensor, rescale: str) -> torch.Tensor:
    """Scale of the kept features of each modality. global: 1 / (1 - theta) for every
    modality, theta = sum_m d_m q_m / sum_m d_m (weights = d_m / sum d); per_modality:
    1 / (1 - q_m); none: 1. (A modality with q = 1 is dropped entirely, so its factor is moot.)"""
    if rescale == "global":
        return (1 - (weights * q).sum()).clamp_min(1e-12).reciprocal().expand_as(q)
    if rescale == "per_modality":
        return (1 - q).clamp_min(1e-12).reciprocal()
    if rescale == "none":
        return torch.ones_like(q)
    raise ValueError(f"unknown rescale {rescale!r}")


def feature_weights(feats: dict[str, torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """d_m / sum_j d_j: each modality's share of the feature values of a sample."""
    dims = torch.tensor([float(feats[m][0].numel()) for m in feats], dtype=like.dtype, device=like.device)
    return dims / dims.sum()


def opm_drop(
    feats: dict[str, torch.Tensor],
    q: torch.Tensor,
    p_exe: float,
    rescale: str,
    generator: torch.Generator,
    weights: torch.Tensor | None = None,
) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor, torch.Tensor]:
    """Drop features per sample and modality. Returns (features, keep mask [B, M], gate
    (0-dim bool), alive [B] bool: samples with at least one modality kept).

    The gate folds into q (q_eff = q * gate): when it does not fire nothing is dropped and
    every rescale factor is 1, with no branch and no host sync."""
    names = list(feats)
    first = feats[names[0]]
    b, device = first.shape[0], first.device
    gate = torch.rand((), generator=generator, device=device) < p_exe
    q_eff = q * gate
    keep = torch.rand((b, len(names)), generator=generator, device=device) >= q_eff
    w = weights if weights is not None else feature_weights(feats, q)
    scale = (keep * opm_rescale_factors(q_eff, w, rescale)).to(first.dtype)
    out = {}
    for i, m in enumerate(names):
        s = scale[:, i]
        out[m] = feats[m] * (s.view((b,) + (1,) * (feats[m].dim() - 1)))
    return out, keep, gate, keep.any(1)


@register_strategy("opm")
class OPM(Strategy):
    """Drops the dominant modality's features with probability q_m, rescaling the rest."""

    params: OPMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.previous_rho: torch.Tensor | list[float] | None = None  # a list on the host path
        self.forced_q: torch.Tensor | None = None  # for tests and ablations: overrides q
        self._weights: torch.Tensor | None = None
        self._names = (
            [f"opm/drop_prob/{m}" for m in self.modalities]
            + [f"opm/dropped/{m}" for m in self.modalities]
            + ["opm/gate"]
        )
        self._idle = torch.zeros(len(self._names), device=self.device)
        self._drop_prob_names = [f"opm/drop_prob/{m}" for m in self.modalities]
        self._dropped_names = [f"opm/dropped/{m}" for m in self.modalities]
        self._host_weights: list[float] | None = None

    def on_features(self, ctx: StepContext, h: Feats) -> Feats:
        out, alive = self.transform_features(h, ctx)
        if alive is not None:
            ctx.keep_samples(alive)
        return out

    def transform_features(
        self, feats: dict[str, torch.Tensor], ctx: StepContext
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """(features with drops, per-sample mask of samples that kept a modality, or None)."""
        if ctx.host and self.host_math:
            return self._transform_host(feats, ctx)
        rho = ctx.ratio(self.params.ratio)
        previous = self.previous_rho
        if isinstance(previous, list):
            previous = torch.tensor(previous, device=rho.device, dtype=rho.dtype)
        source = rho if self.params.q_source == "batch" or previous is None else previous
        self.previous_rho = rho.detach()
        if not self.active(ctx.epoch):
            ctx.log(self._names, self._idle)
            return feats, None
        if self.forced_q is not None:
            q = self.forced_q.to(rho.device, rho.dtype)
        else:
            q = opm_drop_probability(source, self.params.q_base, self.params.lam)
        if self._weights is None:
            self._weights = feature_weights(feats, q)
        out, keep, gate, alive = opm_drop(
            feats, q, self.params.p_exe, self.params.rescale, self.generator, self._weights
        )
        dropped = 1 - keep.mean(0, dtype=q.dtype)
        ctx.log(self._names, torch.cat([q, dropped, gate.reshape(1).to(q.dtype)]))
        return out, alive

    def _transform_host(
        self, feats: dict[str, torch.Tensor], ctx: StepContext
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """The same method with the per-modality scalars on plain floats (CPU runs, where a
        tensor op costs more than the arithmetic): a step whose gate does not fire costs one
        random draw; a modality with q = 0 is only rescaled; and a sample can lose every
        modality only when every q_m > 0, so the removal mask is built only then."""
        m = len(self.modalities)
        rho = ctx.ratio_host(self.params.ratio)
        previous = self.previous_rho
        use_previous = self.params.q_source == "previous" and previous is not None
        source = (
            (previous.tolist() if isinstance(previous, torch.Tensor) else previous) if use_previous else rho
        )
        self.previous_rho = list(rho)
        if not self.active(ctx.epoch):
            ctx.log_host(self._names, [0.0] * len(self._names))
            return feats, None
        if self.forced_q is not None:
            q = [float(v) for v in self.forced_q.tolist()]
        else:
            q = opm_drop_probability_host(source, self.params.q_base, self.params.lam)  # type: ignore[arg-type]
        gate = torch.rand((), generator=self.generator).item() < self.params.p_exe
        if not gate or max(q) == 0.0:
            ctx.log_host(self._names, q + [0.0] * m + [float(gate)])
            return feats, None
        if self._host_weights is None:
            self._host_weights = feature_weights(feats, torch.zeros(1)).tolist()
        factors = opm_rescale_factors_host(q, self._host_weights, self.params.rescale)
        out: dict[str, torch.Tensor] = {}
        keeps: list[torch.Tensor] = []
        dropped: list[float] = []
        for name, qm, factor in zip(self.modalities, q, factors, strict=True):
            h = feats[name]
            if qm == 0.0:
                out[name] = h if factor == 1.0 else h * factor
                dropped.append(0.0)
                continue
            keep = torch.rand((h.shape[0],) + (1,) * (h.dim() - 1), generator=self.generator) >= qm
            out[name] = h * (keep * factor).to(h.dtype)
            dropped.append(1.0 - keep.sum().item() / h.shape[0])
            keeps.append(keep.reshape(-1))
        ctx.log_host(self._names, q + dropped + [1.0])
        alive = torch.stack(keeps, 1).any(1) if len(keeps) == m else None
        return out, alive

    def state_dict(self) -> dict[str, Any]:
        previous = self.previous_rho
        if isinstance(previous, list):
            previous = torch.tensor(previous)
        return {**super().state_dict(), "previous_rho": previous}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        previous = state.get("previous_rho")
        self.previous_rho = previous.to(self.device) if previous is not None else None

"""OGM and OGM-GE: On-the-fly Gradient Modulation with Generalisation Enhancement.
Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022 (arXiv 2203.15332); METHODS.md section 4."""

from __future__ import annotations

from typing import Any

import torch

from bml_core.config import OGMParams
from bml_core.strategies.base import StepContext, Strategy, register_strategy

GE_STD_EPS = 1e-8


def ogm_coefficient(rho: torch.Tensor, alpha: float, k_form: str = "official") -> torch.Tensor:
    """k_m. official: 1 - tanh(alpha * rho) where rho > 1, else 1 (a jump at rho = 1);
    smooth: 1 - tanh(alpha * relu(rho - 1))."""
    if k_form == "official":
        return torch.where(rho > 1, 1 - torch.tanh(alpha * rho), torch.ones_like(rho))
    if k_form == "smooth":
        return 1 - torch.tanh(alpha * torch.relu(rho - 1))
    raise ValueError(f"unknown k_form {k_form!r}")


def select_parameters(params: list[torch.nn.Parameter], which: str) -> list[torch.nn.Parameter]:
    """weights: tensors with >= 2 dims; conv_only: 4-D tensors; all: every tensor."""
    if which == "weights":
        return [p for p in params if p.dim() >= 2]
    if which == "conv_only":
        return [p for p in params if p.dim() == 4]
    if which == "all":
        return list(params)
    raise ValueError(f"unknown params selection {which!r}")


def modulate_gradients(
    grads: list[torch.Tensor], coef: torch.Tensor, noise: bool, generator: torch.Generator | None
) -> None:
    """In place: g <- k g (+ N(0, std(g_unmodulated)^2 + eps)). No host sync: coef stays a tensor."""
    if not grads:
        return
    if noise:
        noises = []
        for g in grads:
            std = g.std() + GE_STD_EPS if g.numel() > 1 else torch.full((), GE_STD_EPS, device=g.device)
            noises.append(torch.randn(g.shape, generator=generator, device=g.device, dtype=g.dtype).mul_(std))
        torch._foreach_mul_(grads, coef.to(grads[0].dtype))
        torch._foreach_add_(grads, noises)
    else:
        torch._foreach_mul_(grads, coef.to(grads[0].dtype))


@register_strategy("ogm")
class OGM(Strategy):
    """Scales the gradients of the dominant modality's encoder by k_m < 1."""

    noise = False
    params: OGMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selected = {
            m: select_parameters(self.model.encoder_parameters(m), self.params.params)
            for m in self.modalities
        }

    def after_backward(self, ctx: StepContext) -> None:
        if not self.active(ctx.epoch):
            for m in self.modalities:
                ctx.metrics[f"ogm/coef/{m}"] = torch.ones((), device=self.device)
            return
        coef = ogm_coefficient(ctx.ratio(self.params.ratio), self.params.alpha, self.params.k_form)
        for i, m in enumerate(self.modalities):
            grads = [p.grad for p in self.selected[m] if p.grad is not None]
            modulate_gradients(grads, coef[i], self.noise, self.generator)
            ctx.metrics[f"ogm/coef/{m}"] = coef[i]


@register_strategy("ogm_ge")
class OGMGE(OGM):
    """OGM plus Gaussian noise with the unmodulated gradient's std, on every modality."""

    noise = True

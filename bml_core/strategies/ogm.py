"""OGM and OGM-GE: On-the-fly Gradient Modulation with Generalisation Enhancement.
Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022 (arXiv 2203.15332); METHODS.md section 4."""

from __future__ import annotations

from typing import Any

import torch

from bml_core.config import OGMParams
from bml_core.strategies.base import StepContext, Strategy, register_strategy
from bml_core.strategies.noise import GaussianNoiseSource

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


def gradient_stds(grads: list[torch.Tensor]) -> torch.Tensor:
    """std of each tensor (unbiased), from one fused norm pass and one sum per tensor:
    var = (sum g^2 - (sum g)^2 / n) / (n - 1). Two passes less than Tensor.std()."""
    norms = torch.stack(torch._foreach_norm(grads))
    sums = torch.stack([g.sum() for g in grads])
    n = torch.tensor([g.numel() for g in grads], dtype=norms.dtype, device=norms.device)
    var = (norms * norms - sums * sums / n).clamp_min(0) / (n - 1).clamp_min(1)
    return var.sqrt()


def modulate_gradients(
    grads: list[torch.Tensor], coef: torch.Tensor, noise: list[torch.Tensor] | None = None
) -> None:
    """In place: g <- k g, and with noise (standard normal, one tensor per gradient)
    g <- k g + std(g_unmodulated) * noise + eps. No host sync: coef stays a tensor."""
    if not grads:
        return
    stds = (gradient_stds(grads) + GE_STD_EPS).unbind() if noise is not None else None
    torch._foreach_mul_(grads, coef.to(grads[0].dtype))
    if noise is not None and stds is not None:
        torch._foreach_addcmul_(grads, noise, list(stds))


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
        shapes = [p.shape for m in self.modalities for p in self.selected[m]]
        self.noise_source = GaussianNoiseSource(shapes, self.generator, self.device) if self.noise else None
        self._ones = torch.ones(len(self.modalities), device=self.device)

    def after_backward(self, ctx: StepContext) -> None:
        if not self.active(ctx.epoch):
            for i, m in enumerate(self.modalities):
                ctx.metrics[f"ogm/coef/{m}"] = self._ones[i]
            return
        coef = ogm_coefficient(ctx.ratio(self.params.ratio), self.params.alpha, self.params.k_form)
        noise = iter(self.noise_source.next()) if self.noise_source is not None else None
        for i, m in enumerate(self.modalities):
            grads: list[torch.Tensor] = []
            noises: list[torch.Tensor] = []
            for p in self.selected[m]:
                n = next(noise) if noise is not None else None
                if p.grad is not None:  # an unused parameter takes no noise, as in the official loop
                    grads.append(p.grad)
                    if n is not None:
                        noises.append(n)
            modulate_gradients(grads, coef[i], noises if noise is not None else None)
            ctx.metrics[f"ogm/coef/{m}"] = coef[i]

    def state_dict(self) -> dict[str, Any]:
        if self.noise_source is not None:
            return {"generator": self.noise_source.state()}
        return super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.noise_source is not None:
            self.noise_source.load_state(state["generator"])
        else:
            super().load_state_dict(state)


@register_strategy("ogm_ge")
class OGMGE(OGM):
    """OGM plus Gaussian noise with the unmodulated gradient's std, on every modality."""

    noise = True

"""OGM and OGM-GE (implementation): On-the-fly Gradient Modulation with Generalisation
Enhancement. Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly
Gradient Modulation", CVPR 2022 (arXiv 2203.15332); METHODS.md section 4. Event: on_gradients."""

from __future__ import annotations

import math
from typing import Any

import torch

from bml_core.strategies.base import StepContext, Strategy, register_strategy
from bml_core.strategies.noise import GaussianNoiseSource
from bml_core.strategies.ogm import OGMParams

GE_STD_EPS = 1e-8


def ogm_coefficient(rho: torch.Tensor, alpha: float, k_form: str = "official") -> torch.Tensor:
    """k_m. official: 1 - tanh(alpha * rho) where rho > 1, else 1 (a jump at rho = 1);
    smooth: 1 - tanh(alpha * relu(rho - 1))."""
    if k_form == "official":
        return torch.where(rho > 1, 1 - torch.tanh(alpha * rho), torch.ones_like(rho))
    if k_form == "smooth":
        return 1 - torch.tanh(alpha * torch.relu(rho - 1))
    raise ValueError(f"unknown k_form {k_form!r}")


def ogm_coefficient_host(rho: list[float], alpha: float, k_form: str = "official") -> list[float]:
    """ogm_coefficient on plain floats (CPU runs)."""
    if k_form == "official":
        return [1 - math.tanh(alpha * r) if r > 1 else 1.0 for r in rho]
    if k_form == "smooth":
        return [1 - math.tanh(alpha * max(r - 1, 0.0)) for r in rho]
    raise ValueError(f"unknown k_form {k_form!r}")


def select_parameters(tensors: list[torch.nn.Parameter], which: str) -> list[torch.nn.Parameter]:
    """weights: tensors with >= 2 dims; conv_only: 4-D tensors; all: every tensor."""
    if which == "weights":
        return [p for p in tensors if p.dim() >= 2]
    if which == "conv_only":
        return [p for p in tensors if p.dim() == 4]
    if which == "all":
        return list(tensors)
    raise ValueError(f"unknown params selection {which!r}")


def gradient_stds(grads: list[torch.Tensor], numels: torch.Tensor | None = None) -> torch.Tensor:
    """std of each tensor (unbiased), from one fused norm pass and one sum per tensor:
    var = (sum g^2 - (sum g)^2 / n) / (n - 1). Two passes less than Tensor.std()."""
    sq = torch.stack(torch._foreach_norm(grads)).square_()
    sums = torch.stack([g.sum() for g in grads])
    n = numels if numels is not None else torch.tensor([float(g.numel()) for g in grads], device=sq.device)
    return (sq - sums.square() / n).clamp_min_(0).div_((n - 1).clamp_min(1)).sqrt_()


def modulate_gradients(
    grads: list[list[torch.Tensor]], coef: torch.Tensor | list[float], noise: list[torch.Tensor] | None = None
) -> None:
    """In place, for the gradient tensors of each modality m: g <- k_m g, and with noise
    (standard normal, one tensor per gradient, all modalities flattened in order)
    g <- k_m g + (std(g_unmodulated) + eps) * noise. coef is a device tensor (no host sync)
    or plain floats (CPU runs; a factor of exactly 1 is then skipped)."""
    flat = [g for gs in grads for g in gs]
    if not flat:
        return
    stds = (gradient_stds(flat) + GE_STD_EPS).unbind() if noise is not None else None
    for i, gs in enumerate(grads):
        if not gs:
            continue
        k = coef[i]
        if isinstance(k, float):
            if k != 1.0:
                torch._foreach_mul_(gs, k)
        else:
            torch._foreach_mul_(gs, k.to(gs[0].dtype))
    if noise is not None and stds is not None:
        torch._foreach_addcmul_(flat, noise, list(stds))


@register_strategy("ogm")
class OGM(Strategy):
    """Scales the gradients of the dominant modality's encoder by k_m < 1."""

    noise = False
    params: OGMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selected = {
            m: select_parameters(self.model.encoder_parameters(m), self.params.modulated_tensors)
            for m in self.modalities
        }
        shapes = [p.shape for m in self.modalities for p in self.selected[m]]
        self.noise_source = GaussianNoiseSource(shapes, self.generator, self.device) if self.noise else None
        self._names = [f"ogm/coef/{m}" for m in self.modalities]
        self._ones = torch.ones(len(self.modalities), device=self.device)

    def on_gradients(self, ctx: StepContext) -> None:
        self.after_backward(ctx)

    def after_backward(self, ctx: StepContext) -> None:
        """Scale (and with GE, perturb) the selected encoder gradients of this step."""
        if not self.active(ctx.epoch):
            ctx.log(self._names, self._ones)
            return
        coef: torch.Tensor | list[float]
        if ctx.host and self.host_math:
            coef = ogm_coefficient_host(
                ctx.ratio_host(self.params.ratio), self.params.alpha, self.params.k_form
            )
        else:
            coef = ogm_coefficient(ctx.ratio(self.params.ratio), self.params.alpha, self.params.k_form)
        noise = self.noise_source.next() if self.noise_source is not None else None
        grads: list[list[torch.Tensor]] = []
        used_noise: list[torch.Tensor] = []
        position = 0
        for m in self.modalities:
            gs = []
            for p in self.selected[m]:
                if p.grad is not None:  # an unused parameter takes no noise, as in the official loop
                    gs.append(p.grad)
                    if noise is not None:
                        used_noise.append(noise[position])
                position += 1
            grads.append(gs)
        modulate_gradients(grads, coef, used_noise if noise is not None else None)
        if isinstance(coef, list):
            ctx.log_host(self._names, coef)
        else:
            ctx.log(self._names, coef)

    def state_dict(self) -> dict[str, Any]:
        if self.noise_source is not None:
            return {"generator": self.noise_source.state(), "state": self.state}
        return super().state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.noise_source is not None:
            self.noise_source.load_state(state["generator"])
            self.state = state.get("state", {})
        else:
            super().load_state_dict(state)


@register_strategy("ogm_ge")
class OGMGE(OGM):
    """OGM plus Gaussian noise with the unmodulated gradient's std, on every modality."""

    noise = True

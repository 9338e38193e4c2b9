"""uni_aux, the uni-modal auxiliary-loss baseline (STRATEGIES.md section 2.1): the formulas.

L = CE(z) + sum_m lambda_m CE(u_m), lambda_m = 1 by default, with u_m either the concat
head's own blocks (`heads: split`, u_m = W_m h_m + b/M, so the fused head is trained by the
uni-modal terms too) or one auxiliary linear head per modality (`heads: aux`). After the
backward, every encoder gradient is multiplied by `encoder_grad_scale` gamma (1.0).

The auxiliary uni-modal loss is the common baseline of the balancing literature (e.g. Du
et al., "On Uni-Modal Feature Learning in Supervised Multi-Modal Learning", ICML 2023);
BalanceBenchmark's (GeWu-Lab/BalanceBenchmark) "MMPareto" reduces to split heads with
gamma = 3 because its conflict test never fires (STRATEGIES.md sections 2.1 and 2.7)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bml_core.config import ConfigError
from bml_core.strategies.base import Feats, Losses, StepContext, Strategy
from bml_core.strategies.uni_aux import UniAuxParams


def unimodal_cross_entropy(u: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CE(u_m, y) for every modality at once: u is [M, B, C] (stacked uni-modal logits),
    y is [B]; returns the M batch-mean losses, [M]. One cross_entropy call, no loop."""
    m, b, c = u.shape
    per_sample = F.cross_entropy(u.reshape(m * b, c).float(), y.repeat(m), reduction="none")
    return per_sample.view(m, b).mean(1)


def uni_aux_terms(u: torch.Tensor, y: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """The auxiliary terms lambda_m CE(u_m, y), [M] (the trainer adds CE(z) itself)."""
    return lambdas.to(torch.float32) * unimodal_cross_entropy(u, y)


def uni_aux_loss(z: torch.Tensor, u: torch.Tensor, y: torch.Tensor, lambdas: torch.Tensor) -> torch.Tensor:
    """The whole objective L = CE(z, y) + sum_m lambda_m CE(u_m, y) (a scalar)."""
    return F.cross_entropy(z.float(), y) + uni_aux_terms(u, y, lambdas).sum()


def scale_gradients_(grads: list[torch.Tensor], gamma: float) -> None:
    """In place g <- gamma * g for every tensor (one fused foreach call); gamma = 1 is a no-op."""
    if grads and gamma != 1.0:
        torch._foreach_mul_(grads, gamma)


class UniAux(Strategy):
    """Adds sum_m lambda_m CE(u_m) (one loss term, `uni_aux`) while active, logs CE(u_m) as
    `uni_aux/loss/<m>` every step, and scales the encoder gradients by gamma after the
    backward. u_m comes with gradient (capability needs_unimodal_logits_with_grad), from the
    heads the run's `model.heads` names."""

    params: UniAuxParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        unknown = sorted(set(p.lambdas) - set(self.modalities))
        if unknown:
            raise ConfigError(
                [
                    (
                        "strategies.uni_aux.lambdas",
                        f"names modalities {unknown} that the dataset does not have (it has {self.modalities})",
                    )
                ]
            )
        self.lambdas = torch.tensor([p.lambdas.get(m, p.lam) for m in self.modalities], device=self.device)
        self.encoder_grads_of = [q for m in self.modalities for q in self.model.encoder_parameters(m)]
        self._names = [f"uni_aux/loss/{m}" for m in self.modalities]

    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        ce = unimodal_cross_entropy(torch.stack([u[m] for m in self.modalities]), y)
        ctx.log(self._names, ce)
        if not self.active(ctx.epoch):
            return {}
        return {"uni_aux": (self.lambdas * ce).sum()}

    def on_gradients(self, ctx: StepContext) -> None:
        if self.params.encoder_grad_scale != 1.0 and self.active(ctx.epoch):
            grads = [q.grad for q in self.encoder_grads_of if q.grad is not None]
            scale_gradients_(grads, self.params.encoder_grad_scale)

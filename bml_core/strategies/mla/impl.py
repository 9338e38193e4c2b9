"""MLA (implementation; STRATEGIES.md 2.9). Per batch, for each modality m in turn: loss
CE(head(h_m)), backward, (projection) update P with r = batch-mean h_m and alpha_t =
0.1^(1 + batch_idx / batches), P <- P - (P r)(P r)^T / (alpha_t + r^T P r), then the head's
weight gradient G <- G P, and an optimizer step. P starts as I / ||I||_F and is shared by the
modalities (it remembers every modality's directions). Order as in OWM (the released
projection code MLA builds on): P is updated with the batch's r, then applied.

Evaluation: z = sum_m w_m head(h_m), w_m = softmax_m(-entropy(softmax(head(h_m)))) per
sample (`dynamic`), or w_m = 1/M (`equal`)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from bml_core.models import SharedHead
from bml_core.strategies.base import Batch, Feats, StepContext, Strategy
from bml_core.strategies.mla import MLAParams


def initial_projection(dim: int, device: torch.device | None = None) -> torch.Tensor:
    """P_0 = I / ||I||_F = I / sqrt(d)."""
    return torch.eye(dim, device=device) / math.sqrt(dim)


def projection_alpha(batch_idx: int, batches: int) -> float:
    """alpha_t = 0.1^(1 + batch_idx / batches)."""
    return 0.1 ** (1 + batch_idx / batches)


def update_projection(p: torch.Tensor, r: torch.Tensor, alpha: float, normalize: bool = True) -> torch.Tensor:
    """P - (P r)(P r)^T / (alpha + r^T P r) (a new tensor; P symmetric), then rescaled to
    ||P||_F = 1 as the authors' GSPlugin does (Cecile-hi/Multimodal-Learning-with-Alternating-
    Unimodal-Adaptation@ab6c184 utils/utils.py L38-40: `self.Pl.data / torch.norm(.., 'fro')`).
    Without the rescale P collapses towards 0 and with it the head's gradient (issue 21)."""
    k = p @ r
    out = p - torch.outer(k, k) / (alpha + r.dot(k))
    return out / torch.linalg.matrix_norm(out) if normalize else out


def project_gradient(grad: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The head's weight gradient [C, d] projected: G P."""
    return grad @ p


def fusion_weights(u: torch.Tensor, mode: str) -> torch.Tensor:
    """Weights [M, B] from uni-modal logits u [M, B, C]: softmax over m of -entropy (dynamic)
    or 1/M (equal)."""
    if mode == "equal":
        return torch.full(u.shape[:2], 1.0 / u.shape[0], device=u.device, dtype=u.dtype)
    logp = u.log_softmax(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return (-entropy).softmax(0)


def fuse(u: torch.Tensor, mode: str) -> torch.Tensor:
    """z = sum_m w_m u_m from u [M, B, C]."""
    return (fusion_weights(u, mode).unsqueeze(-1) * u).sum(0)


class MLA(Strategy):
    """Alternating uni-modal steps (training_step) and the evaluation fusion (on_logits)."""

    params: MLAParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        head = self.model.fusion
        if not isinstance(head, SharedHead):
            raise TypeError("mla needs model.head: shared")
        self.head = head
        self._weight_names = [f"mla/weight/{m}" for m in self.modalities]

    def on_fit_start(self, ctx: StepContext) -> None:
        if self.params.projection and "P" not in self.state:
            self.state["P"] = initial_projection(self.head.fc.in_features, self.device)

    def training_step(self, ctx: StepContext, batch: Batch) -> dict[str, float] | None:
        x, y = batch
        model, fc = self.model, self.head.fc
        project = self.params.projection and self.active(ctx.epoch)
        total = torch.zeros((), device=y.device)
        u: dict[str, torch.Tensor] = {}
        norms: list[torch.Tensor] = []
        for m in self.modalities:
            h = model.encoders[m](x[m])
            logits = fc(h)
            loss = F.cross_entropy(logits.float(), y)
            ctx.optimizer.zero_grad(set_to_none=True)
            ctx.backward(loss)
            count = int(self.state.get("count", 0))
            if project:
                self.state["count"] = count + 1  # official gs_plugin.exp_count (main.py L442)
            if project and fc.weight.grad is not None and (count > 0 or not self.params.skip_first):
                # official utils.py L29: no projection while train_exp_counter == 0
                r = h.detach().float().mean(0)
                alpha = projection_alpha(ctx.batch_idx, ctx.steps_per_epoch)
                self.state["P"] = update_projection(self.state["P"], r, alpha, self.params.normalize)
                fc.weight.grad = project_gradient(fc.weight.grad, self.state["P"].to(fc.weight.grad.dtype))
            grads = [p.grad for p in ctx.encoder_params(m) if p.grad is not None]
            norms.append(
                torch.stack(torch._foreach_norm(grads)).float().square().sum().sqrt()
                if grads
                else torch.zeros((), device=y.device)
            )
            ctx.optimizer_step()
            total = total + loss.detach()
            u[m] = logits.detach().float()
        stacked = torch.stack([u[m] for m in self.modalities])
        ctx.log(self._weight_names, fusion_weights(stacked, "dynamic").mean(1))
        if "P" in self.state:
            ctx.log(["mla/p_norm"], self.state["P"].norm().reshape(1))
        return ctx.step_metrics(total, fuse(stacked, self.params.fusion_eval), u, y, torch.stack(norms))

    def on_logits(self, ctx: StepContext, h: Feats, z: torch.Tensor, training: bool) -> torch.Tensor:
        stacked = self.head.stacked(h)
        return fuse(stacked.float(), self.params.fusion_eval).to(z.dtype)

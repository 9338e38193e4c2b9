"""ReconBoost (implementation; STRATEGIES.md 2.10). Learners f_m = head(phi_m(x_m)) share the
head; the ensemble is F = beta sum_m f_m (beta a learnable scalar, 1.0 at the start, a model
extra so it is optimised and checkpointed). Epoch e belongs to stage e // (stage_epochs +
correct_epochs), which trains modality stage mod M:
- phase 1 (the first stage_epochs epochs): only phi_m and the head learn, on
  mean_i (w1 - w2 q_{-m,i}(y_i)) CE(f_m,i, y_i), q_{-m} the no-grad softmax of the other
  modalities' ensemble beta sum_{k != m} f_k (the others run in eval mode, no gradient);
- phase 2 (correct_epochs): everything on CE(F).
Every phase starts with fresh optimizer state (all groups). The official code's regulariser,
detached on both sides, is a no-op and omitted. Evaluation: F."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bml_core.models import SharedHead
from bml_core.strategies.base import Batch, Feats, StepContext, Strategy
from bml_core.strategies.reconboost import ReconBoostParams


class Beta(nn.Module):
    """The ensemble scale beta (a learnable scalar)."""

    def __init__(self, device: torch.device | None = None):
        super().__init__()
        self.value = nn.Parameter(torch.ones((), device=device))


def sample_weights(others: torch.Tensor, y: torch.Tensor, w1: float, w2: float) -> torch.Tensor:
    """w1 - w2 q_{-m}(y) per sample, q the softmax of the other modalities' ensemble logits
    [B, C] (no gradient)."""
    q = others.detach().float().softmax(-1).gather(1, y[:, None]).squeeze(1)
    return w1 - w2 * q


def schedule(
    epoch: int, stage_epochs: int, correct_epochs: int, modalities: list[str]
) -> tuple[int, int, str]:
    """(stage, phase, modality of the stage) of an epoch."""
    cycle = stage_epochs + correct_epochs
    stage = epoch // cycle
    phase = 1 if epoch % cycle < stage_epochs else 2
    return stage, phase, modalities[stage % len(modalities)]


class ReconBoost(Strategy):
    """Stage/phase schedule (on_epoch_start), the step (training_step), F at evaluation."""

    params: ReconBoostParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        head = self.model.fusion
        if not isinstance(head, SharedHead):
            raise TypeError("reconboost needs model.head: shared")
        self.head: SharedHead = head
        if self.params.head == "mlp":
            head.use_mlp(self.params.head_hidden)
        self.beta = Beta(self.device)
        self.model.add_extra("reconboost_beta", self.beta)

    def _fc(self, h: torch.Tensor) -> torch.Tensor:
        return self.head.logits(h)

    @property
    def beta_value(self) -> torch.Tensor:
        return self.beta.value

    def _schedule(self, epoch: int) -> tuple[int, int, str]:
        p = self.params
        return schedule(epoch, p.stage_epochs, p.correct_epochs, self.modalities)

    def on_epoch_start(self, ctx: StepContext) -> None:
        stage, phase, _ = self._schedule(ctx.epoch)
        if self.state.get("phase_of") != [stage, phase]:  # a new phase: fresh optimizer state
            for param_group in ctx.optimizer.param_groups:
                ctx.reset_optimizer_state(param_group["name"])
            self.state["phase_of"] = [stage, phase]

    def training_step(self, ctx: StepContext, batch: Batch) -> dict[str, float] | None:
        x, y = batch
        stage, phase, m = self._schedule(ctx.epoch)
        model, beta = self.model, self.beta_value
        ctx.optimizer.zero_grad(set_to_none=True)
        weight_mean = torch.zeros((), device=y.device)
        if phase == 1:
            f: dict[str, torch.Tensor] = {}
            with torch.no_grad():
                for k in self.modalities:
                    if k == m:
                        continue
                    enc = model.encoders[k]
                    was = enc.training
                    enc.eval()  # frozen: no batch-norm statistics updates either
                    f[k] = self._fc(enc(x[k])).float()
                    enc.train(was)
            f[m] = self._fc(model.encoders[m](x[m])).float()
            others = beta.detach() * sum((f[k] for k in self.modalities if k != m), torch.zeros_like(f[m]))
            w = sample_weights(others, y, self.params.w1, self.params.w2)
            loss = (w * F.cross_entropy(f[m], y, reduction="none")).mean()
            if self.params.class_mean:  # official train.py L339-340: .mean(-1) over the C classes
                loss = loss / f[m].shape[1]
            weight_mean = w.mean()
            ensemble = beta.detach() * sum(f.values(), torch.zeros_like(f[m]))
        else:
            feats = model.encode(x)
            f = {k: v.float() for k, v in self.head.unimodal_logits(feats).items()}
            ensemble = beta * sum(f.values(), torch.zeros_like(f[m]))
            loss = F.cross_entropy(ensemble, y)
        ctx.backward(loss)
        metrics_u = {k: v.detach() for k, v in f.items()}
        ctx.log(
            ["reconboost/stage", "reconboost/phase", "reconboost/sample_weight", "reconboost/beta"],
            torch.stack(
                [
                    torch.tensor(float(stage), device=y.device),
                    torch.tensor(float(phase), device=y.device),
                    weight_mean.detach().float(),
                    beta.detach().float(),
                ]
            ),
        )
        norms_before_step = None  # encoder grad norms as they are (frozen encoders: 0)
        metrics = ctx.step_metrics(loss, ensemble.detach(), metrics_u, y, norms_before_step)
        ctx.optimizer_step()
        return metrics

    def on_logits(self, ctx: StepContext, h: Feats, z: torch.Tensor, training: bool) -> torch.Tensor:
        return z * self.beta_value.to(z.dtype)

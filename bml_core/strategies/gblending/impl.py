"""Gradient-Blending (implementation; STRATEGIES.md 2.8). Heads k: the M aux heads (u_m =
aux_m(h_m)) then the fused head. Loss sum_k w_k CE(logits_k) (the fused term replaces the
trainer's `ce`). Weights start equal (1/K). Over a super-epoch, per head: O = L_heldout -
L_train, dO = O_end - O_start, dG = L_heldout_start - L_heldout_end; w_k = dG_k / dO_k^2 when
dG_k > 0, else 0 (a head whose held-out loss rose gets nothing: BB's abs() is not copied);
normalised to sum 1 (all zero: the previous weights stay). L_train is measured on a seeded
subset of the training part as large as the held-out part (eval mode, no grad).

online: re-measured at the end of every super-epoch of the run itself (no extra training).
offline (the paper's): before the run, a copy of the initial model is trained for
super_epoch epochs per head on that head's loss alone; its curves give fixed weights."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from bml_core.data.base import stable_seed
from bml_core.models import MultimodalModel
from bml_core.optim import build_optimizer
from bml_core.strategies.base import Batch, Feats, Losses, StepContext, Strategy
from bml_core.strategies.gblending import GBlendingParams

EPS = 1e-12


def blend_weights(
    train_start: torch.Tensor, heldout_start: torch.Tensor, train_end: torch.Tensor, heldout_end: torch.Tensor
) -> torch.Tensor | None:
    """w_k from per-head losses [K]; None when no head generalised (every dG <= 0)."""
    d_o = (heldout_end - train_end) - (heldout_start - train_start)
    d_g = heldout_start - heldout_end
    raw = torch.where(d_g > 0, d_g / d_o.square().clamp_min(EPS), torch.zeros_like(d_g))
    total = raw.sum()
    if not bool(total > 0):
        return None
    return raw / total


def head_logits(model: MultimodalModel, x: dict[str, torch.Tensor]) -> list[torch.Tensor]:
    """[aux_m(h_m) for each modality] + [fused z]."""
    feats = model.encode(x)
    assert model.aux_heads is not None
    return [model.aux_heads[m](feats[m]) for m in model.modalities] + [model.fusion(feats)]


@torch.no_grad()
def head_losses(model: MultimodalModel, batches: Iterable[Batch]) -> torch.Tensor:
    """Mean CE of each head over the batches (eval mode; the mode is restored)."""
    was = model.training
    model.eval()
    total: torch.Tensor | None = None
    count = 0
    try:
        for x, y in batches:
            losses = torch.stack(
                [F.cross_entropy(z.float(), y, reduction="sum") for z in head_logits(model, x)]
            )
            total = losses if total is None else total + losses
            count += y.shape[0]
    finally:
        model.train(was)
    assert total is not None and count > 0, "no samples to measure the head losses on"
    return (total / count).cpu()


class GBlending(Strategy):
    """Weighted head losses (compute_loss), weights re-estimated per super-epoch (on_epoch_end)
    or once before the run (offline, on_fit_start)."""

    params: GBlendingParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.heads = [*self.modalities, "fused"]
        self._names = [f"gblending/weight/{k}" for k in self.heads]
        self._terms = [f"gblending/{m}" for m in self.modalities]

    # the per-head losses on the held-out part and on an equally large train subset
    def _measure(self, ctx: StepContext, model: MultimodalModel) -> tuple[torch.Tensor, torch.Tensor]:
        frac = self.params.heldout_fraction / (1 - self.params.heldout_fraction)
        seed = stable_seed(ctx.cfg.seed, "gblending-train-subset")
        train = head_losses(model, ctx.iter_batches("train", fraction=min(1.0, frac), seed=seed))
        heldout = head_losses(model, ctx.iter_batches("heldout"))
        return train, heldout

    def on_fit_start(self, ctx: StepContext) -> None:
        if "w" not in self.state:
            self.state["w"] = torch.full((len(self.heads),), 1.0 / len(self.heads))
            if self.params.mode == "offline":
                self.state["w"] = self._offline_weights(ctx)
            else:
                self.state["start"] = self._measure(ctx, self.model)
        self._w = self.state["w"].to(self.device)

    def _offline_weights(self, ctx: StepContext) -> torch.Tensor:

        start_train, start_heldout = self._measure(ctx, self.model)
        end_train, end_heldout = start_train.clone(), start_heldout.clone()
        for k, head in enumerate(self.heads):
            copy = ctx.clone_model()
            copy.train()
            opt = build_optimizer(ctx.cfg, copy)
            for epoch in range(self.params.super_epoch):
                seed = stable_seed(ctx.cfg.seed, "gblending-offline", head, epoch)
                for x, y in ctx.iter_batches("train", seed=seed):
                    if head == "fused":
                        z = copy(x)
                    else:
                        assert copy.aux_heads is not None
                        z = copy.aux_heads[head](copy.encoders[head](x[head]))
                    loss = F.cross_entropy(z.float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
            train, heldout = self._measure(ctx, copy)
            end_train[k], end_heldout[k] = train[k], heldout[k]
        w = blend_weights(start_train, start_heldout, end_train, end_heldout)
        ctx.event(
            "gblending offline: weights "
            + ", ".join(
                f"{h} {v:.3f}"
                for h, v in zip(self.heads, (w if w is not None else self.state["w"]).tolist(), strict=True)
            )
        )
        return w if w is not None else self.state["w"]

    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        w = self._w
        aux = ctx.unimodal_logits(h, heads="aux")
        per_sample = F.cross_entropy(z.float(), y, reduction="none")
        if ctx.keep is None:
            fused = per_sample.mean()
        else:  # the samples another strategy (OPM) removed stay out, as in the trainer's ce
            keep = ctx.keep.float()
            fused = (per_sample * keep).sum() / keep.sum().clamp_min(1.0)
        out: dict[str, torch.Tensor | None] = {"ce": w[-1] * fused}
        for i, m in enumerate(self.modalities):
            out[self._terms[i]] = w[i] * F.cross_entropy(aux[m].float(), y)
        ctx.log(self._names, w)
        return out

    def on_epoch_end(self, ctx: StepContext, val_metrics: dict[str, float] | None) -> None:
        if self.params.mode != "online" or (ctx.epoch + 1) % self.params.super_epoch:
            return
        end = self._measure(ctx, self.model)
        train_start, heldout_start = self.state["start"]
        w = blend_weights(train_start, heldout_start, *end)
        if w is not None:
            self.state["w"] = w
            self._w = w.to(self.device)
        self.state["start"] = end

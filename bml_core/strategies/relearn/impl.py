"""Diagnosing & re-learning (implementation; STRATEGIES.md 2.11). theta^(0) (parameters and
buffers of every encoder) is the trainer's initial snapshot (needs_init_snapshot).

`form: official` (default; GeWu-Lab/Diagnosing_Relearning_ECCV2024@025085e code/ours.py
L418-427, L139-169): after epoch e with e % every == 0 and e > 0, every encoder parameter is
blended towards theta^(0) (buffers untouched) and the optimizer keeps its state. `form: ours`,
the earlier reading, is described below. After epoch e with (e + 1) % every
== 0, at most `times` times and never after the last epoch: for each modality, features of
the training part and of the held-out part (eval mode), min-max scaled per dimension (each
set with its own range), k-means with k = C (scikit-learn, seed 0), purity against the
labels; delta_m = |purity_train - purity_heldout|, alpha_m = tanh(lam delta_m);
theta_m <- alpha_m theta_m^(0) + (1 - alpha_m) theta_m for every floating-point parameter
AND buffer (BatchNorm running statistics; the official code forgets buffers; the integer
num_batches_tracked is kept), then that encoder's optimizer state is reset. Each
re-initialisation is a run event; alpha and the purity gap of the last diagnosis are logged
every step (0 before the first), so Live draws them as step series."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from bml_core.strategies.base import StepContext, Strategy
from bml_core.strategies.relearn import RelearnParams


def purity(labels: np.ndarray, clusters: np.ndarray) -> float:
    """Share of samples whose label is the majority label of their cluster."""
    total = 0
    for c in np.unique(clusters):
        total += int(np.bincount(labels[clusters == c]).max())
    return total / len(labels)


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = x.min(0, keepdims=True), x.max(0, keepdims=True)
    return (x - lo) / np.where(hi - lo > 0, hi - lo, 1.0)


def kmeans_purity(features: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Purity of k-means (k clusters, seed 0) on min-max scaled features."""
    from sklearn.cluster import KMeans

    clusters = KMeans(n_clusters=k, random_state=0, n_init=10).fit_predict(
        minmax(features.astype(np.float64))
    )
    return purity(labels, clusters)


def relearn_alpha(gap: float, lam: float) -> float:
    return math.tanh(lam * gap)


@torch.no_grad()
def soft_reinit_parameters(module: nn.Module, init: dict[str, torch.Tensor], alpha: float) -> None:
    """The authors' re-initialisation (code/ours.py L152-167): every parameter
    p <- alpha p0 + (1 - alpha) p, in place (the optimizer keeps its state); buffers untouched."""
    for name, p in module.named_parameters():
        p.data = alpha * init[name].to(p.device, p.dtype) + (1 - alpha) * p.data


@torch.no_grad()
def soft_reinit(module: nn.Module, init: dict[str, torch.Tensor], alpha: float) -> None:
    """Every floating-point parameter and buffer t <- alpha t0 + (1 - alpha) t, in place."""
    for name, t in module.state_dict(keep_vars=True).items():
        if t.is_floating_point():
            t.data.mul_(1 - alpha).add_(init[name].to(t.device, t.dtype), alpha=alpha)


class Relearn(Strategy):
    """Snapshot (on_fit_start), diagnosis and re-initialisation (on_epoch_end)."""

    params: RelearnParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._names = [f"relearn/alpha/{m}" for m in self.modalities] + [
            f"relearn/purity_gap/{m}" for m in self.modalities
        ]

    def on_fit_start(self, ctx: StepContext) -> None:
        self.state.setdefault("count", 0)
        self.state.setdefault("last", [0.0] * (2 * len(self.modalities)))

    def before_optimizer_step(self, ctx: StepContext) -> None:
        ctx.log_host(self._names, self.state["last"])

    def initial(self, ctx: StepContext, modality: str) -> dict[str, torch.Tensor]:
        """theta_m^(0): the encoder's entries of the trainer's initial snapshot."""
        prefix = f"encoders.{modality}."
        return {k[len(prefix) :]: v for k, v in ctx.init_snapshot.items() if k.startswith(prefix)}

    def _features(self, ctx: StepContext, split: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        parts: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        ys: list[torch.Tensor] = []
        for h, y in ctx.iter_features(split):
            for m in self.modalities:
                parts[m].append(h[m].float().cpu())
            ys.append(y.cpu())
        return {m: torch.cat(v).numpy() for m, v in parts.items()}, torch.cat(ys).numpy()

    def diagnose(self, ctx: StepContext) -> tuple[list[float], list[float]]:
        """(alpha_m, purity gap_m) from the current encoders."""
        train, y_train = self._features(ctx, "train")
        heldout, y_heldout = self._features(ctx, "heldout")
        k = ctx.num_classes
        gaps = [
            abs(kmeans_purity(train[m], y_train, k) - kmeans_purity(heldout[m], y_heldout, k))
            for m in self.modalities
        ]
        return [relearn_alpha(g, self.params.lam) for g in gaps], gaps

    def on_epoch_end(self, ctx: StepContext, val_metrics: dict[str, float] | None) -> None:
        p = self.params
        last_epoch = ctx.epoch >= ctx.cfg.train.epochs - 1
        official = p.form == "official"
        due = (ctx.epoch > 0 and ctx.epoch % p.every == 0) if official else (ctx.epoch + 1) % p.every == 0
        if last_epoch or not due or self.state["count"] >= p.times or not self.active(ctx.epoch):
            return
        alphas, gaps = self.diagnose(ctx)
        for m, a in zip(self.modalities, alphas, strict=True):
            if official:  # parameters only, the optimizer's momentum carries on (ours.py L139-169)
                soft_reinit_parameters(self.model.encoders[m], self.initial(ctx, m), a)
            else:
                soft_reinit(self.model.encoders[m], self.initial(ctx, m), a)
                ctx.reset_optimizer_state(m)
        self.state["count"] += 1
        self.state["last"] = alphas + gaps
        ctx.event(
            f"relearn re-initialisation {self.state['count']}/{p.times} after epoch {ctx.epoch}: "
            + ", ".join(
                f"{m} alpha {a:.3f} (purity gap {g:.3f})"
                for m, a, g in zip(self.modalities, alphas, gaps, strict=True)
            )
        )

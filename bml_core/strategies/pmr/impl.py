"""PMR, Prototypical Modal Rebalance (STRATEGIES.md section 2.4): the formulas.

Fan, Xu, Wei, Chen, "PMR: Prototypical Modal Rebalance for Multimodal Learning", CVPR 2023
(arXiv 2211.07089); official code fanyunfeng-bit/Modal-Imbalance-PMR
(`main_Prototype_grad.py`: `calculate_prototype`, `EU_dist`, the `Proto` branch of
`train_epoch`). Every function is vectorised over samples and classes (the official code
loops over samples and over sample x class pairs for the distances).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

from bml_core.strategies.base import Feats, Losses, StepContext, Strategy
from bml_core.strategies.pmr import PMRParams


def prototype_batches(num_batches: int, proto_fraction: float) -> int:
    """How many of the first training batches the prototypes are computed from: the official
    `sample_count >= all_num // 10` stop, i.e. floor(fraction * batches), at least one."""
    return max(1, math.floor(proto_fraction * num_batches))


def class_means(
    feats: torch.Tensor, labels: torch.Tensor, num_classes: int, fallback: torch.Tensor | None = None
) -> torch.Tensor:
    """c^k = mean of the rows of `feats` [N, d] whose label is k, as [C, d] (index_add_, no loop).

    A class with no sample takes its row from `fallback` (the previous prototypes) when
    given, else the mean of all features (the official code divides by a zero count and
    gets NaN)."""
    feats = feats.float()
    sums = torch.zeros(num_classes, feats.shape[1], device=feats.device).index_add_(0, labels, feats)
    counts = torch.zeros(num_classes, device=feats.device).index_add_(
        0, labels, torch.ones_like(labels, dtype=torch.float32)
    )
    means = sums / counts.clamp_min(1.0)[:, None]
    missing = (counts == 0)[:, None]
    filler = fallback if fallback is not None else feats.mean(0, keepdim=True).expand_as(means)
    return torch.where(missing, filler, means)


def ema_prototypes(new: torch.Tensor, old: torch.Tensor | None, momentum: float) -> torch.Tensor:
    """c <- (1 - mu) c_new + mu c_old; the first computation (no old prototypes) is c_new."""
    if old is None:
        return new
    return (1.0 - momentum) * new + momentum * old


def epoch_prototypes(
    feature_batches: Iterable[tuple[dict[str, torch.Tensor], torch.Tensor]],
    num_batches: int,
    num_classes: int,
    previous: dict[str, torch.Tensor] | None,
    momentum: float,
) -> dict[str, torch.Tensor]:
    """The epoch-start prototypes of every modality: class means of the features of the
    first `num_batches` batches (features computed by the caller in eval mode without
    grad), then the EMA with the previous prototypes (none the first time)."""
    feats: dict[str, list[torch.Tensor]] = {}
    labels: list[torch.Tensor] = []
    for h, y in itertools.islice(feature_batches, num_batches):
        for m, t in h.items():
            feats.setdefault(m, []).append(t.detach())
        labels.append(y)
    y_all = torch.cat(labels)
    out = {}
    for m, parts in feats.items():
        old = previous.get(m) if previous is not None else None
        new = class_means(torch.cat(parts), y_all, num_classes, fallback=old)
        out[m] = ema_prototypes(new, old, momentum)
    return out


def prototype_distances(h: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """d(i, k) = ||h_i - c^k||_2 for features [B, d] and prototypes [C, d], as [B, C]
    (torch.cdist; the official `EU_dist` is a double Python loop)."""
    return torch.cdist(h.float(), prototypes.float())


def prototype_score(distances: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """s = sum_i softmax(-d_i)[y_i] (scalar tensor)."""
    return (-distances).softmax(-1).gather(1, y[:, None]).sum()


def prototype_ce(distances: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """L_PCE = CE(-d, y): cross-entropy with the negative distances as logits."""
    return F.cross_entropy(-distances, y)


def prototype_entropy(distances: torch.Tensor) -> torch.Tensor:
    """Batch mean of the entropy of softmax(-d_i) (the prototype distribution's entropy; the
    optional regulariser subtracts per_mu times this for the dominant modality, which pushes
    its prototype distribution towards uncertainty in the first `per_epochs` epochs)."""
    logp = (-distances).log_softmax(-1)
    return -(logp.exp() * logp).sum(-1).mean()


def pmr_ratio(scores: torch.Tensor) -> torch.Tensor:
    """rho_m = max_j s_j / s_m for prototype scores [M] (1 for the dominant modality)."""
    return scores.max() / scores


def pmr_weights(scores: torch.Tensor, alpha: float, form: str = "smooth") -> torch.Tensor:
    """Per-modality weight of L_PCE^m from prototype scores [M].

    smooth (paper): alpha * clip(rho_m - 1, 0, 1), the dominant modality gets 0;
    switch (official script, generalised): alpha where rho_m > 1, else 0."""
    rho = pmr_ratio(scores)
    if form == "smooth":
        return alpha * (rho - 1.0).clamp(0.0, 1.0)
    if form == "switch":
        return torch.where(rho > 1.0, torch.full_like(rho, alpha), torch.zeros_like(rho))
    raise ValueError(f"unknown PMR form {form!r} (smooth | switch)")


class PMR(Strategy):
    """L = CE(z) + sum_m weight_m L_PCE^m with prototypes recomputed at every epoch start.

    State (checkpointed): the prototypes per modality and the epoch they were computed for
    (a run resumed mid-epoch keeps them instead of recomputing from the current weights)."""

    params: PMRParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mods = self.modalities
        self._weight_names = [f"pmr/weight/{m}" for m in mods]
        self._score_names = [f"pmr/score/{m}" for m in mods]
        self._pce_names = [f"pmr/pce/{m}" for m in mods]
        self.state = {"prototypes": None, "epoch": -1}
        self._h: dict[str, torch.Tensor] | None = None

    def on_features(self, ctx: StepContext, h: Feats) -> Feats:
        self._h = h  # the encoders' features before any later strategy (OPM) drops or rescales them
        return h

    def on_epoch_start(self, ctx: StepContext) -> None:
        if self.state["epoch"] == ctx.epoch:
            return  # resumed inside this epoch: the checkpointed prototypes are this epoch's
        num_classes = ctx.num_classes
        n = prototype_batches(ctx.steps_per_epoch, self.params.proto_fraction)
        # the authors' EMA starts with the prototypes of epoch 2 (those of epoch 1 are
        # computed with epoch = 0, main_Prototype_grad.py L435-437, L557)
        skip = self.params.ema_skip_first and ctx.epoch <= 1
        previous = None if skip else self.state["prototypes"]
        self.state = {
            "prototypes": epoch_prototypes(
                ctx.iter_features("train", self.params.proto_fraction),
                n,
                num_classes,
                previous,
                self.params.momentum,
            ),
            "epoch": ctx.epoch,
        }

    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        if self.state["prototypes"] is None:  # a step driven without the epoch-start event
            self.on_epoch_start(ctx)
        protos = self.state["prototypes"]
        h, self._h = (self._h if self._h is not None else h), None
        d = [prototype_distances(h[m], protos[m]) for m in self.modalities]
        scores = torch.stack([prototype_score(dm.detach(), y) for dm in d])
        pce = torch.stack([prototype_ce(dm, y) for dm in d])
        if self.active(ctx.epoch):
            weights = pmr_weights(scores, self.params.alpha, self.params.form)
        else:
            weights = torch.zeros_like(scores)
        ctx.log(self._weight_names, weights)
        ctx.log(self._score_names, scores / y.shape[0])
        ctx.log(self._pce_names, pce.detach())
        terms: dict[str, torch.Tensor | None] = {"pmr_pce": (weights * pce).sum()}
        if self.params.per_mu > 0 and ctx.epoch < self.params.per_epochs and self.active(ctx.epoch):
            dominant = torch.stack(d)[scores.argmax()]  # indexing by a tensor: no host sync
            terms["pmr_entropy"] = -self.params.per_mu * prototype_entropy(dominant)
        return terms

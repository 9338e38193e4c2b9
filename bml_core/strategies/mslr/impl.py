"""mslr and mses (STRATEGIES.md section 2.2): the formulas.

Yao & Mihalcea, "Modality-specific Learning Rates for Effective Multimodal Additive
Late-fusion", Findings of ACL 2022. No official code was released; the per-epoch update
follows the paper's dynamic strategy (and the public re-implementation in
BalanceBenchmark-style toolkits): each encoder's parameter group gets a learning-rate
multiplier, changed after every validation as

    mult_m <- mult_m * val_acc_m / mean(last `window` val_acc_m)

where the window holds the most recent `window` values INCLUDING the current one (so the
first epoch gives a ratio of 1, and a modality still improving on its recent average
learns faster). Multipliers act on the optimizer's learning rates, never on gradients
(scaling a gradient is not the same as scaling the step under momentum or Adam).

Variant mses (modality-specific early stopping): the per-modality validation loss is
smoothed, L~_m <- 0.6 L~_m + 0.4 L_m (the first value is taken as is); a modality whose
smoothed loss has not improved (strictly fallen below its best) for `patience` epochs is
frozen (learning rate 0 from then on) and its encoder is restored to the weights it had
at its best smoothed loss."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F

from bml_core.config import ConfigError
from bml_core.strategies.base import Batch, StepContext, Strategy
from bml_core.strategies.mslr import MSESParams, MSLRParams

SMOOTH_KEEP = 0.6  # weight of the previous smoothed value in mses' smoothed loss


def mslr_ratio(acc_history: torch.Tensor, window: int) -> torch.Tensor:
    """val_acc_m / mean(last `window` val_acc_m) per modality. acc_history is [T, M], oldest
    first, the current epoch last; T < window uses what there is. A zero mean gives 1."""
    recent = acc_history[-window:].mean(0)
    current = acc_history[-1]
    return torch.where(recent > 0, current / torch.where(recent > 0, recent, 1.0), 1.0)


def mslr_official_ratio(previous: torch.Tensor, current: torch.Tensor, window: int) -> torch.Tensor:
    """The authors' ratio (lihong2303/AGM@5a65542 run/CREMAD_main.py L671-684): with fewer than
    `window` previous accuracies, 1 (the initial `audio_lr_ratio = 1.0`, L627); else
    acc_t / mean(the previous `window` accuracies), the current epoch NOT in the window."""
    if previous.shape[0] < window:
        return torch.ones_like(current)
    recent = previous[-window:].mean(0)
    return torch.where(recent > 0, current / torch.where(recent > 0, recent, 1.0), 1.0)


def mslr_update(mult: torch.Tensor, acc_history: torch.Tensor, window: int) -> torch.Tensor:
    """The new multipliers mult_m * val_acc_m / mean(last window val_acc_m), [M]."""
    return mult * mslr_ratio(acc_history, window)


def smoothed_loss(
    previous: torch.Tensor | None, current: torch.Tensor, keep: float = SMOOTH_KEEP
) -> torch.Tensor:
    """keep * previous + (1 - keep) * current, [M]; the first epoch (no previous) is current."""
    if previous is None:
        return current.clone()
    return keep * previous + (1 - keep) * current


def mses_update(
    smoothed: torch.Tensor,
    best: torch.Tensor,
    since_best: torch.Tensor,
    frozen: torch.Tensor,
    patience: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One epoch of mses bookkeeping, vectorised over modalities (all [M]).

    improved = not frozen and smoothed < best; best <- smoothed where improved;
    since_best <- 0 where improved, else +1 (frozen modalities keep their count);
    newly_frozen = not frozen and since_best >= patience; frozen |= newly_frozen.
    Returns (best, since_best, frozen, improved, newly_frozen). `best` starts at +inf."""
    active = ~frozen
    improved = active & (smoothed < best)
    best = torch.where(improved, smoothed, best)
    since_best = torch.where(improved, torch.zeros_like(since_best), since_best + active.to(since_best.dtype))
    newly_frozen = active & (since_best >= patience)
    return best, since_best, frozen | newly_frozen, improved, newly_frozen


def start_multipliers(params: MSLRParams | MSESParams, modalities: list[str]) -> torch.Tensor:
    """The starting multipliers [M] (float64, CPU): `start_mults` or 1.0 each."""
    mults = params.start_mults or [1.0] * len(modalities)
    if len(mults) != len(modalities):
        raise ConfigError(
            [
                (
                    f"strategies.{params.name}.start_mults",
                    f"has {len(mults)} values for {len(modalities)} modalities {modalities} (one each, in that order)",
                )
            ]
        )
    return torch.tensor(mults, dtype=torch.float64)


class MSLR(Strategy):
    """Learning-rate multipliers on the encoders' parameter groups (`ctx.set_lr_mult`: the
    trainer applies them to the scheduled rate at each optimizer step; gradients are never
    touched), updated after each validation from `val/acc/<m>`. State: the multipliers and the
    last `window` validation accuracies (float64 tensors on the run's device; read on the
    host once per epoch)."""

    params: MSLRParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        m = len(self.modalities)
        self.state = {
            "mult": start_multipliers(self.params, self.modalities).to(self.device),
            "acc_history": torch.zeros(0, m, dtype=torch.float64, device=self.device),
        }
        self._mult_host: list[float] = self.state["mult"].tolist()  # applied in on_fit_start
        self._names = [f"mslr/lr_mult/{m}" for m in self.modalities]
        self._ratio_names = [f"mslr/ratio/{m}" for m in self.modalities]

    def on_fit_start(self, ctx: StepContext) -> None:
        self._apply(ctx)  # also after a resume (the state holds the multipliers)

    def _apply(self, ctx: StepContext) -> None:
        self._mult_host = self.state["mult"].tolist()
        for m, f in zip(self.modalities, self._mult_host, strict=True):
            ctx.set_lr_mult(m, f)

    def before_optimizer_step(self, ctx: StepContext) -> None:
        ctx.log_host(self._names, self._mult_host)

    def on_epoch_end(self, ctx: StepContext, val_metrics: dict[str, float] | None) -> None:
        if val_metrics is None:
            return  # no validation this epoch: nothing to update from
        acc = torch.tensor(
            [val_metrics[f"val/acc/{m}"] for m in self.modalities], dtype=torch.float64, device=self.device
        )
        window = self.params.window
        previous = self.state["acc_history"]
        history = torch.cat([previous, acc[None]])[-window:]
        self.state["acc_history"] = history
        if not self.active(ctx.epoch):
            ratio = torch.ones_like(acc)
        elif self.params.form == "official":
            # official L197-198: coeff = init_coeff * ratio (not compounded)
            ratio = mslr_official_ratio(previous, acc, window)
            start = start_multipliers(self.params, self.modalities).to(self.device)
            self.state["mult"] = start * ratio
            self._apply(ctx)
        else:
            ratio = mslr_ratio(history, window)
            self.state["mult"] = mslr_update(self.state["mult"], history, window)
            self._apply(ctx)
        ctx.log_host(self._ratio_names, ratio.tolist())


class MSES(Strategy):
    """Modality-specific early stopping: after each validation, each modality's uni-modal
    val cross-entropy (u_m from the run's heads, one pass over val) is smoothed; an encoder
    whose smoothed loss has not improved for `patience` epochs gets its best weights back and
    learning rate 0 (`ctx.set_lr_mult(m, 0)`), and runs in eval mode from then on (no
    dropout, BatchNorm statistics frozen too). State: multipliers, smoothed and best losses,
    epochs since the best, frozen flags and each encoder's best weights (copies on the run's device)."""

    params: MSESParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        m = len(self.modalities)
        self.state = {
            "mult": start_multipliers(self.params, self.modalities).to(self.device),
            "smoothed": None,
            "best": torch.full((m,), math.inf, dtype=torch.float64, device=self.device),
            "since_best": torch.zeros(m, dtype=torch.long, device=self.device),
            "frozen": torch.zeros(m, dtype=torch.bool, device=self.device),
            "best_weights": {},
            "raw": None,
        }
        self._mult_host: list[float] = self.state["mult"].tolist()  # applied in on_fit_start
        self._frozen: list[str] = []
        self._names = [f"mses/lr_mult/{m}" for m in self.modalities]
        self._loss_names = [f"mses/smoothed_loss/{m}" for m in self.modalities]

    def on_fit_start(self, ctx: StepContext) -> None:
        self._apply(ctx)

    def _apply(self, ctx: StepContext) -> None:
        mult = torch.where(self.state["frozen"], 0.0, self.state["mult"])
        self._mult_host = mult.tolist()
        self._frozen = [m for m, f in zip(self.modalities, self.state["frozen"].tolist(), strict=True) if f]
        for m, f in zip(self.modalities, self._mult_host, strict=True):
            ctx.set_lr_mult(m, f)

    def before_forward(self, ctx: StepContext, batch: Batch) -> Batch:
        for m in self._frozen:  # the trainer has just put the model in train mode
            self.model.encoders[m].eval()
        return batch

    def before_optimizer_step(self, ctx: StepContext) -> None:
        ctx.log_host(self._names, self._mult_host)

    @torch.no_grad()
    def val_losses(self, ctx: StepContext) -> torch.Tensor:
        """Each modality's uni-modal cross-entropy on the whole val split, [M] float64."""
        total = torch.zeros(len(self.modalities), dtype=torch.float64, device=self.device)
        count = 0
        for h, y in ctx.iter_features("val"):
            u = ctx.unimodal_logits(h)
            stacked = torch.stack([u[m].float() for m in self.modalities])
            per = F.cross_entropy(stacked.flatten(0, 1), y.repeat(len(self.modalities)), reduction="none")
            total += per.view(len(self.modalities), -1).sum(1).double()
            count += y.shape[0]
        return total / max(count, 1)

    def on_epoch_end(self, ctx: StepContext, val_metrics: dict[str, float] | None) -> None:
        if val_metrics is None:
            return
        st = self.state
        official = self.params.form == "official"
        raw = self.val_losses(ctx)
        if official:  # official L694-697: 0.6 * previous RAW loss + 0.4 * current
            st["smoothed"] = smoothed_loss(st.get("raw"), raw, self.params.smoothing)
            st["raw"] = raw
        else:
            st["smoothed"] = smoothed_loss(st["smoothed"], raw, self.params.smoothing)
        ctx.log_host(self._loss_names, st["smoothed"].tolist())
        if not self.active(ctx.epoch):
            return
        # official L722: frozen once epoch - best_epoch > 80, i.e. since_best >= patience + 1
        patience = self.params.patience + 1 if official else self.params.patience
        st["best"], st["since_best"], st["frozen"], improved, newly = mses_update(
            st["smoothed"], st["best"], st["since_best"], st["frozen"], patience
        )
        improved_host, newly_host = improved.tolist(), newly.tolist()  # one read per epoch
        for m, better, freeze in zip(self.modalities, improved_host, newly_host, strict=True):
            if official:  # official L699-720: a full checkpoint (model + optimizer) at each best
                if better:
                    st["best_weights"][m] = {
                        "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
                        "optimizer": copy.deepcopy(ctx.optimizer.state_dict()),
                    }
                if freeze and m in st["best_weights"]:  # official L723-729: reload both
                    self.model.load_state_dict(st["best_weights"][m]["model"])
                    # a copy: load_state_dict adopts the tensors, later steps would change ours
                    ctx.optimizer.load_state_dict(copy.deepcopy(st["best_weights"][m]["optimizer"]))
                continue
            encoder = self.model.encoders[m]
            if better:
                st["best_weights"][m] = {k: v.detach().clone() for k, v in encoder.state_dict().items()}
            if freeze and m in st["best_weights"]:
                encoder.load_state_dict(st["best_weights"][m])
        if any(newly_host):
            self._apply(ctx)

    def should_stop(self, ctx: StepContext) -> bool:
        return self.params.stop_when_all_frozen and bool(self.state["frozen"].all())

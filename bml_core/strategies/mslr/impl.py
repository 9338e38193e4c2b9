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

import torch

SMOOTH_KEEP = 0.6  # weight of the previous smoothed value in mses' smoothed loss


def mslr_ratio(acc_history: torch.Tensor, window: int) -> torch.Tensor:
    """val_acc_m / mean(last `window` val_acc_m) per modality. acc_history is [T, M], oldest
    first, the current epoch last; T < window uses what there is. A zero mean gives 1."""
    recent = acc_history[-window:].mean(0)
    current = acc_history[-1]
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

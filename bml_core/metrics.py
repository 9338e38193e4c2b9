"""Evaluation metrics (METHODS.md section 8): accuracy, macro-F1, macro average precision,
and the Shapley imbalance degree of BalanceBenchmark (arXiv 2502.10816).

mAP, as the T-PAMI 2024 official code computes it (`average_precision_score(one_hot, probs)`,
sklearn's macro average over every class column): a class with no positive sample counts as
AP 0 (sklearn warns and returns 0 for such a column). `absent="skip"` averages only over the
classes that have positives (this project's earlier definition)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    if y.numel() == 0:
        return float("nan")
    return float((logits.argmax(1) == y).float().mean())


def macro_f1(pred: torch.Tensor, y: torch.Tensor, num_classes: int) -> float:
    """Mean over classes present in y or pred of 2TP / (2TP + FP + FN)."""
    idx = y * num_classes + pred
    cm = torch.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes).double()
    tp = cm.diag()
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    present = (cm.sum(0) + cm.sum(1)) > 0
    denom = 2 * tp + fp + fn
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return float(f1[present].mean()) if present.any() else float("nan")


def average_precision(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """AP of one class: mean precision at the rank of each positive (ties broken by order),
    the definition of sklearn's average_precision_score."""
    n_pos = int(positive.sum())
    if n_pos == 0:
        return float("nan")
    order = torch.argsort(scores, descending=True, stable=True)
    s = scores[order].double()
    pos = positive[order].double()
    # group tied scores: precision and recall are evaluated at the end of each tie block
    tps = torch.cumsum(pos, 0)
    ranks = torch.arange(1, len(s) + 1, dtype=torch.float64)
    last_of_block = torch.ones_like(s, dtype=torch.bool)
    last_of_block[:-1] = s[1:] != s[:-1]
    tps_b, ranks_b = tps[last_of_block], ranks[last_of_block]
    precision = tps_b / ranks_b
    recall = tps_b / n_pos
    prev_recall = torch.cat([torch.zeros(1, dtype=torch.float64), recall[:-1]])
    return float(((recall - prev_recall) * precision).sum())


MapAbsent = Literal["zero", "skip"]


def mean_average_precision(probs: torch.Tensor, y: torch.Tensor, absent: MapAbsent = "zero") -> float:
    """Macro AP of softmax scores against one-hot labels over the C class columns.

    absent="zero" (default; the official code): a class without positives has AP 0 and
    still counts in the mean, as sklearn's `average_precision_score(one_hot, probs)` does.
    absent="skip": the mean over the classes that have positives only."""
    if absent not in ("zero", "skip"):
        raise ValueError(f"absent must be 'zero' or 'skip', got {absent!r}")
    if y.numel() == 0:
        return float("nan")
    aps = [average_precision(probs[:, c], y == c) for c in range(probs.shape[1])]
    if absent == "zero":
        aps = [0.0 if math.isnan(a) else a for a in aps]
    else:
        aps = [a for a in aps if not math.isnan(a)]
    return float(sum(aps) / len(aps)) if aps else float("nan")


def shapley_values(modalities: Sequence[str], value: Callable[[frozenset[str]], float]) -> dict[str, float]:
    """phi_m = sum_{S subset of M minus m} |S|! (M-|S|-1)! / M! (v(S + m) - v(S))."""
    n = len(modalities)
    cache: dict[frozenset[str], float] = {}

    def v(s: frozenset[str]) -> float:
        if s not in cache:
            cache[s] = value(s)
        return cache[s]

    phi = {}
    for m in modalities:
        others = [k for k in modalities if k != m]
        total = 0.0
        for r in range(n):
            w = math.factorial(r) * math.factorial(n - r - 1) / math.factorial(n)
            for subset in itertools.combinations(others, r):
                s = frozenset(subset)
                total += w * (v(s | {m}) - v(s))
        phi[m] = total
    return phi


def imbalance_degree(phi: dict[str, float]) -> float:
    """Mean over modality pairs of |phi_i - phi_j| (METHODS.md section 8, after BalanceBenchmark,
    arXiv 2502.10816: the spread of the modalities' Shapley contributions to accuracy; 0 when
    every modality contributes equally). For M = 2 it is |phi_1 - phi_2|.

    phi comes from `shapley_values` with v(S) = accuracy with the modalities outside S absent.
    "Absent" is, by default, the input set to zero and encoded again (as BalanceBenchmark's
    `val_loop(limit_modalitys=...)` does); `train.shapley_absent: feature` zeroes the pooled
    feature instead (the fusion head then sees exact zeros)."""
    vals = list(phi.values())
    pairs = list(itertools.combinations(vals, 2))
    return float(sum(abs(a - b) for a, b in pairs) / len(pairs)) if pairs else 0.0


def linear_probe_accuracy(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    num_classes: int,
    max_iter: int = 200,
    weight_decay: float = 1e-4,
) -> float:
    """The CVPR paper's uni-modal accuracy: a multinomial logistic regression fitted with
    L-BFGS on frozen features of the train split (standardised with train statistics),
    evaluated on the test split. Deterministic (zero initialisation)."""
    mean = train_x.mean(0)
    std = train_x.std(0).clamp_min(1e-6) if train_x.shape[0] > 1 else torch.ones_like(mean)
    a, b = (train_x - mean) / std, (test_x - mean) / std
    weight = torch.zeros(a.shape[1], num_classes, device=a.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=a.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (
            torch.nn.functional.cross_entropy(a @ weight + bias, train_y)
            + weight_decay * weight.square().sum()
        )
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        return accuracy(b @ weight + bias, test_y)

"""InfoReg, the prime-learning-window regulariser (STRATEGIES.md section 2.6): the formulas.

Huang, Wei, Yang, Hu, "Adaptive Unimodal Regulation for Balanced Multimodal Information
Acquisition", CVPR 2025; official code GeWu-Lab/InfoReg_CVPR2025 (`main.py`,
`train_epoch`: the anchor `global_model`, the window test `k`, `beta`/`beta2`, the
proximal gradient term and the Fisher accumulation `fim_audio`).

Decisions (STRATEGIES.md): generalised to M modalities, every modality scoring above the
mean score gets beta_m = beta0 * exp(tanh((s_m - mean_k s_k) / B)) (the official code has
two hand-tuned constants 0.95 / 0.1 for M = 2, works on batch sums without / B, and its
second branch can never fire); the window compares the mean of the last `window` epoch
traces with the mean of the `window` before them (official: the window ending one epoch
earlier, kept as the `shifted` option), growth relative to the newer mean as
`(tr1 - tr2) / tr1` in the official code.
"""

from __future__ import annotations

import torch


def infreg_betas(scores: torch.Tensor, beta0: float, batch_size: int) -> torch.Tensor:
    """beta_m = beta0 * exp(tanh((s_m - mean_k s_k) / B)) where s_m > mean_k s_k, else 0,
    for batch-sum scores s [M]."""
    gap = scores - scores.mean()
    beta = beta0 * torch.exp(torch.tanh(gap / batch_size))
    return torch.where(gap > 0, beta, torch.zeros_like(beta))


def add_proximal_gradient_(
    params: list[torch.Tensor], anchors: list[torch.Tensor], beta: float | torch.Tensor
) -> None:
    """In place, for every parameter with a gradient: grad <- grad + beta * (theta - anchor)."""
    pairs = [(p, a) for p, a in zip(params, anchors, strict=True) if p.grad is not None]
    if not pairs:
        return
    grads = [p.grad for p, _ in pairs if p.grad is not None]
    diffs = torch._foreach_sub([p.detach() for p, _ in pairs], [a for _, a in pairs])
    if isinstance(beta, torch.Tensor):
        torch._foreach_mul_(diffs, beta.to(grads[0].dtype))
        torch._foreach_add_(grads, diffs)
    else:
        torch._foreach_add_(grads, diffs, alpha=beta)


def proximal_step_(
    params: list[list[torch.Tensor]],
    anchors: list[list[torch.Tensor]],
    betas: list[float],
    window_is_open: bool,
) -> None:
    """The InfoReg gradient edit for every modality m: grad theta_m += beta_m (theta_m -
    anchor_m), only while the prime learning window is open and only where beta_m != 0
    (beta_m is 0 for every modality at or below the mean score)."""
    if not window_is_open:
        return
    for ps, anchor, beta in zip(params, anchors, betas, strict=True):
        if beta != 0.0:
            add_proximal_gradient_(ps, anchor, beta)


def accumulate_squared_gradients_(acc: list[torch.Tensor], params: list[torch.Tensor]) -> None:
    """acc_t += grad_t^2 for each weight tensor (a missing gradient adds nothing)."""
    for a, p in zip(acc, params, strict=True):
        if p.grad is not None:
            a.addcmul_(p.grad.detach(), p.grad.detach())


def fisher_trace(acc: list[torch.Tensor]) -> torch.Tensor:
    """The epoch's Fisher trace as the official code computes it: the sum over weight
    tensors of the mean of the accumulated squared gradients."""
    if not acc:
        return torch.zeros(())
    return torch.stack([a.float().mean() for a in acc]).sum()


def trace_growth(history: list[float], window: int, compare: str = "previous") -> float:
    """Relative growth of the Fisher trace, (tr1 - tr2) / tr1, tr1 = mean of the last
    `window` epoch traces, tr2 = mean of the `window` before them (`previous`) or of the
    `window` ending one epoch earlier (`shifted`, the official code). The history is padded
    with zeros in front; with no trace yet (tr1 = 0) the growth is 1 (the official k = 1
    at epoch 0: the window starts open)."""
    shift = window if compare == "previous" else 1
    if compare not in ("previous", "shifted"):
        raise ValueError(f"unknown window comparison {compare!r} (previous | shifted)")
    padded = [0.0] * (window + shift) + list(history)
    tr1 = sum(padded[len(padded) - window :]) / window
    tr2 = sum(padded[len(padded) - window - shift : len(padded) - shift]) / window
    if tr1 == 0.0:
        return 1.0
    return (tr1 - tr2) / tr1


def window_open(history: list[float], window: int, threshold: float, compare: str = "previous") -> bool:
    """The prime learning window is open while the trace's relative growth exceeds `threshold`."""
    return trace_growth(history, window, compare) > threshold

"""InfoReg, the prime-learning-window regulariser (STRATEGIES.md section 2.6): the formulas.

Huang, Wei, Yang, Hu, "Adaptive Unimodal Regulation for Balanced Multimodal Information
Acquisition", CVPR 2025; official code GeWu-Lab/InfoReg_CVPR2025 (`main.py`,
`train_epoch`: the anchor `global_model`, the window test `k`, `beta`/`beta2`, the
proximal gradient term and the Fisher accumulation `fim_audio`).

Decisions (STRATEGIES.md): generalised to M modalities, every modality scoring above the
mean score gets beta_m = beta0 * exp(tanh((s_m - mean_k s_k) / B)) (the official code has
two hand-tuned constants 0.95 / 0.1 for M = 2 and works on batch sums without / B; both
of its branches can fire: GeWu-Lab/InfoReg_CVPR2025@939b2ed main.py L465-476, audio ahead
-> beta = 0.95 exp(tanh(s_a - s_v)), visual ahead -> beta2 = 0.1 exp(tanh(s_v - s_a)), each
only while k > 0.05). `preset: official` (the default) is that rule for two modalities, with
the shifted window and the Fisher trace of the first encoder only; `preset: paper` is the
M-modality reading above. Under paper the window compares the mean of the last `window` epoch
traces with the mean of the `window` before them (official: the window ending one epoch
earlier, kept as the `shifted` option), growth relative to the newer mean as
`(tr1 - tr2) / tr1` in the official code.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from bml_core.strategies.base import Feats, Losses, StepContext, Strategy
from bml_core.strategies.infreg import InfoRegParams


def infreg_betas(scores: torch.Tensor, beta0: float, batch_size: int) -> torch.Tensor:
    """beta_m = beta0 * exp(tanh((s_m - mean_k s_k) / B)) where s_m > mean_k s_k, else 0,
    for batch-sum scores s [M]."""
    gap = scores - scores.mean()
    beta = beta0 * torch.exp(torch.tanh(gap / batch_size))
    return torch.where(gap > 0, beta, torch.zeros_like(beta))


def official_betas(scores: torch.Tensor, beta0: float, beta0_second: float) -> torch.Tensor:
    """The authors' two-modality rule (GeWu-Lab/InfoReg_CVPR2025@939b2ed main.py L465-481), on
    batch-sum scores s [2]: s_1 > s_2 -> (beta0 exp(tanh(s_1 - s_2)), 0); s_1 < s_2 -> (0,
    beta0_second exp(tanh(s_2 - s_1))); a tie -> (0, 0). No division by the batch size."""
    gap = scores[0] - scores[1]
    lead = beta0 * torch.exp(torch.tanh(gap))
    second = beta0_second * torch.exp(torch.tanh(-gap))
    zero = torch.zeros_like(gap)
    return torch.stack([torch.where(gap > 0, lead, zero), torch.where(gap < 0, second, zero)])


def add_proximal_gradient_(
    params: Sequence[torch.Tensor], anchors: Sequence[torch.Tensor], beta: float | torch.Tensor
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
    params: Sequence[Sequence[torch.Tensor]],
    anchors: Sequence[Sequence[torch.Tensor]],
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


def accumulate_squared_gradients_(acc: Sequence[torch.Tensor], params: Sequence[torch.Tensor]) -> None:
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


class InfoReg(Strategy):
    """Loss CE(z) + sum_m CE(u_m); while the prime learning window is open, the encoders of
    the modalities above the mean score are pulled back to their epoch-start weights.

    State (checkpointed): the anchors, the Fisher accumulators of the current epoch, the
    trace history, the window decision of the epoch and the epoch it was made for."""

    params: InfoRegParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        mods = self.modalities
        self._official = self.params.preset == "official"
        if self._official and len(mods) != 2:
            raise ValueError(
                f"infreg.preset: official is the authors' two-modality rule, this run has {len(mods)} "
                "modalities; set infreg.preset: paper (the M-modality reading)"
            )
        self._compare = self.params.compare or ("shifted" if self._official else "previous")
        self._params = [self.model.encoder_parameters(m) for m in mods]
        # The Fisher trace: the authors' sums the first (audio) encoder's Conv/Linear weights only
        # (main.py L508-511, L569-572); the paper reading every encoder's.
        traced = self._params[:1] if self._official else self._params
        self._weights = [p for ps in traced for p in ps if p.dim() >= 2]
        self._beta_names = [f"infreg/beta/{m}" for m in mods]
        self._betas: list[float] | torch.Tensor = [0.0] * len(mods)
        self.state = {
            "epoch": -1,
            "anchors": None,
            "fisher": None,
            "history": [],
            "open": True,
            "growth": 1.0,
        }

    def on_epoch_start(self, ctx: StepContext) -> None:
        if self.state["epoch"] == ctx.epoch:
            return  # resumed inside this epoch: anchors, accumulators and window are checkpointed
        growth = trace_growth(self.state["history"], self.params.window, self._compare)
        self.state.update(
            epoch=ctx.epoch,
            anchors=[[p.detach().clone() for p in ps] for ps in self._params],
            fisher=[torch.zeros_like(p).detach() for p in self._weights],
            open=growth > self.params.threshold,
            growth=growth,
        )

    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        if self.state["anchors"] is None:  # a step driven without the epoch-start event
            self.on_epoch_start(ctx)
        logits = torch.stack([u[m] for m in self.modalities]).float()  # [M, B, C]
        uni = F.cross_entropy(logits.flatten(0, 1), y.repeat(len(self.modalities)), reduction="sum")
        if self.active(ctx.epoch) and self.state["open"]:
            with torch.no_grad():
                target = y.expand(logits.shape[0], -1).unsqueeze(2)
                scores = logits.softmax(-1).gather(2, target).squeeze(2).sum(1)
                if self._official:
                    self._betas = official_betas(scores, self.params.beta0, self.params.beta0_second)
                else:
                    self._betas = infreg_betas(scores, self.params.beta0, y.shape[0])
        else:
            self._betas = [0.0] * len(self.modalities)
        return {"uni_ce": uni / y.shape[0]}

    def on_gradients(self, ctx: StepContext) -> None:
        betas = self._betas
        if isinstance(betas, torch.Tensor) and not (ctx.host and self.host_math):
            ctx.log(self._beta_names, betas)  # device path: beta 0 adds 0, no host sync
            for ps, anchor, beta in zip(self._params, self.state["anchors"], betas.unbind(), strict=True):
                add_proximal_gradient_(ps, anchor, beta)
        else:
            floats = betas.tolist() if isinstance(betas, torch.Tensor) else betas
            ctx.log_host(self._beta_names, floats)
            proximal_step_(
                self._params, self.state["anchors"], floats, window_is_open=bool(self.state["open"])
            )
        accumulate_squared_gradients_(self.state["fisher"], self._weights)
        ctx.log_host(["infreg/window", "infreg/trace"], [float(self.state["open"]), self._last_trace()])

    def _last_trace(self) -> float:
        history = self.state["history"]
        return float(history[-1]) if history else 0.0

    def on_epoch_end(self, ctx: StepContext, val_metrics: dict[str, float] | None) -> None:
        self.state["history"] = [*self.state["history"], float(fisher_trace(self.state["fisher"]))]

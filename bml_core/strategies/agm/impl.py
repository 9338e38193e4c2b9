"""AGM, Adaptive Gradient Modulation (STRATEGIES.md section 2.5): the formulas.

Li, Li, Hu, Wang, Hong, "Boosting Multi-modal Model Performance with Adaptive Gradient
Modulation", ICCV 2023 (arXiv 2308.07686); official code lihong2303/AGM
(`model/*_net.py`: `GradMod`, `Modality_Audio/Visual`, the backward hooks;
`run/CREMAD_main.py`: scores, ratios, coefficients, running means).

The sign is the official one: coeff_m = exp(alpha * min(r*_m - r_m, 10)), so a modality
whose current lead r_m exceeds its running-average lead r*_m gets coeff < 1 (slowed), one
lagging behind its average gets coeff > 1. (BalanceBenchmark flips it.)
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F

from bml_core.config import ConfigError
from bml_core.strategies.agm import MAX_MODALITIES, AGMParams
from bml_core.strategies.base import Batch, Feats, Losses, StepContext, Strategy

SCORE_P_MIN = 1e-8  # p clamped before the log, as the official code
COEFF_EXPONENT_CAP = 10.0


def check_modalities(num_modalities: int) -> None:
    """AGM's exact Shapley logits cost 2^M - 1 extra forwards per step: refuse M > 4."""
    if num_modalities < 2:
        raise ValueError(f"agm needs at least 2 modalities, got {num_modalities}")
    if num_modalities > MAX_MODALITIES:
        raise ValueError(
            f"agm supports at most {MAX_MODALITIES} modalities (exact Shapley logits need 2^M - 1 = "
            f"{2**num_modalities - 1} extra forwards per step); this dataset has {num_modalities}: "
            "use fewer modalities or another strategy"
        )


def subset_masks(num_modalities: int) -> list[int]:
    """Every subset of the modalities as a bitmask (bit m set = modality m present), from
    the empty set (0) to the full set (2^M - 1)."""
    return list(range(2**num_modalities))


def shapley_weights(num_modalities: int) -> list[list[tuple[int, float]]]:
    """For each modality m, the pairs (mask of S, |S|! (M - |S| - 1)! / M!) over every subset
    S of the other modalities: phi_m = sum_S w_S [v(S + m) - v(S)]."""
    m_total = num_modalities
    out: list[list[tuple[int, float]]] = []
    for m in range(m_total):
        others = [j for j in range(m_total) if j != m]
        pairs = []
        for size in range(m_total):
            w = math.factorial(size) * math.factorial(m_total - size - 1) / math.factorial(m_total)
            for subset in itertools.combinations(others, size):
                pairs.append((sum(1 << j for j in subset), w))
        out.append(pairs)
    return out


def shapley_logits(values: dict[int, torch.Tensor], num_modalities: int) -> list[torch.Tensor]:
    """phi_m = sum_{S not containing m} |S|!(M-|S|-1)!/M! [v(S + m) - v(S)] for every m, from
    the logits v(S) [B, C] of the forwards with the modalities outside S absent, keyed by
    bitmask. v(empty set) is the all-absent forward f(0, .., 0) (STRATEGIES.md) or a zero
    tensor (the official code's M = 2 form, whose phi sum to f exactly).

    M = 2: phi_a = 1/2 [f(a,v) - f(0,v) + f(a,0) - f(0,0)]. Efficiency of the Shapley value:
    sum_m phi_m = v(full) - v(empty)."""
    out = []
    for m, pairs in enumerate(shapley_weights(num_modalities)):
        bit = 1 << m
        phi = None
        for mask, w in pairs:
            term = w * (values[mask | bit] - values[mask])
            phi = term if phi is None else phi + term
        assert phi is not None
        out.append(phi)
    return out


def agm_scores(phis: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """s_m = batch mean of -log softmax(phi_m)[y] with p clamped at 1e-8, for phis [M, B, C]
    (detached: the scores steer the coefficients, they are not trained on)."""
    p = phis.detach().float().softmax(-1).gather(2, y.expand(phis.shape[0], -1).unsqueeze(2)).squeeze(2)
    return -p.clamp_min(SCORE_P_MIN).log().mean(1)


def agm_ratios(scores: torch.Tensor) -> torch.Tensor:
    """r_m = exp(M / (M - 1) * (mean_k s_k - s_m)); M = 2: r_a = exp(s_v - s_a) (official).
    A modality with a lower loss-like score than the mean (ahead) has r > 1."""
    m = scores.shape[0]
    return torch.exp(m / (m - 1) * (scores.mean() - scores))


def agm_coefficients(ratios: torch.Tensor, running_ratios: torch.Tensor, alpha: float) -> torch.Tensor:
    """coeff_m = exp(alpha * min(r*_m - r_m, 10)), the official sign: ahead of its running
    average (r_m > r*_m) means coeff < 1."""
    return torch.exp(alpha * (running_ratios - ratios).clamp_max(COEFF_EXPONENT_CAP))


def running_mean(mean: torch.Tensor, value: torch.Tensor, count: int) -> torch.Tensor:
    """The mean over all `count` steps so far, the newest being `value`:
    mean * (count - 1) / count + value / count (the official `train_score` update)."""
    return mean * ((count - 1) / count) + value / count


def scale_gradient(t: torch.Tensor, coeff: torch.Tensor) -> torch.Tensor:
    """Identity forward; the gradient flowing back into `t` is multiplied by `coeff` (the
    official full backward hook on the identity module after phi_m). Returns `t` itself
    with a tensor hook registered (t must require grad)."""
    c = coeff.detach()
    t.register_hook(lambda g: g * c.to(g.dtype))
    return t


class AGM(Strategy):
    """Replaces the fused loss by CE(sum_m phi_m) with dL/dphi_m scaled by coeff_m.

    The Shapley values need v(S) for every subset S of modalities: v(full) is the trainer's
    own forward (its fused logits z), the other 2^M - 1 come from forwards with the absent
    modalities' inputs zeroed, with gradient, in eval mode (the authors' `GradMod.forward`,
    lihong2303/AGM@5a65542 model/CREMAD_net.py L61-66: `self.net.eval()` around the padded
    forwards, so their BatchNorm layers use and keep the running statistics). State (checkpointed): the
    running means of the scores and the number of steps they cover."""

    params: AGMParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            check_modalities(len(self.modalities))
        except ValueError as exc:  # the config could not tell the number of modalities
            raise ConfigError([("strategies", str(exc))]) from exc
        mods = self.modalities
        self._coef_names = [f"agm/coef/{m}" for m in mods]
        self._score_names = [f"agm/score/{m}" for m in mods]
        self._mean_names = [f"agm/score_mean/{m}" for m in mods]
        self._batch: Batch | None = None
        self.state = {"score_mean": torch.zeros(len(mods), device=self.device), "steps": 0}

    def before_forward(self, ctx: StepContext, batch: Batch) -> Batch:
        self._batch = batch
        return batch

    def _coalition_values(
        self, ctx: StepContext, x: dict[str, torch.Tensor], z: torch.Tensor
    ) -> dict[int, torch.Tensor]:
        mods = self.modalities
        full = (1 << len(mods)) - 1
        values: dict[int, torch.Tensor] = {full: z}
        model = ctx.model
        was_training = model.training
        if self.params.masked_mode == "eval":
            model.eval()  # official CREMAD_net.py L61: self.net.eval() (with gradient)
        try:
            for mask in range(full):
                if mask == 0 and self.params.empty_set == "zero":
                    values[0] = torch.zeros_like(z)  # official Modality_Audio/Visual: v(empty) = 0
                    continue
                present = {m for i, m in enumerate(mods) if mask >> i & 1}
                values[mask] = ctx.forward(x, present=present, zero="input")[1]
        finally:
            model.train(was_training)  # official L64-65: back to train mode
        return values

    def before_optimizer_step(self, ctx: StepContext) -> None:
        """The authors' clip (run/CREMAD_main.py L233-238): when the fusion head's weight
        gradient has an entry outside [-1, 1], clip_grad_norm_(model.parameters(), 1.0).
        Our heads may hold several weight matrices: the test runs over all of them."""
        clip = self.params.grad_clip
        if clip is None or not self.active(ctx.epoch):
            return
        model = ctx.model
        weights = [p.grad for p in model.fusion.parameters() if p.ndim >= 2 and p.grad is not None]
        if weights and bool(torch.stack([g.abs().max() for g in weights]).max() > 1):
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip)

    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        batch, self._batch = self._batch, None
        if not self.active(ctx.epoch) or batch is None:
            ctx.log(self._coef_names, torch.ones(len(self.modalities), device=z.device))
            return {}
        x = batch[0]
        phis = shapley_logits(self._coalition_values(ctx, x, z), len(self.modalities))
        scores = agm_scores(torch.stack(phis), y)
        count = int(self.state["steps"]) + 1
        mean = self.state["score_mean"]
        coeff = agm_coefficients(agm_ratios(scores), agm_ratios(mean), self.params.alpha)
        self.state = {"score_mean": running_mean(mean, scores, count), "steps": count}
        logits = scale_gradient(phis[0], coeff[0])
        for m in range(1, len(phis)):
            logits = logits + scale_gradient(phis[m], coeff[m])
        ctx.log(self._coef_names, coeff)
        ctx.log(self._score_names, scores)
        ctx.log(self._mean_names, self.state["score_mean"])
        return {"ce": F.cross_entropy(logits.float(), y)}

"""MMPareto (implementation; STRATEGIES.md 2.7). Losses L_mm = CE(z) and L_m = CE(aux_m(h_m)).
For each encoder m: g_mm and g_m by torch.autograd.grad restricted to theta_m (one call for
L_mm covering every encoder, one per L_m: 1 + M gradient evaluations, no full extra
backward); weights (1/2, 1/2) when cos(g_mm, g_m) > 0, else the two-vector min-norm (MGDA)
weights; new gradient 2 (w1 g_mm + w2 g_m), rescaled up to ||g_mm + g_m|| when that is
larger, times gamma. Heads get the plain gradient of the summed loss.

Decisions: cosine and MGDA weights are per encoder (the whole flattened gradient of
theta_m, as the official `concat`); the norm restore is per tensor by default, as the
official code (GeWu-Lab/MMPareto_ICML2024@a339db3 code/MMPareto.py L184-207: per parameter,
diff = ||grad of the summed loss|| / ||new||, new * diff * gamma when diff > 1), or per
encoder (`restore: per_encoder`, our earlier reading); the MGDA weight is the
exact clipped closed form (MinNormSolver clips at 0.001/0.999, which can only matter when
cos > 0, where the equal weights are used anyway)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from bml_core.strategies.base import Feats, Losses, StepContext, Strategy
from bml_core.strategies.mmpareto import MMParetoParams


def mgda_two(g1: torch.Tensor, g2: torch.Tensor) -> torch.Tensor:
    """w in [0, 1] minimising ||w g1 + (1 - w) g2||^2: clamp((g2 - g1).g2 / ||g1 - g2||^2)."""
    diff = g1 - g2
    denom = diff.dot(diff)
    w = (-diff).dot(g2) / denom.clamp_min(1e-20)
    return torch.where(denom > 0, w.clamp(0.0, 1.0), torch.full_like(w, 0.5))


def pareto_combine(
    g_mm: torch.Tensor, g_uni: torch.Tensor, gamma: float, sizes: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(new gradient, cos, weight on g_uni) for one encoder's flattened gradients. The norm
    restore runs per chunk of `sizes` (one per tensor, official L190-197) or, sizes None,
    over the whole vector."""
    cos = F.cosine_similarity(g_mm, g_uni, dim=0, eps=1e-12)
    w_mm = torch.where(cos > 0, torch.full_like(cos, 0.5), mgda_two(g_mm, g_uni))
    new = 2 * (w_mm * g_mm + (1 - w_mm) * g_uni)
    if sizes is None:
        target = (g_mm + g_uni).norm()
        norm = new.norm()
        restore = torch.where(target > norm, target / norm.clamp_min(1e-20), torch.ones_like(norm))
        return new * (restore * gamma), cos, 1 - w_mm
    target = torch.stack([c.norm() for c in (g_mm + g_uni).split(sizes)])
    norm = torch.stack([c.norm() for c in new.split(sizes)])
    restore = torch.where(target > norm, target / norm.clamp_min(1e-20), torch.ones_like(norm))
    factor = torch.repeat_interleave(restore, torch.tensor(sizes, device=new.device))
    return new * (factor * gamma), cos, 1 - w_mm


class MMPareto(Strategy):
    """Aux losses in compute_loss; the combined per-encoder gradients in backward."""

    params: MMParetoParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._terms = {m: f"mmpareto/uni/{m}" for m in self.modalities}
        self._names = [f"mmpareto/cos/{m}" for m in self.modalities] + [
            f"mmpareto/w/{m}" for m in self.modalities
        ]
        model = self.model
        self._enc = {m: model.encoder_parameters(m) for m in self.modalities}
        assert model.aux_heads is not None
        self._aux = {m: list(model.aux_heads[m].parameters()) for m in self.modalities}
        taken = {id(p) for ps in [*self._enc.values(), *self._aux.values()] for p in ps}
        self._rest = [p for p in model.parameters() if id(p) not in taken]

    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        aux = ctx.unimodal_logits(h, heads="aux")
        return {self._terms[m]: F.cross_entropy(aux[m].float(), y) for m in self.modalities}

    def backward(self, ctx: StepContext, losses: dict[str, torch.Tensor]) -> bool:
        if not self.active(ctx.epoch):
            return False  # the trainer's plain backward: uni-modal aux losses, unmodified
        mods = self.modalities
        mine = set(self._terms.values()) | {"ce"}
        others = [t for n, t in losses.items() if n not in mine]
        enc_all = [p for m in mods for p in self._enc[m]]
        g_mm = torch.autograd.grad(
            ctx.scale_loss(losses["ce"]), enc_all + self._rest, retain_graph=True, allow_unused=True
        )
        g_mm_enc, g_rest = g_mm[: len(enc_all)], g_mm[len(enc_all) :]
        cos_w: list[torch.Tensor] = []
        ws: list[torch.Tensor] = []
        start = 0
        for i, m in enumerate(mods):
            params = self._enc[m]
            last = i == len(mods) - 1 and not others
            g_uni = torch.autograd.grad(
                ctx.scale_loss(losses[self._terms[m]]),
                params + self._aux[m],
                retain_graph=not last,
                allow_unused=True,
            )
            mm = _flat(g_mm_enc[start : start + len(params)], params)
            uni = _flat(g_uni[: len(params)], params)
            start += len(params)
            sizes = [p.numel() for p in params] if self.params.restore == "per_tensor" else None
            new, cos, w = pareto_combine(mm, uni, self.params.gamma, sizes)
            cos_w.append(cos)
            ws.append(w)
            offset = 0
            for p in params:
                n = p.numel()
                p.grad = new[offset : offset + n].view_as(p).to(p.dtype)
                offset += n
            for p, g in zip(self._aux[m], g_uni[len(params) :], strict=True):
                p.grad = g
        for p, g in zip(self._rest, g_rest, strict=True):
            p.grad = g
        if others:
            total = others[0]
            for t in others[1:]:
                total = total + t
            ctx.backward(total)  # other strategies' terms: plain gradients, added
        ctx.log(self._names, torch.stack(cos_w + ws).float())
        return True


def _flat(grads: tuple[torch.Tensor | None, ...], params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat(
        [
            (g if g is not None else torch.zeros_like(p)).reshape(-1)
            for g, p in zip(grads, params, strict=True)
        ]
    )

"""The Balancer's step engine: the same strategy implementations and StepContext the Trainer
uses, driven from the user's forward / backward (see bml_core/balancer/__init__.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from bml_core.data.base import stable_seed
from bml_core.imbalance import UnimodalProbe
from bml_core.models.fusion import ConcatFusion
from bml_core.strategies.base import StepContext, Strategy, overrides
from bml_core.strategies.spec import get_spec

# strategies whose events use only what an own loop lends (the features, the gradients after
# the user's backward); the others reach for the trainer (forward passes, optimiser, data)
SUPPORTED = {"joint", "ogm", "ogm_ge", "opm", "uni_aux"}
# what each unsupported strategy needs that the Balancer cannot lend yet (the refusal names it)
NEEDS = {
    "mslr": "the optimiser's per-modality learning-rate multipliers and a validation split",
    "mses": "a validation split evaluated at epoch ends and per-modality early stopping",
    "mmcosine": "a head replaced by its cosine-normalised form",
    "pmr": "per-class prototypes built from the training data at epoch starts",
    "infreg": "optimiser access (per-modality lr) and the trace of the Fisher information each epoch",
    "agm": "extra forward passes with modalities zeroed through the trainer",
    "gblending": "a held-out split and the trainer's super-epoch loop",
    "mla": "the whole training step (alternating modalities)",
    "mmpareto": "its own backward pass per modality (torch.autograd.grad on each loss)",
    "reconboost": "the whole training step (alternating boosting stages)",
    "relearn": "the initial weights snapshot and the optimiser to re-initialise encoders",
}


class BalancerError(ValueError):
    """The Balancer got a model, input or strategy it cannot use; the message names the field."""


@dataclass
class BalancerOutput:
    """One forward pass: fused logits, the features after the strategies (OPM masks applied),
    the uni-modal logits u_m of those features, and what the step engine keeps for backward."""

    logits: torch.Tensor
    features: dict[str, torch.Tensor]
    unimodal_logits: dict[str, torch.Tensor]
    ctx: StepContext
    probe: UnimodalProbe | None
    loss_terms: dict[str, torch.Tensor] = field(default_factory=dict)  # added to the user's loss

    @property
    def keep(self) -> torch.Tensor | None:
        """[B] bool: samples still in the loss (None: all). OPM drops every modality of a
        sample only rarely; the native trainer then leaves it out of the fused CE, and a loop
        that wants the same averages its per-sample loss over `keep`."""
        return self.ctx.keep


class _ModelView:
    """What the strategy implementations read of a model (modalities, encoders and their
    parameters, the concat head's blocks), over the user's module."""

    def __init__(self, model: nn.Module, modalities: list[str], fusion: ConcatFusion | None):
        self.module = model
        self.modalities = modalities
        self.encoders = cast(nn.ModuleDict, model.encoders)
        self.fusion = fusion
        self.aux_heads = None

    def encoder_parameters(self, modality: str) -> list[nn.Parameter]:
        return list(self.encoders[modality].parameters())

    def parameters(self) -> Any:
        return self.module.parameters()


class Balancer:
    """Applies strategies to `model` inside the user's own loop; telemetry goes to `run`
    (a bml_core.Run, optional). `strategies`: names or StrategyParams; `seed`: the strategies'
    noise seed (the native run's cfg.seed gives the native run's noise)."""

    def __init__(
        self,
        model: nn.Module,
        strategies: Sequence[Any] = ("joint",),
        run: Any = None,
        seed: int = 0,
        num_classes: int | None = None,
    ):
        encoders = getattr(model, "encoders", None)
        if not isinstance(encoders, nn.ModuleDict) or len(encoders) == 0:
            raise BalancerError(
                f"model.encoders must be an nn.ModuleDict {{modality: encoder}} with at least one modality, "
                f"got {type(encoders).__name__ if encoders is not None else 'nothing'}: add "
                "self.encoders = nn.ModuleDict({...}) to the model"
            )
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Module):
            raise BalancerError(
                "model.head must be the module that maps the dict of features to logits: add self.head"
            )
        self.model = model
        self.head = head
        self.modalities = list(encoders)
        if run is not None and list(run.modalities) != self.modalities:
            raise BalancerError(
                f"model.encoders keys {self.modalities} differ from the run's modalities "
                f"{list(run.modalities)}: pass the same names, in the same order, to bml_core.init(modalities=...)"
            )
        self.run = run
        self.fusion: ConcatFusion | None = None
        if isinstance(head, nn.Linear):
            classes = num_classes if num_classes is not None else head.out_features
            if run is not None:
                classes = int(run.num_classes)
            if classes != head.out_features:
                raise BalancerError(
                    f"model.head is Linear({head.in_features}, {head.out_features}) but num_classes={classes}"
                )
            self.num_classes = classes
        elif callable(getattr(model, "unimodal_logits", None)):
            self.num_classes = int(run.num_classes) if run is not None else int(num_classes or 0)
        else:
            raise BalancerError(
                f"model.head is {type(head).__name__}, not an nn.Linear over the concatenated features: "
                "the model must provide unimodal_logits(features) -> {modality: logits}"
            )
        self.view = _ModelView(model, self.modalities, None)
        self.strategies = self._build(strategies, seed)
        self.step = 0
        self.epoch = 0
        self.last: tuple[torch.Tensor | None, BalancerOutput] | None = None  # the latest forward
        self.ratio_kind = "pairwise_mean"

    # ------------------------------------------------------------------ construction
    def _build(self, strategies: Sequence[Any], seed: int) -> list[Strategy]:
        if isinstance(strategies, str):
            strategies = [strategies]
        device = next(self.model.parameters()).device
        out: list[Strategy] = []
        for i, item in enumerate(strategies):
            name = item if isinstance(item, str) else getattr(item, "name", None)
            spec = get_spec(str(name)) if name is not None else None
            if spec is None:
                raise BalancerError(f"strategies[{i}] = {item!r} is not a known strategy name")
            if spec.name not in SUPPORTED:
                need = NEEDS.get(spec.name, f"capabilities {sorted(spec.capabilities)}")
                raise BalancerError(
                    f"strategies[{i}] = {spec.name!r} cannot run in an own loop through the Balancer: it needs "
                    f"{need}; supported here: {sorted(SUPPORTED)} (or train it natively with `bml train`)"
                )
            params = item if not isinstance(item, str) else spec.params.model_validate({"name": spec.name})
            cls = spec.load_impl()
            strategy = cls(params, self.view, device, stable_seed(seed, i, spec.name))
            strategy.spec = spec
            out.append(strategy)
        return out

    # ------------------------------------------------------------------ the step
    def _features(self, x: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not isinstance(x, Mapping) or set(x) != set(self.modalities):
            keys = list(x) if isinstance(x, Mapping) else type(x).__name__
            raise BalancerError(
                f"x keys {keys} differ from model.encoders {self.modalities}: pass one input per modality"
            )
        feats = {m: self.view.encoders[m](x[m]) for m in self.modalities}
        for m, h in feats.items():
            if not isinstance(h, torch.Tensor) or h.dim() != 2:
                shape = list(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
                raise BalancerError(f"model.encoders[{m!r}] must return [batch, features], got {shape}")
        return feats

    def _unimodal(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if isinstance(self.head, nn.Linear):
            dims = {m: int(feats[m].shape[1]) for m in self.modalities}
            if sum(dims.values()) != self.head.in_features:
                raise BalancerError(
                    f"model.head is Linear({self.head.in_features}, ...) but the features give "
                    f"{sum(dims.values())} inputs ({dims})"
                )
            if self.fusion is None or self.fusion.dims != dims:
                self.fusion = ConcatFusion(dims, self.num_classes)
                self.fusion.fc = self.head  # the user's layer itself
                self.view.fusion = self.fusion
            return self.fusion.unimodal_logits(feats)
        u = self.model.unimodal_logits(feats)  # type: ignore[operator]
        if not isinstance(u, Mapping) or set(u) != set(self.modalities):
            raise BalancerError(
                f"model.unimodal_logits keys {list(u) if isinstance(u, Mapping) else u!r} differ from "
                f"model.encoders {self.modalities}"
            )
        return dict(u)

    def _head(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        if isinstance(self.head, nn.Linear):
            return self.head(torch.cat([feats[m] for m in self.modalities], dim=1))
        return cast(torch.Tensor, self.head(feats))

    def forward(self, x: Mapping[str, torch.Tensor], y: torch.Tensor | None = None) -> BalancerOutput:
        """Encoders, the probe's scores from the undropped features (as the trainer), the
        strategies' on_features (OPM masks) and on_logits, then the head."""
        ctx = StepContext(epoch=self.epoch, step=self.step + 1, modalities=self.modalities, y=y)
        feats = self._features(x)
        with torch.no_grad():
            u0 = self._unimodal({m: h.detach() for m, h in feats.items()})
        probe = UnimodalProbe(u0, y) if y is not None else None
        if probe is not None:
            ctx.scores = probe.scores
        pending = ctx.scores is None
        if pending and any(overrides(s, "on_features") for s in self.strategies):
            raise BalancerError(
                "forward(x, y) needs the labels y for OPM: its drop rate comes from this step's rho"
            )
        wants_grad = any(
            s.spec is not None and s.spec.has("needs_unimodal_logits_with_grad") for s in self.strategies
        )
        u_grad = self._unimodal(feats) if wants_grad else None  # before OPM, as the trainer's
        for s in self.strategies:
            if overrides(s, "on_features"):
                feats = s.on_features(ctx, feats)
        logits = self._head(feats)
        for s in self.strategies:
            if overrides(s, "on_logits"):
                logits = s.on_logits(ctx, feats, logits, True)
        u = self._unimodal(feats)
        terms: dict[str, torch.Tensor] = {}
        for s in self.strategies:
            if overrides(s, "compute_loss"):
                if y is None:
                    raise BalancerError(f"forward(x, y) needs the labels y for {s.params.name}'s loss term")
                for name, term in s.compute_loss(
                    ctx, feats, logits, u_grad if u_grad is not None else u, y
                ).items():
                    if name == "ce" or term is None:
                        raise BalancerError(
                            f"{s.params.name} replaces the fused loss, which is the user's own in a Balancer loop"
                        )
                    terms[name] = term
        self.last = (y, BalancerOutput(logits, feats, u, ctx, probe, terms))
        return self.last[1]

    @staticmethod
    def total_loss(loss: torch.Tensor, out: BalancerOutput) -> torch.Tensor:
        """The user's loss plus the strategies' terms of this forward (uni_aux: sum_m lambda_m
        CE(u_m)); `backward` uses it, a Lightning training_step returns it."""
        for term in out.loss_terms.values():
            loss = loss + term
        return loss

    def backward(self, loss: torch.Tensor, out: BalancerOutput, y: torch.Tensor) -> dict[str, float]:
        """loss.backward(), then the strategies' on_gradients (OGM / OGM-GE scaling on the
        unscaled gradients) and the step's telemetry to the run. Call optimizer.step() after."""
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise BalancerError("loss must be a scalar tensor (e.g. F.cross_entropy(out.logits, y))")
        if not bool(torch.isfinite(out.logits.detach()).all()):
            raise BalancerError("out.logits holds NaN or inf: this step was not applied or recorded")
        lv = float(loss.detach())
        if not math.isfinite(lv):
            raise BalancerError(
                f"loss is {lv}: this step was not applied or recorded (the steps already stored are "
                "kept); check the learning rate and the inputs"
            )
        loss = self.total_loss(loss, out)
        loss.backward()
        return self.after_backward(out, y, loss)

    def after_backward(
        self, out: BalancerOutput, y: torch.Tensor, loss: torch.Tensor | None = None
    ) -> dict[str, float]:
        """For loops that run the backward pass themselves (Lightning: the callback calls this
        in on_before_optimizer_step, where AMP gradients are already unscaled): the strategies'
        on_gradients and before_optimizer_step, then the step's telemetry to the run."""
        if not bool(torch.isfinite(out.logits.detach()).all()):
            raise BalancerError("out.logits holds NaN or inf: this step was not applied or recorded")
        ctx = out.ctx
        ctx.y = y
        probe = out.probe
        if probe is None:
            with torch.no_grad():
                u0 = self._unimodal({m: h.detach() for m, h in out.features.items()})
            probe = UnimodalProbe(u0, y)
            ctx.scores = probe.scores
        for s in self.strategies:
            if overrides(s, "on_gradients"):
                s.on_gradients(ctx)
        for s in self.strategies:
            if overrides(s, "before_optimizer_step"):
                s.before_optimizer_step(ctx)
        self.step += 1
        extra = ctx.metrics
        if self.run is not None:
            return cast(
                dict[str, float],
                self.run.log_step(
                    logits=out.logits, y=y, unimodal_logits=probe.logits, loss=loss, extra=extra
                ),
            )
        return extra

"""The Balancer's step engine: the same strategy implementations and StepContext the Trainer
uses, driven from the user's forward / backward (see bml_core/balancer/__init__.py)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from bml_core.balancer.errors import BalancerError
from bml_core.balancer.runtime import OwnLoopRuntime
from bml_core.data.base import stable_seed
from bml_core.imbalance import UnimodalProbe
from bml_core.models.fusion import ConcatFusion
from bml_core.optim import parameter_groups
from bml_core.strategies.base import StepContext, Strategy, overrides
from bml_core.strategies.spec import get_spec

__all__ = ["Balancer", "BalancerError", "BalancerOutput"]  # BalancerError re-exported

# strategies whose events use only what an own loop lends (the features, the gradients after
# the user's backward, and, through the own-loop runtime, the user's optimizer and loaders and
# the epoch calls); the others reach for the trainer (extra forward passes, the whole step)
SUPPORTED = {"joint", "ogm", "ogm_ge", "opm", "uni_aux", "mmcosine", "pmr", "mslr", "mses", "infreg"}
# what each supported strategy needs of the Balancer's arguments: (argument, how to pass it)
OPTIMIZER = ("optimizer", "Balancer(..., optimizer=opt) with opt built on Balancer.param_groups(model)")
TRAIN = (
    "loaders['train']",
    "Balancer(..., loaders={'train': loader}) (a re-iterable with len(), yielding (x: dict, y))",
)
VAL = ("loaders['val']", "Balancer(..., loaders={'val': loader}) (a re-iterable yielding (x: dict, y))")
REQUIRES: dict[str, tuple[tuple[str, str], ...]] = {
    "pmr": (TRAIN,),  # prototypes from the training data at each epoch start
    "mslr": (OPTIMIZER,),  # per-modality lr; val accuracies from loaders['val'] or epoch_end(val_metrics)
    "mses": (OPTIMIZER, VAL),  # lr 0 for a frozen encoder, optimizer snapshots, val losses per modality
}
# the strategies with epoch events: forward refuses to run outside epoch_start() ... epoch_end()
EPOCH_EVENTS = ("on_fit_start", "on_epoch_start", "on_epoch_end", "should_stop")
# what each unsupported strategy needs that the Balancer cannot lend (the refusal names it)
NEEDS = {
    "agm": "extra forward passes with modalities zeroed through the trainer",
    "gblending": "a held-out split and the trainer's super-epoch loop",
    "mla": "the whole training step (alternating modalities)",
    "mmpareto": "its own backward pass per modality (torch.autograd.grad on each loss)",
    "reconboost": "the whole training step (alternating boosting stages)",
    "relearn": "the initial weights snapshot and the optimiser to re-initialise encoders",
}


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

    def state_dict(self) -> dict[str, Any]:
        return self.module.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> Any:
        return self.module.load_state_dict(state)


class Balancer:
    """Applies strategies to `model` inside the user's own loop; telemetry goes to `run`
    (a bml_core.Run, optional). `strategies`: names or StrategyParams; `seed`: the strategies'
    noise seed (the native run's cfg.seed gives the native run's noise).

    Epoch-level strategies take what they need from the loop's own objects:
    `optimizer` (mslr, mses: per-modality learning rates, so each encoder's parameters in a
    group of their own: build it on `Balancer.param_groups(model)`) and `loaders`
    ({"train": ..., "val": ...}, re-iterables yielding (x: dict, y): pmr's prototypes from
    "train", which needs len(); mses' per-modality val losses and the val accuracies mslr
    follows from "val"). A strategy whose need is not passed is refused here, with the
    argument named. Around each epoch call `epoch_start()` and `epoch_end(val_metrics=None)`
    (which returns `should_stop`: mses ends the run once every encoder is frozen)."""

    def __init__(
        self,
        model: nn.Module,
        strategies: Sequence[Any] = ("joint",),
        run: Any = None,
        seed: int = 0,
        num_classes: int | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        loaders: Mapping[str, Iterable[Any]] | None = None,
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
        if loaders is not None and not isinstance(loaders, Mapping):
            raise BalancerError(
                f"loaders must be a dict {{split: loader}} (splits 'train', 'val'), got {type(loaders).__name__}"
            )
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise BalancerError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.events: list[tuple[str, str]] = []  # strategies' run events (also sent to the run)
        self.runtime = OwnLoopRuntime(self, optimizer, loaders or {})
        self._deferred: dict[int, Callable[[], Strategy]] = {}  # built once the head's blocks are known
        self._strategies = self._build(strategies, seed)
        self.step = 0
        self.epoch = 0
        self.should_stop = False
        self.epoch_metrics: dict[str, float] = {}  # what the latest epoch_end evaluated and logged
        self._fit_started = False
        self._in_epoch = False
        self.last: tuple[torch.Tensor | None, BalancerOutput] | None = None  # the latest forward
        self.ratio_kind = "pairwise_mean"

    @staticmethod
    def param_groups(model: nn.Module) -> list[dict[str, Any]]:
        """Optimizer groups for per-modality learning rates (mslr, mses): one per encoder,
        named by its modality, then one ("head") for the rest:
        `torch.optim.SGD(Balancer.param_groups(model), lr=0.01)`."""
        encoders = getattr(model, "encoders", None)
        if not isinstance(encoders, nn.ModuleDict):
            raise BalancerError("model.encoders must be an nn.ModuleDict {modality: encoder}")
        return parameter_groups(cast(Any, _ModelView(model, list(encoders), None)))

    @property
    def strategies(self) -> list[Strategy]:
        """The built strategies (mmcosine is built at the first forward, once the head's
        per-modality blocks are known from the features)."""
        return [s for s in self._strategies if s is not None]

    @property
    def needs_epoch_calls(self) -> bool:
        """Whether a strategy acts at epoch boundaries (epoch_start / epoch_end required)."""
        return bool(self._epoch_strategies)

    # ------------------------------------------------------------------ construction
    def _build(self, strategies: Sequence[Any], seed: int) -> list[Strategy | None]:
        if isinstance(strategies, str):
            strategies = [strategies]
        device = next(self.model.parameters()).device
        out: list[Strategy | None] = []
        self._epoch_strategies: list[str] = []  # names of those with epoch events (known from the class)
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
            self._check_needs(i, spec.name)
            params = item if not isinstance(item, str) else spec.params.model_validate({"name": spec.name})
            cls = spec.load_impl()
            if any(getattr(cls, e) is not getattr(Strategy, e) for e in EPOCH_EVENTS):
                self._epoch_strategies.append(spec.name)

            def make(cls: Any = cls, params: Any = params, spec: Any = spec, i: int = i) -> Strategy:
                strategy = cast(Strategy, cls(params, self.view, device, stable_seed(seed, i, spec.name)))
                strategy.spec = spec
                return strategy

            if spec.name == "mmcosine":  # reads the concat head's blocks in __init__
                self._deferred[i] = make
                out.append(None)
            else:
                out.append(make())
        return out

    def _check_needs(self, i: int, name: str) -> None:
        rt = self.runtime
        have = {"optimizer": rt.optimizer is not None, **{f"loaders[{k!r}]": True for k in rt.loaders()}}
        for arg, how in REQUIRES.get(name, ()):
            if not have.get(arg, False):
                raise BalancerError(f"strategies[{i}] = {name!r} needs {arg}: pass {how}")
            if arg == "optimizer" and rt.group_error is not None:
                raise BalancerError(f"strategies[{i}] = {name!r}: {rt.group_error}")
        if name == "pmr" and not hasattr(rt.loaders()["train"], "__len__"):
            raise BalancerError(
                f"strategies[{i}] = 'pmr' needs len(loaders['train']) (its prototypes use the first "
                "proto_fraction of the epoch's batches): pass a DataLoader or a list of batches"
            )
        if name == "mmcosine" and not isinstance(self.head, nn.Linear):
            raise BalancerError(
                f"strategies[{i}] = 'mmcosine' needs model.head to be an nn.Linear over the concatenated "
                f"features (its per-modality weight blocks), got {type(self.head).__name__}"
            )

    def _build_deferred(self) -> None:
        for i, make in list(self._deferred.items()):
            self._strategies[i] = make()
            del self._deferred[i]

    # ------------------------------------------------------------------ epochs
    def _context(self) -> StepContext:
        return StepContext(
            epoch=self.epoch, step=self.step + 1, modalities=self.modalities, trainer=cast(Any, self.runtime)
        )

    def epoch_start(self) -> None:
        """Call before the epoch's first forward: the strategies' on_fit_start (the first
        time: mslr / mses set their starting lr multipliers) and on_epoch_start (pmr's
        prototypes from loaders['train'], infreg's anchors)."""
        if self._in_epoch:
            raise BalancerError(f"epoch_start() twice: call epoch_end() after epoch {self.epoch}'s steps")
        ctx = self._context()
        if not self._fit_started:
            for s in self.strategies:
                if overrides(s, "on_fit_start"):
                    s.on_fit_start(ctx)
            self._fit_started = True
        for s in self.strategies:
            if overrides(s, "on_epoch_start"):
                s.on_epoch_start(ctx)
        self._in_epoch = True

    def epoch_end(self, val_metrics: Mapping[str, float] | None = None) -> bool:
        """Call after the epoch's last optimizer step. `val_metrics`: the user's evaluation
        ("val/acc/<m>" per modality for mslr); None evaluates loaders['val'] when given
        (`evaluate`). Runs the strategies' on_epoch_end and should_stop, logs what they logged
        (and the evaluation) to the run, and returns (and sets) `should_stop`."""
        if not self._in_epoch:
            raise BalancerError(
                "epoch_end() without epoch_start(): call epoch_start() before the epoch's steps"
            )
        metrics: dict[str, float] | None = dict(val_metrics) if val_metrics is not None else None
        evaluated = metrics is None and "val" in self.runtime.loaders()
        if evaluated:
            metrics = self.evaluate("val")
        for s in self.strategies:
            if s.params.name == "mslr":
                missing = [f"val/acc/{m}" for m in self.modalities if f"val/acc/{m}" not in (metrics or {})]
                if missing:
                    raise BalancerError(
                        f"mslr follows the per-modality val accuracies: epoch_end(val_metrics) lacks {missing}; "
                        "pass them, or Balancer(..., loaders={'val': loader}) to have them evaluated"
                    )
        ctx = self._context()
        for s in self.strategies:
            if overrides(s, "on_epoch_end"):
                s.on_epoch_end(ctx, dict(metrics) if metrics is not None else None)
        self.epoch_metrics = {**(metrics or {}), **ctx.metrics}
        if self.run is not None:
            if evaluated and metrics is not None:  # the user's own val_metrics are theirs to log
                self.run.log_eval(
                    "val",
                    acc=metrics["val/acc"],
                    acc_per_modality={m: metrics[f"val/acc/{m}"] for m in self.modalities},
                    loss=metrics["val/loss"],
                    step=self.step,
                )
            if ctx.metrics:  # the strategies' per-epoch series (mslr/ratio, mses/smoothed_loss)
                self.run.log(ctx.metrics, step=self.step)
        stop = self.should_stop
        for s in self.strategies:
            if overrides(s, "should_stop") and s.should_stop(ctx):
                stop = True
                self.runtime.event("info", f"{s.params.name} asks to stop after epoch {self.epoch}")
        self.should_stop = stop
        self.epoch += 1
        self._in_epoch = False
        return stop

    @torch.no_grad()
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Fused and per-modality accuracy and cross-entropy over loaders[split] (eval mode,
        the strategies' evaluation logits: mmcosine's), as "<split>/acc", "<split>/loss",
        "<split>/acc/<m>", "<split>/loss/<m>"; the model's train/eval mode is restored."""
        was_training = self.model.training
        n, hits, loss = 0, 0.0, 0.0
        uni_hits = torch.zeros(len(self.modalities), dtype=torch.float64)
        uni_loss = torch.zeros(len(self.modalities), dtype=torch.float64)
        ctx = StepContext(epoch=self.epoch, step=self.step, modalities=self.modalities, training=False)
        try:
            for h, y in self.runtime.iter_features(split):  # in eval mode
                u = self._unimodal(h)
                self._build_deferred()
                z = self._head(h)
                for s in self.strategies:
                    if overrides(s, "on_logits"):
                        z = s.on_logits(ctx, h, z, False)
                z = z.float()
                n += y.shape[0]
                hits += float((z.argmax(1) == y).sum())
                loss += float(F.cross_entropy(z, y, reduction="sum"))
                for j, m in enumerate(self.modalities):
                    uni_hits[j] += float((u[m].argmax(1) == y).sum())
                    uni_loss[j] += float(F.cross_entropy(u[m].float(), y, reduction="sum"))
        finally:
            self.model.train(was_training)
        if n == 0:
            raise BalancerError(f"loaders[{split!r}] yielded no batch")
        out = {f"{split}/acc": hits / n, f"{split}/loss": loss / n}
        for j, m in enumerate(self.modalities):
            out[f"{split}/acc/{m}"] = float(uni_hits[j]) / n
            out[f"{split}/loss/{m}"] = float(uni_loss[j]) / n
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
        if self._epoch_strategies and not self._in_epoch:
            raise BalancerError(
                f"{', '.join(sorted(set(self._epoch_strategies)))} act at epoch boundaries: call balancer.epoch_start() before each "
                "epoch's steps and balancer.epoch_end() after them"
            )
        ctx = self._context()
        ctx.y = y
        for s in self.strategies:
            if overrides(s, "before_forward"):  # mses: frozen encoders in eval mode
                x, y = s.before_forward(ctx, (dict(x), cast(torch.Tensor, y)))
                ctx.y = y
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
        self._build_deferred()  # the head's blocks are known now (u0 above)
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

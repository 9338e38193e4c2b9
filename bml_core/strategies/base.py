"""The implementation half of a strategy plug-in: the base class with the twelve events of
STRATEGIES.md section 1 (all no-ops) and the context every event receives.

The trainer calls, in this order, for each strategy in the config's order:
  on_fit_start(ctx) · on_epoch_start(ctx) · [per step] before_forward(ctx, batch) ->
  on_features(ctx, h) -> on_logits(ctx, h, z, training) -> compute_loss(ctx, h, z, u, y) ->
  backward(ctx, losses) -> on_gradients(ctx) -> before_optimizer_step(ctx)
  (or training_step(ctx, batch) in place of the whole step) · on_epoch_end(ctx, val_metrics)
  · should_stop(ctx)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch

from bml_core.config import RunConfig, StrategyParams
from bml_core.imbalance import discrepancy_ratio, discrepancy_ratio_host
from bml_core.models import MultimodalModel

if TYPE_CHECKING:
    from bml_core.strategies.spec import StrategySpec

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]
# The event arguments of STRATEGIES.md section 1, named as the spec names them:
#   h  per-modality features {modality: [B, D]} (the trainer's `feats`)
#   z  fused logits [B, C] (the trainer's `logits`)
#   u  uni-modal logits {modality: [B, C]} (the probe's, or the heads' with gradient)
#   y  labels [B]
Feats = dict[str, torch.Tensor]  # h or u: one tensor per modality
Losses = dict[str, torch.Tensor | None]  # compute_loss's terms: {name: scalar}, None removes one
EVENTS = (
    "on_fit_start",
    "on_epoch_start",
    "before_forward",
    "on_features",
    "on_logits",
    "compute_loss",
    "backward",
    "on_gradients",
    "before_optimizer_step",
    "training_step",
    "on_epoch_end",
    "should_stop",
)


class Runtime(Protocol):
    """What the trainer lends the context (bml_core.trainer.Trainer implements it)."""

    cfg: RunConfig
    model: MultimodalModel
    optimizer: torch.optim.Optimizer
    device: torch.device
    steps_per_epoch: int
    num_classes: int

    def param_group(self, modality: str) -> dict[str, Any]: ...
    def set_lr_mult(self, modality: str, mult: float) -> None: ...
    def lr_mult(self, modality: str) -> float: ...
    def reset_optimizer_state(self, modality: str) -> None: ...
    def forward(
        self, x: dict[str, torch.Tensor], present: set[str] | None = None, zero: str = "input"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]: ...
    def unimodal_logits(self, h: Feats, heads: str | None = None) -> Feats: ...
    def loaders(self) -> dict[str, Any]: ...
    def iter_batches(self, split: str, fraction: float = 1.0, seed: int | None = None) -> Iterator[Batch]: ...
    def iter_features(
        self, split: str, fraction: float = 1.0
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]: ...
    def evaluate_split(self, split: str) -> dict[str, float]: ...
    def clone_model(self) -> MultimodalModel: ...

    init_snapshot: dict[str, torch.Tensor] | None

    def backward(self, loss: torch.Tensor) -> None: ...
    def optimizer_step(self) -> None: ...
    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor: ...
    def event(self, level: str, message: str) -> None: ...
    def step_metrics(
        self,
        ctx: StepContext,
        loss: torch.Tensor,
        logits: torch.Tensor,
        u: Feats,
        y: torch.Tensor,
        grad_norms: torch.Tensor | None = None,
    ) -> dict[str, float]: ...


@dataclass
class StepContext:
    """What a strategy sees in an event: counters, this step's scores and labels (step
    events), the metric logger and, through the trainer, the model, optimizer and data.

    On the CPU (`host` True) reading a small tensor costs nothing, so strategies may do their
    per-modality scalar math on plain floats (`ratio_host`, `log_host`): a few Python
    operations instead of dozens of tiny tensor ops. On a GPU everything stays on the device
    and the only host sync is the trainer's one per step."""

    epoch: int
    step: int
    modalities: list[str]
    scores: torch.Tensor | None = None  # s_m, [M], from undropped features (step events)
    y: torch.Tensor | None = None  # labels (step events)
    trainer: Runtime | None = None  # the trainer (None in unit tests that build a context by hand)
    batch_idx: int = 0  # index of the batch within the epoch
    training: bool = True
    keep: torch.Tensor | None = None  # [B] bool: samples still in the loss (see keep_samples)
    metric_names: list[str] = field(default_factory=list)
    metric_values: list[torch.Tensor] = field(default_factory=list)  # 1-D, synced once per step
    host_names: list[str] = field(default_factory=list)
    host_values: list[float] = field(default_factory=list)
    _ratios: dict[str, torch.Tensor] = field(default_factory=dict)
    _host_ratios: dict[str, list[float]] = field(default_factory=dict)
    _host_scores: list[float] | None = None

    # ------------------------------------------------------------- the probe's numbers
    @property
    def host(self) -> bool:
        return self.scores is not None and self.scores.device.type == "cpu"

    def ratio(self, kind: str = "pairwise_mean") -> torch.Tensor:
        """rho for the given option, computed once per step and shared by strategies."""
        if kind not in self._ratios:
            assert self.scores is not None, "ratio() is available in step events only"
            self._ratios[kind] = discrepancy_ratio(self.scores, kind)
        return self._ratios[kind]

    def ratio_host(self, kind: str = "pairwise_mean") -> list[float]:
        """rho as floats (CPU runs only: on a GPU this would be a host sync)."""
        if kind not in self._host_ratios:
            if self._host_scores is None:
                assert self.scores is not None, "ratio_host() is available in step events only"
                self._host_scores = self.scores.tolist()
            self._host_ratios[kind] = discrepancy_ratio_host(self._host_scores, kind)
        return self._host_ratios[kind]

    def keep_samples(self, mask: torch.Tensor) -> None:
        """Remove samples from this step's loss (the fused CE is averaged over the kept ones;
        a step that keeps none is skipped). Masks of several strategies are and-ed."""
        self.keep = mask if self.keep is None else self.keep & mask

    # ------------------------------------------------------------- metrics
    def log(self, names: list[str], values: torch.Tensor) -> None:
        """Record per-step metrics: one name per element of a 1-D tensor (kept on the device;
        the trainer gathers every metric of the step with a single host sync)."""
        self.metric_names.extend(names)
        self.metric_values.append(values.detach().reshape(-1))

    def log_host(self, names: list[str], values: list[float]) -> None:
        """Record per-step metrics that are already plain floats."""
        self.host_names.extend(names)
        self.host_values.extend(values)

    @property
    def metrics(self) -> dict[str, float]:
        """The recorded metrics by name (for inspection and tests)."""
        flat = torch.cat(self.metric_values).tolist() if self.metric_values else []
        out = dict(zip(self.metric_names, flat, strict=True))
        out.update(zip(self.host_names, self.host_values, strict=True))
        return out

    # ------------------------------------------------------------- the trainer's parts
    def _rt(self) -> Runtime:
        if self.trainer is None:
            raise RuntimeError("this context has no trainer (built by hand in a test)")
        return self.trainer

    @property
    def cfg(self) -> RunConfig:
        return self._rt().cfg

    @property
    def model(self) -> MultimodalModel:
        """Encoders by modality (`model.encoders[m]`), the fusion head (`model.fusion`; concat
        blocks at `model.fusion.offsets`) and the aux heads (`model.aux_heads`, when built)."""
        return self._rt().model

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._rt().optimizer

    @property
    def steps_per_epoch(self) -> int:
        return self._rt().steps_per_epoch

    @property
    def num_classes(self) -> int:
        """The dataset's number of classes C (e.g. for per-class prototypes)."""
        return self._rt().num_classes

    def encoder_params(self, modality: str) -> list[torch.nn.Parameter]:
        return self._rt().model.encoder_parameters(modality)

    def param_group(self, modality: str) -> dict[str, Any]:
        """The optimizer's parameter group of one modality's encoder ("head" for the rest)."""
        return self._rt().param_group(modality)

    def set_lr_mult(self, modality: str, mult: float) -> None:
        """Multiply this group's (scheduled) learning rate by `mult` from the next step on
        (checkpointed). 0 freezes the encoder."""
        self._rt().set_lr_mult(modality, mult)

    def lr_mult(self, modality: str) -> float:
        return self._rt().lr_mult(modality)

    def reset_optimizer_state(self, modality: str) -> None:
        """Forget the optimizer state (momentum, Adam moments) of one group."""
        self._rt().reset_optimizer_state(modality)

    def forward(
        self, x: dict[str, torch.Tensor], present: set[str] | None = None, zero: str = "input"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(features, fused logits) with only the modalities in `present`: the others get a
        zero input (`zero="input"`, through the encoder) or zero features (`"features"`)."""
        return self._rt().forward(x, present, zero)

    def unimodal_logits(
        self, h: dict[str, torch.Tensor], heads: str | None = None
    ) -> dict[str, torch.Tensor]:
        """u_m with gradient: the fusion head's per-modality blocks (`split`) or the aux heads
        (`aux`); default: the run's `model.heads`."""
        return self._rt().unimodal_logits(h, heads)

    @property
    def loaders(self) -> dict[str, Any]:
        """The datasets by split ("train", "val", "test")."""
        return self._rt().loaders()

    def iter_batches(self, split: str, fraction: float = 1.0, seed: int | None = None) -> Iterator[Batch]:
        """Batches (x, y) on the device of the first `fraction` of a split (train: in a fixed
        shuffled order from `seed`, never the held-out part); split "heldout" is the held-out
        part of the training split (needs_heldout), in a fixed order."""
        return self._rt().iter_batches(split, fraction, seed)

    def iter_features(
        self, split: str, fraction: float = 1.0
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """(features, labels) per batch over the first `fraction` of a split: eval mode, no
        grad (the model's train/eval mode is restored afterwards)."""
        return self._rt().iter_features(split, fraction)

    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Fused and per-modality accuracy and loss of a split (as the `val/...` metrics)."""
        return self._rt().evaluate_split(split)

    def clone_model(self) -> MultimodalModel:
        return self._rt().clone_model()

    @property
    def init_snapshot(self) -> dict[str, torch.Tensor]:
        """The model's initial state_dict (strategies declaring needs_init_snapshot)."""
        snap = self._rt().init_snapshot
        if snap is None:
            raise RuntimeError("declare needs_init_snapshot in the spec to get the initial weights")
        return snap

    def backward(self, loss: torch.Tensor) -> None:
        """loss.backward() through the AMP grad scaler when there is one (for `backward`)."""
        self._rt().backward(loss)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss scaled as the AMP grad scaler would (for torch.autograd.grad in `backward`)."""
        return self._rt().scale_loss(loss)

    def optimizer_step(self) -> None:
        """optimizer.step() as the trainer does it (grad scaler, per-group lr multipliers):
        for a `training_step` that makes its own updates."""
        self._rt().optimizer_step()

    def event(self, message: str, level: str = "info") -> None:
        """A run event (shown on Live's event list), e.g. a re-initialisation."""
        self._rt().event(level, message)

    def step_metrics(
        self,
        loss: torch.Tensor,
        logits: torch.Tensor,
        u: Feats,
        y: torch.Tensor,
        grad_norms: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """For a `training_step`: the step's CONTRACT.md metrics (train/loss from `loss`,
        train/acc from the fused `logits`, the probe's per-modality numbers from `u`, encoder
        gradient norms as they are now or `grad_norms` [M]) plus what was logged on this
        context, in one host sync. Return the dict from training_step."""
        return self._rt().step_metrics(self, loss, logits, u, y, grad_norms)


class Strategy:
    """Base strategy: every event is a no-op; `joint` is exactly this. Subclasses override
    the events they need; `self.state` (plain data and tensors) is saved in checkpoints."""

    name: ClassVar[str] = ""
    spec: StrategySpec | None = None  # set by build_strategies

    def __init__(self, params: StrategyParams, model: MultimodalModel, device: torch.device, seed: int):
        self.params = params
        self.model = model
        self.modalities = list(model.modalities)
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.state: dict[str, Any] = {}
        self.host_math = (
            True  # CPU runs may do per-modality scalar math on floats; False forces the device path
        )

    def active(self, epoch: int) -> bool:
        return self.params.active(epoch)

    # 1-2: run and epoch start
    def on_fit_start(self, ctx: StepContext) -> None:
        return None

    def on_epoch_start(self, ctx: StepContext) -> None:
        return None

    # 3-5: the forward pass
    def before_forward(self, ctx: StepContext, batch: Batch) -> Batch:
        return batch

    def on_features(self, ctx: StepContext, h: Feats) -> Feats:
        return h

    def on_logits(self, ctx: StepContext, h: Feats, z: torch.Tensor, training: bool) -> torch.Tensor:
        return z

    # 6-9: loss, backward, gradients
    def compute_loss(self, ctx: StepContext, h: Feats, z: torch.Tensor, u: Feats, y: torch.Tensor) -> Losses:
        """Loss terms to add ({name: scalar}); a term named like an existing one replaces it
        ("ce" is the trainer's fused cross-entropy), None removes it."""
        return {}

    def backward(self, ctx: StepContext, losses: dict[str, torch.Tensor]) -> bool:
        """Return True when this strategy ran the backward pass itself (overrides_backward)."""
        return False

    def on_gradients(self, ctx: StepContext) -> None:
        return None

    def before_optimizer_step(self, ctx: StepContext) -> None:
        return None

    # 10: the whole step (overrides_step)
    def training_step(self, ctx: StepContext, batch: Batch) -> dict[str, float] | None:
        raise NotImplementedError(f"{type(self).__name__} declares overrides_step but has no training_step")

    # 11-12: epoch end and stopping
    def on_epoch_end(self, ctx: StepContext, val_metrics: dict[str, float] | None) -> None:
        return None

    def should_stop(self, ctx: StepContext) -> bool:
        return False

    # checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "state": self.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        # checkpoints are read onto the CPU: tensors of the state go back to the run's device
        self.state = tensors_to(state.get("state", {}), self.device)


def tensors_to(obj: Any, device: torch.device) -> Any:
    """Every tensor inside nested dicts, lists and tuples moved to `device` (the rest as is)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: tensors_to(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(tensors_to(v, device) for v in obj)
    return obj


def overrides(strategy: Strategy, event: str) -> bool:
    """Whether the strategy's class implements an event (the trainer skips no-ops)."""
    return getattr(type(strategy), event) is not getattr(Strategy, event) or event in vars(strategy)


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Name an implementation class (kept for existing code; specs are what the run uses)."""

    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco

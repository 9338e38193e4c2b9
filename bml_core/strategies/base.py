"""The strategy hook interface (METHODS.md section 10). A strategy implements only the hooks
it needs; the trainer calls them in a fixed, visible order every step:

  encode -> probe (scores, rho) -> transform_features -> fuse -> compose_loss -> backward
  -> after_backward -> optimiser step

Hook kinds: uni-modal logit provider (the fusion head), feature transform, loss composer,
gradient editor, optimiser parameter groups, epoch-level jobs, loop control."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from bml_core.config import StrategyParams
from bml_core.imbalance import discrepancy_ratio, discrepancy_ratio_host
from bml_core.models import MultimodalModel


@dataclass
class StepContext:
    """What a strategy sees during one training step.

    On the CPU (`host` True) reading a small tensor costs nothing, so strategies may do their
    per-modality scalar math on plain floats (`ratio_host`, `log_host`): a few Python
    operations instead of dozens of tiny tensor ops. On a GPU everything stays on the device
    and the only host sync is the trainer's one per step."""

    epoch: int
    step: int
    modalities: list[str]
    scores: torch.Tensor  # s_m, [M], from undropped features
    y: torch.Tensor
    metric_names: list[str] = field(default_factory=list)
    metric_values: list[torch.Tensor] = field(default_factory=list)  # 1-D, synced once per step
    host_names: list[str] = field(default_factory=list)
    host_values: list[float] = field(default_factory=list)
    _ratios: dict[str, torch.Tensor] = field(default_factory=dict)
    _host_ratios: dict[str, list[float]] = field(default_factory=dict)
    _host_scores: list[float] | None = None

    @property
    def host(self) -> bool:
        return self.scores.device.type == "cpu"

    def ratio(self, kind: str = "pairwise_mean") -> torch.Tensor:
        """rho for the given option, computed once per step and shared by strategies."""
        if kind not in self._ratios:
            self._ratios[kind] = discrepancy_ratio(self.scores, kind)
        return self._ratios[kind]

    def ratio_host(self, kind: str = "pairwise_mean") -> list[float]:
        """rho as floats (CPU runs only: on a GPU this would be a host sync)."""
        if kind not in self._host_ratios:
            if self._host_scores is None:
                self._host_scores = self.scores.tolist()
            self._host_ratios[kind] = discrepancy_ratio_host(self._host_scores, kind)
        return self._host_ratios[kind]

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


class Strategy:
    """Base strategy: every hook is a no-op; `joint` is exactly this."""

    name: ClassVar[str] = ""

    def __init__(self, params: StrategyParams, model: MultimodalModel, device: torch.device, seed: int):
        self.params = params
        self.model = model
        self.modalities = list(model.modalities)
        self.device = device
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(seed)
        self.host_math = (
            True  # CPU runs may do per-modality scalar math on floats; False forces the device path
        )

    def active(self, epoch: int) -> bool:
        return self.params.active(epoch)

    # hook 2: feature transform between encoders and fusion (training only)
    def transform_features(
        self, feats: dict[str, torch.Tensor], ctx: StepContext
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        """Return (features, per-sample keep weights or None)."""
        return feats, None

    # hook 3: loss composer
    def compose_loss(
        self, loss: torch.Tensor, logits: torch.Tensor, feats: dict[str, torch.Tensor], ctx: StepContext
    ) -> torch.Tensor:
        return loss

    # hook 4: gradient editor, after backward (on unscaled gradients) and before the step
    def after_backward(self, ctx: StepContext) -> None:
        return None

    # hook 5: optimiser parameter groups (None = default single group)
    def param_groups(self, base_lr: float) -> list[dict[str, Any]] | None:
        return None

    # hook 6: epoch-level jobs with access to the loaders
    def on_epoch_start(self, epoch: int, loaders: dict[str, Any]) -> None:
        return None

    # hook 7: loop control
    def should_stop(self, epoch: int) -> bool:
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])


STRATEGIES: dict[str, type[Strategy]] = {}


def register_strategy(name: str) -> Callable[[type[Strategy]], type[Strategy]]:
    def deco(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return deco


@register_strategy("joint")
class JointTraining(Strategy):
    """Joint training: the fused cross-entropy alone, no modulation."""

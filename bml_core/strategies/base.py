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
from bml_core.imbalance import discrepancy_ratio
from bml_core.models import MultimodalModel


@dataclass
class StepContext:
    """What a strategy sees during one training step."""

    epoch: int
    step: int
    modalities: list[str]
    scores: torch.Tensor  # s_m, [M], from undropped features
    y: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)  # 0-dim tensors, synced once per step
    _ratios: dict[str, torch.Tensor] = field(default_factory=dict)

    def ratio(self, kind: str = "pairwise_mean") -> torch.Tensor:
        """rho for the given option, computed once per step and shared by strategies."""
        if kind not in self._ratios:
            self._ratios[kind] = discrepancy_ratio(self.scores, kind)
        return self._ratios[kind]


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

"""The run's optimizer and learning-rate schedule, built from its config: one parameter group
per modality's encoder (named by the modality) and one for the rest ("head"). Below the trainer
and the strategies, so a strategy that needs the run's optimizer (G-Blending's offline copies)
imports it without climbing to the trainer."""

from __future__ import annotations

from typing import Any

import torch

from bml_core.config import RunConfig
from bml_core.models import MultimodalModel

HEAD_GROUP = "head"


def parameter_groups(model: MultimodalModel) -> list[dict[str, Any]]:
    """One optimizer group per modality's encoder (named by the modality), then one for the
    rest (fusion head, aux heads) named "head"."""
    param_groups: list[dict[str, Any]] = []
    seen: set[int] = set()
    for m in model.modalities:
        params = model.encoder_parameters(m)
        seen.update(id(p) for p in params)
        param_groups.append({"params": params, "name": m})
    rest = [p for p in model.parameters() if id(p) not in seen]
    if rest:
        param_groups.append({"params": rest, "name": HEAD_GROUP})
    return param_groups


class GroupLrMultipliers:
    """The per-modality optimizer groups a strategy reaches through its context
    (`ctx.param_group`, `set_lr_mult`, `lr_mult`, `reset_optimizer_state`), shared by the
    native trainer and the Balancer's own-loop runtime: `_param_groups` maps a group's name
    (the modality) to the optimizer's group, `lr_mults` holds the multipliers that the owner
    applies for each optimizer step."""

    optimizer: Any
    _param_groups: dict[str, dict[str, Any]]
    lr_mults: dict[str, float]

    def param_group(self, modality: str) -> dict[str, Any]:
        if modality not in self._param_groups:
            raise KeyError(f"no parameter group {modality!r}; groups: {', '.join(self._param_groups)}")
        return self._param_groups[modality]

    def set_lr_mult(self, modality: str, mult: float) -> None:
        self.param_group(modality)
        self.lr_mults[modality] = float(mult)

    def lr_mult(self, modality: str) -> float:
        return self.lr_mults.get(modality, 1.0)

    def reset_optimizer_state(self, modality: str) -> None:
        for p in self.param_group(modality)["params"]:
            self.optimizer.state.pop(p, None)


def build_optimizer(cfg: RunConfig, model: MultimodalModel) -> torch.optim.Optimizer:
    params: Any = parameter_groups(model)
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def build_scheduler(
    cfg: RunConfig, optimizer: torch.optim.Optimizer
) -> torch.optim.lr_scheduler.LRScheduler | None:
    s = cfg.optim.scheduler
    if s.name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if s.name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    return None

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

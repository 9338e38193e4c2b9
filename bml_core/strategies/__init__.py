"""Balancing strategies behind one hook interface; `build_strategies` turns the config list
into instances. Adding a strategy: one module with a registered class (and its params)."""

from __future__ import annotations

import torch

from bml_core.config import StrategyParams
from bml_core.data.base import stable_seed
from bml_core.models import MultimodalModel
from bml_core.strategies import ogm, opm  # noqa: F401  (registration)
from bml_core.strategies.base import STRATEGIES, JointTraining, StepContext, Strategy, register_strategy

__all__ = ["STRATEGIES", "JointTraining", "StepContext", "Strategy", "build_strategies", "register_strategy"]


def build_strategies(
    params: list[StrategyParams], model: MultimodalModel, device: torch.device, seed: int
) -> list[Strategy]:
    out: list[Strategy] = []
    for i, p in enumerate(params):
        if p.name not in STRATEGIES:
            raise ValueError(f"strategy {p.name!r} has parameters but no implementation registered")
        out.append(STRATEGIES[p.name](p, model, device, stable_seed(seed, i, p.name)))
    return out

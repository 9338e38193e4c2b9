"""Builds a run's strategies from their specs (the implementation modules are imported here,
not before) and checks what the config cannot: capabilities that depend on the built model."""

from __future__ import annotations

import torch

from bml_core.config import ConfigError, RunConfig, StrategyParams
from bml_core.data.base import stable_seed
from bml_core.models import MultimodalModel
from bml_core.strategies.base import Strategy
from bml_core.strategies.spec import get_spec, plugin_errors


def wants_aux_heads(cfg: RunConfig) -> bool:
    """Aux heads are built only on request: `model.heads: aux` or a strategy needing them."""
    if cfg.model.heads == "aux":
        return True
    return any((spec := get_spec(p.name)) is not None and spec.has("needs_aux_heads") for p in cfg.strategies)


def build_strategies(
    params: list[StrategyParams], model: MultimodalModel, device: torch.device, seed: int
) -> list[Strategy]:
    """One implementation instance per configured strategy, in config order."""
    out: list[Strategy] = []
    for i, p in enumerate(params):
        spec = get_spec(p.name)
        if spec is None:
            broken = "; ".join(str(e) for e in plugin_errors())
            raise ValueError(
                f"strategy {p.name!r} has parameters but no spec registered"
                + (f" (plug-ins that failed to load: {broken})" if broken else "")
            )
        if spec.has("needs_shared_head") and len(set(model.feature_dims().values())) > 1:
            raise ConfigError(
                [
                    (
                        "model.feature_dim",
                        f"{p.name} (strategies.{i}) needs one head shared by every modality: all "
                        f"encoders must give features of the same width (now {model.feature_dims()})",
                    )
                ]
            )
        if spec.has("needs_aux_heads") and getattr(model, "aux_heads", None) is None:
            raise ConfigError(
                [("model.heads", f"{p.name} (strategies.{i}) needs aux heads: set model.heads: aux")]
            )
        cls = spec.load_impl()
        strategy = cls(p, model, device, stable_seed(seed, i, p.name))
        strategy.spec = spec
        out.append(strategy)
    return out

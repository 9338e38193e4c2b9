"""Builds a run's strategies from their specs (the implementation modules are imported here,
not before) and checks what the config cannot: capabilities that depend on the built model."""

from __future__ import annotations

import torch

from bml_core.config import ConfigError, RunConfig, StrategyParams
from bml_core.data.base import stable_seed
from bml_core.models import MultimodalModel
from bml_core.strategies.base import Strategy, overrides
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
    _check_step_owner(out)
    return out


# the events of the trainer's own step, which a strategy's training_step replaces
STEP_EVENTS = (
    "before_forward",
    "on_features",
    "compute_loss",
    "backward",
    "on_gradients",
    "before_optimizer_step",
)


def _check_step_owner(strategies: list[Strategy]) -> None:
    """A strategy that replaces the training step (overrides_step) cannot be combined with one
    that acts inside the default step: that one's step events would never run."""
    owners = [s for s in strategies if s.spec is not None and s.spec.has("overrides_step")]
    if not owners:
        return
    owner = owners[0]
    for i, s in enumerate(strategies):
        skipped = [e for e in STEP_EVENTS if s is not owner and overrides(s, e)]
        if skipped:
            raise ConfigError(
                [
                    (
                        f"strategies.{i}",
                        f"{s.params.name} acts inside the training step ({', '.join(skipped)}), which "
                        f"{owner.params.name} replaces with its own: they cannot be combined",
                    )
                ]
            )

"""Balancing strategies as plug-ins (STRATEGIES.md section 1; docs/PLUGINS.md).

Each strategy is a torch-free spec (`spec.py`: parameters, metric families, rules, cost,
capabilities, a lazy `impl` pointer) plus a torch implementation on `base.Strategy`.
Built-ins are the packages in this folder (discovered by scanning it); plug-ins come from
the entry-point group `bml.strategies` and the modules in BML_PLUGINS. This module stays
torch-free: the implementation names (`Strategy`, `StepContext`, `build_strategies`, ...)
load lazily on first use."""

from __future__ import annotations

import importlib
from typing import Any

from bml_core.strategies.spec import (
    CAPABILITIES,
    COST_CLASSES,
    MetricFamily,
    PluginError,
    StrategySpec,
    all_specs,
    discover,
    get_spec,
    listed_specs,
    plugin_errors,
)

__all__ = [
    "CAPABILITIES",
    "COST_CLASSES",
    "STRATEGIES",
    "JointTraining",
    "MetricFamily",
    "PluginError",
    "StepContext",
    "Strategy",
    "StrategySpec",
    "all_specs",
    "build_strategies",
    "discover",
    "get_spec",
    "listed_specs",
    "plugin_errors",
    "register_strategy",
]

_LAZY = {
    "Strategy": "bml_core.strategies.base",
    "StepContext": "bml_core.strategies.base",
    "register_strategy": "bml_core.strategies.base",
    "build_strategies": "bml_core.strategies.runtime",
    "JointTraining": "bml_core.strategies.joint.impl",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "STRATEGIES":  # implementation classes by name, every discovered spec loaded
        from bml_core.strategies.base import STRATEGIES

        for spec in all_specs():
            STRATEGIES.setdefault(spec.name, spec.load_impl())
        return STRATEGIES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

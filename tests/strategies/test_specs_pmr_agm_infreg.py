"""The specs of pmr, agm and infreg: discovered, defaults and bounds from STRATEGIES.md,
cost class and capabilities, and every metric family they declare is logged every step
under the spec's keys (what Live draws its panels from)."""

from __future__ import annotations

import pytest

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.strategies import get_spec
from bml_core.trainer import Trainer
from tests.strategies.strategy_helpers import small

DEFAULTS = {
    "pmr": {
        "alpha": 1.0,
        "momentum": 0.2,
        "proto_fraction": 0.1,
        "form": "switch",
        "ema_skip_first": True,
        "per_mu": 0.0,
    },
    "agm": {
        "alpha": 1.0,
        "start_epoch": 0,
        "end_epoch": 20,
        "empty_set": "zero",
        "masked_mode": "eval",
        "grad_clip": 1.0,
    },
    "infreg": {
        "preset": "official",
        "beta0_second": 0.1,
        "beta0": 0.95,
        "window": 10,
        "threshold": 0.05,
        "compare": None,
    },
}
COST = {"pmr": "cheap", "agm": "extra_forward", "infreg": "cheap"}
CAPABILITY = {
    "pmr": "needs_features",
    "agm": "needs_masked_forward",
    "infreg": "needs_unimodal_logits_with_grad",
}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_spec_defaults_cost_and_capabilities(name: str) -> None:
    spec = get_spec(name)
    assert spec is not None and spec.source == "built-in"
    assert spec.cost == COST[name] and spec.has(CAPABILITY[name])
    assert "github.com/" in spec.reference and spec.description
    params = {p["name"]: p for p in spec.parameters()}
    for field, default in DEFAULTS[name].items():
        assert params[field]["default"] == default, field
        assert params[field]["description"], field


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_metric_family_is_logged_every_step(name: str) -> None:
    spec = get_spec(name)
    assert spec is not None
    sink = MemorySink()
    Trainer(load_config(small(strategies=[name], train={"epochs": 1})), sinks=[sink]).fit()
    for _, _, metrics in sink.steps:
        for family in spec.metrics:
            assert set(family.series(["audio", "visual"])) <= set(metrics), family.key

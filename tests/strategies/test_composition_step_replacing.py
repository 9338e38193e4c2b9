"""Composition of issue 10's methods (STRATEGIES.md section 4): legal pairs with OPM train;
a step-replacing method (mla, reconboost) with a strategy acting inside the default step is
a config error naming it; two step-replacing methods are refused by the config."""

from __future__ import annotations

import pytest

from bml_core.config import ConfigError, load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import small


@pytest.mark.parametrize("name", ["mmpareto", "gblending", "relearn"])
def test_with_opm_trains(name: str) -> None:
    raw = small(
        strategies=[{"name": "opm", "p_exe": 1.0}, {"name": name}],
        train={"epochs": 1, "batch_size": 32, "threads": 1},
    )
    summary = Trainer(load_config(raw)).fit()
    assert summary["run"]["status"] == "succeeded"


@pytest.mark.parametrize("name", ["mla", "reconboost"])
def test_step_replacing_method_with_opm_is_refused(name: str) -> None:
    raw = small(strategies=["opm", name], train={"epochs": 1, "batch_size": 32, "threads": 1})
    raw["model"] = {**raw["model"], "head": "shared"}
    with pytest.raises(ConfigError) as err:
        Trainer(load_config(raw))
    msg = err.value.as_dict()["strategies.0"]
    assert "opm" in msg and name in msg and "cannot be combined" in msg


def test_two_step_replacing_methods_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"model": {"head": "shared"}, "strategies": ["mla", "reconboost"]})
    assert "strategies.1" in err.value.as_dict()

"""The run config: defaults, unknown keys, bounds, overrides, presets and advisories."""

from __future__ import annotations

import pytest

from bml_core.config import (
    PRESETS,
    ConfigError,
    RunConfig,
    advisories,
    load_config,
    validate_config,
)
from bml_core.strategies.ogm import OGMGEParams
from bml_core.strategies.opm import OPMParams


def errors_of(raw: dict) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        validate_config(raw)
    return exc.value.as_dict()


def test_defaults_cover_every_key() -> None:
    cfg = RunConfig()
    d = cfg.to_dict()
    assert set(d) == {
        "name",
        "group",
        "seed",
        "tags",
        "dataset",
        "model",
        "strategies",
        "optim",
        "train",
        "alerts",
    }
    assert d["dataset"]["name"] == "synthetic"
    assert d["optim"]["scheduler"] == {"name": "step", "step_size": 70, "gamma": 0.1}
    assert d["train"]["amp"] == "off"
    assert cfg.strategy_label == "joint"
    # every field documents itself in the JSON schema or has an obvious default
    assert RunConfig.model_validate(d) == cfg


def test_contract_example_parses() -> None:
    cfg = validate_config(
        {
            "name": "ogm-ge-demo",
            "group": "demo",
            "seed": 0,
            "dataset": {
                "name": "synthetic",
                "path": None,
                "val_fraction": 0.15,
                "test_fraction": 0.15,
                "params": {},
            },
            "model": {"fusion": "concat", "feature_dim": 128, "encoders": {}},
            "strategies": [
                {"name": "ogm_ge", "alpha": 0.8, "start_epoch": 0, "end_epoch": 50, "warmup_epochs": 0}
            ],
            "optim": {
                "name": "sgd",
                "lr": 0.001,
                "momentum": 0.9,
                "weight_decay": 0.0001,
                "scheduler": {"name": "step", "step_size": 70, "gamma": 0.1},
            },
            "train": {
                "epochs": 100,
                "batch_size": 64,
                "eval_every": 1,
                "device": "auto",
                "num_workers": 0,
                "amp": "off",
            },
        }
    )
    assert isinstance(cfg.strategies[0], OGMGEParams)
    assert cfg.strategies[0].alpha == 0.8


@pytest.mark.parametrize(
    ("raw", "field", "needle"),
    [
        ({"bogus": 1}, "bogus", "unknown key"),
        ({"train": {"epochz": 3}}, "train.epochz", "unknown key"),
        (
            {"strategies": [{"name": "ogm_ge", "alpha": -0.1}]},
            "strategies.0.alpha",
            "greater than or equal to 0",
        ),
        ({"strategies": [{"name": "opm", "q_base": 1.5}]}, "strategies.0.q_base", "less than or equal to 1"),
        (
            {"strategies": [{"name": "opm", "q_base": -0.5}]},
            "strategies.0.q_base",
            "greater than or equal to 0",
        ),
        ({"strategies": [{"name": "opm", "p_exe": 2}]}, "strategies.0.p_exe", "less than or equal to 1"),
        ({"strategies": [{"name": "opm", "p_exe": -1}]}, "strategies.0.p_exe", "greater than or equal to 0"),
        ({"strategies": [{"name": "ogm", "start_epoch": 5, "end_epoch": 2}]}, "strategies.0", "end_epoch"),
        ({"strategies": [{"name": "nope"}]}, "strategies.0", "unknown strategy 'nope'"),
        ({"strategies": [{"name": "ogm", "q_base": 0.5}]}, "strategies.0.q_base", "unknown key"),
        ({"train": {"device": "tpu"}}, "train.device", "cuda"),
        ({"dataset": {"val_fraction": 0.6, "test_fraction": 0.5}}, "dataset", "val_fraction + test_fraction"),
    ],
)
def test_bad_values_name_the_field(raw: dict, field: str, needle: str) -> None:
    errs = errors_of(raw)
    assert field in errs, errs
    assert needle in errs[field]


def test_all_errors_reported_at_once() -> None:
    errs = errors_of({"strategies": [{"name": "opm", "q_base": 3, "p_exe": -1}], "train": {"epochs": 0}})
    assert set(errs) == {"strategies.0.q_base", "strategies.0.p_exe", "train.epochs"}


def test_overrides_dotted_paths_and_lists() -> None:
    cfg = load_config(
        {"strategies": [{"name": "ogm_ge"}]},
        ["train.epochs=3", "strategies.0.alpha=0.5", "model.encoders.audio.name=cnn", "tags=[a, b]"],
    )
    assert cfg.train.epochs == 3
    assert cfg.strategies[0].alpha == 0.5  # type: ignore[attr-defined]
    assert cfg.model.encoders["audio"].name == "cnn"
    assert cfg.tags == ["a", "b"]
    with pytest.raises(ConfigError) as exc:
        load_config({}, ["strategies.3.alpha=1"])
    assert "strategies.3" in exc.value.as_dict()
    with pytest.raises(ConfigError):
        load_config({}, ["no-equals-sign"])


def test_strategy_shorthand_and_composition() -> None:
    cfg = load_config({"strategies": ["opm", "ogm_ge"]})
    assert [s.name for s in cfg.strategies] == ["opm", "ogm_ge"]
    assert cfg.strategy_label == "opm+ogm_ge"
    errs = errors_of({"strategies": ["ogm", "ogm_ge"]})
    assert "either ogm or ogm_ge" in errs["strategies"]


def test_presets_match_methods_section_7() -> None:
    cvpr = load_config(preset="cvpr2022-ogm-ge")
    assert cvpr.strategies[0].name == "ogm_ge" and cvpr.strategies[0].end_epoch == 50
    assert cvpr.optim.name == "sgd" and cvpr.optim.lr == 1e-3 and cvpr.optim.scheduler.step_size == 70
    assert cvpr.train.batch_size == 64 and cvpr.train.epochs == 100
    both = load_config({"train": {"epochs": 7}}, preset="tpami2024-opm-ogm")
    names = [s.name for s in both.strategies]
    assert names == ["opm", "ogm_ge"]
    opm = both.strategies[0]
    assert isinstance(opm, OPMParams)
    assert (opm.q_base, opm.lam, opm.p_exe, opm.warmup_epochs) == (0.5, 0.5, 0.7, 6)
    assert both.optim.name == "adamw" and both.optim.lr == 5e-5 and both.optim.scheduler.step_size == 40
    assert both.train.epochs == 7  # the user's key wins over the preset
    assert set(PRESETS) == {
        "cvpr2022-ogm-ge",
        "tpami2024-ogm",
        "tpami2024-opm",
        "tpami2024-opm-ogm",
        "bb-mmpareto",
    }
    with pytest.raises(ConfigError):
        load_config(preset="nope")


def test_advisories_are_warnings_not_errors() -> None:
    cfg = load_config({"strategies": ["ogm_ge"], "optim": {"name": "adamw"}})
    msgs = advisories(cfg)
    assert any("Adam" in m and "#26" in m for m in msgs)
    assert advisories(load_config({"strategies": ["ogm_ge"]})) == []
    late = load_config({"strategies": [{"name": "opm", "warmup_epochs": 10}], "train": {"epochs": 5}})
    assert any("never runs" in m for m in advisories(late))
    conv = load_config({"strategies": [{"name": "ogm", "params": "conv_only"}]})
    assert any("conv_only" in m for m in advisories(conv))


def test_schedule_activity() -> None:
    s = OGMGEParams(start_epoch=2, end_epoch=4, warmup_epochs=3)
    assert [s.active(e) for e in range(6)] == [False, False, False, True, True, False]
    assert OPMParams().active(1000)


def test_a_discovered_strategy_extends_the_config(tmp_path, monkeypatch) -> None:
    # a strategy enters the config through its spec alone (BML_PLUGINS here), no registration
    (tmp_path / "toy_for_test_mod.py").write_text(
        "from typing import Literal\n"
        "from bml_core.schema import StrategyParams\n"
        "from bml_core.strategies.spec import StrategySpec\n"
        "class ToyParams(StrategyParams):\n"
        "    name: Literal['toy_for_test'] = 'toy_for_test'\n"
        "    strength: float = 1.0\n"
        "SPEC = StrategySpec(name='toy_for_test', description='toy', params=ToyParams, impl=':Toy')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BML_PLUGINS", "toy_for_test_mod")
    try:
        cfg = load_config({"strategies": [{"name": "toy_for_test", "strength": 2}]})
        assert type(cfg.strategies[0]).__name__ == "ToyParams"
        assert cfg.to_dict()["strategies"][0] == {
            "name": "toy_for_test",
            "start_epoch": 0,
            "end_epoch": None,
            "warmup_epochs": 0,
            "strength": 2.0,
        }
        assert errors_of({"strategies": [{"name": "toy_for_test", "strength": "x"}]}) == {
            "strategies.0.strength": "Input should be a valid number, unable to parse string as a number"
        }
    finally:
        monkeypatch.delenv("BML_PLUGINS")
    assert "toy_for_test" in errors_of({"strategies": ["toy_for_test"]})["strategies.0"]


def test_yaml_off_is_amp_off(tmp_path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  amp: off\n")
    assert load_config(p).train.amp == "off"
    p.write_text("- not a mapping\n")
    with pytest.raises(ConfigError):
        load_config(p)

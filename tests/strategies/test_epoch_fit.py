"""The specs' `epoch_fit` (the parameter values that let a strategy do its periodic work within
a run's epochs, used by bench/strategy_grid.py) and the advisories it answers: gblending's
super-epoch, relearn's diagnosis period, reconboost's stage length; values checked by hand,
and relearn's count of re-initialisations checked against a real run."""

from __future__ import annotations

import pytest

from bml_core.config import advisories, load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.relearn import diagnoses
from bml_core.strategies.spec import epoch_fits
from bml_core.trainer import Trainer
from tests.helpers.configs import small


def _fit(strategy: object, epochs: int, **model: object) -> tuple[dict, list[str]]:
    cfg = load_config({"strategies": [strategy], "train": {"epochs": epochs}, "model": model})
    [fit] = epoch_fits(cfg)
    return fit, advisories(cfg)


@pytest.mark.parametrize(
    ("epochs", "expected"),
    # 20 // 10 = 2 estimates < 3 -> 20 // 3 = 6 (after epochs 5, 11, 17); 30 // 10 = 3 is enough
    [(20, {"super_epoch": 6}), (10, {"super_epoch": 3}), (30, {}), (100, {})],
)
def test_gblending_super_epoch(epochs: int, expected: dict) -> None:
    fit, notes = _fit("gblending", epochs)
    assert fit == expected
    assert any("estimate(s)" in a for a in notes) == bool(expected)
    if expected:  # the fitted value silences the advisory it answers
        _, after = _fit({"name": "gblending", **expected}, epochs)
        assert not any("estimate(s)" in a for a in after)


def test_gblending_offline_is_left_alone() -> None:
    assert _fit({"name": "gblending", "mode": "offline"}, 20)[0] == {}


def test_relearn_diagnoses_count() -> None:
    # form ours: after epoch e when (e + 1) % every == 0, never after the last, at most `times`
    assert diagnoses(20, 20, 3, "ours") == 0  # e + 1 = 20 is the last epoch
    assert diagnoses(30, 20, 3, "ours") == 1  # after epoch 19
    assert diagnoses(20, 7, 3, "ours") == 2  # after epochs 6 and 13
    assert diagnoses(20, 5, 3, "ours") == 3  # after epochs 4, 9, 14 (19 is the last)
    assert diagnoses(100, 20, 3, "ours") == 3
    assert diagnoses(1, 1, 3, "ours") == 0
    # form official (default): after e when e % every == 0 and e > 0
    assert diagnoses(20, 20, 3) == 0  # e = 20 is past the run
    assert diagnoses(30, 20, 3) == 1  # after epoch 20
    assert diagnoses(20, 7, 3) == 2  # after epochs 7 and 14
    assert diagnoses(20, 5, 3) == 3  # after epochs 5, 10, 15
    assert diagnoses(16, 5, 3) == 2  # after 5 and 10; 15 is the last
    assert diagnoses(4, 1, 3) == 2  # after 1 and 2; 3 is the last
    assert diagnoses(1, 1, 3) == 0 and diagnoses(2, 1, 3) == 0


@pytest.mark.parametrize(
    ("epochs", "expected"),
    # every = epochs // (times + 1): 20 -> 5, 30 -> 7 (after epochs 6, 13, 20), 5 -> 1
    [(20, {"every": 5}), (30, {"every": 7}), (5, {"every": 1}), (100, {}), (1, {})],
)
def test_relearn_every(epochs: int, expected: dict) -> None:
    fit, notes = _fit("relearn", epochs)
    assert fit == expected
    assert any("relearn diagnoses" in a for a in notes) == (epochs < 100)
    if expected:
        _, after = _fit({"name": "relearn", **expected}, epochs)
        assert not any("relearn diagnoses" in a for a in after)
    if epochs == 1:
        assert any("no period gives more" in a for a in notes)


def test_relearn_fitted_period_gives_the_counted_reinitialisations_in_a_run() -> None:
    raw = small(strategies=["relearn"], train={"epochs": 4, "batch_size": 32, "threads": 1})
    [fit] = epoch_fits(load_config(raw))
    assert fit == {"every": 1}  # 4 // (3 + 1)
    raw["strategies"] = [{"name": "relearn", **fit}]
    sink = MemorySink()
    Trainer(load_config(raw), sinks=[sink]).fit()
    events = [e[1] for e in sink.events if "relearn re-initialisation" in e[1]]
    # the authors' timing (form: official): after epochs 1 and 2 (e > 0; 3 is the last)
    assert len(events) == diagnoses(4, 1, 3) == 2, events


@pytest.mark.parametrize(
    ("epochs", "expected"),
    # M = 2 (synthetic: audio, visual); a round needs 2 x (4 + 4) = 16 epochs;
    # per = epochs // (2 M): 10 -> 2, 5 -> 1; 1 epoch completes no stage whatever the length
    [
        (10, {"stage_epochs": 2, "correct_epochs": 2}),
        (5, {"stage_epochs": 1, "correct_epochs": 1}),
        (16, {}),
        (1, {}),
    ],
)
def test_reconboost_stages(epochs: int, expected: dict) -> None:
    fit, notes = _fit("reconboost", epochs, head="shared")
    assert fit == expected
    assert any("reconboost trains one modality per stage" in a for a in notes) == (epochs < 16)


def test_strategies_without_a_fit_propose_nothing() -> None:
    cfg = load_config({"strategies": ["opm", "ogm_ge"], "train": {"epochs": 1}})
    assert epoch_fits(cfg) == [{}, {}]

"""`bml tune` refuses bad input with exit 2 before anything is enqueued (no run, no study)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

import db
from db.studies import optuna_storage

CFG = {"dataset": {"name": "synthetic"}, "strategies": [{"name": "ogm_ge"}], "train": {"epochs": 3}}
OK = ["--space", "strategies.0.alpha=float(0.1,1.0,log)"]


@pytest.fixture
def store(tmp_path: Path) -> Path:
    db.upgrade(db.make_engine())
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(CFG))
    return path


def _tune(bml_exe: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bml_exe, "tune", *args], capture_output=True, text=True, timeout=120)


def _nothing_stored() -> None:
    engine = db.make_engine()
    assert db.list_runs(engine, limit=1).total == 0
    assert optuna.get_all_study_summaries(optuna_storage(engine)) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--space", "strategies.0.alpha=float(0.1"], "--space: 'strategies.0.alpha=float(0.1': not a"),
        (["--space", "strategies.0.alpha"], "not a search space"),
        (["--space", "strategies.0.alpha=float(1,0.1)"], "must be below the upper bound"),
        (["--space", "strategies.0.alpha=range(0.1,1)"], "not a search space"),
        (["--space", "optim.nope=float(0.1,1)"], "--space optim.nope: no such parameter"),
        (
            ["--space", "strategies.0.alpha=float(-1,1)"],
            "--space strategies.0.alpha: the bound -1.0 is outside",
        ),
        (["--space", "strategies.0.k_form=cat(official,tanh)"], "the choice 'tanh' is outside"),
        ([*OK, "--metric", "val/accuracy"], "--metric: 'val/accuracy' is never logged"),
        # the config's modalities are audio and visual: no run logs val/acc/depth
        ([*OK, "--metric", "val/acc/depth"], "val/acc/audio, val/acc/visual"),
        # a per-step key is not an evaluation series
        ([*OK, "--metric", "train/loss"], "--metric: 'train/loss' is never logged"),
        ([*OK, "--trials", "0"], "--trials 0: give at least 1 trial"),
        ([*OK, "--parallel", "0"], "--parallel 0: give at least 1"),
        ([*OK, "--pruner", "never"], "--pruner 'never': one of asha, median, hyperband, none"),
        ([*OK, "--sampler", "bayes"], "--sampler 'bayes': one of tpe, random, grid, cmaes"),
    ],
)
def test_bad_input_exits_2_and_enqueues_nothing(
    store: Path, bml_exe: str, args: list[str], says: str
) -> None:
    r = _tune(bml_exe, str(store), *args, "--name", "s1")
    assert r.returncode == 2, r.stderr
    assert says in r.stderr
    _nothing_stored()


def test_a_name_reused_with_another_space_is_refused(store: Path, bml_exe: str) -> None:
    study = optuna.create_study(study_name="s2", storage=optuna_storage(db.make_engine()))
    study.set_user_attr(
        "space", [{"path": "optim.lr", "kind": "float", "low": 0.001, "high": 0.1, "log": True}]
    )
    r = _tune(bml_exe, str(store), *OK, "--name", "s2")
    assert r.returncode == 2, r.stderr
    assert "--name s2: the study exists with another search space" in r.stderr
    engine = db.make_engine()
    assert db.list_runs(engine, limit=1).total == 0
    (summary,) = optuna.get_all_study_summaries(optuna_storage(engine))
    assert summary.n_trials == 0
    # the stored study keeps its own space (nothing overwritten)
    kept = optuna.load_study(study_name="s2", storage=optuna_storage(engine))
    assert kept.user_attrs["space"][0]["path"] == "optim.lr" and "config" not in kept.user_attrs


def test_a_metric_of_the_configs_modality_is_accepted(store: Path, bml_exe: str) -> None:
    # passes every check (the metric included): only --trials is wrong, so it is the one named
    r = _tune(bml_exe, str(store), *OK, "--metric", "val/acc/visual", "--trials", "-1", "--name", "s3")
    assert r.returncode == 2 and "never logged" not in r.stderr and "--trials -1" in r.stderr


def test_grid_sampler_exhausted_is_not_an_error() -> None:
    """The grid sampler stops the study once every point is taken (Study.stop, refused outside
    optimize()); the driver's tell stores the trial and goes on (before: the CLI died with
    'Study.stop is supposed to be invoked inside an objective function')."""
    import optuna

    from services.tuning import tell as _tell

    study = optuna.create_study(
        sampler=optuna.samplers.GridSampler({"x": [1, 2]}, seed=0), direction="maximize"
    )
    dists = {"x": optuna.distributions.CategoricalDistribution([1, 2])}
    trials = [study.ask(dists), study.ask(dists)]
    for t in trials:
        _tell(study, t, float(t.params["x"]))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert study.best_value == 2.0

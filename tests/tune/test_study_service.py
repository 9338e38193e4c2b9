"""services.studies (Tune on /launch): a request is checked as `bml tune` checks it, every
error keyed by its option, and a refused request writes no file, starts no process and
stores nothing."""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
from sqlalchemy import Engine

import db
from bml_core.config import ConfigError
from db.engine import bml_home
from db.studies import optuna_storage
from services.studies import StudyRequest, check_request, start_study, tune_command

CFG = {"dataset": {"name": "synthetic"}, "strategies": [{"name": "ogm_ge"}], "train": {"epochs": 3}}
OK = ["strategies.0.alpha=float(0.1,1.0,log)"]


@pytest.fixture
def engine() -> Iterator[Engine]:
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()


def _errors(req: StudyRequest, engine: Engine) -> dict[str, str]:
    with pytest.raises(ConfigError) as exc:
        start_study(req, engine)
    return dict(exc.value.errors)


def test_every_bad_field_is_named_and_nothing_is_written(engine: Engine) -> None:
    req = StudyRequest(
        config=CFG, space=["optim.nope=float(0.1,1)", "strategies.0.alpha=float(-1,1)"], trials=0,
        parallel=0, metric="val/acc/depth", sampler="bayes", pruner="never", name="-bad",
    )  # fmt: skip
    errors = _errors(req, engine)
    assert set(errors) == {
        "--trials", "--parallel", "--sampler", "--pruner", "--name", "--space optim.nope",
        "--space strategies.0.alpha", "--metric",
    }  # fmt: skip
    assert "val/acc/audio, val/acc/visual" in errors["--metric"]
    assert not (bml_home() / "studies").exists()
    assert db.list_runs(engine, limit=1).total == 0
    assert optuna.get_all_study_summaries(optuna_storage(engine)) == []


def test_a_name_used_with_another_space_is_refused(engine: Engine) -> None:
    study = optuna.create_study(study_name="taken", storage=optuna_storage(engine))
    study.set_user_attr(
        "space", [{"path": "optim.lr", "kind": "float", "low": 0.001, "high": 0.1, "log": True}]
    )
    errors = _errors(StudyRequest(config=CFG, space=OK, name="taken"), engine)
    assert "another search space" in errors["--name"]
    assert not (bml_home() / "studies").exists()


def test_a_good_request_gets_a_name_and_the_bml_tune_command(engine: Engine) -> None:
    req = StudyRequest(config=CFG, space=OK, trials=5, parallel=2, pruner="median", seeds=[0, 1])
    name = check_request(req, engine)
    assert name.startswith("study-")
    cmd = tune_command(req, bml_home() / "studies" / f"{name}.yaml", name)
    assert cmd[1:4] == ["-m", "bml_cli.main", "tune"]
    assert cmd[cmd.index("--space") + 1] == OK[0] and cmd[cmd.index("--trials") + 1] == "5"
    assert cmd[cmd.index("--pruner") + 1] == "median" and cmd[cmd.index("--seeds") + 1] == "0,1"

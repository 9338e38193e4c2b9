"""A real study through real workers (issue 23): 2 workers (embedded broker, SQLite), OGM-GE
alpha and lr on the synthetic set with ASHA; pruned runs stop before their last epoch and the
trial count in Optuna equals the runs in the study's group."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from db import list_runs, make_engine, series_since
from db.studies import optuna_storage
from tests.helpers.cluster import BML, SMALL_RUN, Cluster


@pytest.mark.slow
def test_study_with_asha_prunes_on_two_workers(embedded_cluster: Cluster, tmp_path: Path) -> None:
    raw = copy.deepcopy(SMALL_RUN)
    raw["train"] = {**raw["train"], "epochs": 12}
    raw["dataset"]["params"]["num_samples"] = 600
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    embedded_cluster.start_worker("w1")
    embedded_cluster.start_worker("w2")
    r = subprocess.run(
        [BML, "tune", str(path), "--space", "strategies.0.alpha=float(0.05,2.0,log)",
         "--space", "optim.lr=float(1e-4,0.1,log)", "--trials", "12", "--parallel", "2",
         "--pruner", "asha", "--name", "ogm-asha", "--poll", "0.2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    engine = make_engine()
    study = optuna.load_study(study_name="ogm-asha", storage=optuna_storage(engine))
    runs = list_runs(engine, group="ogm-asha", limit=100).runs
    assert len(study.trials) == len(runs) == 12
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) >= 4
    by_id = {run.id: run for run in runs}
    for t in pruned:
        (run_id,) = t.user_attrs["run_ids"]
        assert by_id[run_id].status == "pruned"
        evals = series_since(engine, run_id, None, keys=["val/acc"])["val/acc"].values
        assert len(evals) < 12  # stopped before its last epoch

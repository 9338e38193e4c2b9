"""Recovery of a study (issue 23): a worker SIGKILLed during a trial has its run requeued by
the other worker's reaper and the study still spends its budget, one run per trial; a driver
(`bml tune`) killed mid-study is continued by `bml tune --resume S`, which picks the running
trial's run back up instead of submitting it again."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import optuna
import pytest
import yaml

from db import get_run, list_runs, make_engine
from db.studies import optuna_storage
from tests.helpers.cluster import BML, SMALL_RUN, Cluster, wait_until

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, epochs: int) -> Path:
    raw = copy.deepcopy(SMALL_RUN)
    raw["train"] = {**raw["train"], "epochs": epochs}
    raw["dataset"]["params"]["num_samples"] = 1200
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _tune(path: Path, name: str, trials: int, parallel: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [BML, "tune", str(path), "--space", "strategies.0.alpha=float(0.1,1.0)", "--trials", str(trials),
           "--parallel", str(parallel), "--pruner", "none", "--name", name, "--poll", "0.2"]  # fmt: skip
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def test_a_worker_sigkilled_during_a_trial_the_study_completes_its_budget(
    embedded_cluster: Cluster, tmp_path: Path
) -> None:
    engine = make_engine()
    path = _config(tmp_path, epochs=10)
    w1 = embedded_cluster.start_worker("w1")
    embedded_cluster.start_worker("w2")
    log = tmp_path / "tune.log"
    driver = _tune(path, "killed", trials=4, parallel=2, log=log)

    def on_w1() -> int | None:
        runs = [get_run(engine, r.id) for r in list_runs(engine, group="killed", limit=10).runs]
        if any(r.status == "queued" for r in runs):
            # a busy worker reserves the next queued message (early ack, prefetch 1) and a
            # SIGKILL loses it: that run would stay queued (reported, worker layer); kill only
            # while every submitted trial is training
            return None
        for run in runs:
            if run.status == "running" and (run.worker or "").startswith("w1@") and run.step >= 40:
                return run.id
        return None

    victim = wait_until(on_w1, 120, "a trial's run training on w1")
    w1.kill_all()
    try:
        code = driver.wait(timeout=240)
    except subprocess.TimeoutExpired:
        driver.kill()
        driver.wait(timeout=30)
        code = None
    states = [(r.id, r.status, get_run(engine, r.id).attempt) for r in list_runs(engine, group="killed").runs]
    workers = "".join(w.text()[-1500:] for w in embedded_cluster.workers)
    assert code == 0, f"{log.read_text()[-3000:]}\nruns {states}\n{workers}"
    study = optuna.load_study(study_name="killed", storage=optuna_storage(engine))
    runs = list_runs(engine, group="killed", limit=100).runs
    assert len(study.trials) == len(runs) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    killed = get_run(engine, victim)
    assert killed.attempt == 2 and killed.status == "succeeded" and (killed.worker or "").startswith("w2@")
    (trial,) = [t for t in study.trials if t.user_attrs["run_ids"] == [victim]]
    assert trial.value is not None and len(trial.intermediate_values) == 10


def test_resume_continues_a_study_after_its_driver_died(embedded_cluster: Cluster, tmp_path: Path) -> None:
    engine = make_engine()
    path = _config(tmp_path, epochs=6)
    embedded_cluster.start_worker("w1")
    log = tmp_path / "tune.log"
    driver = _tune(path, "orphan", trials=3, parallel=1, log=log)

    def first_running() -> int | None:
        runs = list_runs(engine, group="orphan", limit=10).runs
        return runs[0].id if runs and get_run(engine, runs[0].id).step >= 5 else None

    first = wait_until(first_running, 120, "the first trial's run training")
    driver.kill()  # the submitting process dies; its trial stays RUNNING in Optuna
    driver.wait(timeout=30)
    study = optuna.load_study(study_name="orphan", storage=optuna_storage(engine))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING]
    r = subprocess.run(
        [BML, "tune", "--resume", "orphan", "--poll", "0.2"], capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0, r.stderr[-3000:]
    study = optuna.load_study(study_name="orphan", storage=optuna_storage(engine))
    runs = list_runs(engine, group="orphan", limit=100).runs
    # the stored budget (3), not the default: the first trial's run reused, not submitted again
    assert len(study.trials) == len(runs) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert study.trials[0].user_attrs["run_ids"] == [first]
    assert sorted(study.trials[0].intermediate_values) == list(range(1, 7))

"""A real study through real workers (issue 23): 2 workers (embedded broker) on SQLite and on
the machine's PostgreSQL, OGM-GE alpha and lr on the synthetic set with ASHA; at least a third
of the trials pruned, pruned runs stop before their last epoch, the trial count in Optuna
equals the runs in the study's group, and `bml rerun` of the best trial's run (CPU, same seed)
reproduces its value."""

from __future__ import annotations

import copy
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import yaml

from db import get_run, list_runs, make_engine, series_since
from db.studies import optuna_storage
from tests.helpers.cluster import BML, SMALL_RUN, Cluster
from tests.helpers.postgres import PostgresDatabases, pg_url

TRIALS, EPOCHS = 12, 12


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def study_cluster(
    request: pytest.FixtureRequest, embedded_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    """The embedded broker with the store on SQLite (BML_HOME) or on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield embedded_cluster
        return
    dbs = PostgresDatabases()
    url = pg_url(dbs.create("tune"))
    embedded_cluster.env["BML_DATABASE_URL"] = url
    embedded_cluster.apply(monkeypatch)
    r = subprocess.run([BML, "db", "upgrade"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    try:
        yield embedded_cluster
    finally:
        embedded_cluster.stop_all()
        dbs.drop_all()


def _best(values: list[float]) -> float:
    return max(values)  # the driver's objective: the best val/acc of the run (maximize, one seed)


@pytest.mark.slow
def test_study_with_asha_prunes_on_two_workers(study_cluster: Cluster, tmp_path: Path) -> None:
    raw = copy.deepcopy(SMALL_RUN)
    raw["train"] = {**raw["train"], "epochs": EPOCHS}
    # epochs long enough (~0.3 s) for a prune decision (series flush 0.5 s + poll + watchdog 0.5 s)
    # to land before the run's last epoch
    raw["dataset"]["params"]["num_samples"] = 2400
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    study_cluster.start_worker("w1")
    study_cluster.start_worker("w2")
    r = subprocess.run(
        [BML, "tune", str(path), "--space", "strategies.0.alpha=float(0.05,2.0,log)",
         "--space", "optim.lr=float(1e-4,0.1,log)", "--trials", str(TRIALS), "--parallel", "2",
         "--pruner", "asha", "--name", "ogm-asha", "--poll", "0.2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    engine = make_engine()
    study = optuna.load_study(study_name="ogm-asha", storage=optuna_storage(engine))
    runs = list_runs(engine, group="ogm-asha", limit=100).runs
    assert len(study.trials) == len(runs) == TRIALS
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(pruned) >= TRIALS // 3, r.stdout[-3000:]
    by_id = {run.id: run for run in runs}
    for t in pruned:
        (run_id,) = t.user_attrs["run_ids"]
        assert by_id[run_id].status == "pruned"
        evals = series_since(engine, run_id, None, keys=["val/acc"])["val/acc"].values
        assert len(evals) < EPOCHS  # stopped before its last epoch

    # the best trial's run, rerun with the same config and seed on the CPU, reaches its value
    best = study.best_trial
    (best_run,) = best.user_attrs["run_ids"]
    assert best.value == pytest.approx(
        _best(list(series_since(engine, best_run, None, keys=["val/acc"])["val/acc"].values))
    )
    rr = subprocess.run([BML, "rerun", str(best_run)], capture_output=True, text=True, timeout=120)
    assert rr.returncode == 0, rr.stderr
    new_id = int(rr.stdout.strip().splitlines()[-1])
    deadline = time.monotonic() + 120
    while get_run(engine, new_id).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, f"rerun {new_id} is {get_run(engine, new_id).status}"
        time.sleep(0.3)
    again = get_run(engine, new_id)
    assert again.status == "succeeded" and again.rerun_of == best_run
    assert again.config["seed"] == get_run(engine, best_run).config["seed"]
    values = list(series_since(engine, new_id, None, keys=["val/acc"])["val/acc"].values)
    assert len(values) == EPOCHS and _best(values) == best.value  # bitwise: CPU, one thread, same seed

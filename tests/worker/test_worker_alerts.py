"""Alerts through a real `bml worker`: the run process evaluates the detectors and stores
the alerts as events; SIGKILL of the run process after an alert was stored (before any
checkpoint, so the resumed attempt replays the steps and fires the alert again) -> after
the resume each alert is stored exactly once, the same alerts as an uninterrupted run."""

from __future__ import annotations

import copy
import os
import signal
from pathlib import Path

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from db import get_run, make_engine, run_events
from services import actions as client
from tests.helpers.cluster import SMALL_RUN, Cluster, run_process_pids, wait_until

pytestmark = pytest.mark.slow

# 8,400 train samples / 8 = 1,050 steps per epoch (several seconds even on a quiet machine):
# an alert at step ~5 is stored long before the first checkpoint (end of epoch 0). Dominance with a threshold just above 1 and a
# 5-step window fires early; release 0.01 never ends the episode (at most one per modality).
RAW = {
    **copy.deepcopy(SMALL_RUN),
    "name": "alerts",
    "strategies": [],
    "dataset": {"params": {"num_samples": 12000}},
    "train": {"epochs": 2, "batch_size": 8, "threads": 1},
    "alerts": {"dominance": {"threshold": 1.0001, "release": 0.01, "window": {"steps": 5, "share": 0.6}}},
}


def test_sigkill_after_an_alert_then_resume_stores_it_exactly_once(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    embedded_cluster.start_worker("w1")
    [run_id] = client.submit(RAW, engine=eng)
    first = wait_until(lambda: run_events(eng, run_id, kind="alert"), 90, "a stored alert")
    [pid] = run_process_pids(run_id)
    os.kill(pid, signal.SIGKILL)
    runs = Path(embedded_cluster.env["BML_RUNS_DIR"])
    assert runs.is_dir() and any(runs.glob(f"run-{run_id}*")), "the run directory moved: fix this check"
    checkpoints = list(runs.glob(f"run-{run_id}*/last.pt"))  # run-N or run-N-<created>
    assert not checkpoints, "killed after the first checkpoint: the replay path is not exercised"
    wait_until(lambda: get_run(eng, run_id).status == "succeeded", 180, "success after the crash")
    assert get_run(eng, run_id).attempt == 2
    alerts = run_events(eng, run_id, kind="alert")
    keys = [
        (e.data or {}).get("detector", "") + f":{e.step}:{(e.data or {}).get('modality')}" for e in alerts
    ]
    assert len(keys) == len(set(keys))
    assert alerts[0].id == first[0].id  # the alert stored before the kill is the one kept
    torch.set_num_threads(1)
    reference = Trainer(load_config(RAW)).fit()["alerts"]
    assert [(e.step, (e.data or {})["modality"]) for e in alerts] == [
        (a["step"], a["modality"]) for a in reference
    ]
    summary = get_run(eng, run_id).summary
    assert summary is not None and len(summary["alerts"]) == len(reference)

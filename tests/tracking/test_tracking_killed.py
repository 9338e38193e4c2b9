"""SIGKILL of the user's training process: its heartbeat stops and the run is failed, by the
own-loop reaper (every bml_core.init, the Runs page) and by a worker's reaper alike, within
the configured timeout (30 s by default, well inside 60 s; shortened here)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, update

import db
from db.models import Run
from db.own_runs import reap_own_runs
from worker.settings import SupervisorSettings
from worker.tasks import Reaper

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = textwrap.dedent(
    """
    import sys, time, torch
    import bml_core
    from tests.tracking.loops import TinyAV, batches
    model = TinyAV()
    run = bml_core.init(name="to-be-killed", modalities=["audio", "visual"], num_classes=3)
    print(run.id, flush=True)
    data = batches(20)
    i = 0
    while True:
        xa, xv, y = data[i % 20]
        logits, feats = model(xa, xv)
        run.log_step(logits=logits, features=feats, head=model.head, y=y)
        i += 1
        time.sleep(0.01)
    """
)


def _start(store_url: str) -> tuple[subprocess.Popen[str], int]:
    env = {
        **os.environ,
        "BML_DATABASE_URL": store_url,
        "BML_HEARTBEAT_INTERVAL_S": "0.3",
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _kill_when_running(engine: Engine, proc: subprocess.Popen[str], run_id: int) -> float:
    deadline = time.monotonic() + 60
    while db.get_run(engine, run_id).step < 5:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    return time.monotonic()


@pytest.mark.slow
def test_sigkill_fails_the_run_within_the_timeout(engine: Engine, store_url: str) -> None:
    proc, run_id = _start(store_url)
    try:
        killed_at = _kill_when_running(engine, proc, run_id)
        assert db.get_run(engine, run_id).status == "running"
        while db.get_run(engine, run_id).status == "running":
            assert time.monotonic() - killed_at < 60, "still running a minute after SIGKILL"
            reap_own_runs(engine, stale_after_s=2.0)  # what the Runs page does on each refresh
            time.sleep(0.25)
        took = time.monotonic() - killed_at
        info = db.get_run(engine, run_id)
        assert info.status == "failed" and "stopped sending heartbeats" in (info.error or "")
        assert took < 10, took
        assert info.step >= 5  # what it logged before it died is kept
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_worker_reaper_fails_a_dead_own_loop_run_and_never_requeues_it(engine: Engine) -> None:
    from db.own_runs import create_own_run

    run_id = create_own_run(engine, name="dead", group="own", config={"source": "own_loop"})
    live_id = create_own_run(engine, name="alive", group="own", config={"source": "own_loop"})
    with engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == run_id).values(heartbeat_at=db.models.utcnow().replace(year=2000))
        )
    settings = SupervisorSettings(
        heartbeat_interval_s=1, stale_after_s=30, cancel_grace_s=1, reaper_interval_s=1
    )
    assert Reaper(engine, settings, "w").sweep(time.monotonic()) == []  # nothing sent to a worker
    assert db.get_run(engine, run_id).status == "failed"
    assert db.get_run(engine, live_id).status == "running"
    assert reap_own_runs(engine, stale_after_s=30) == []

"""No training outlives its worker (issue 15): `kill -9` of the Celery main process of a real
`bml worker` stops the run process within the heartbeat timeout, and with the worker gone
`bml cancel` still stops the run (the run process reads the cancel flag in the store)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from db import get_run, make_engine, run_events
from services import actions as client
from tests.helpers.cluster import BML, SMALL_RUN, Cluster, WorkerProc, run_process_pids, wait_until
from tests.helpers.cluster import process_alive as _alive

pytestmark = pytest.mark.slow

LONG_RUN = {**SMALL_RUN, "train": {**SMALL_RUN["train"], "epochs": 500}}


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _ppid(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _training(cluster: Cluster) -> tuple[int, int, int, int, WorkerProc]:
    """A worker training a long run: (run id, Celery main pid, pool child pid, run process pid)."""
    eng = make_engine()
    worker = cluster.start_worker("w1")
    [run_id] = client.submit(LONG_RUN, engine=eng)
    wait_until(lambda: get_run(eng, run_id).step >= 20, 90, "the run to train")
    [run_pid] = run_process_pids(run_id)
    pool_child = _ppid(run_pid)
    main = _ppid(pool_child)
    # `bml worker` (the CLI) -> Celery main -> prefork pool child (the supervisor) -> run process
    assert _children(worker.proc.pid) == [main], "the Celery main is the CLI's only child"
    assert main != pool_child != run_pid
    return run_id, main, pool_child, run_pid, worker


def test_kill_9_of_the_celery_main_stops_the_run_within_the_heartbeat_timeout(
    embedded_cluster: Cluster,
) -> None:
    eng = make_engine()
    run_id, main, pool_child, run_pid, _ = _training(embedded_cluster)
    stale_after = float(embedded_cluster.env["BML_STALE_AFTER_S"])
    t0 = time.monotonic()
    os.kill(main, signal.SIGKILL)  # the main process only, not its process group
    try:
        wait_until(lambda: not _alive(run_pid), stale_after, "the run process to exit", interval_s=0.05)
        elapsed = time.monotonic() - t0
        assert elapsed < stale_after
        wait_until(lambda: not _alive(pool_child), 10, "the pool child to exit")
        # it stopped after a checkpoint and says so: requeued, for the next worker to resume
        run = get_run(eng, run_id)
        assert run.status == "requeued", run.status
        assert any("the worker is gone" in e.message for e in run_events(eng, run_id))
        time.sleep(1.0)
        assert get_run(eng, run_id).step == run.step  # nothing trains it any more
        assert not run_process_pids(run_id)
    finally:
        for pid in (pool_child, run_pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_bml_cancel_stops_a_run_whose_worker_is_gone(embedded_cluster: Cluster) -> None:
    """A worker that is gone without dying: its Celery main and pool child (the supervisor)
    frozen with SIGSTOP, as a hung worker. (Killed, it takes the run process with it: the
    test above.) No supervisor can relay the cancel; the run process reads it in the store."""
    eng = make_engine()
    run_id, main, pool_child, run_pid, _ = _training(embedded_cluster)
    frozen = (main, pool_child)
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(1.5)  # 3 heartbeat intervals: the run goes on without its worker
        assert _alive(run_pid) and get_run(eng, run_id).status == "running"
        t0 = time.monotonic()
        r = subprocess.run(
            [BML, "cancel", str(run_id)],
            env={**os.environ, **embedded_cluster.env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr
        assert f"run {run_id}: cancelling" in r.stdout  # the state after the action (issue 14)
        wait_until(lambda: not _alive(run_pid), 15, "the run process to stop", interval_s=0.05)
        assert time.monotonic() - t0 < 15
        run = get_run(eng, run_id)
        assert run.status == "cancelled" and run.step >= 20
        logs = (embedded_cluster.home / "runs").rglob("attempt-1.log")
        assert any("cancel requested in the store" in p.read_text() for p in logs)
    finally:
        for pid in (*frozen, run_pid):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

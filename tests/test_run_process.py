"""The run process never outlives its supervisor and honours a cancel recorded in the store
(issue 15 item 4): real `python -m worker.run_process` processes on a SQLite store."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from sqlalchemy import Engine

import db
from tests.helpers.cluster import process_alive as _alive
from tests.helpers.fixtures import process_store  # noqa: F401 (the `store` fixture)
from worker.run_process import start_watchdog

LONG = {
    "name": "long",
    "dataset": {"params": {"num_samples": 400}},
    "model": {"feature_dim": 8},
    "optim": {"scheduler": {"name": "none"}},
    "train": {"epochs": 5000, "batch_size": 16, "threads": 1, "device": "cpu"},
}


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _claimed_run(engine: Engine) -> int:
    run_id = db.create_run(engine, LONG)
    assert db.claim_run(engine, run_id, "test")
    return run_id


def test_a_cancel_in_the_store_stops_a_run_without_supervisor(store: Engine) -> None:
    run_id = _claimed_run(store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "worker.run_process", str(run_id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "BML_SUPERVISOR_PID": str(os.getpid())},
    )
    try:
        _wait(lambda: db.get_run(store, run_id).step > 0, 120, "the run to train")
        assert db.request_cancel(store, run_id) == "running"  # nobody but the process itself
        code = proc.wait(timeout=30)
        out = proc.stdout.read().decode() if proc.stdout else ""
        assert code == 0, out
        assert "cancel requested in the store" in out
        assert db.get_run(store, run_id).status == "cancelled"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_the_run_process_dies_with_its_supervisor(store: Engine, tmp_path: Path) -> None:
    run_id = _claimed_run(store)
    parent_code = (
        "import os, subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-m', 'worker.run_process', sys.argv[1]],"
        " env={**os.environ, 'BML_SUPERVISOR_PID': str(os.getpid())},"
        f" stdout=open({str(tmp_path / 'run.log')!r}, 'wb'), stderr=subprocess.STDOUT)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code, str(run_id)], stdout=subprocess.PIPE, text=True
    )
    child = int(parent.stdout.readline()) if parent.stdout else 0
    try:
        _wait(lambda: db.get_run(store, run_id).step > 0, 120, "the run to train")
        os.kill(parent.pid, signal.SIGKILL)  # as `kill -9` of the worker
        parent.wait(timeout=10)
        t0 = time.monotonic()
        _wait(lambda: not _alive(child), 30, "the orphaned run process to exit")
        assert time.monotonic() - t0 < 30
        step = db.get_run(store, run_id).step
        time.sleep(1.0)
        assert db.get_run(store, run_id).step == step  # no more training
        assert "resumed" not in (tmp_path / "run.log").read_text()
    finally:
        for pid in (parent.pid, child):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_watchdog_stops_on_a_new_parent_or_the_store_flag_and_survives_store_errors() -> None:
    stop = threading.Event()
    start_watchdog(stop, os.getppid() + 10**6, lambda: False, 0.05)  # "the parent changed"
    assert stop.wait(5)

    stop = threading.Event()
    calls: list[int] = []

    def flag() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("store away")
        return len(calls) >= 5

    start_watchdog(stop, os.getppid(), flag, 0.05)
    assert stop.wait(5) and len(calls) == 5

    stop = threading.Event()
    thread = start_watchdog(stop, os.getppid(), lambda: False, 0.05)
    assert not stop.wait(0.4)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()


def test_the_supervisor_stops_its_run_when_the_worker_is_gone(store: Engine, tmp_path: Path) -> None:
    """A supervisor whose parent (the Celery main) dies without taking it along (a pool
    without PDEATHSIG) stops its run as on a shutdown: checkpoint, `requeued`, both exit."""
    run_id = _claimed_run(store)
    supervise = "import sys; from db import make_engine; from worker.supervisor import RunSupervisor; " + (
        "print(RunSupervisor(make_engine(), int(sys.argv[1])).run(), flush=True)"
    )
    main_code = (
        "import subprocess, sys, time\n"
        f"p = subprocess.Popen([sys.executable, '-c', {supervise!r}, sys.argv[1]],"
        f" stdout=open({str(tmp_path / 'sup.log')!r}, 'wb'), stderr=subprocess.STDOUT)\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    main = subprocess.Popen([sys.executable, "-c", main_code, str(run_id)], stdout=subprocess.PIPE, text=True)
    supervisor = int(main.stdout.readline()) if main.stdout else 0
    try:
        _wait(lambda: db.get_run(store, run_id).step > 0, 120, "the run to train")
        os.kill(main.pid, signal.SIGKILL)  # the supervisor survives it: nothing ties it to its parent
        main.wait(timeout=10)
        _wait(lambda: not _alive(supervisor), 30, "the supervisor to stop its run and exit")
        assert (tmp_path / "sup.log").read_text().strip().endswith("requeued")
        run = db.get_run(store, run_id)
        assert run.status == "requeued"
        assert any("worker shutdown" in e.message for e in db.run_events(store, run_id))
    finally:
        for pid in (main.pid, supervisor):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

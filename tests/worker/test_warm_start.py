"""Warm start of run processes (worker.spare): the supervisor's next run goes to a process
started (and importing) while the previous run trained. Real processes on a SQLite store:
the warm run trains to the same bits as a cold one, shows its run id on its command line,
writes its own attempt log; a spare with another environment, or one that died, is not
used; a dropped spare exits without touching the store."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

import db
from tests.helpers.cluster import process_alive, run_process_pids
from tests.helpers.fixtures import process_store  # noqa: F401 (the `store` fixture)
from worker import spare
from worker.settings import SupervisorSettings, run_dir
from worker.supervisor import RunSupervisor

TINY = {
    "name": "warm",
    "seed": 3,
    "dataset": {"params": {"num_samples": 120}},
    "model": {"feature_dim": 8},
    "strategies": [{"name": "ogm_ge", "alpha": 0.5}],
    "optim": {"scheduler": {"name": "none"}},
    "train": {"epochs": 2, "batch_size": 16, "threads": 1, "device": "cpu"},
}


@pytest.fixture(autouse=True)
def _warm_start_on(store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("BML_HOME", str(tmp_path))  # run_process_pids looks for it
    monkeypatch.delenv("BML_WARM_START", raising=False)
    yield
    spare.discard()


def _claimed(engine: Engine, config: dict[str, object] = TINY) -> int:
    run_id = db.create_run(engine, config)
    assert db.claim_run(engine, run_id, "test")
    return run_id


def _settings() -> SupervisorSettings:
    settings = SupervisorSettings.from_env()
    assert settings.warm_start, "warm start is on by default (setproctitle is a dependency)"
    return settings


def _val_acc(engine: Engine, run_id: int) -> list[float]:
    return list(db.series_since(engine, run_id, None, keys=["val/acc"])["val/acc"].values)


def test_the_next_run_starts_warm_and_trains_to_the_same_bits(
    store: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bml.worker")
    settings = _settings()
    cold = _claimed(store)
    assert RunSupervisor(store, cold, settings).run() == "succeeded"
    assert f"run {cold}: attempt 1 started as pid" in caplog.text and "(warm)" not in caplog.text
    waiting = spare._spare
    assert waiting is not None and waiting.alive()  # started while `cold` trained

    warm = _claimed(store)
    found: list[list[int]] = []

    def watch() -> None:  # found by its command line and environment, as a cold run process is
        for _ in range(200):
            pids = run_process_pids(warm)
            if pids:
                found.append(pids)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert RunSupervisor(store, warm, settings).run() == "succeeded"
    watcher.join()
    assert f"run {warm}: attempt 1 started as pid {waiting.process.pid} (warm)" in caplog.text
    assert found == [[waiting.process.pid]]
    assert _val_acc(store, warm) == _val_acc(store, cold)  # bitwise: same config, same seed
    warm_run, cold_run = db.get_run(store, warm), db.get_run(store, cold)
    assert warm_run.summary and cold_run.summary and warm_run.summary["test"] == cold_run.summary["test"]
    assert warm_run.environment and warm_run.environment["torch_threads"] == 1


def test_a_warm_run_writes_its_own_attempt_log(
    store: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The spare's output goes to the run's attempt log once it has a run: a failing run's
    traceback is there and on the run row, as for a cold start."""
    caplog.set_level(logging.INFO, logger="bml.worker")
    bad = tmp_path / "data" / "f.npz"
    bad.parent.mkdir()
    bad.write_bytes(b"not an npz file")
    monkeypatch.setenv("BML_DATA_ROOTS", str(bad.parent))  # before the first run: one environment
    settings = _settings()
    assert RunSupervisor(store, _claimed(store), settings).run() == "succeeded"
    run_id = _claimed(store, {**TINY, "dataset": {"name": "features", "path": str(bad)}})
    assert RunSupervisor(store, run_id, settings).run() == "failed"
    assert "(warm)" in caplog.text.split(f"run {run_id}: attempt 1")[1].splitlines()[0]
    run = db.get_run(store, run_id)
    log = (run_dir(run_id, run.created_at) / "attempt-1.log").read_text()
    assert "Traceback" in log and str(bad) in log
    assert run.traceback_tail and "Traceback" in run.traceback_tail
    assert run.error and run.error in log


def test_a_spare_with_another_environment_is_dropped_and_the_run_starts_cold(
    store: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bml.worker")
    settings = _settings()
    assert RunSupervisor(store, _claimed(store), settings).run() == "succeeded"
    old = spare._spare
    assert old is not None
    monkeypatch.setenv("BML_SOMETHING_NEW", "1")  # the next run's environment differs
    run_id = _claimed(store)
    assert RunSupervisor(store, run_id, settings).run() == "succeeded"
    assert f"run {run_id}: attempt 1 started as pid" in caplog.text
    assert "(warm)" not in caplog.text.split(f"run {run_id}: attempt 1")[1].splitlines()[0]
    assert old.process.poll() is not None  # ended, not left behind
    assert spare._spare is not None and spare._spare.env["BML_SOMETHING_NEW"] == "1"


def test_a_dead_spare_is_not_used(store: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bml.worker")
    settings = _settings()
    assert RunSupervisor(store, _claimed(store), settings).run() == "succeeded"
    dead = spare._spare
    assert dead is not None
    dead.process.kill()
    dead.process.wait()
    run_id = _claimed(store)
    assert RunSupervisor(store, run_id, settings).run() == "succeeded"
    line = caplog.text.split(f"run {run_id}: attempt 1 started as pid ")[1].splitlines()[0]
    assert int(line.split()[0]) != dead.process.pid and "(warm)" not in line


def test_warm_start_off_starts_every_run_cold(
    store: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BML_WARM_START", "0")
    caplog.set_level(logging.INFO, logger="bml.worker")
    settings = SupervisorSettings.from_env()
    assert not settings.warm_start
    for _ in range(2):
        assert RunSupervisor(store, _claimed(store), settings).run() == "succeeded"
    assert spare._spare is None and "(warm)" not in caplog.text


def test_a_dropped_spare_exits_without_a_run(store: Engine) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BML_SUPERVISOR_PID": str(os.getpid())}
    s = spare.Spare(env)
    assert s.alive()
    s.process.stdin.close()  # type: ignore[union-attr]
    assert s.process.wait(timeout=60) == 0  # after its imports, with nothing to run
    assert db.list_runs(store).runs == []


def test_the_spare_dies_with_its_parent(store: Engine, tmp_path: Path) -> None:
    """A spare whose supervisor is SIGKILLed does not linger (PDEATHSIG), even mid-import."""
    code = (
        "import os, sys; from worker import spare; "
        "s = spare.Spare({**os.environ, 'BML_SUPERVISOR_PID': str(os.getpid())}); "
        "print(s.process.pid, flush=True); import time; time.sleep(60)"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    time.sleep(1.0)  # its imports under way
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not process_alive(child)


def _policies(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out.append(os.sched_getscheduler(int(tid)))
        except OSError:  # a thread that has just ended
            continue
    return out


def test_a_run_handed_over_mid_import_lifts_the_idle_policy_at_once(store: Engine) -> None:
    """The spare imports at SCHED_IDLE; a run handed to it before the imports are done gets
    them at the normal policy at once, not starved behind busy cores until they finish."""
    if not spare._may_leave_idle():
        pytest.skip("this process may not return from SCHED_IDLE (not root, RLIMIT_NICE)")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BML_SUPERVISOR_PID": str(os.getpid())}
    s = spare.Spare(env)
    deadline = time.monotonic() + 10
    while os.SCHED_IDLE not in _policies(s.process.pid):  # its imports under way, idle
        assert time.monotonic() < deadline and s.alive(), "the spare never imported at SCHED_IDLE"
        time.sleep(0.01)
    run_id = _claimed(store)
    log = Path(str(store.url.database)).parent / "handed.log"
    proc = s.take(run_id, log)
    assert proc is not None
    deadline = time.monotonic() + 1.0  # the imports take seconds more; the policy changes now
    while os.SCHED_IDLE in _policies(proc.pid):
        assert time.monotonic() < deadline, f"still SCHED_IDLE after the hand-over: {_policies(proc.pid)}"
        time.sleep(0.01)
    assert proc.wait(timeout=120) == 0
    assert db.get_run(store, run_id).status == "succeeded"

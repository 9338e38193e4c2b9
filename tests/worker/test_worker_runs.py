"""Runs through real `bml worker` processes, on the embedded broker and on Redis:
lifecycle, cancel, crashes and recovery, broker outage, exactly-once, bad data, bad messages."""

from __future__ import annotations

import copy
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from db import get_run, list_runs, make_engine, run_events, series_since, series_tail
from services import actions as client
from tests.helpers.cluster import SMALL_RUN, Cluster, OwnedRedis, run_process_pids, wait_until

pytestmark = pytest.mark.slow


def status_of(run_id: int) -> str:
    return get_run(make_engine(), run_id).status


def config(**over: object) -> dict:
    raw = copy.deepcopy(SMALL_RUN)
    raw.update(over)
    return raw


def ratio_points(run_id: int) -> int:
    from db import series_keys

    eng = make_engine()
    if "imbalance/ratio/audio" not in series_keys(eng, run_id):
        return 0
    return len(series_tail(eng, run_id, 5, keys=["imbalance/ratio/audio"])["imbalance/ratio/audio"].steps)


def assert_one_point_per_step(run_id: int) -> None:
    run = get_run(make_engine(), run_id)
    loss = series_since(make_engine(), run_id, keys=["train/loss"])["train/loss"]
    assert run.total_steps and loss.steps == list(range(1, run.total_steps + 1))


def reference_summary(raw: dict) -> dict:
    """The same run trained uninterrupted in this process."""
    torch.set_num_threads(1)
    return Trainer(load_config(raw)).fit()


def comparable(summary: dict) -> dict:
    return {k: summary[k] for k in ("best_epoch", "val", "test")}


def test_run_goes_queued_running_succeeded_streaming_points(cluster: Cluster) -> None:
    eng = make_engine()
    [run_id] = client.submit(config(train={**SMALL_RUN["train"], "epochs": 60}), engine=eng)
    assert status_of(run_id) == "queued"
    cluster.start_worker("w1")
    wait_until(lambda: status_of(run_id) != "queued", 30, "the run to start")
    # its series are in the store while it runs
    seen_running = wait_until(
        lambda: get_run(eng, run_id).status == "running" and ratio_points(run_id) > 0,
        60,
        "points while running",
        interval_s=0.05,
    )
    assert seen_running
    wait_until(lambda: status_of(run_id) == "succeeded", 120, "success")
    run = get_run(eng, run_id)
    assert run.attempt == 1 and run.progress == 1.0
    assert run.summary is not None and 0 <= run.summary["test"]["acc"] <= 1
    assert_one_point_per_step(run_id)
    listed = client.queue_status(engine=eng)
    assert listed.queued == 0 and listed.running == 0


def test_cancel_while_running(cluster: Cluster) -> None:
    eng = make_engine()
    cluster.start_worker("w1")
    [run_id] = client.submit(config(train={**SMALL_RUN["train"], "epochs": 200}), engine=eng)
    wait_until(lambda: get_run(eng, run_id).step >= 20, 60, "some steps")
    pids = run_process_pids(run_id)
    assert len(pids) == 1
    t0 = time.monotonic()
    assert client.cancel(run_id, engine=eng) == "running"
    wait_until(lambda: status_of(run_id) == "cancelled", 10, "cancelled within 10 s", interval_s=0.05)
    assert time.monotonic() - t0 < 10
    wait_until(lambda: not run_process_pids(run_id), 5, "the run process to be gone")
    run = get_run(eng, run_id)
    loss = series_since(eng, run_id, keys=["train/loss"])["train/loss"]
    assert loss.steps == list(range(1, len(loss.steps) + 1))  # every point up to the cancel kept
    assert len(loss.steps) >= 20 and loss.steps[-1] >= run.step
    # the worker is free again
    [next_id] = client.submit(config(), engine=eng)
    wait_until(lambda: status_of(next_id) == "succeeded", 90, "the next run")
    assert pids[0] not in run_process_pids(run_id)


def test_child_sigkill_is_requeued_and_resumes_to_the_same_result(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    raw = config(train={**SMALL_RUN["train"], "epochs": 40})
    embedded_cluster.start_worker("w1")
    [run_id] = client.submit(raw, engine=eng)
    steps_per_epoch = 14
    wait_until(lambda: get_run(eng, run_id).step >= 3 * steps_per_epoch + 5, 90, "three epochs")
    [pid] = run_process_pids(run_id)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: get_run(eng, run_id).attempt == 2, 30, "a second attempt")
    wait_until(lambda: status_of(run_id) == "succeeded", 120, "success after the crash")
    run = get_run(eng, run_id)
    assert any("killed by SIGKILL" in e.message for e in run_events(eng, run_id))
    assert any("resumed" in e.message for e in run_events(eng, run_id))
    assert_one_point_per_step(run_id)
    assert run.summary is not None
    assert comparable(run.summary) == comparable(reference_summary(raw))


def test_whole_worker_killed_then_back_resumes(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    raw = config(train={**SMALL_RUN["train"], "epochs": 40})
    first = embedded_cluster.start_worker("w1")
    [run_id] = client.submit(raw, engine=eng)
    wait_until(lambda: get_run(eng, run_id).step >= 3 * 14 + 5, 90, "three epochs")
    first.kill_all()
    assert not run_process_pids(run_id)
    assert status_of(run_id) == "running"  # nobody has noticed yet
    embedded_cluster.start_worker("w2")  # its reaper finds the stale heartbeat
    wait_until(lambda: get_run(eng, run_id).attempt == 2, 60, "requeue by the reaper")
    wait_until(lambda: status_of(run_id) == "succeeded", 120, "success on the new worker")
    run = get_run(eng, run_id)
    assert run.worker is not None and run.worker.startswith("w2@")
    assert any("no heartbeat" in e.message for e in run_events(eng, run_id))
    assert_one_point_per_step(run_id)
    assert run.summary is not None
    assert comparable(run.summary) == comparable(reference_summary(raw))


def test_broker_outage_while_training(owned_redis_cluster: tuple[Cluster, OwnedRedis]) -> None:
    cluster, redis = owned_redis_cluster
    eng = make_engine()
    cluster.start_worker("w1")
    [run_id] = client.submit(config(train={**SMALL_RUN["train"], "epochs": 300}), engine=eng)
    wait_until(lambda: get_run(eng, run_id).step >= 10, 60, "training to start")
    outage_start = time.time()
    redis.stop()
    at_stop = get_run(eng, run_id)
    assert at_stop.status == "running" and at_stop.step < 0.5 * (at_stop.total_steps or 1)
    time.sleep(5)
    redis.start()
    wait_until(lambda: status_of(run_id) == "succeeded", 120, "success after the outage")
    run = get_run(eng, run_id)
    assert run.attempt == 1 and run.finished_at is not None and run.finished_at.timestamp() > outage_start
    assert_one_point_per_step(run_id)
    # the worker is still serving after the broker came back
    [next_id] = client.submit(config(), engine=eng)
    wait_until(lambda: status_of(next_id) == "succeeded", 120, "a run after the outage")


def test_two_workers_six_runs_each_exactly_once(cluster: Cluster) -> None:
    eng = make_engine()
    ids = client.submit(config(train={**SMALL_RUN["train"], "epochs": 2}), seeds=list(range(6)), engine=eng)
    cluster.start_worker("wa")
    cluster.start_worker("wb")
    wait_until(lambda: all(status_of(i) == "succeeded" for i in ids), 240, "all six runs")
    runs = [get_run(eng, i) for i in ids]
    assert all(r.attempt == 1 for r in runs)
    logs = "".join(w.text() for w in cluster.workers)
    for i in ids:
        assert logs.count(f"run {i}: attempt 1 started") == 1
    assert {(r.worker or "").split("@")[0] for r in runs} <= {"wa", "wb"}


def test_missing_or_corrupt_dataset_fails_clearly_and_worker_goes_on(
    embedded_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = make_engine()
    data = embedded_cluster.home / "data"
    data.mkdir(parents=True)
    corrupt = data / "corrupt.npz"
    corrupt.write_bytes(b"this is not a zip file")
    monkeypatch.setenv("BML_DATA_ROOTS", str(data))
    embedded_cluster.env["BML_DATA_ROOTS"] = str(data)
    embedded_cluster.start_worker("w1")
    missing_id, corrupt_id = (
        client.submit(config(dataset={"name": "features", "path": str(p)}), engine=eng)[0]
        for p in (data / "missing.npz", corrupt)
    )
    [good_id] = client.submit(config(), engine=eng)
    wait_until(lambda: status_of(good_id) == "succeeded", 120, "the good run after the bad ones")
    missing, bad = get_run(eng, missing_id), get_run(eng, corrupt_id)
    assert (
        missing.status == "failed"
        and "missing.npz" in (missing.error or "")
        and "does not exist" in missing.error
    )
    assert bad.status == "failed" and "corrupt.npz" in (bad.error or "")
    assert bad.traceback_tail


def test_bad_messages_are_rejected_and_the_worker_keeps_serving(cluster: Cluster) -> None:
    from worker.celery_app import make_app
    from worker.settings import TASK_NAME

    eng = make_engine()
    worker = cluster.start_worker("w1")
    sender = make_app()
    sender.send_task("bml.no_such_task", args=[1])
    sender.send_task(TASK_NAME, args=[1], serializer="pickle")
    sender.send_task(TASK_NAME, args=["not-an-id"])
    sender.send_task(TASK_NAME, args=[1, 2, 3])
    sender.send_task(TASK_NAME, args=[987654])
    [run_id] = client.submit(config(train={**SMALL_RUN["train"], "epochs": 2}), engine=eng)
    wait_until(lambda: status_of(run_id) == "succeeded", 120, "a good run after the bad messages")
    log = worker.text()
    assert "unregistered task" in log and "bml.no_such_task" in log
    assert "pickle" in log  # refused to deserialize untrusted content
    assert "rejected bml.execute_run with run_id 'not-an-id'" in log
    assert "TypeError" in log  # wrong arity, logged as the task's failure
    assert "no such run" in log
    assert worker.proc.poll() is None
    assert get_run(eng, run_id).attempt == 1
    assert list_runs(eng, limit=None).total == 1  # nothing was created by the bad messages


def test_gpus_option_starts_one_worker_process_per_gpu(embedded_cluster: Cluster) -> None:
    """`bml worker --gpus 0,1`: one Celery worker per GPU index, each with its own
    CUDA_VISIBLE_DEVICES (here on a machine without GPUs the runs fall back to the CPU)."""
    import subprocess

    from tests.helpers.cluster import BML
    from worker.presence import live_workers

    env = {**os.environ, **embedded_cluster.env}
    log = embedded_cluster.home / "gpus.log"
    proc = subprocess.Popen(
        [BML, "worker", "--gpus", "0,1", "--name", "node"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            names = wait_until(
                lambda: sorted(live_workers(10)) if len(live_workers(10)) == 2 else None, 60, "2 workers"
            )
        except TimeoutError:
            raise AssertionError(f"live: {live_workers(10)}; log:\n{log.read_text()[-4000:]}") from None
        assert [n.split("@")[0] for n in names] == ["node-gpu0", "node-gpu1"]  # type: ignore[union-attr]
        # the worker's processes: its session (Celery retitles them with setproctitle)
        out = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
        envs = []
        for pid in out.stdout.split():
            try:
                environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"BML_HOME={embedded_cluster.home}".encode() in environ:
                envs += [e.decode() for e in environ if e.startswith(b"CUDA_VISIBLE_DEVICES=")]
        assert {"CUDA_VISIBLE_DEVICES=0", "CUDA_VISIBLE_DEVICES=1"} <= set(envs)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

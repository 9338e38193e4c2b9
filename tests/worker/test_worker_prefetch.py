"""No prefetch: a worker busy with a run holds no second message. Two runs queued at once with
two idle workers run side by side (before the fix the first worker to start took both
messages, and the second run waited behind the first while the other worker sat idle), and
a worker SIGKILLed while it runs a run leaves the next queued run to another worker."""

from __future__ import annotations

import copy

import pytest

from db import get_run, make_engine
from services import actions as client
from tests.helpers.cluster import SMALL_RUN, Cluster, wait_until

pytestmark = pytest.mark.slow


def long_run(name: str) -> dict:
    raw = copy.deepcopy(SMALL_RUN)
    raw["name"] = name
    raw["train"] = {**SMALL_RUN["train"], "epochs": 40}
    return raw


def status(run_id: int) -> str:
    return get_run(make_engine(), run_id).status


def test_two_queued_runs_run_side_by_side_on_two_workers(cluster: Cluster) -> None:
    eng = make_engine()
    cluster.start_worker("w1")
    [a] = client.submit(long_run("a"), engine=eng)
    [b] = client.submit(long_run("b"), engine=eng)
    wait_until(lambda: status(a) == "running", 60, "run a to start on w1")
    # w1 is busy with a and must not have taken b: a second worker picks b up while a runs
    cluster.start_worker("w2")
    wait_until(lambda: status(b) != "queued", 60, "run b to start on the idle worker w2")
    assert status(a) == "running", "b only started once a had finished: w1 held b's message"
    wait_until(lambda: status(a) == "succeeded" and status(b) == "succeeded", 240, "both runs to finish")


def test_a_killed_busy_worker_loses_no_queued_run(cluster: Cluster) -> None:
    eng = make_engine()
    w1 = cluster.start_worker("w1")
    [a] = client.submit(long_run("a"), engine=eng)
    wait_until(lambda: status(a) == "running", 60, "run a to start on w1")
    [b] = client.submit(long_run("b"), engine=eng)
    cluster.start_worker("w2")
    # b goes to w2 (w1 is busy); then w1 dies with a: a is requeued by the reaper and runs
    wait_until(lambda: status(b) != "queued", 60, "run b to start on w2")
    w1.kill_all()
    wait_until(lambda: status(b) == "succeeded", 240, "run b to finish")
    cluster.start_worker("w3")
    wait_until(lambda: status(a) == "succeeded", 300, "run a to be recovered and finish")
    assert get_run(eng, a).attempt >= 2

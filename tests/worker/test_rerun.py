"""Exact reruns through a real `bml worker` on the CPU: a finished run recorded its
environment and the sha256 of its data file; `bml rerun` queues a linked run with the same
resolved config and seed that reaches the same test accuracy bit for bit; after the data
file changes, `bml rerun` reports it and queues nothing (exit 2) unless `--yes`."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path

import numpy as np
import pytest

from db import get_run, list_runs, make_engine
from services import actions as client
from tests.helpers.cluster import BML, Cluster, wait_until

pytestmark = pytest.mark.slow


def write_features(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=240)
    audio = rng.normal(size=(240, 12)).astype(np.float32) + y[:, None] * 0.6
    visual = rng.normal(size=(240, 10)).astype(np.float32) + y[:, None] * 0.3
    np.savez(path, x_audio=audio, x_visual=visual, y=y)


def test_rerun_reproduces_bitwise_and_a_changed_data_file_is_reported(
    embedded_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data = data_dir / "feats.npz"
    write_features(data, seed=1)
    embedded_cluster.env["BML_DATA_ROOTS"] = str(data_dir)
    monkeypatch.setenv("BML_DATA_ROOTS", str(data_dir))
    eng = make_engine()
    raw = {
        "name": "exact",
        "seed": 5,
        "dataset": {"name": "features", "path": str(data)},
        "model": {"feature_dim": 16},
        "optim": {"lr": 0.05, "scheduler": {"name": "none"}},
        "train": {"epochs": 3, "batch_size": 32, "threads": 1},
        "strategies": ["ogm_ge"],
    }
    embedded_cluster.start_worker("w1")
    [first] = client.submit(raw, engine=eng)
    wait_until(lambda: get_run(eng, first).status in ("succeeded", "failed"), 120, "the first run")
    original = get_run(eng, first)
    assert original.status == "succeeded", original.error
    env = original.environment
    assert env is not None
    assert env["python"] == platform.python_version() and env["packages"]["torch"].startswith("2.")
    assert env["packages"]["numpy"] == np.__version__ and env["host"] and env["worker"].startswith("w1@")
    assert env["cuda"] is None or isinstance(env["cuda"], str)
    assert env["data"] == [
        {
            "path": str(data.resolve()),
            "size": data.stat().st_size,
            "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
        }
    ]

    out = _rerun(embedded_cluster, first)
    assert out.returncode == 0, out.stderr
    assert "changed:" not in out.stderr
    second = int(out.stdout.strip())
    wait_until(lambda: get_run(eng, second).status in ("succeeded", "failed"), 120, "the rerun")
    again = get_run(eng, second)
    assert again.status == "succeeded", again.error
    assert again.rerun_of == first and again.seed == original.seed == 5
    assert again.config == original.config
    assert original.summary is not None and again.summary is not None
    assert again.summary["test"]["acc"] == original.summary["test"]["acc"]  # bit for bit
    assert (
        again.summary["test"] == original.summary["test"] and again.summary["val"] == original.summary["val"]
    )

    write_features(data, seed=2)  # the data file changes under the same path
    before = list_runs(eng, limit=None).total
    out = _rerun(embedded_cluster, first)
    assert out.returncode == 2
    assert f"changed: data file {data.resolve()} changed (sha256" in out.stderr and "--yes" in out.stderr
    assert list_runs(eng, limit=None).total == before  # nothing queued
    out = _rerun(embedded_cluster, first, "--yes")
    assert out.returncode == 0, out.stderr
    third = int(out.stdout.strip())
    assert get_run(eng, third).rerun_of == first
    client.cancel(third, engine=eng)


def embedded_cluster_env(cluster: Cluster) -> dict[str, str]:
    import os

    return {**os.environ, **cluster.env}


def _rerun(cluster: Cluster, run_id: int, *flags: str) -> subprocess.CompletedProcess[str]:
    """`bml rerun RUN_ID [FLAGS]` against the cluster's store and broker."""
    return subprocess.run(
        [BML, "rerun", str(run_id), *flags],
        env=embedded_cluster_env(cluster),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_rerun_check_without_a_recorded_environment(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    [run_id] = client.submit({"name": "old"}, engine=eng)
    check = client.rerun_check(run_id, engine=eng)
    assert check.blocking == [] and "recorded no environment" in check.notes[0]
    assert json.dumps(check.notes)

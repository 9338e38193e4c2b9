"""services.actions and the CLI in front of it, without a worker: validation, seeds, sweeps,
retry, data roots, broker failures, cancel, and `bml worker` on an un-migrated store."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from bml_core.config import ConfigError
from db import get_run, list_runs, make_engine
from services import actions as client
from tests.helpers.cluster import BML, SMALL_RUN, Cluster


def queued_messages(cluster: Cluster) -> int:
    path = cluster.home / "broker.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        if "kombu_message" not in tables:
            return 0
        return int(conn.execute("select count(*) from kombu_message where visible = 1").fetchone()[0])


def test_submit_one_run_per_seed(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    ids = client.submit({**SMALL_RUN, "group": "g"}, seeds=[0, 1, 2], engine=eng)
    runs = [get_run(eng, i) for i in ids]
    assert [r.seed for r in runs] == [0, 1, 2]
    assert {r.group for r in runs} == {"g"} and {r.status for r in runs} == {"queued"}
    assert queued_messages(embedded_cluster) == 3


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"strategies": [{"name": "ogm_ge", "alpha": -1}]}, "strategies.0.alpha"),
        ({"strategies": [{"name": "opm", "q_base": 2}]}, "strategies.0.q_base"),
        ({"train": {"epochs": 0}}, "train.epochs"),
        ({"bogus": True}, "bogus"),
    ],
)
def test_invalid_config_stores_and_enqueues_nothing(embedded_cluster: Cluster, raw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        client.submit(raw, seeds=[0, 1])
    assert field in exc.value.as_dict()
    assert list_runs(make_engine(), limit=None).total == 0
    assert queued_messages(embedded_cluster) == 0


def test_dataset_outside_the_data_roots_is_refused(
    embedded_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    monkeypatch.setenv("BML_DATA_ROOTS", str(allowed))
    with pytest.raises(ConfigError) as exc:
        client.submit({"dataset": {"name": "features", "path": "/etc/passwd"}})
    msg = exc.value.as_dict()["dataset.path"]
    assert "outside" in msg and str(allowed) in msg
    assert list_runs(make_engine(), limit=None).total == 0
    ok = client.submit({"dataset": {"name": "features", "path": str(allowed / "f.npz")}})
    assert len(ok) == 1


def test_sweep_grid_times_seeds(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    grid = {"strategies": [["ogm_ge"], ["opm"], ["opm", "ogm_ge"]], "optim.lr": [0.01, 0.02]}
    sweep_id, ids = client.submit_sweep(SMALL_RUN, grid, seeds=[0, 1], name="sw", engine=eng)
    assert len(ids) == 3 * 2 * 2
    runs = [get_run(eng, i) for i in ids]
    assert {r.group for r in runs} == {"sw"} and {r.sweep_id for r in runs} == {sweep_id}
    assert {r.strategy for r in runs} == {"ogm_ge", "opm", "opm+ogm_ge"}
    assert {r.config["optim"]["lr"] for r in runs} == {0.01, 0.02}
    assert "strategies=opm+ogm_ge" in runs[-1].name
    assert queued_messages(embedded_cluster) == 12


def test_sweep_with_one_bad_combination_stores_nothing(embedded_cluster: Cluster) -> None:
    grid = {"strategies.0.alpha": [0.5, -1.0]}
    with pytest.raises(ConfigError) as exc:
        client.submit_sweep({**SMALL_RUN, "strategies": ["ogm_ge"]}, grid, seeds=[0], name="bad")
    assert any("alpha=-1.0" in path and "strategies.0.alpha" in path for path in exc.value.as_dict())
    assert list_runs(make_engine(), limit=None).total == 0
    assert queued_messages(embedded_cluster) == 0


def test_retry_clones_and_cancel_of_queued_is_immediate(embedded_cluster: Cluster) -> None:
    eng = make_engine()
    [run_id] = client.submit(SMALL_RUN, engine=eng)
    assert client.cancel(run_id, engine=eng) == "cancelled"
    clone = client.retry(run_id, engine=eng)
    assert clone != run_id
    original, copy = get_run(eng, run_id), get_run(eng, clone)
    retry_name = f"{original.name} (retry of #{run_id})"  # issue 14: the clone says what it is
    assert copy.status == "queued" and copy.config == {**original.config, "name": retry_name}
    assert copy.name == retry_name
    client.delete(run_id, engine=eng)
    assert list_runs(eng, limit=None).total == 1


def test_broker_down_stores_nothing_and_says_so(
    embedded_cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # issue 25 changed this: the runs used to be kept, marked failed; now nothing is stored
    monkeypatch.setenv("BML_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    with pytest.raises(client.BrokerUnavailable) as exc:
        client.submit(SMALL_RUN, seeds=[0, 1])
    assert "127.0.0.1:1" in str(exc.value) and "nothing was stored" in str(exc.value)
    assert list_runs(make_engine(), limit=None).total == 0
    with pytest.raises(client.BrokerUnavailable):
        client.submit_sweep(SMALL_RUN, {"optim.lr": [0.1, 0.2]}, seeds=[0], name="sw")
    assert list_runs(make_engine(), limit=None).total == 0
    with make_engine().connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM sweeps").scalar() == 0


def test_cli_submit_seeds_and_errors(embedded_cluster: Cluster, tmp_path: Path) -> None:
    env = {**embedded_cluster.env}
    import os

    full_env = {**os.environ, **env}
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: cli\ntrain: {epochs: 1}\nstrategies: [opm]\n")
    ok = subprocess.run(
        [BML, "submit", str(cfg), "--seeds", "0,1"], env=full_env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    ids = [int(x) for x in ok.stdout.split()]
    assert len(ids) == 2
    bad = subprocess.run(
        [BML, "submit", str(cfg), "--set", "strategies.0.p_exe=3"],
        env=full_env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "strategies.0.p_exe" in bad.stderr
    assert list_runs(make_engine(), limit=None).total == 2
    cancel = subprocess.run([BML, "cancel", str(ids[0])], env=full_env, capture_output=True, text=True)
    assert cancel.returncode == 0 and "cancelled" in cancel.stdout
    unknown = subprocess.run([BML, "cancel", "999"], env=full_env, capture_output=True, text=True)
    assert unknown.returncode == 2 and "999" in unknown.stderr


def test_worker_refuses_an_unmigrated_store(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "BML_HOME": str(tmp_path / "empty"), "BML_BROKER_URL": ""}
    r = subprocess.run([BML, "worker", "--cpu"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "bml db upgrade" in r.stderr


def test_the_producer_follows_the_redis_key_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two prefixes on one Redis URL in one process (two test sessions, a benchmark's own
    prefix) get two producers: a cached one would send to the first prefix's queue."""
    monkeypatch.setenv("BML_BROKER_URL", "redis://127.0.0.1:6379/0")
    prefixes = []
    for prefix in ("grid-a:", "grid-b:"):
        monkeypatch.setenv("BML_BROKER_PREFIX", prefix)
        prefixes.append(client._celery().conf.broker_transport_options["global_keyprefix"])
    assert prefixes == ["grid-a:", "grid-b:"]

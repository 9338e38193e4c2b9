"""bench/strategy_grid.py: the table from a store filled with known summaries (numbers
checked by hand), the configs it builds from the specs, bad arguments (exit 2 naming them),
and a small grid end to end through real workers (embedded broker, and Redis under its own
key prefix, which is gone afterwards)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from scipy import stats as sps

import db

ROOT = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("strategy_grid", ROOT / "bench" / "strategy_grid.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


grid = _bench()


def _summary(acc: float, audio: float, visual: float, degree: float, seconds: float) -> dict[str, Any]:
    return {
        "best_epoch": 1,
        "test": {
            "acc": acc,
            "f1": acc,
            "map": acc,
            "acc_per_modality": {"audio": audio, "visual": visual},
            "imbalance_degree": degree,
        },
        "train": {"steps": 100, "seconds": seconds, "samples_per_second": 1.0},
    }


def _add(engine: Any, strategies: list[Any], seed: int, summary: dict | None, **config: Any) -> int:
    raw = {"name": f"r{seed}", "group": "g", "seed": seed, "strategies": strategies, **config}
    run_id = db.create_run(engine, raw)
    db.claim_run(engine, run_id, "test")
    if summary is None:
        db.finish_run(engine, run_id, "failed", error="boom: out of memory")
    else:
        db.finish_run(engine, run_id, "succeeded", summary=summary)
    return run_id


@pytest.fixture
def engine() -> Any:
    eng = db.make_engine()
    db.upgrade(eng)
    yield eng
    eng.dispose()


def test_table_from_known_summaries(engine: Any) -> None:
    # joint: acc .80/.82/.84, step 5/6/7 ms (0.5, 0.6, 0.7 s over 100 steps)
    for seed, (acc, secs) in enumerate([(0.80, 0.5), (0.82, 0.6), (0.84, 0.7)]):
        _add(engine, [], seed, _summary(acc, acc - 0.1, acc - 0.5, 0.40 - 0.02 * seed, secs))
    # opm: acc .85/.86/.90 (per-seed differences .05/.04/.06), step 9/12/15 ms
    for seed, (acc, secs) in enumerate([(0.85, 0.9), (0.86, 1.2), (0.90, 1.5)]):
        _add(engine, ["opm"], seed, _summary(acc, 0.7, 0.6, 0.1, secs))
    # mla (shared head): seeds 0 and 1 at .80, seed 2 failed
    shared = {"model": {"head": "shared"}}
    for seed in (0, 1):
        _add(engine, ["mla"], seed, _summary(0.80, 0.7, 0.6, 0.2, 0.6), **shared)
    failed = _add(engine, ["mla"], 2, None, **shared)
    _add(engine, [{"name": "gblending", "super_epoch": 6}], 0, _summary(0.81, 0.7, 0.6, 0.2, 0.6))

    out = grid.collect(engine, {"synthetic": "g"})["synthetic"]
    rows = {r["strategy"]: r for r in out["rows"]}
    assert [r["strategy"] for r in out["rows"]] == ["joint", "opm", "mla", "gblending"]
    assert out["modalities"] == ["audio", "visual"]

    joint = rows["joint"]
    assert joint["n"] == 3 and joint["vs_joint"] is None and joint["settings"] == []
    assert joint["test_acc"]["mean"] == pytest.approx(0.82) and joint["test_acc"]["std"] == pytest.approx(
        0.02
    )
    assert joint["test_acc_per_modality"]["visual"]["mean"] == pytest.approx(0.32)
    assert joint["imbalance_degree"]["mean"] == pytest.approx(0.38)
    assert joint["step_ms"]["mean"] == pytest.approx(6.0) and joint["step_ratio_to_joint"] == pytest.approx(
        1.0
    )

    opm = rows["opm"]
    # sd of .85/.86/.90: sqrt((.02^2 + .01^2 + .03^2) / 2) = sqrt(.0007)
    assert opm["test_acc"]["mean"] == pytest.approx(0.87)
    assert opm["test_acc"]["std"] == pytest.approx(math.sqrt(0.0007))
    assert opm["step_ms"]["mean"] == pytest.approx(12.0) and opm["step_ratio_to_joint"] == pytest.approx(2.0)
    # paired t over seeds 0-2: mean difference .05, sd .01 -> t = .05 / (.01 / sqrt 3), df 2
    p_opm = 2 * sps.t.sf(0.05 / (0.01 / math.sqrt(3)), 2)
    vs = opm["vs_joint"]
    assert vs["test"] == "paired t" and vs["diff"] == pytest.approx(0.05)
    assert vs["p"] == pytest.approx(p_opm, rel=1e-6)
    # Welch for mla (seeds 0, 1 against 0-2): var 0 and .0004 / 3 -> t = -.02 / sqrt(.0004 / 3), df 2
    p_mla = 2 * sps.t.sf(0.02 / math.sqrt(0.0004 / 3), 2)
    mla = rows["mla"]
    assert mla["n"] == 2 and mla["vs_joint"]["test"] == "Welch t"
    assert mla["vs_joint"]["diff"] == pytest.approx(-0.02) and mla["vs_joint"]["p"] == pytest.approx(
        p_mla, rel=1e-6
    )
    # Holm over the two tests (gblending's single seed is not tested): 2 p_opm, then max(2 p_opm, p_mla)
    assert vs["p_holm"] == pytest.approx(2 * p_opm, rel=1e-6) and vs["verdict"] == "better"
    assert mla["vs_joint"]["p_holm"] == pytest.approx(p_mla, rel=1e-6)
    assert mla["vs_joint"]["verdict"] == "not distinguishable from seed noise"
    assert mla["settings"] == ["model.head: shared"]

    gb = rows["gblending"]
    assert gb["n"] == 1 and gb["vs_joint"]["test"] is None and gb["vs_joint"]["p_holm"] is None
    assert gb["settings"] == ["gblending.super_epoch: 6 (default 10)"]

    [lost] = out["not_pooled"]
    assert lost["id"] == failed and lost["strategy"] == "mla" and lost["status"] == "failed"
    assert "boom" in lost["reason"]

    from grid_markdown import markdown_table  # bench/, on sys.path once strategy_grid is loaded

    table = markdown_table("synthetic", out)
    assert "| opm | 3 | 87.0 ± 2.6 | 70.0 ± 0.0 | 60.0 ± 0.0 | 10.0 ± 0.0 | 12.00 | 2.00 |" in table
    # CI: .05 +- t_.975,2 (4.303) x .01 / sqrt 3 = .05 +- .0248
    assert f"| +5.0 (+2.5 to +7.5) | {p_opm:.3f} / {2 * p_opm:.3f} | better |" in table
    assert "| joint | 3 | 82.0 ± 2.0 | 72.0 ± 2.0 | 32.0 ± 2.0 | 38.0 ± 2.0 | 6.00 | 1.00 |" in table
    assert f"- #{failed} mla seed 2: failed, failed: boom: out of memory" in table
    assert "| gblending | 1 | 81.0 |" in table and "gblending.super_epoch: 6 (default 10) |" in table


def test_configs_come_from_the_examples_and_the_specs() -> None:
    joint = grid.plan("mfeat", "joint", None)
    assert (
        joint.raw["strategies"] == [] and joint.raw["train"]["epochs"] == 30
    )  # examples/mfeat-imbalance.yaml
    assert joint.raw["dataset"]["params"]["views"] == ["pix", "zer"]
    assert grid.plan("mfeat", "mla", None).raw["model"]["head"] == "shared"  # needs_shared_head
    assert grid.plan("synthetic", "reconboost", None).raw["model"]["head"] == "shared"
    # epoch_fit: synthetic trains 20 epochs -> relearn every 20 // 4 = 5, gblending 20 // 3 = 6
    assert grid.plan("synthetic", "relearn", None).raw["strategies"] == [{"name": "relearn", "every": 5}]
    assert grid.plan("synthetic", "gblending", None).raw["strategies"] == [
        {"name": "gblending", "super_epoch": 6}
    ]
    assert grid.plan("mfeat", "gblending", None).raw["strategies"] == [{"name": "gblending"}]  # 30 // 10 = 3
    assert grid.plan("synthetic", "opm", 3).raw["train"]["epochs"] == 3


def test_every_registered_strategy_is_in_the_grid_with_joint_first() -> None:
    from bml_core.strategies.spec import all_specs

    opts = grid.parse_args([])
    assert opts.strategies == [s.name for s in all_specs()] and opts.strategies[0] == "joint"
    assert len(opts.strategies) >= 16 and opts.seeds == [0, 1, 2] and opts.workers == 2
    assert opts.datasets == ["mfeat", "synthetic"]
    assert grid.parse_args(["--strategies", "opm"]).strategies == ["joint", "opm"]


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--strategies", "opm,nope"], "'nope'"),
        (["--datasets", "cifar"], "'cifar'"),
        (["--seeds", "2-0"], "2-0"),
        (["--seeds", "x"], "--seeds"),
        (["--epochs", "0"], "--epochs"),
        (["--workers", "0"], "--workers"),
        (["--broker", "amqp://h"], "--broker"),
        (["--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_exit_2_naming_them(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert grid.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err, err


@pytest.mark.parametrize(
    "broker", ["embedded", pytest.param("redis://127.0.0.1:6379/0", marks=pytest.mark.redis)]
)
def test_small_grid_through_real_workers(
    broker: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if broker != "embedded":
        from tests.helpers.cluster import ensure_machine_redis

        ensure_machine_redis()
    out_json, out_md = tmp_path / "grid.json", tmp_path / "grid.md"
    argv = ["--strategies", "ogm", "--datasets", "synthetic", "--seeds", "0", "--epochs", "1"]
    argv += ["--workers", "1", "--home", str(tmp_path / "home"), "--broker", broker]
    argv += ["--json", str(out_json), "--markdown", str(out_md), "--timeout-s", "150"]
    assert grid.main(argv) == 0, capsys.readouterr()
    doc = json.loads(out_json.read_text())
    block = doc["datasets"]["synthetic"]
    assert [r["strategy"] for r in block["rows"]] == ["joint", "ogm"] and block["not_pooled"] == []
    for row in block["rows"]:  # read back from the store the workers wrote
        [run_id] = row["run_ids"]
        assert row["n"] == 1 and 0.0 <= row["test_acc"]["mean"] <= 1.0 and row["step_ms"]["mean"] > 0
    engine = db.make_engine(f"sqlite:///{tmp_path / 'home' / 'bml.db'}")
    runs = db.runs_for_report(engine, [block["group"]]).runs
    engine.dispose()
    assert {r.status for r in runs} == {"succeeded"} and {r.worker for r in runs} != {None}
    by_id = {r.id: r for r in runs}
    ogm = block["rows"][1]
    assert ogm["test_acc"]["mean"] == pytest.approx(by_id[ogm["run_ids"][0]].summary["test"]["acc"])
    assert doc["meta"]["epochs"] == "synthetic 1" and doc["meta"]["runs"] == 2
    assert "| ogm | 1 |" in out_md.read_text()
    if broker != "embedded":  # the grid's own key prefix is gone from the machine's Redis
        import redis

        assert not list(redis.Redis.from_url(broker).scan_iter(match=f"bmlgrid-{os.getpid()}-*", count=1000))

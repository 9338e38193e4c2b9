"""The results table (bml_core.compare.results): per group every metric over the pooled
seeds, the fused accuracy against joint training with the test used, Holm and verdict."""

from __future__ import annotations

import math
from typing import Any

import pytest
from scipy import stats as sps

from bml_core.compare import group_runs, stats
from bml_core.compare.results import results
from bml_core.config import validate_config

ACC = {"joint": [0.60, 0.61, 0.62], "ogm_ge": [0.70, 0.715, 0.72], "opm": [0.605, 0.60, 0.625]}


def make_runs() -> list[dict[str, Any]]:
    runs = []
    rid = 0
    for strategy, accs in ACC.items():
        for seed, acc in enumerate(accs):
            rid += 1
            config = validate_config(
                {
                    "name": f"{strategy}-{seed}",
                    "seed": seed,
                    "strategies": [] if strategy == "joint" else [strategy],
                }
            ).to_dict()
            summary = {
                "test": {
                    "acc": acc,
                    "f1": acc - 0.01,
                    "map": acc + 0.01,
                    "imbalance_degree": 0.1 * seed,
                    "acc_per_modality": {"audio": acc - 0.1, "visual": acc - 0.2},
                },
                "train": {"steps": 100, "seconds": 2.0 + seed},
            }
            runs.append(
                {
                    "id": rid,
                    "name": config["name"],
                    "group": "g",
                    "status": "succeeded",
                    "seed": seed,
                    "attempt": 1,
                    "config": config,
                    "summary": summary,
                    "started_at": "2026-01-01T00:00:00",
                    "finished_at": f"2026-01-01T00:00:{10 + seed:02d}",
                }
            )
    return runs


def test_rows_metrics_and_verdicts() -> None:
    res = results(group_runs(make_runs()))
    assert res.baseline == "joint" and res.modalities == ["audio", "visual"]
    ids = [m.id for m in res.metrics]
    assert ids == [
        "test.acc",
        "test.f1",
        "test.map",
        "test.acc.audio",
        "test.acc.visual",
        "test.imbalance_degree",
        "train.seconds",
        "train.step_ms",
        "wall_s",
    ]
    joint, ogm, opm = res.rows
    assert joint.is_baseline and joint.vs_baseline is None
    assert joint.metrics["test.acc"].mean == pytest.approx(0.61)
    assert joint.metrics["test.acc.visual"].mean == pytest.approx(0.41)
    assert joint.metrics["train.step_ms"].mean == pytest.approx(30.0)  # (2, 3, 4) s / 100 steps
    assert joint.metrics["wall_s"].mean == pytest.approx(11.0)
    assert ogm.vs_baseline is not None and ogm.vs_baseline.test == "paired t"
    ref = sps.ttest_rel(ACC["ogm_ge"], ACC["joint"])
    assert ogm.vs_baseline.p == pytest.approx(ref.pvalue)
    ref_opm = sps.ttest_rel(ACC["opm"], ACC["joint"])
    assert opm.vs_baseline is not None
    assert [ogm.vs_baseline.p_holm, opm.vs_baseline.p_holm] == pytest.approx(
        stats.holm([ref.pvalue, ref_opm.pvalue])
    )
    assert ogm.vs_baseline.verdict == "better"
    assert opm.vs_baseline.verdict == "not distinguishable from seed noise"
    doc = ogm.to_dict()
    assert doc["metrics"]["test.acc"]["n"] == 3 and doc["vs_baseline"]["verdict"] == "better"


def test_chosen_baseline_and_unknown_baseline() -> None:
    res = results(group_runs(make_runs()), baseline="strategies=opm")
    assert res.baseline == "opm" and res.row("joint").vs_baseline is not None
    with pytest.raises(KeyError, match="baseline 'x' is not a group"):
        results(group_runs(make_runs()), baseline="x")


def test_one_seed_group_has_no_interval() -> None:
    runs = [r for r in make_runs() if not (r["config"]["strategies"] and r["seed"] > 0)]
    res = results(group_runs(runs))
    ogm = res.row("ogm_ge")
    assert ogm.n == 1 and ogm.note == "n = 1: no interval (one seed)"
    assert math.isnan(ogm.metrics["test.acc"].ci_low)
    assert ogm.vs_baseline is not None and ogm.vs_baseline.verdict == stats.NOT_TESTED


def test_group_without_finished_runs_reads_as_such() -> None:
    from bml_core.compare import strategy_label
    from bml_core.compare.report import build_report, headline

    runs = make_runs()
    for r in runs:
        if strategy_label(r["config"]["strategies"]) == "opm":
            r["status"], r["summary"], r["progress"] = "running", None, 0.3
    doc = build_report(group_runs(runs))
    opm = next(g for g in doc["groups"] if g["label"] == "opm")
    assert opm["n"] == 0 and opm["vs_baseline"] is None and opm["metrics"]["test.acc"]["mean"] is None
    assert "opm: no finished run (3 excluded, see below)" in headline(doc)
    assert len(doc["excluded"]) == 3 and doc["excluded"][0]["reason"] == "still running (30 %)"


def test_alerts_per_run_are_counted_per_group_when_the_runs_recorded_them() -> None:
    runs = make_runs()
    assert "alerts" not in results(group_runs(runs)).row("joint").metrics  # older runs: no column
    counts = {"joint": [3, 3, 2], "ogm_ge": [1, 0, 2], "opm": [0, 0, 1]}
    for run in runs:
        strategy = run["name"].rsplit("-", 1)[0]
        run["summary"]["alerts"] = [{"detector": "dominance"}] * counts[strategy][run["seed"]]
    res = results(group_runs(runs))
    joint = res.row("joint").metrics["alerts"]
    assert joint.n == 3 and joint.mean == pytest.approx(8 / 3)
    assert res.row("opm").metrics["alerts"].mean == pytest.approx(1 / 3)

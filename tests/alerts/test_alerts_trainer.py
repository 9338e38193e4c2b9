"""Alerts in the training loop: evaluated as the metrics are produced, sent to every sink
(`on_alert`), listed in the summary, checkpointed (a resumed run does not repeat them),
and a divergence stops the run with a clear error unless `alerts.divergence.stop` is off."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bml_core.config import load_config
from bml_core.sinks import JsonlSink, MemorySink
from bml_core.trainer import Trainer, TrainingDiverged

# tiny: 200 samples, windows of 5 steps so a few epochs can raise alerts
TINY: dict[str, Any] = {
    "dataset": {"params": {"num_samples": 240}},
    "optim": {"name": "sgd", "lr": 0.05, "scheduler": {"name": "none"}},
    "train": {"epochs": 4, "batch_size": 32, "device": "cpu", "threads": 1},
    "alerts": {
        "dominance": {"threshold": 1.01, "release": 1.0, "window": {"steps": 5, "share": 0.6}},
        "under_optimised": {"evals": 1, "tolerance": 1.0, "fused_gain": 0.0},
    },
}


def _cfg(**extra: Any) -> Any:
    return load_config({**TINY, **extra})


def test_alerts_reach_the_sinks_and_the_summary(tmp_path: Path) -> None:
    mem = MemorySink()
    jsonl = JsonlSink(tmp_path / "metrics.jsonl")
    summary = Trainer(_cfg(), sinks=[mem, jsonl]).fit()
    assert mem.alerts, "the loose thresholds must raise at least one alert"
    assert summary["alerts"] == mem.alerts
    keys = [a["key"] for a in mem.alerts]
    assert len(keys) == len(set(keys))
    for a in mem.alerts:
        assert {
            "detector",
            "severity",
            "modality",
            "step",
            "step_range",
            "evidence",
            "advice",
            "message",
        } <= set(a)
        assert isinstance(a["advice"]["strategies"], list)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["key"] for x in lines if x["event"] == "alert"] == keys
    # an alert is sent right after the step's metrics that raised it
    steps = {s for s, _, _ in mem.steps}
    assert all(a["step"] in steps or a["detector"] in ("under_optimised", "overfitting") for a in mem.alerts)


def test_disabled_alerts_raise_nothing() -> None:
    mem = MemorySink()
    summary = Trainer(_cfg(alerts={"enabled": False}), sinks=[mem]).fit()
    assert mem.alerts == [] and summary["alerts"] == []


def test_a_resumed_run_does_not_repeat_alerts(tmp_path: Path) -> None:
    full = MemorySink()
    Trainer(_cfg(), sinks=[full], run_dir=tmp_path / "a").fit()
    # the same run stopped after epoch 2 (a checkpoint), then resumed
    first = MemorySink()
    calls = {"n": 0}
    steps_per_epoch = Trainer(_cfg()).steps_per_epoch

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] == 2 * steps_per_epoch

    t = Trainer(_cfg(), sinks=[first], run_dir=tmp_path / "b", stop_requested=stop)
    assert t.fit()["run"]["status"] == "cancelled"
    second = MemorySink()
    summary = Trainer(_cfg(), sinks=[second], run_dir=tmp_path / "b").fit()
    got = [a["key"] for a in first.alerts + second.alerts]
    assert got == [a["key"] for a in full.alerts]
    assert [a["key"] for a in summary["alerts"]] == got


def test_divergence_stops_the_run_with_a_clear_event() -> None:
    mem = MemorySink()
    cfg = _cfg(optim={"name": "sgd", "lr": 1e8})
    with pytest.raises(TrainingDiverged, match="diverged at step"):
        Trainer(cfg, sinks=[mem]).fit()
    assert mem.status == "failed"
    (div,) = [a for a in mem.alerts if a["detector"] == "divergence"]
    assert div["severity"] == "critical" and div["step"] == len(mem.steps)
    assert any(level == "error" and "alerts.divergence.stop=false" in msg for level, msg in mem.events)
    # the option to keep going: the run finishes (one divergence alert, not one per step)
    mem = MemorySink()
    cfg = _cfg(optim={"name": "sgd", "lr": 1e8}, alerts={"divergence": {"stop": False}})
    Trainer(cfg, sinks=[mem]).fit()
    assert mem.status == "succeeded"
    assert [a["detector"] for a in mem.alerts].count("divergence") == 1


def test_bml_train_prints_alerts_and_lists_them_in_the_summary(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from bml_cli.main import app

    cfg = tmp_path / "c.json"
    # rho_a = 1 / rho_v: one of them is above 1.0001 on most of any 5 steps -> an alert by step 5
    sure = {"dominance": {"threshold": 1.0001, "release": 0.01, "window": {"steps": 5, "share": 0.6}}}
    cfg.write_text(json.dumps({**TINY, "train": {**TINY["train"], "epochs": 1}, "alerts": sure}))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["alerts"]
    assert f"{len(summary['alerts'])} alert(s):" in result.stdout
    assert summary["alerts"][0]["message"] in result.stdout

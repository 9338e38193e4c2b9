"""Shared check for strategy tests: a run stopped after N steps and resumed ends with the same
weights (bitwise on the CPU), the same test summary and the same step count as one run
straight through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.trainer import Trainer


def assert_resume_bitwise(tmp_path: Path, raw: dict[str, Any], stop_after: int) -> tuple[Trainer, Trainer]:
    """Returns (uninterrupted, resumed) trainers after both finished."""
    cfg = load_config(raw)
    full = Trainer(cfg, run_dir=tmp_path / "full", sinks=[MemorySink()])
    full_summary = full.fit()
    counter = {"n": 0}

    def stop() -> bool:
        counter["n"] += 1
        return counter["n"] >= stop_after

    first = Trainer(cfg, run_dir=tmp_path / "resumed", stop_requested=stop)
    assert first.fit()["run"]["status"] == "cancelled"
    assert first.global_step == stop_after
    second = Trainer(cfg, run_dir=tmp_path / "resumed")
    summary = second.fit()
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    last_resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    assert set(last_full["model"]) == set(last_resumed["model"])
    for k, v in last_full["model"].items():
        assert torch.equal(v, last_resumed["model"][k]), k
    assert summary["test"] == full_summary["test"]
    assert summary["train"]["steps"] == full_summary["train"]["steps"]
    return full, second

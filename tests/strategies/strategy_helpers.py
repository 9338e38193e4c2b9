"""Shared pieces of the strategy tests: a small synthetic run config and the
stopped-then-resumed check (as tests/test_trainer.py does it for OPM + OGM-GE)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer

SMALL: dict[str, Any] = {
    "dataset": {
        "params": {
            "num_samples": 360,
            "modalities": [
                {"name": "audio", "strength": 1.5, "shape": [16]},
                {"name": "visual", "strength": 0.6, "shape": [8]},
            ],
        }
    },
    "model": {"feature_dim": 16, "encoders": {"audio": {"hidden_dim": 32}, "visual": {"hidden_dim": 32}}},
    "optim": {"lr": 0.05, "scheduler": {"name": "none"}},
    "train": {"epochs": 2, "batch_size": 32, "threads": 1},
}


def small(**over: Any) -> dict[str, Any]:
    raw = copy.deepcopy(SMALL)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(raw.get(k), dict):
            raw[k].update(v)
        else:
            raw[k] = v
    return raw


def assert_resume_is_bitwise(tmp_path: Path, strategies: list[Any], stop_after: int | str) -> None:
    """Train 3 epochs uninterrupted; train the same config stopped after `stop_after` steps
    (or "boundary": at the end of the first epoch) and resumed; the final weights and the
    test summary must be identical bit for bit."""
    raw = small(
        strategies=strategies,
        model={"encoders": {"audio": {"hidden_dim": 32, "dropout": 0.2}, "visual": {"name": "mlp"}}},
        train={"epochs": 3, "batch_size": 20},
        optim={"lr": 0.05, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}},
    )
    cfg = load_config(raw)
    full = Trainer(cfg, run_dir=tmp_path / "full")
    steps = full.steps_per_epoch if stop_after == "boundary" else int(stop_after)
    full_summary = full.fit()

    counter = {"n": 0}

    def stop() -> bool:
        counter["n"] += 1
        return counter["n"] >= steps

    first = Trainer(cfg, run_dir=tmp_path / "resumed", stop_requested=stop)
    assert first.fit()["run"]["status"] == "cancelled"
    assert first.global_step == steps
    second = Trainer(cfg, run_dir=tmp_path / "resumed")
    summary = second.fit()
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    last_resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    for k in last_full["model"]:
        assert torch.equal(last_full["model"][k], last_resumed["model"][k]), k
    assert summary["test"] == full_summary["test"]
    assert summary["train"]["steps"] == full_summary["train"]["steps"]
    _assert_same(last_full["strategies"], last_resumed["strategies"])


def _assert_same(a: Any, b: Any) -> None:
    """Strategy states equal, tensors bitwise."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b)
    elif isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        assert a == b

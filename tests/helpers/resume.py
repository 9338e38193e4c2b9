"""The one resume check of the strategy tests: a run stopped after `stop_after` steps and
resumed from its checkpoint must equal the same run uninterrupted, bitwise on the CPU — the
final weights, the optimizer state, every strategy's state, the lr multipliers, the test
summary and the step count."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer


def states_equal(a: Any, b: Any) -> bool:
    """Nested dicts / lists / tensors equal exactly (tensors: same dtype and values)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(states_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(states_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@dataclass
class Resumed:
    full: Trainer  # the uninterrupted run, finished
    resumed: Trainer  # the resumed run, finished
    checkpoint: dict[str, Any]  # the uninterrupted run's last.pt


def stop_at_check(n: int) -> Callable[[], bool]:
    """A Trainer `stop_requested` that asks for the stop at its n-th call (the trainer asks
    once a step, so the run stops after n steps)."""
    counter = {"n": 0}

    def stop() -> bool:
        counter["n"] += 1
        return counter["n"] >= n

    return stop


def assert_resume_bitwise(raw: dict[str, Any], tmp_path: Path, stop_after: int) -> Resumed:
    cfg = load_config(raw)
    full = Trainer(cfg, run_dir=tmp_path / "full")
    full_summary = full.fit()
    first = Trainer(cfg, run_dir=tmp_path / "resumed", stop_requested=stop_at_check(stop_after))
    assert first.fit()["run"]["status"] == "cancelled"
    assert first.global_step == stop_after
    second = Trainer(cfg, run_dir=tmp_path / "resumed")
    summary = second.fit()
    done = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    again = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    for part in ("model", "optimizer", "strategies"):
        assert states_equal(done[part], again[part]), part
    assert states_equal(done["progress"]["lr_mults"], again["progress"]["lr_mults"]), "lr_mults"
    assert summary["test"] == full_summary["test"]
    assert summary["train"]["steps"] == full_summary["train"]["steps"]
    return Resumed(full, second, done)

"""Shared by the strategy tests: a run stopped mid-epoch then resumed must equal the same run
uninterrupted, bitwise on the CPU (final weights, optimizer state, strategy state, summary)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_resume_is_bitwise(raw: dict[str, Any], tmp_path: Path, stop_after: int) -> dict[str, Any]:
    """Train `raw` uninterrupted and stopped after `stop_after` steps then resumed; compare
    last.pt (model, optimizer, strategies' state, lr multipliers) and the test summary.
    Returns the uninterrupted run's checkpoint."""
    cfg = load_config(raw)
    full_summary = Trainer(cfg, run_dir=tmp_path / "full").fit()
    counter = {"n": 0}

    def stop() -> bool:
        counter["n"] += 1
        return counter["n"] >= stop_after

    first = Trainer(cfg, run_dir=tmp_path / "resumed", stop_requested=stop)
    assert first.fit()["run"]["status"] == "cancelled"
    assert first.global_step == stop_after
    summary = Trainer(cfg, run_dir=tmp_path / "resumed").fit()
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    for part in ("model", "optimizer", "strategies"):
        assert _equal(full[part], resumed[part]), part
    assert _equal(full["progress"]["lr_mults"], resumed["progress"]["lr_mults"])
    assert summary["test"] == full_summary["test"]
    assert summary["train"]["steps"] == full_summary["train"]["steps"]
    return full

"""Shared pieces of the strategy tests: the small synthetic run config (tests/helpers/configs.py) and the
stopped-then-resumed check (as tests/test_trainer.py does it for OPM + OGM-GE)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise

__all__ = ["assert_resume_is_bitwise", "small"]


def assert_resume_is_bitwise(tmp_path: Path, strategies: list[Any], stop_after: int | str) -> None:
    """Train 3 epochs uninterrupted; train the same config stopped after `stop_after` steps
    (or "boundary": at the end of the first epoch) and resumed; weights, optimizer and
    strategy state and the test summary must be identical bit for bit (tests/helpers/resume.py)."""
    raw = small(
        strategies=strategies,
        model={"encoders": {"audio": {"hidden_dim": 32, "dropout": 0.2}, "visual": {"name": "mlp"}}},
        train={"epochs": 3, "batch_size": 20},
        optim={"lr": 0.05, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}},
    )
    steps = Trainer(load_config(raw)).steps_per_epoch if stop_after == "boundary" else int(stop_after)
    assert_resume_bitwise(raw, tmp_path, steps)

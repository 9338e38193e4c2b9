"""Hardening (issue 15): checkpoints never run code, bounds on what can exhaust memory or
time, clear one-line errors instead of tracebacks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import CheckpointError, Trainer, load_checkpoint

TINY = {
    "dataset": {"params": {"num_samples": 120}},
    "model": {"feature_dim": 8},
    "optim": {"scheduler": {"name": "none"}},
    "train": {"epochs": 1, "batch_size": 32, "threads": 1, "device": "cpu"},
}


class _Evil:
    """Unpickling this calls os.system: what a crafted checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "model": _Evil(marker)}, path)


# --------------------------------------------------------------------------- checkpoints


def test_a_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    _evil_checkpoint(run_dir / "last.pt", marker)
    with pytest.raises(CheckpointError, match="refusing to load checkpoint"):
        load_checkpoint(run_dir / "last.pt")
    trainer = Trainer(load_config(TINY), run_dir=run_dir)
    with pytest.raises(CheckpointError) as exc:
        trainer.fit()
    assert "system" in str(exc.value)  # names what it refused
    assert not marker.exists()
    _evil_checkpoint(run_dir / "best.pt", marker)
    with pytest.raises(CheckpointError):
        trainer._load_best()
    assert not marker.exists()


def test_the_cli_refuses_a_malicious_checkpoint_on_resume(bml_exe: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    _evil_checkpoint(out / "last.pt", marker)
    r = subprocess.run(
        [
            bml_exe,
            "train",
            "--out",
            str(out),
            "--resume",
            "--no-progress",
            "--set",
            "train.epochs=1",
            "--set",
            "dataset.params.num_samples=120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stderr
    assert "refusing to load checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


def test_real_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    """The trainer's own checkpoints (numpy RNG state included) pass the safe loader, and a
    resumed run ends where an uninterrupted one does."""
    cfg = load_config({**TINY, "train": {**TINY["train"], "epochs": 2}})
    Trainer(cfg, run_dir=tmp_path / "a").fit()
    state = load_checkpoint(tmp_path / "a" / "last.pt")
    assert state["progress"]["epoch"] == 2 and state["rng"]["numpy"][0] == "MT19937"
    resumed = Trainer(cfg, run_dir=tmp_path / "a")
    assert resumed.try_resume() and resumed.epoch == 2

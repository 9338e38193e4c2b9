"""Tracking from any training loop: `bml_core.init(...)` returns a `Run` that streams the
paper's per-step imbalance telemetry into the store the dashboard reads (see run.py)."""

from __future__ import annotations

from bml_core.tracking.run import Run, init
from bml_core.tracking.scores import StepScorer, TrackingInputError

__all__ = ["Run", "StepScorer", "TrackingInputError", "init"]

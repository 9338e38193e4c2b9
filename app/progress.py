"""A run's progress as people read it, shared by the pages (/runs table, /live header): the
time left from the time since start and the progress, and durations as `1h 02m`."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import db


def eta_seconds(run: db.RunInfo, now: datetime | None = None) -> float | None:
    """Seconds left, from the time since the run started and its progress (None when unknown)."""
    if run.status != "running" or run.started_at is None or run.progress <= 0.0 or run.progress >= 1.0:
        return None
    now = now or datetime.now(UTC)
    started = run.started_at if run.started_at.tzinfo else run.started_at.replace(tzinfo=UTC)
    elapsed = (now - started).total_seconds()
    if elapsed <= 0:
        return None
    return elapsed * (1.0 - run.progress) / run.progress


def format_duration(seconds: float | None) -> str:
    """`1h 02m`, `3m 05s`, `42s`; an em dash when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    whole = max(0, int(round(seconds)))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"

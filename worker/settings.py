"""Worker settings, all read from the environment (one code path for the embedded default
and for Redis + PostgreSQL at scale)."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from db.engine import bml_home
from worker import spare

EMBEDDED_SCHEME = "bmlsqla"
QUEUE_NAME = "bml"
TASK_NAME = "bml.execute_run"


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def broker_url() -> str:
    """BML_BROKER_URL, or the embedded broker: a SQLite file under BML_HOME (no server)."""
    url = os.environ.get("BML_BROKER_URL", "").strip()
    if url:
        return url
    return f"{EMBEDDED_SCHEME}+sqlite:///{bml_home() / 'broker.db'}"


def is_embedded(url: str | None = None) -> bool:
    return (url or broker_url()).startswith(EMBEDDED_SCHEME + "+")


def redact(url: str) -> str:
    """The URL without its password, for display."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


def runs_dir() -> Path:
    """Where run processes keep checkpoints (BML_RUNS_DIR; default BML_HOME/runs). Put it on
    shared storage when workers on several hosts should resume each other's runs."""
    return Path(os.environ.get("BML_RUNS_DIR") or bml_home() / "runs").resolve()


def run_dir(run_id: int, created_at: datetime) -> Path:
    """One run's directory (checkpoints, attempt logs): keyed by its id AND its creation time,
    so a new run that gets a deleted run's id (SQLite hands out the highest id again) never
    finds, or resumes from, that run's files."""
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return runs_dir() / f"run-{run_id}-{stamp}"


def remove_run_files(run_id: int, created_at: datetime) -> None:
    """Delete a run's directory (and the id-only directory of releases before run_dir)."""
    for path in (run_dir(run_id, created_at), runs_dir() / f"run-{run_id}"):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class SupervisorSettings:
    heartbeat_interval_s: float
    stale_after_s: float
    cancel_grace_s: float
    reaper_interval_s: float
    warm_start: bool = False  # start the next run's process while a run trains (worker.spare)
    cancel_poll_s: float = 0.25  # how often the run process reads its cancel flag (a prune is one)

    @classmethod
    def from_env(cls) -> SupervisorSettings:
        return cls(
            heartbeat_interval_s=_float("BML_HEARTBEAT_INTERVAL_S", 1.0),
            stale_after_s=_float("BML_STALE_AFTER_S", 30.0),
            cancel_grace_s=_float("BML_CANCEL_GRACE_S", 8.0),
            reaper_interval_s=_float("BML_REAPER_INTERVAL_S", 5.0),
            warm_start=spare.enabled(),
            cancel_poll_s=_float("BML_CANCEL_POLL_S", 0.25),
        )

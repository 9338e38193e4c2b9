"""Helpers shared by the store benchmarks: timing summaries, machine description, a
throw-away PostgreSQL database, a TCP proxy that can cut PostgreSQL off, and the MLflow and
TensorBoard trackers the logging benchmarks compare against."""

from __future__ import annotations

import contextlib
import os
import platform
import random
import secrets
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("?" where there is none)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return "?"


def machine() -> str:
    cpu = cpu_model()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores ({cpu}), "
        f"Python {platform.python_version()}, load avg {load:.2f} at start"
    )


def summary(values: list[float]) -> str:
    """median [min - max] of n"""
    return f"{statistics.median(values):.4g} [{min(values):.4g} - {max(values):.4g}] (n={len(values)})"


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(sql.encode())


@contextlib.contextmanager
def postgres_database(label: str, port: int = PG_PORT) -> Iterator[tuple[str, str]]:
    """(url, name) of a fresh database, dropped afterwards."""
    if subprocess.run(["pg_isready", "-h", PG_HOST, "-p", str(PG_PORT), "-q"]).returncode != 0:
        raise SystemExit("PostgreSQL is not running on 127.0.0.1:5432 (make services)")
    name = f"bml_bench_{label}_{os.getpid()}_{secrets.token_hex(3)}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{port}/{name}", name
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def compare_trackers(work: Path, experiment: str, install_hint: str, skipped: list[str]) -> tuple[Any, Any]:
    """The comparison trackers of the logging benchmarks: (the mlflow module with a run
    started in work/mlflow.db under `experiment`, a TensorBoard SummaryWriter on work/tb);
    None for one that is not installed, said in `skipped` with `install_hint`."""
    mlflow_module = writer = None
    try:
        import logging

        import mlflow

        logging.getLogger("mlflow").setLevel(logging.ERROR)
        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
        mlflow.set_experiment(experiment)
        mlflow.start_run()
        mlflow_module = mlflow
    except ImportError:
        skipped.append(f"mlflow (not installed: {install_hint})")
    try:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(work / "tb"))
    except ImportError:
        skipped.append(f"tensorboard (not installed: {install_hint})")
    return mlflow_module, writer


def close_trackers(mlflow: Any, writer: Any) -> None:
    """End compare_trackers' MLflow run and close its SummaryWriter (None: not opened)."""
    if mlflow is not None:
        mlflow.end_run()
    if writer is not None:
        writer.close()


def interleaved_rounds(
    variants: list[str], block: Callable[[str, int], float], block_steps: dict[str, int], rounds: int
) -> list[dict[str, float]]:
    """`rounds` rounds of one block per variant (`block(name, steps)` -> seconds per step), in
    an order shuffled each round (seed 0); each round's times, printed as it ends."""
    rng = random.Random(0)
    per_round: list[dict[str, float]] = []
    for r in range(rounds):
        order = list(variants)
        rng.shuffle(order)
        step_s = {name: block(name, block_steps[name]) for name in order}
        per_round.append(step_s)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v * 1000:.3f} ms" for k, v in step_s.items()), flush=True)
    return per_round

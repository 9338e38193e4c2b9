"""Runs inserted into a store without training, for the report tests: configs,
summaries and the series the report draws (ρ per modality, validation accuracy)."""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine

import db


def fake_summary(acc: float, seed: int) -> dict[str, Any]:
    return {
        "run": {"seed": seed},
        "best_epoch": 3,
        "val": {"acc": acc + 0.01, "f1": acc, "map": acc, "acc_per_modality": {"audio": 0.5, "visual": 0.4}},
        "test": {
            "acc": acc,
            "f1": round(acc - 0.02, 4),
            "map": round(acc + 0.03, 4),
            "acc_per_modality": {"audio": round(acc - 0.1, 4), "visual": round(acc - 0.25 + 0.01 * seed, 4)},
            "imbalance_degree": round(0.2 + 0.01 * seed, 4),
        },
        "train": {"steps": 40, "seconds": 4.0 + seed, "samples_per_second": 100.0},
    }


def add_run(
    engine: Engine,
    strategies: list[Any],
    seed: int,
    acc: float | None,
    *,
    group: str = "study",
    status: str = "succeeded",
    dataset: str = "synthetic",
    steps: int = 40,
    summary_extra: dict[str, Any] | None = None,
) -> int:
    """A run with ρ and validation-accuracy series; finished with a summary when `acc` is given."""
    label = "+".join(s if isinstance(s, str) else s["name"] for s in strategies) or "joint"
    config = {
        "name": f"{label}-s{seed}",
        "group": group,
        "seed": seed,
        "strategies": strategies,
        "dataset": {"name": dataset},
    }
    run_id = db.create_run(engine, config)
    if status == "queued":
        return run_id
    db.claim_run(engine, run_id, "test-worker")
    shift = 0.1 * (len(strategies) + seed)
    db.write_points(
        engine,
        run_id,
        {
            "imbalance/ratio/audio": [(s, 2.0 - shift + math.sin(s / 5)) for s in range(1, steps + 1)],
            "imbalance/ratio/visual": [(s, 0.5 + shift / 4) for s in range(1, steps + 1)],
            "val/acc": [(s, 0.3 + s / 100 + shift / 10) for s in range(10, steps + 1, 10)],
            "val/acc/audio": [(s, 0.25 + s / 120) for s in range(10, steps + 1, 10)],
            "val/acc/visual": [(s, 0.2 + s / 200 + shift / 10) for s in range(10, steps + 1, 10)],
            "train/loss": [(s, 1.0 / s) for s in range(1, steps + 1)],
        },
    )
    if status == "running":
        db.heartbeat(engine, run_id, progress=0.5)
        return run_id
    summary = None if acc is None else {**fake_summary(acc, seed), **(summary_extra or {})}
    db.finish_run(engine, run_id, status, summary=summary)
    return run_id

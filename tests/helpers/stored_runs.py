"""Runs with realistic metric series written straight into a store, for the dashboard
tests: the keys a training run streams (CONTRACT.md), deterministic values, a summary."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

import db


def run_config(
    name: str, group: str, strategies: Sequence[Any], seed: int = 0, **extra: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": name,
        "group": group,
        "seed": seed,
        "strategies": list(strategies),
        "train": {"epochs": 5, "batch_size": 64},
    }
    cfg.update(extra)
    return cfg


def series_for(
    strategies: Sequence[str],
    steps: range,
    seed: int,
    modalities: Sequence[str] = ("audio", "visual"),
    eval_every: int = 20,
) -> dict[str, list[tuple[int, float]]]:
    """{key: [(step, value), ...]} shaped like a training run's."""
    rng = random.Random(seed)
    out: dict[str, list[tuple[int, float]]] = {}

    def put(key: str, step: int, value: float) -> None:
        out.setdefault(key, []).append((step, value))

    for step in steps:
        t = step / max(1, steps.stop)
        strong = 1.0 + 0.8 * math.exp(-3 * t) + rng.gauss(0, 0.02)
        put("train/loss", step, 1.8 * math.exp(-2 * t) + 0.1 + rng.gauss(0, 0.01))
        put("train/acc", step, 0.3 + 0.6 * t + rng.gauss(0, 0.01))
        for i, m in enumerate(modalities):
            ratio = strong if i == 0 else 1.0 / strong
            put(f"imbalance/ratio/{m}", step, ratio)
            put(f"train/acc/{m}", step, (0.25 + 0.55 * t) * (1.0 if i == 0 else 0.7))
            put(f"train/loss/{m}", step, 1.9 * math.exp(-(2 - i) * t) + 0.2)
            put(f"grad/norm/{m}", step, 0.5 + 0.1 * i + rng.gauss(0, 0.01))
            if "ogm" in strategies or "ogm_ge" in strategies:
                put(f"ogm/coef/{m}", step, 1.0 - math.tanh(0.8 * ratio) if ratio > 1 else 1.0)
            if "opm" in strategies:
                put(f"opm/drop_prob/{m}", step, 0.5 * (1 + 0.5 * math.tanh(ratio - 1)) if ratio > 1 else 0.0)
        if step % eval_every == 0:
            put("val/acc", step, 0.3 + 0.5 * t + 0.01 * seed)
            put("val/loss", step, 1.5 * math.exp(-2 * t) + 0.2)
            for i, m in enumerate(modalities):
                put(f"val/acc/{m}", step, (0.25 + 0.5 * t) * (1.0 if i == 0 else 0.7))
    return out


def summary_for(
    val_acc: float, test_acc: float, per_modality: dict[str, float], degree: float, seconds: float
) -> dict[str, Any]:
    return {
        "run": {},
        "best_epoch": 3,
        "val": {"acc": val_acc, "f1": val_acc - 0.02, "map": val_acc, "acc_per_modality": per_modality},
        "test": {
            "acc": test_acc,
            "f1": test_acc - 0.03,
            "map": test_acc,
            "acc_per_modality": per_modality,
            "imbalance_degree": degree,
        },
        "train": {"steps": 100, "seconds": seconds, "samples_per_second": 1000.0},
    }


def add_run(
    engine: Engine,
    name: str,
    group: str = "g",
    strategies: Sequence[str] = ("ogm_ge",),
    *,
    seed: int = 0,
    steps: int = 200,
    status: str = "succeeded",
    summary: dict[str, Any] | None = None,
    **extra: Any,
) -> int:
    """A run in `status` with `steps` steps of series (none for queued runs)."""
    run_id = db.create_run(engine, run_config(name, group, list(strategies), seed, **extra))
    if status == "queued":
        return run_id
    db.claim_run(engine, run_id, "test-worker")
    if steps:
        db.write_points(engine, run_id, series_for(list(strategies), range(1, steps + 1), seed))
    if status == "running":
        db.heartbeat(engine, run_id, progress=0.4, step=steps)
        return run_id
    if summary is None and status == "succeeded":
        base = 0.6 + 0.01 * seed
        summary = summary_for(base, base - 0.02, {"audio": base - 0.05, "visual": base - 0.2}, 0.1, 12.0)
    db.finish_run(engine, run_id, status, summary=summary, error="stopped" if status == "failed" else None)
    return run_id


def add_seeded_runs(
    engine: Engine,
    group: str,
    accs: dict[str, list[float]],
    steps: int,
    summary: Callable[[float, int], dict[str, Any]],
) -> dict[str, list[int]]:
    """One succeeded run per strategy (joint: none) and seed, named GROUP-STRATEGY-sSEED, its
    summary `summary(acc, seed)` for the seed's accuracy in `accs`; the ids per strategy."""
    ids: dict[str, list[int]] = {}
    for strategy, strategy_accs in accs.items():
        for seed, acc in enumerate(strategy_accs):
            ids.setdefault(strategy, []).append(
                add_run(
                    engine,
                    f"{group}-{strategy}-s{seed}",
                    group,
                    [] if strategy == "joint" else [strategy],
                    seed=seed,
                    steps=steps,
                    summary=summary(acc, seed),
                )
            )
    return ids

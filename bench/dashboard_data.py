"""Shared by the dashboard benchmarks: a store filled with finished runs whose series have
the keys a two-modality run streams every step (CONTRACT.md), and a free port."""

from __future__ import annotations

import math
import random
import socket
from typing import Any

from sqlalchemy import Engine

import db

MODALITIES = ("audio", "visual")


def step_metrics(step: int, total: int, rng: random.Random, strategy: str) -> dict[str, float]:
    """One step's metrics, shaped like a run's (ratio decaying towards 1, accuracies rising)."""
    t = step / total
    rho = 1.0 + 0.8 * math.exp(-3 * t) + rng.gauss(0, 0.03)
    out = {
        "train/loss": 1.8 * math.exp(-2 * t) + 0.1 + rng.gauss(0, 0.02),
        "train/acc": 0.3 + 0.6 * t + rng.gauss(0, 0.02),
        "lr": 0.01,
        "time/step_ms": 5.0 + rng.random(),
    }
    for i, m in enumerate(MODALITIES):
        ratio = rho if i == 0 else 1.0 / rho
        out[f"imbalance/ratio/{m}"] = ratio
        out[f"imbalance/score/{m}"] = 0.5 * ratio
        out[f"train/acc/{m}"] = (0.25 + 0.55 * t) * (1.0 if i == 0 else 0.7)
        out[f"train/loss/{m}"] = 1.9 * math.exp(-(2 - i) * t) + 0.2
        out[f"grad/norm/{m}"] = 0.5 + 0.1 * i + rng.gauss(0, 0.02)
        if strategy == "ogm_ge":
            out[f"ogm/coef/{m}"] = 1.0 - math.tanh(0.8 * ratio) if ratio > 1 else 1.0
        else:
            out[f"opm/drop_prob/{m}"] = 0.5 * (1 + 0.5 * math.tanh(ratio - 1)) if ratio > 1 else 0.0
    return out


def eval_metrics(step: int, total: int, seed: int) -> dict[str, float]:
    t = step / total
    out = {"val/acc": 0.3 + 0.5 * t + 0.01 * seed, "val/loss": 1.5 * math.exp(-2 * t) + 0.2}
    for i, m in enumerate(MODALITIES):
        out[f"val/acc/{m}"] = (0.25 + 0.5 * t) * (1.0 if i == 0 else 0.7)
    return out


def fill_runs(engine: Engine, runs: int, steps: int, eval_every: int = 100) -> list[int]:
    """`runs` finished runs of `steps` steps (half OGM-GE, half OPM; 5 seeds per group)."""
    ids: list[int] = []
    for r in range(runs):
        strategy = "ogm_ge" if r % 2 == 0 else "opm"
        seed = r // 2 % 5
        cfg: dict[str, Any] = {
            "name": f"{strategy}-s{seed}-{r}",
            "group": f"{strategy}-{r // 10}",
            "seed": seed,
            "strategies": [strategy],
            "train": {"epochs": 100, "batch_size": 64},
        }
        run_id = db.create_run(engine, cfg)
        db.claim_run(engine, run_id, "bench")
        rng = random.Random(r)
        series: dict[str, list[tuple[int, float]]] = {}
        for step in range(1, steps + 1):
            for k, v in step_metrics(step, steps, rng, strategy).items():
                series.setdefault(k, []).append((step, v))
            if step % eval_every == 0:
                for k, v in eval_metrics(step, steps, seed).items():
                    series.setdefault(k, []).append((step, v))
        db.write_points(engine, run_id, series)
        acc = 0.6 + 0.01 * seed
        db.finish_run(
            engine,
            run_id,
            "succeeded",
            summary={
                "run": {},
                "best_epoch": 90,
                "val": {
                    "acc": acc,
                    "f1": acc,
                    "map": acc,
                    "acc_per_modality": {"audio": acc - 0.05, "visual": acc - 0.2},
                },
                "test": {
                    "acc": acc - 0.02,
                    "f1": acc - 0.03,
                    "map": acc,
                    "acc_per_modality": {"audio": acc - 0.07, "visual": acc - 0.22},
                    "imbalance_degree": 0.1,
                },
                "train": {"steps": steps, "seconds": 60.0, "samples_per_second": 1000.0},
            },
        )
        ids.append(run_id)
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])

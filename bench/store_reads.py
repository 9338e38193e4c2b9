"""Reads on SQLite (and, with --backends, PostgreSQL): a 1,000,000-point series
downsampled to 2,000 buckets; the last 100 steps of 20 series; run listing with 10,000
runs stored; plus the incremental poll and latest values. Each figure is the median of
--repeat calls on a warm engine (the first call of a fresh engine is shown as "cold").

    .venv/bin/python bench/store_reads.py [--repeat 30] [--backends sqlite]"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store_common import machine, postgres_database

TARGETS_MS = {
    "downsample 1M -> 2,000 buckets": 150,
    "last 100 steps of 20 series": 20,
    "list runs (page of 50)": 100,
}


def populate(url: str) -> dict[str, int]:
    from sqlalchemy import insert

    import db
    from db.engine import write_tx
    from db.models import Run, RunTag, utcnow

    engine = db.make_engine(url)
    db.upgrade(engine)
    long_run = db.create_run(engine, {"name": "long", "group": "bench"})
    rng = random.Random(0)
    values = [(s, math.sin(s / 3000) + rng.gauss(0, 0.05)) for s in range(1, 1_000_001)]
    values[777_777 - 1] = (777_777, 50.0)
    t0 = time.perf_counter()
    db.write_points(engine, long_run, {"train/loss": values})
    print(f"  wrote 1,000,000 points in {time.perf_counter() - t0:.1f}s", flush=True)
    wide_run = db.create_run(engine, {"name": "wide", "group": "bench"})
    db.write_points(
        engine,
        wide_run,
        {f"metric/{k:02d}": [(s, s * 0.001 + k) for s in range(1, 50_001)] for k in range(20)},
    )
    print("  wrote 20 x 50,000 points", flush=True)
    template = db.get_run(engine, long_run).config
    statuses = ["succeeded"] * 6 + ["failed", "cancelled", "queued", "running"]
    strategies = ["ogm_ge", "opm", "ogm", "joint"]
    rows = []
    for i in range(10_000 - 2):
        status = statuses[i % len(statuses)]
        rows.append(
            {
                "name": f"run-{i}",
                "group_name": f"grid-{i % 250}",
                "status": status,
                "config": {**template, "name": f"run-{i}", "seed": i % 5},
                "strategy": strategies[i % 4],
                "dataset": "synthetic" if i % 3 else "cremad",
                "seed": i % 5,
                "attempt": 1,
                "max_attempts": 3,
                "created_at": utcnow(),
                "progress": 1.0 if status == "succeeded" else 0.3,
                "step": 1000,
                "total_steps": 1000,
                "summary": {"best_epoch": 3, "test": {"acc": 0.7, "f1": 0.6}}
                if status == "succeeded"
                else None,
                "cancel_requested": False,
                "dropped_points": 0,
            }
        )
    with write_tx(engine) as conn:
        conn.execute(insert(Run.__table__), rows)
        ids = [r for (r,) in conn.exec_driver_sql("SELECT id FROM runs ORDER BY id")]
        conn.execute(insert(RunTag), [{"run_id": rid, "tag": f"t{rid % 10}"} for rid in ids])
    assert db.list_runs(engine, limit=1).total == 10_000
    engine.dispose()
    return {"long": long_run, "wide": wide_run}


def measure(url: str, runs: dict[str, int], repeat: int) -> dict[str, dict[str, float]]:
    import db

    wide_keys = [f"metric/{k:02d}" for k in range(20)]
    checks: dict[str, Callable[[Any], Any]] = {
        "downsample 1M -> 2,000 buckets": lambda e: db.downsampled_series(
            e, runs["long"], "train/loss", 2000
        ),
        "last 100 steps of 20 series": lambda e: db.series_tail(e, runs["wide"], 100, wide_keys),
        "list runs (page of 50)": lambda e: db.list_runs(e, limit=50),
        "list runs, status filter (page of 50)": lambda e: db.list_runs(e, status="failed", limit=50),
        "list runs, text search (page of 50)": lambda e: db.list_runs(e, text="run-77", limit=50),
        "list runs, tag filter (page of 50)": lambda e: db.list_runs(e, tags=["t3"], limit=50),
        "list runs, all 10,000": lambda e: db.list_runs(e, limit=None),
        "incremental poll, 20 series after step 49,900": lambda e: db.series_since(
            e, runs["wide"], after_step=49_900, keys=wide_keys
        ),
        "latest values of 20 series": lambda e: db.latest_values(e, runs["wide"]),
    }
    out: dict[str, dict[str, float]] = {}
    for name, fn in checks.items():
        engine = db.make_engine(url)
        t0 = time.perf_counter()
        result = fn(engine)
        cold = time.perf_counter() - t0
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn(engine)
            times.append(time.perf_counter() - t0)
        engine.dispose()
        out[name] = {
            "cold_ms": cold * 1000,
            "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000,
        }
        if name.startswith("downsample"):
            assert max(result.maxs) == 50.0 and len(result.steps) <= 2000
            out[name]["buckets"] = len(result.steps)
            out[name]["source_width"] = result.source_width
        target = TARGETS_MS.get(name)
        verdict = (
            ""
            if target is None
            else f"  (target <= {target} ms: {'ok' if out[name]['median_ms'] <= target else 'MISSED'})"
        )
        print(
            f"  {name}: median {out[name]['median_ms']:.2f} ms, max {out[name]['max_ms']:.2f} ms, "
            f"cold {cold * 1000:.1f} ms{verdict}",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--backends", default="sqlite")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results: dict[str, Any] = {"machine": machine()}
    for backend in args.backends.split(","):
        print(f"{backend}:")
        if backend == "sqlite":
            url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bml-reads-')) / 'bml.db'}"
            results[backend] = measure(url, populate(url), args.repeat)
        else:
            with postgres_database("reads") as (url, _):
                results[backend] = measure(url, populate(url), args.repeat)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Ingest: points per second sustained through DbMetricSink, 1 run x 20 keys x 100,000
steps (2,000,000 points), on SQLite (a file in a temp dir) and PostgreSQL (a fresh
database on 127.0.0.1:5432, dropped after). The producer calls on_step as fast as it can;
the sink runs with block_when_full so nothing is dropped and the figure is the writer's
sustained rate: wall time from the first on_step until close() has committed the last
point (rollups included). Every point is counted back from the database.

    .venv/bin/python bench/store_ingest.py [--rounds 3] [--backends sqlite,postgresql]"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from store_common import machine, postgres_database, summary

KEYS = [f"metric/{i:02d}" for i in range(20)]


def one_round(url: str, steps: int) -> tuple[float, int]:
    import db

    engine = db.make_engine(url)
    db.upgrade(engine)
    run_id = db.create_run(engine, {"name": "ingest"})
    sink = db.DbMetricSink(engine, run_id, block_when_full=True, max_pending_points=500_000)
    sink.on_start({"total_steps": steps})
    values = [float(i) / 7 for i in range(len(KEYS))]
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        sink.on_step(step, 0, dict(zip(KEYS, values, strict=True)))
    sink.on_end("succeeded", None)
    sink.close()
    elapsed = time.perf_counter() - t0
    stored = sum(len(s.steps) for s in db.run_points(engine, run_id).values())
    engine.dispose()
    return len(KEYS) * steps / elapsed, stored


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results: dict[str, Any] = {"machine": machine()}
    for backend in args.backends.split(","):
        rates = []
        for r in range(args.rounds):
            if backend == "sqlite":
                url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='bml-ingest-')) / 'bml.db'}"
                rate, stored = one_round(url, args.steps)
            else:
                with postgres_database("ingest") as (url, _):
                    rate, stored = one_round(url, args.steps)
            assert stored == len(KEYS) * args.steps, (stored, len(KEYS) * args.steps)
            rates.append(rate)
            print(f"{backend} round {r + 1}: {rate:,.0f} points/s ({stored:,} points stored)", flush=True)
        results[backend] = rates
        print(f"{backend}: {summary(rates)} points/s")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

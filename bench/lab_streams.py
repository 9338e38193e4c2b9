"""The streams of `bench/lab_scale.py` (issue 22, item b): `ReplayLoadGenerator`, a load
generator (not a trainer) writing a synthetic per-step series through the product's sink at a
set rate, and `LagProbe`, one reader timing when each written step is seen committed."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

PROBE_KEY = "train/loss"


@dataclass
class ReplayLoadGenerator:
    """A load generator (not a trainer): one stream writes `steps` steps of `keys` metrics
    each at `rate` steps/s through the product's `DbMetricSink`, recording when each step
    was handed to the sink."""

    engine: Any
    run_id: int
    rate: float
    keys: int
    duration_s: float
    written_at: dict[int, float] = field(default_factory=dict)
    steps: int = 0
    sink_figures: dict[str, int] = field(default_factory=dict)

    def metric_names(self) -> list[str]:
        base = [PROBE_KEY, "train/acc", "imbalance/ratio/audio", "imbalance/ratio/visual"]
        return (base + [f"replay/k{i:02d}" for i in range(self.keys)])[: self.keys]

    def run(self, stop: threading.Event) -> None:
        from db.sink import DbMetricSink

        names = self.metric_names()
        rng = random.Random(self.run_id)
        sink = DbMetricSink(self.engine, self.run_id, record_status=False)
        t0 = time.monotonic()
        step = 0
        while not stop.is_set() and time.monotonic() - t0 < self.duration_s:
            step += 1
            target = t0 + step / self.rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            metrics = {k: 1.0 / step + rng.random() * 1e-3 for k in names}
            self.written_at[step] = time.time()
            sink.on_step(step, 0, metrics)
        self.steps = step
        sink.close()
        self.sink_figures = {
            "written": sink.written_points,
            "dropped": sink.dropped_points,
            "lost": sink.lost_points,
        }


class LagProbe:
    """One reader polling the newest committed step of every stream's probe series (one
    statement per poll): a step's lag is when it was first seen minus when it was written."""

    def __init__(self, engine: Any, gens: list[ReplayLoadGenerator], interval_s: float):
        self.engine, self.gens, self.interval_s = engine, gens, interval_s
        self.lags: list[float] = []
        self.seen: dict[int, int] = {g.run_id: 0 for g in gens}

    def run(self, stop: threading.Event) -> None:
        from sqlalchemy import func, select

        from db.models import Point, Series

        by_run = {g.run_id: g for g in self.gens}
        sids: dict[int, int] = {}
        while True:
            done = stop.is_set()
            with self.engine.connect() as conn:
                if len(sids) < len(by_run):
                    q = select(Series.id, Series.run_id).where(
                        Series.run_id.in_(list(by_run)), Series.key == PROBE_KEY
                    )
                    sids = {int(sid): int(rid) for sid, rid in conn.execute(q)}
                rows = conn.execute(
                    select(Point.series_id, func.max(Point.step))
                    .where(Point.series_id.in_(list(sids)))
                    .group_by(Point.series_id)
                ).all()
            now = time.time()
            for sid, newest in rows:
                rid = sids[int(sid)]
                gen = by_run[rid]
                for s in range(self.seen[rid] + 1, int(newest) + 1):
                    if s in gen.written_at:
                        self.lags.append(now - gen.written_at[s])
                self.seen[rid] = max(self.seen[rid], int(newest))
            if done:
                return
            time.sleep(self.interval_s)


def main() -> None:
    """`python bench/lab_streams.py URL --streams N --rate R --keys K --seconds S`: N new
    running runs streamed through the sink into the store at URL for S seconds (or until
    SIGTERM/SIGINT), in a process of their own (the load a test measures beside, e.g. the Live
    latency test). Prints `started` once they write, then one JSON line of figures."""
    import argparse
    import json
    import signal
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import db

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("url")
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--keys", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    engine = db.make_engine(args.url)
    gens = []
    for i in range(args.streams):
        rid = db.create_run(engine, {"name": f"load-{i}", "group": "stream-load", "seed": i})
        db.claim_run(engine, rid, "replay")
        gens.append(ReplayLoadGenerator(engine, rid, args.rate, args.keys, args.seconds))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [threading.Thread(target=g.run, args=(stop,), daemon=True) for g in gens]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    print("started", flush=True)
    for t in threads:
        while t.is_alive():
            t.join(timeout=0.2)
    wall = time.monotonic() - t0
    for g in gens:
        db.finish_run(engine, g.run_id, "succeeded")
    steps = sum(g.steps for g in gens)
    figures = {
        "streams": args.streams,
        "rate": args.rate,
        "keys": args.keys,
        "seconds": round(wall, 1),
        "steps": steps,
        "steps_per_s": round(steps / wall, 1) if wall else 0.0,
        "written": sum(g.sink_figures.get("written", 0) for g in gens),
        "dropped": sum(g.sink_figures.get("dropped", 0) for g in gens),
        "lost": sum(g.sink_figures.get("lost", 0) for g in gens),
    }
    print(json.dumps(figures), flush=True)
    engine.dispose()


if __name__ == "__main__":
    main()

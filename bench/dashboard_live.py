"""The cost of one Live-page refresh, in process: the store queries of `app.views.live.data.refresh`
(new points since the last step of each series, new events, the run row), building the
page's Plotly figures, and serialising them to JSON as Streamlit does for the charts'
component data (`app/plotly_chart.py`) before sending them to the browser.

A run with `--steps` steps of the 20 series a two-modality OGM-GE run streams is written
into a fresh SQLite store (temporary BML_HOME); the Live state is loaded once (downsampled
history); then each round writes one more step (not timed) and times one refresh. Reports
medians and 90th percentiles over `--rounds` rounds, for each history length asked.

    python bench/dashboard_live.py                       # 10,000 and 100,000 steps, 200 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_history(steps: int, rounds: int) -> dict[str, object]:
    from dashboard_data import eval_metrics, step_metrics

    import db
    from app.plotly_chart import styled
    from app.views.live import data as lv

    engine = db.make_engine()
    db.upgrade(engine)
    run_id = db.create_run(engine, {"name": f"live-{steps}", "strategies": ["ogm_ge"]})
    db.claim_run(engine, run_id, "bench")
    rng = random.Random(0)
    series: dict[str, list[tuple[int, float]]] = {}
    for step in range(1, steps + 1):
        for k, v in step_metrics(step, steps + rounds, rng, "ogm_ge").items():
            series.setdefault(k, []).append((step, v))
        if step % 100 == 0:
            for k, v in eval_metrics(step, steps + rounds, 0).items():
                series.setdefault(k, []).append((step, v))
    chunk_steps = 20_000  # bounded transactions
    for start in range(0, steps, chunk_steps):
        chunk = {k: [p for p in v if start < p[0] <= start + chunk_steps] for k, v in series.items()}
        db.write_points(engine, run_id, {k: v for k, v in chunk.items() if v})
    state = lv.refresh(engine, lv.LiveState(run_id=run_id))
    initial_points = sum(len(s.steps) for s in state.series.values())

    query_ms: list[float] = []
    figure_ms: list[float] = []
    json_ms: list[float] = []
    total_ms: list[float] = []
    payload: list[int] = []
    for i in range(rounds):
        step = steps + 1 + i
        db.write_points(
            engine,
            run_id,
            {k: [(step, v)] for k, v in step_metrics(step, steps + rounds, rng, "ogm_ge").items()},
        )
        t0 = time.perf_counter()
        lv.refresh(engine, state)
        t1 = time.perf_counter()
        figures = [styled(f) for f in (lv.panel_figure(state, p) for p in lv.PANELS) if f is not None]
        t2 = time.perf_counter()
        size = sum(len(json.dumps({"figure": f})) for f in figures)
        t3 = time.perf_counter()
        query_ms.append((t1 - t0) * 1000)
        figure_ms.append((t2 - t1) * 1000)
        json_ms.append((t3 - t2) * 1000)
        total_ms.append((t3 - t0) * 1000)
        payload.append(size)
        assert state.last_new_points == len(step_metrics(step, steps, rng, "ogm_ge"))
    engine.dispose()

    def stats(values: list[float]) -> dict[str, float]:
        return {"median": round(statistics.median(values), 2), "p90": round(percentile(values, 0.9), 2)}

    return {
        "history_steps": steps,
        "series": len(state.series),
        "points_held_after_load": initial_points,
        "queries_ms": stats(query_ms),
        "figures_ms": stats(figure_ms),
        "json_ms": stats(json_ms),
        "total_ms": stats(total_ms),
        "payload_kib_median": round(statistics.median(payload) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    for steps in args.steps:
        home = Path(tempfile.mkdtemp(prefix="bml-bench-live-"))
        os.environ["BML_HOME"] = str(home)
        os.environ.pop("BML_DATABASE_URL", None)
        results.append(bench_history(steps, args.rounds))
        print(json.dumps(results[-1]), flush=True)
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "rounds": args.rounds,
        "results": results,
    }
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()

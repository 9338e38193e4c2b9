"""The cost of one Live-page refresh, in process: the store queries of `app.views.live.data.refresh`
(new points since the last step of each series, new events, the run row), building the
page's Plotly figures, and serialising them to JSON as Streamlit does for the charts'
component data (`app/plotly_chart.py`) before sending them to the browser.

A run with `--steps` steps of the 20 series a two-modality OGM-GE run streams is written
into a fresh SQLite store (temporary BML_HOME); the Live state is loaded once (downsampled
history); then each round writes one more step (not timed) and times the page's change check that
finds it (`is_due`), one refresh, and the next check, which finds nothing new (what the page
pays every `poll_interval_s` while nothing is committed). Reports medians and 90th
percentiles over `--rounds` rounds, for each history length asked. With `--streams N`, N
other runs stream through the sink into the same store meanwhile (bench/lab_streams.py in a
process of its own, `--stream-rate` steps/s of `--stream-keys` series each).

    python bench/dashboard_live.py                       # 10,000 and 100,000 steps, 200 rounds
    python bench/dashboard_live.py --steps 10000 --streams 50   # under 50 x 20 steps/s x 30 keys
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
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


def start_streams(url: str, streams: int, rate: float, keys: int) -> subprocess.Popen[str] | None:
    """`streams` other runs written through the sink meanwhile (bench/lab_streams.py, a process)."""
    if streams <= 0:
        return None
    cmd = [sys.executable, str(ROOT / "bench" / "lab_streams.py"), url, "--streams", str(streams)]
    proc = subprocess.Popen(
        [*cmd, "--rate", str(rate), "--keys", str(keys), "--seconds", "3600"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "started"
    time.sleep(3.0)  # their first flushes are in
    return proc


def stop_streams(proc: subprocess.Popen[str] | None) -> dict[str, object] | None:
    if proc is None:
        return None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    figures: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return figures


def bench_history(
    steps: int, rounds: int, streams: int = 0, stream_rate: float = 20.0, stream_keys: int = 30
) -> dict[str, object]:
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

    load = start_streams(db.database_url(), streams, stream_rate, stream_keys)
    idle_ms: list[float] = []
    due_ms: list[float] = []
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
        assert lv.is_due(engine, state)  # the change check that finds the new step
        td = time.perf_counter()
        lv.refresh(engine, state)
        t1 = time.perf_counter()
        assert not lv.is_due(engine, state)  # and the next one, with nothing new
        idle_ms.append((time.perf_counter() - t1) * 1000)
        due_ms.append((td - t0) * 1000)
        t1 = time.perf_counter()
        figures = [styled(f) for f in (lv.panel_figure(state, p) for p in lv.PANELS) if f is not None]
        t2 = time.perf_counter()
        size = sum(len(json.dumps({"figure": f})) for f in figures)
        t3 = time.perf_counter()
        query_ms.append((t1 - td) * 1000)
        figure_ms.append((t2 - t1) * 1000)
        json_ms.append((t3 - t2) * 1000)
        total_ms.append(due_ms[-1] + (t3 - td) * 1000 - idle_ms[-1])  # the check that found it, the refresh
        payload.append(size)
        assert state.last_new_points == len(step_metrics(step, steps, rng, "ogm_ge"))
    load_figures = stop_streams(load)
    engine.dispose()

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "median": round(statistics.median(values), 2),
            "p90": round(percentile(values, 0.9), 2),
            "p95": round(percentile(values, 0.95), 2),
        }

    return {
        "history_steps": steps,
        "series": len(state.series),
        "points_held_after_load": initial_points,
        "check_idle_ms": stats(idle_ms),
        "check_due_ms": stats(due_ms),
        "queries_ms": stats(query_ms),
        "figures_ms": stats(figure_ms),
        "json_ms": stats(json_ms),
        "total_ms": stats(total_ms),
        "payload_kib_median": round(statistics.median(payload) / 1024, 1),
        "streams": load_figures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--streams", type=int, default=0, help="other runs streaming meanwhile")
    parser.add_argument("--stream-rate", type=float, default=20.0, help="their steps/s")
    parser.add_argument("--stream-keys", type=int, default=30, help="their series each")
    args = parser.parse_args()
    results = []
    for steps in args.steps:
        home = Path(tempfile.mkdtemp(prefix="bml-bench-live-"))
        os.environ["BML_HOME"] = str(home)
        os.environ.pop("BML_DATABASE_URL", None)
        results.append(bench_history(steps, args.rounds, args.streams, args.stream_rate, args.stream_keys))
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

"""Memory while the database is away: a producer logs 16 metrics per step at about 1,000
steps/s into DbMetricSink pointed at PostgreSQL through a TCP proxy; the proxy is
stopped for --outage-s seconds, then started again. Sampled every 20 ms: the sink's
pending points (queued + held) and the process RSS. Two runs: a bound below what the
outage produces (points beyond it are dropped and counted on the run) and the default
bound (everything is held and written).

    .venv/bin/python bench/store_memory.py [--outage-s 8]"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path
from typing import Any

from store_common import machine, postgres_database  # also puts the repository on sys.path

from tests.tcp_proxy import TcpProxy

KEYS = [f"metric/{i:02d}" for i in range(16)]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def scenario(bound: int, outage_s: float, total_s: float) -> dict[str, Any]:
    import db

    with postgres_database("memory") as (url, name):
        direct = db.make_engine(url)
        db.upgrade(direct)
        run_id = db.create_run(direct, {"name": "memory"})
        proxy = TcpProxy()
        proxy.start()
        through = db.make_engine(url.replace(":5432/", f":{proxy.port}/"))
        sink = db.DbMetricSink(through, run_id, max_pending_points=bound, retry_max_s=1.0)
        samples: list[tuple[float, int, float]] = []
        stop = threading.Event()
        t0 = time.monotonic()

        def sampler() -> None:
            while not stop.is_set():
                samples.append((time.monotonic() - t0, sink.pending_points, rss_mb()))
                time.sleep(0.02)

        rss_before = rss_mb()
        threading.Thread(target=sampler, daemon=True).start()
        step = 0
        down = up = False
        while (elapsed := time.monotonic() - t0) < total_s:
            step += 1
            sink.on_step(step, 0, {k: step * 0.001 + i for i, k in enumerate(KEYS)})
            if not down and elapsed > 2.0:
                proxy.stop()
                down = True
            if down and not up and elapsed > 2.0 + outage_s:
                proxy.start()
                up = True
            time.sleep(0.001)
        sink.on_end("succeeded", None)
        sink.close()
        stop.set()
        stored = sum(len(s.steps) for s in db.run_points(direct, run_id).values())
        run = db.get_run(direct, run_id)
        proxy.stop()
        through.dispose()
        direct.dispose()
    sent = step * len(KEYS)
    out = {
        "bound_points": bound,
        "outage_s": outage_s,
        "sent": sent,
        "stored": stored,
        "dropped_counted_by_sink": sink.dropped_points,
        "dropped_recorded_on_run": run.dropped_points,
        "max_pending_points": max(p for _, p, _ in samples),
        "rss_before_mb": rss_before,
        "rss_max_mb": max(r for _, _, r in samples),
        "retries": sink.retries,
    }
    assert stored + sink.dropped_points == sent and run.dropped_points == sink.dropped_points
    assert out["max_pending_points"] <= bound
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outage-s", type=float, default=8.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"machine: {machine()}")
    results: dict[str, Any] = {"machine": machine()}
    for label, bound in (("small bound", 50_000), ("default bound", 500_000)):
        r = scenario(bound, args.outage_s, args.outage_s + 5.0)
        results[label] = r
        print(
            f"{label}: bound {r['bound_points']:,} points; outage {r['outage_s']:g}s; sent {r['sent']:,}, "
            f"stored {r['stored']:,}, dropped {r['dropped_counted_by_sink']:,} (recorded on the run: "
            f"{r['dropped_recorded_on_run']:,}); max pending {r['max_pending_points']:,}; "
            f"RSS {r['rss_before_mb']:.0f} -> max {r['rss_max_mb']:.0f} MB; {r['retries']} retries",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""A lab at scale (issue 22, item 1) on this machine's real PostgreSQL and Redis:

(a) N `bml worker` processes (as the product starts them: one Celery process each, -c 1)
    draining M queued short real runs (the built-in trainer, a tiny synthetic model,
    BML_TORCH_THREADS=1), submitted through `services.actions.submit`;
(b) S concurrent replay streams, each writing a synthetic per-step series of K keys at R
    steps/s through the real sink (`db.sink.DbMetricSink`): `ReplayLoadGenerator`, a load
    generator, not a trainer;
(c) page-time probes: direct calls of the page data functions, no HTTP and no browser
    (`/runs`: `filter_options`, the count, `runs_page` + `table_rows` of page 1; `/live`: `live.data.refresh` of a streaming run;
    `/compare`: `compare.data.runs_of` + `group` of up to 20 runs), in a loop while (a) and
    (b) run.

Reported: submit -> start queue latency p50/p95, runs/minute, lost / duplicated runs, sink
lag (step handed to the sink -> seen committed by a reader polling every --probe-ms) p50/p95,
points/s, PostgreSQL bytes per million points (points + rollups + series, indexes included),
page times p50/p95. Invariants asserted (exit 1 when broken, before any timing): every queued
run ran exactly once (succeeded, attempt 1), every written point stored once (per stream:
steps x keys rows, none dropped), no run left `running` after the workers stop.

Own database (`bml_bench_lab_*`, created and dropped) and own Redis key prefix (`bml-lab-*:`,
deleted at the end).

    python bench/lab_scale.py --quick            # 2 workers, 12 runs, 5 streams x 5 s (CI)
    python bench/lab_scale.py                    # 8 workers, 1000 runs, 50 streams x 20 steps/s x 30 keys
    python bench/lab_scale.py --json out.json    # every figure as JSON too
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from lab_faults import FAULT_ENV, FaultInjector, proxied_url  # noqa: E402
from lab_streams import LagProbe, ReplayLoadGenerator  # noqa: E402
from store_common import machine, postgres_database  # noqa: E402

from services.processes import stop_sessions, wait_worker_ready  # noqa: E402

BML = str(Path(sys.executable).parent / "bml")
REDIS_URL = "redis://127.0.0.1:6379/0"
# a real run of a few seconds: 60 synthetic samples, one epoch, one thread
TINY_RUN = {
    "name": "lab",
    "group": "lab-queue",
    "dataset": {"params": {"num_samples": 60}},
    "train": {"epochs": 1, "threads": 1},
    "strategies": ["ogm_ge"],
}


@dataclass
class Settings:
    workers: int
    runs: int
    streams: int
    stream_s: float
    rate: float  # steps/s per stream
    keys: int  # metric keys per step
    filler_runs: int  # finished runs added to the store before (the /runs page at 10,000)
    probe_ms: float
    drain_timeout_s: float
    faults: bool = False  # SIGKILL one worker while all are busy; PostgreSQL away under the streams
    outage_s: float = 3.0  # how long the streams' PostgreSQL is unreachable (--faults)


QUICK = Settings(2, 12, 5, 5.0, 20.0, 30, 0, 50.0, 150.0)
FULL = Settings(8, 1000, 50, 60.0, 20.0, 30, 10_000, 50.0, 3600.0)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def p50_p95(values: list[float]) -> dict[str, float]:
    return {"p50": pct(values, 50), "p95": pct(values, 95), "n": len(values)}


# --------------------------------------------------------------------------- (c) pages


def runs_page_data(engine: Any) -> object:
    """What app/views/runs/page.py reads for page 1: the filter choices, the count (a one-row
    page), the page of 25 and its table rows."""
    from app.views.runs import data as runs_data

    runs_data.filter_options(engine)
    runs_data.runs_page(engine, runs_data.RunFilter(), 1, page_size=1)
    return runs_data.table_rows(engine, runs_data.runs_page(engine, runs_data.RunFilter(), 1).runs)


def page_probes(engine: Any, live_run: int, stop: threading.Event, times: dict[str, list[float]]) -> None:
    from app.views.compare import data as cv
    from app.views.live import data as lv

    state = lv.LiveState(run_id=live_run)
    probes: dict[str, Callable[[], object]] = {
        "/runs": lambda: runs_page_data(engine),
        "/live refresh": lambda: lv.refresh(engine, state),
        "/compare (20 runs)": lambda: cv.group(cv.runs_of(engine, groups="lab-queue")[0][:20]),
    }
    while not stop.is_set():
        for name, call in probes.items():
            t0 = time.perf_counter()
            call()
            times.setdefault(name, []).append((time.perf_counter() - t0) * 1000)
        stop.wait(0.2)


# --------------------------------------------------------------------------- (a) workers


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [BML, "worker", "--cpu", "--name", name, "--loglevel", "INFO"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def add_filler_runs(engine: Any, n: int) -> None:
    """n finished runs (no series): what a store holds after a semester, for the /runs page.
    One validated config, inserted in bulk (the rows `db.create_run` + `finish_run` leave)."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import insert

    from bml_core.config import validate_config
    from db.engine import write_tx
    from db.models import Run

    cfg = validate_config({"name": "old", "group": "old"})
    doc = cfg.to_dict()
    t0 = datetime.now(UTC) - timedelta(days=120)
    rows = []
    for i in range(n):
        created = t0 + timedelta(minutes=i)
        rows.append(
            {
                "name": f"old-{i}",
                "group_name": f"old-{i % 50}",  # the column's name (Run.group)
                "status": "succeeded" if i % 10 else "failed",
                "config": {**doc, "name": f"old-{i}", "group": f"old-{i % 50}", "seed": i},
                "strategy": cfg.strategy_label,
                "dataset": cfg.dataset.name,
                "seed": i,
                "attempt": 1,
                "max_attempts": 3,
                "worker": "filler",
                "created_at": created,
                "started_at": created,
                "finished_at": created + timedelta(seconds=30),
                "progress": 1.0,
                "step": 100,
                "total_steps": 100,
                "summary": {"test": {"acc": 0.5}},
                "cancel_requested": False,
                "dropped_points": 0,
            }
        )
    for start in range(0, n, 2000):
        with write_tx(engine) as conn:
            conn.execute(insert(Run), rows[start : start + 2000])


def store_bytes(engine: Any) -> tuple[int, int]:
    from sqlalchemy import text

    with engine.connect() as conn:
        size = conn.execute(
            text(
                "SELECT pg_total_relation_size('points') + pg_total_relation_size('rollups')"
                " + pg_total_relation_size('series')"
            )
        ).scalar_one()
        points = conn.execute(text("SELECT count(*) FROM points")).scalar_one()
    return int(size), int(points)


# --------------------------------------------------------------------------- main


def run_bench(cfg: Settings, work: Path, url: str, prefix: str) -> dict[str, Any]:
    env = {
        **os.environ,
        "BML_HOME": str(work / "home"),
        "BML_RUNS_DIR": str(work / "home" / "runs"),
        "BML_DATABASE_URL": url,
        "BML_BROKER_URL": REDIS_URL,
        "BML_BROKER_PREFIX": prefix,
        "BML_TORCH_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        **(FAULT_ENV if cfg.faults else {}),
    }
    os.environ.update({k: env[k] for k in ("BML_HOME", "BML_RUNS_DIR", "BML_DATABASE_URL", "BML_BROKER_URL")})
    os.environ["BML_BROKER_PREFIX"] = prefix
    up = subprocess.run([BML, "db", "upgrade"], env=env, capture_output=True, text=True)
    if up.returncode != 0:
        raise SystemExit(f"bml db upgrade failed: {up.stderr}")

    import db
    from services.actions import submit

    engine = db.make_engine(url)
    add_filler_runs(engine, cfg.filler_runs)
    bytes0, points0 = store_bytes(engine)

    names = [f"lab{i}@bench" for i in range(cfg.workers)]
    workers = [(start_worker(env, n, work / f"w{i}.log"), work / f"w{i}.log") for i, n in enumerate(names)]
    proxy = faults = None
    stream_engine = engine
    if cfg.faults:
        from tests.tcp_proxy import TcpProxy  # the store tests' proxy: PostgreSQL away, the server untouched

        pg = engine.url
        proxy = TcpProxy((pg.host or "127.0.0.1", pg.port or 5432))
        proxy.start()
        stream_engine = db.make_engine(proxied_url(url, proxy.port))
    try:
        for proc, log in workers:
            wait_worker_ready(proc, log)
        stream_runs = []
        for i in range(cfg.streams):
            rid = db.create_run(engine, {"name": f"stream-{i}", "group": "lab-streams", "seed": i})
            db.claim_run(engine, rid, "replay")
            stream_runs.append(rid)
        gens = [
            ReplayLoadGenerator(stream_engine, rid, cfg.rate, cfg.keys, cfg.stream_s) for rid in stream_runs
        ]
        stop_streams, stop_probes = threading.Event(), threading.Event()
        probe = LagProbe(engine, gens, cfg.probe_ms / 1000)
        page_times: dict[str, list[float]] = {}

        t_submit = time.time()
        run_ids = submit(TINY_RUN, list(range(cfg.runs)), engine=engine)
        threads = [threading.Thread(target=g.run, args=(stop_streams,), daemon=True) for g in gens]
        probe_t = threading.Thread(target=probe.run, args=(stop_probes,), daemon=True)
        pages_t = threading.Thread(
            target=page_probes, args=(engine, stream_runs[0], stop_probes, page_times), daemon=True
        )
        fault_threads: list[threading.Thread] = []
        stop_faults = threading.Event()
        if cfg.faults:
            faults = FaultInjector(engine, workers, names, proxy, cfg.stream_s, cfg.outage_s)
            fault_threads = [
                threading.Thread(target=faults.kill_when_all_busy, args=(stop_faults,), daemon=True),
                threading.Thread(target=faults.outage, args=(stop_faults,), daemon=True),
            ]
        t_streams = time.monotonic()
        for t in [*threads, probe_t, pages_t, *fault_threads]:
            t.start()
        for t in threads:
            t.join()
        stream_wall = time.monotonic() - t_streams
        stop_probes.set()
        probe_t.join()
        pages_t.join()
        for rid in stream_runs:
            db.finish_run(engine, rid, "succeeded")

        deadline = time.monotonic() + cfg.drain_timeout_s
        while time.monotonic() < deadline:
            left = db.list_runs(engine, group="lab-queue", status=["queued", "running", "requeued"]).total
            if left == 0:
                break
            time.sleep(0.5)
        stop_faults.set()
        for t in fault_threads:
            t.join()
    finally:
        stop_sessions([proc for proc, _ in workers], timeout_s=60)
        if proxy is not None:
            proxy.stop()

    runs = [db.get_run(engine, rid) for rid in run_ids]
    bytes1, points1 = store_bytes(engine)
    # ------------------------------------------------------------------ invariants
    problems = []
    killed = {k["run"] for k in faults.killed} if faults else set()
    # a killed worker's run is requeued once (attempt 2); every other run ran once (attempt 1)
    not_once = [
        (r.id, r.status, r.attempt)
        for r in runs
        if r.status != "succeeded" or r.attempt != (2 if r.id in killed else 1)
    ]
    if not_once:
        problems.append(f"runs not run exactly once (id, status, attempt): {not_once[:10]}")
    if faults is not None:
        problems += faults.errors
        if not faults.killed:
            problems.append("--faults: no worker was killed")
        if not faults.outages:
            problems.append("--faults: the streams' PostgreSQL outage did not happen")
    still = db.list_runs(engine, status=["running"]).total
    if still:
        problems.append(f"{still} run(s) left running after the workers stopped")
    from sqlalchemy import func, select

    from db.models import Point, Series

    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(Series.run_id, func.count())
                .select_from(Point)
                .join(Series, Series.id == Point.series_id)
                .where(Series.run_id.in_(stream_runs))
                .group_by(Series.run_id)
            ).all()
        )
    for g in gens:
        expected = g.steps * g.keys
        if stored.get(g.run_id, 0) != expected or g.sink_figures.get("dropped") or g.sink_figures.get("lost"):
            problems.append(
                f"stream run {g.run_id}: {stored.get(g.run_id, 0)} points stored, {expected} written, sink {g.sink_figures}"
            )
    # ------------------------------------------------------------------ figures
    latency = [(r.started_at - r.created_at).total_seconds() for r in runs if r.started_at]
    finished = [r.finished_at for r in runs if r.finished_at]
    span_s = (max(finished).timestamp() - t_submit) if finished else float("nan")
    written = sum(g.steps * g.keys for g in gens)
    new_points = points1 - points0
    return {
        "settings": cfg.__dict__,
        "machine": machine(),
        "problems": problems,
        "queue_latency_s": p50_p95(latency),
        "runs_per_min": len(finished) / span_s * 60 if finished else 0.0,
        "lost_runs": sum(1 for r in runs if r.status != "succeeded"),
        "duplicated_runs": sum(1 for r in runs if r.attempt > (2 if r.id in killed else 1)),
        "faults": {"killed": faults.killed, "outages": faults.outages} if faults else None,
        "sink_lag_s": p50_p95(probe.lags),
        "points_per_s": written / stream_wall,
        "pg_bytes_per_million_points": (bytes1 - bytes0) / new_points * 1e6 if new_points else float("nan"),
        "page_ms": {k: p50_p95(v) for k, v in page_times.items()},
        "store_runs": db.list_runs(engine, limit=1).total,
    }


def markdown(res: dict[str, Any]) -> str:
    c = res["settings"]
    lines = [
        f"Lab scale ({c['workers']} workers, {c['runs']} runs, {c['streams']} streams x {c['rate']:g} steps/s x "
        f"{c['keys']} keys for {c['stream_s']:g} s, {res['store_runs']} runs in the store); {res['machine']}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| queue latency submit -> start p50 / p95 | {res['queue_latency_s']['p50']:.2f} s / {res['queue_latency_s']['p95']:.2f} s |",
        f"| runs / minute | {res['runs_per_min']:.1f} |",
        f"| lost / duplicated runs | {res['lost_runs']} / {res['duplicated_runs']} |",
        f"| sink lag write -> committed p50 / p95 | {res['sink_lag_s']['p50'] * 1000:.0f} ms / {res['sink_lag_s']['p95'] * 1000:.0f} ms |",
        f"| points / s ingested | {res['points_per_s']:.0f} |",
        f"| PostgreSQL bytes per million points | {res['pg_bytes_per_million_points'] / 1e6:.1f} MB |",
    ]
    for k in (res.get("faults") or {}).get("killed", []):
        lines.append(
            f"| fault: worker {k['worker']} SIGKILLed at {k['at_s']:.1f} s with {k['busy']} busy | "
            f"its run {k['run']} requeued, finished once (attempt 2) |"
        )
    for o in (res.get("faults") or {}).get("outages", []):
        lines.append(
            f"| fault: streams' PostgreSQL unreachable {o['down_s']:.1f} s at {o['at_s']:.1f} s (proxy) | "
            "no point lost (the invariants) |"
        )
    for name, t in res["page_ms"].items():
        lines.append(
            f"| {name} p50 / p95 (direct call) | {t['p50']:.0f} ms / {t['p95']:.0f} ms (n={t['n']}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 workers, 12 runs, 5 streams x 5 s")
    for name, kind in (
        ("workers", int),
        ("runs", int),
        ("streams", int),
        ("stream-s", float),
        ("rate", float),
        ("keys", int),
        ("filler-runs", int),
    ):
        ap.add_argument(f"--{name}", type=kind, default=None)
    ap.add_argument(
        "--faults",
        action="store_true",
        help="inject faults under load: SIGKILL one worker (its whole process group) once every worker is busy, "
        "and make PostgreSQL unreachable to the streams for --outage-s through a TCP proxy mid-stream",
    )
    ap.add_argument("--outage-s", type=float, default=None)
    ap.add_argument("--json", type=Path, default=None, help="write every figure here")
    args = ap.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    over = {
        k.replace("-", "_"): getattr(args, k.replace("-", "_"))
        for k in ("workers", "runs", "streams", "stream-s", "rate", "keys", "filler-runs", "outage-s")
    }
    over["faults"] = args.faults or None
    cfg = Settings(**{**cfg.__dict__, **{k: v for k, v in over.items() if v is not None}})
    prefix = f"bml-lab-{os.getpid()}-{secrets.token_hex(3)}:"
    work = Path(tempfile.mkdtemp(prefix="bml-lab-"))
    try:
        with postgres_database("lab") as (url, _):
            res = run_bench(cfg, work, url, prefix)
    finally:
        import redis

        conn = redis.Redis.from_url(REDIS_URL)
        keys = list(conn.scan_iter(match=prefix + "*", count=1000))
        if keys:
            conn.delete(*keys)
        shutil.rmtree(work, ignore_errors=True)
    print(markdown(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    if res["problems"]:
        for p in res["problems"]:
            print(f"INVARIANT BROKEN: {p}", file=sys.stderr)
        return 1
    print("invariants: every queued run ran exactly once, every written point stored once, none left running")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

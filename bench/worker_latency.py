"""Worker benchmarks: submit -> running latency (median of N) on the embedded broker and on
Redis, the overhead of a 200-step run through the worker against `bml train` in-process
(wall time excluding start-up: the training seconds both report; and including it), and a
sweep of tiny runs queued at once (submit -> last finished), each with the run processes'
warm start off and on (BML_WARM_START, worker.spare).

    python bench/worker_latency.py [--n 20] [--sweep 10] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BML = str(Path(sys.executable).parent / "bml")
TINY = {"name": "latency", "dataset": {"params": {"num_samples": 60}}, "train": {"epochs": 1, "threads": 1}}
# 200 steps: 3000 samples -> 2100 train / batch 64 = 33 steps per epoch, 6 epochs = 198 (+eval)
RUN_200 = {"name": "run200", "strategies": ["ogm_ge"], "train": {"epochs": 6, "threads": 1}}


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    from services.processes import wait_worker_ready

    proc = subprocess.Popen(
        [BML, "worker", "--cpu", "--name", "bench"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    wait_worker_ready(proc, log, timeout_s=60)
    return proc


def wait_status(engine: object, run_id: int, statuses: set[str], timeout_s: float = 600) -> object:
    from db import get_run

    deadline = time.monotonic() + timeout_s
    while True:
        run = get_run(engine, run_id)  # type: ignore[arg-type]
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} stuck in {run.status}")
        time.sleep(0.01)


def measure(broker: str, n: int, sweep: int, warm: bool, tmp: Path) -> dict[str, object]:
    home = tmp / f"{broker.split(':')[0]}-{'warm' if warm else 'cold'}"
    env = {
        **os.environ,
        "BML_WARM_START": "1" if warm else "0",
        "BML_HOME": str(home),
        "BML_BROKER_URL": "" if broker == "embedded" else broker,
        "BML_BROKER_PREFIX": f"bmlbench-{secrets.token_hex(3)}:",
        "BML_TORCH_THREADS": "1",
    }
    os.environ.update(
        {k: env[k] for k in ("BML_HOME", "BML_BROKER_URL", "BML_BROKER_PREFIX", "BML_WARM_START")}
    )
    subprocess.run([BML, "db", "upgrade"], env=env, check=True, capture_output=True)
    from db import get_run, make_engine
    from services import actions as client

    engine = make_engine()
    worker = start_worker(env, home / "worker.log")
    try:
        latencies, walls = [], []
        for _ in range(n):
            t_submit = time.time()
            [run_id] = client.submit(TINY, engine=engine)
            run = wait_status(engine, run_id, {"running", "succeeded", "failed"})
            started = get_run(engine, run_id).started_at
            assert started is not None
            latencies.append(started.timestamp() - t_submit)
            done = wait_status(engine, run_id, {"succeeded", "failed"})
            walls.append(done.finished_at.timestamp() - t_submit)  # type: ignore[attr-defined]
            time.sleep(1.0)  # let the worker go idle: this measures an idle worker's pick-up
        t_sweep = time.time()
        ids = client.submit(TINY, list(range(sweep)), engine=engine)
        sweep_s = (
            max(
                wait_status(engine, i, {"succeeded", "failed"}).finished_at.timestamp()  # type: ignore[attr-defined]
                for i in ids
            )
            - t_sweep
        )
        t0 = time.time()
        [run_id] = client.submit(RUN_200, engine=engine)
        run = wait_status(engine, run_id, {"succeeded", "failed"})
        assert run.status == "succeeded", run.error  # type: ignore[attr-defined]
        finished = run.finished_at.timestamp()  # type: ignore[attr-defined]
        summary = run.summary  # type: ignore[attr-defined]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {
        "broker": "embedded (SQLite)" if broker == "embedded" else "Redis",
        "warm": warm,
        "tiny_wall_s_median": statistics.median(walls),
        "sweep_runs": sweep,
        "sweep_s": sweep_s,
        "latency_ms_median": statistics.median(latencies) * 1000,
        "latency_ms_p90": sorted(latencies)[int(0.9 * (len(latencies) - 1))] * 1000,
        "run200_wall_s": finished - t0,
        "run200_train_s": summary["train"]["seconds"],
        "run200_steps": summary["train"]["steps"],
    }


def in_process(tmp: Path) -> dict[str, float]:
    cfg = tmp / "run200.json"
    cfg.write_text(json.dumps(RUN_200))
    out = tmp / "summary.json"
    t0 = time.time()
    subprocess.run(
        [BML, "train", str(cfg), "--no-progress", "--summary-json", str(out), "--out", str(tmp / "inproc")],
        check=True,
        capture_output=True,
        env={**os.environ, "BML_HOME": str(tmp / "inproc-home")},
    )
    wall = time.time() - t0
    return {"wall_s": wall, "train_s": json.loads(out.read_text())["train"]["seconds"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--sweep", type=int, default=10, help="tiny runs queued at once (seeds 0..N-1)")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = in_process(tmp)
        rows = [
            measure(b, args.n, args.sweep, w, tmp) for b in ("embedded", args.redis) for w in (False, True)
        ]
    print(f"bml train in-process, 200 steps: wall {base['wall_s']:.2f} s, training {base['train_s']:.2f} s")
    print(
        "| broker | warm start | submit -> running, median | p90 | tiny run submit -> succeeded, median | "
        f"sweep of {args.sweep} tiny runs, submit -> last done | "
        "200-step run wall (submit -> succeeded) | ÷ in-process incl. start-up | training s | "
        "÷ in-process excl. start-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['broker']} | {'on' if r['warm'] else 'off'} | {r['latency_ms_median']:.0f} ms | "
            f"{r['latency_ms_p90']:.0f} ms | {r['tiny_wall_s_median']:.2f} s | {r['sweep_s']:.2f} s | "
            f"{r['run200_wall_s']:.2f} s | {float(r['run200_wall_s']) / base['wall_s']:.2f} | "  # type: ignore[arg-type]
            f"{r['run200_train_s']:.2f} | {float(r['run200_train_s']) / base['train_s']:.2f} |"  # type: ignore[arg-type]
        )


if __name__ == "__main__":
    main()

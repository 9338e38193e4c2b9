"""Does a dead alert webhook slow training? The same alert-heavy run (thresholds set so
alerts fire often) with and without BML_ALERT_WEBHOOK pointing at a dead URL (a port
nobody listens on: refused at once; and a local socket that accepts connections but never
answers: every post runs into its timeout, then the retries), interleaved round by round;
reports per variant the median time per step, the median over rounds of the per-round
ratio to the run without a webhook (the rounds run back to back, each in a rotated order,
so a change of machine load hits both sides of a ratio alike), the same ratio of the
training thread's own CPU time and of each run's lower-quartile step time (what other
processes on a shared machine disturb least), and the share of training time the training
thread itself spent in `on_alert` (the only work the webhook adds to it).

    python bench/alerts_webhook.py --rounds 7
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import time
from typing import Any

import torch

from bml_core.alerts.webhook import WebhookSink
from bml_core.config import load_config
from bml_core.sinks import MetricSink
from bml_core.trainer import Trainer

CFG: dict[str, Any] = {
    "dataset": {"params": {"num_samples": 1500}},
    "optim": {"name": "sgd", "lr": 0.05, "scheduler": {"name": "none"}},
    "train": {"epochs": 4, "batch_size": 32, "device": "cpu", "threads": 1},
    # fire often: dominance flips on every crossing of rho = 1 over 3-step windows
    "alerts": {"dominance": {"threshold": 1.0001, "release": 1.0, "window": {"steps": 3, "share": 0.6}}},
}


class Timed(MetricSink):
    """Wraps a sink and adds up the time the training thread spends in its on_alert."""

    def __init__(self, inner: MetricSink):
        self.inner = inner
        self.seconds = 0.0
        self.alerts = 0

    def on_alert(self, alert: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        self.inner.on_alert(alert)
        self.seconds += time.perf_counter() - t0
        self.alerts += 1


class StepTimes(MetricSink):
    """Collects each step's `time/step_ms` (the step itself, where a busy background thread
    would show as GIL contention)."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.ms.append(metrics["time/step_ms"])


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _hung_server() -> tuple[socket.socket, int]:
    """A listening socket that never accepts: connects succeed, no answer ever comes."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1000)
    return s, int(s.getsockname()[1])


def one(url: str | None) -> dict[str, float]:
    cfg = load_config(CFG)
    times = StepTimes()
    sinks: list[MetricSink] = [times]
    hook: WebhookSink | None = None
    timed: Timed | None = None
    if url:
        hook = WebhookSink(url, timeout_s=2.0, retries=3, backoff_s=0.5, close_timeout_s=0.0)
        timed = Timed(hook)
        sinks.append(timed)
    trainer = Trainer(cfg, sinks=sinks)
    t0, c0 = time.perf_counter(), time.thread_time()
    summary = trainer.fit()
    wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
    steps = summary["train"]["steps"]
    return {
        "s_per_step": summary["train"]["seconds"] / steps,
        "step_ms_p25": statistics.quantiles(times.ms, n=4)[0],  # robust to another process's bursts
        "cpu_s_per_step": cpu / steps,  # the training thread's own CPU time (less load-sensitive)
        "wall_s": wall,
        "train_s": summary["train"]["seconds"],
        "alerts": float(len(summary["alerts"])),
        "on_alert_s": timed.seconds if timed else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    torch.set_num_threads(1)
    hung, hung_port = _hung_server()
    urls = {
        "none": None,
        "refused": f"http://127.0.0.1:{_dead_port()}/hook",
        "hung": f"http://127.0.0.1:{hung_port}/hook",
    }
    res: dict[str, list[dict[str, float]]] = {k: [] for k in urls}
    one(None)  # warm-up
    names = list(urls)
    for i in range(args.rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:  # rotate the order
            res[name].append(one(urls[name]))
    out = {}
    for name, rows in res.items():
        med = statistics.median(r["s_per_step"] for r in rows)
        ratios = [r["s_per_step"] / b["s_per_step"] for r, b in zip(rows, res["none"], strict=True)]
        out[name] = {
            "median_ms_per_step": round(med * 1000, 4),
            "median_round_ratio_to_none": round(statistics.median(ratios), 4),
            "round_ratio_quartiles": [round(q, 4) for q in statistics.quantiles(ratios, n=4)],
            "median_round_step_p25_ratio_to_none": round(
                statistics.median(
                    r["step_ms_p25"] / b["step_ms_p25"] for r, b in zip(rows, res["none"], strict=True)
                ),
                4,
            ),
            "median_round_cpu_ratio_to_none": round(
                statistics.median(
                    r["cpu_s_per_step"] / b["cpu_s_per_step"] for r, b in zip(rows, res["none"], strict=True)
                ),
                4,
            ),
            "alerts_per_run": rows[0]["alerts"],
            "on_alert_share_of_train_time": round(
                statistics.median(r["on_alert_s"] / r["train_s"] for r in rows), 7
            ),
        }
    print(json.dumps(out, indent=2))
    hung.close()


if __name__ == "__main__":
    main()

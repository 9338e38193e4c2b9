"""Telemetry overhead: training step time with DbMetricSink ÷ the same training without
any sink, interleaved in one process (2-modality MLP, batch 64, OGM-GE, 16 scalars per
step, torch 1 thread). When mlflow and tensorboard are importable (bench/requirements-
compare.txt, `make bench-compare-venv`), MLflow `log_metrics` (SQLite backend) and
TensorBoard `SummaryWriter.add_scalar` log the same metrics in the same rounds.

    .venv/bin/python bench/store_overhead.py            # db vs none
    .venv-compare/bin/python bench/store_overhead.py    # + mlflow, tensorboard

Each round runs one block of steps per variant in a shuffled order. A block's time is the
wall time of its steps, logging calls included, plus the flush of an asynchronous writer
(the DB sink's thread, TensorBoard's) at its end, so that no block leaves work for the
next one (this charges the last flush as if it blocked training: a slight overestimate).
Reported per variant: the ratio to the no-sink block of the same round, median [min -
max], for wall time (the target), for the process's CPU time (every thread, the
writer's included) and for the training thread's own CPU time (CPU times are less
disturbed by other processes on a shared machine; they do not see GIL waits)."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from store_common import close_trackers, compare_trackers, interleaved_rounds, machine, summary

Logger = Callable[[int, dict[str, float]], None]


def build_trainer() -> tuple[Any, list[tuple[dict[str, Any], Any]]]:
    import torch

    from bml_core.config import load_config
    from bml_core.trainer import Trainer

    torch.set_num_threads(1)
    cfg = load_config(
        {
            "name": "overhead",
            "dataset": {"name": "synthetic", "params": {"num_samples": 12000}},
            "strategies": [{"name": "ogm_ge"}],
            "train": {"batch_size": 64, "device": "cpu", "threads": 1},
        }
    )
    trainer = Trainer(cfg, run_dir=None)
    train = trainer.bundle.train
    train.training = True
    batches = list(trainer._batches(train, trainer._epoch_order(0), 64, 0, trainer.steps_per_epoch))
    return trainer, batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--steps", type=int, default=200, help="steps per block (MLflow: a fifth)")
    ap.add_argument("--no-compare", action="store_true", help="skip MLflow and TensorBoard")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    args = ap.parse_args()

    import db

    started = machine()
    work = Path(tempfile.mkdtemp(prefix="bml-overhead-"))
    trainer, batches = build_trainer()
    engine = db.make_engine(f"sqlite:///{work / 'bml.db'}")
    db.upgrade(engine)
    run_id = db.create_run(engine, {"name": "overhead"})
    sink = db.DbMetricSink(engine, run_id)

    loggers: dict[str, Logger] = {
        "none": lambda step, m: None,
        "db": lambda step, m: sink.on_step(step, 0, m),
    }
    flushers: dict[str, Callable[[], None]] = {"db": lambda: sink.flush(60)}
    block_steps = {"none": args.steps, "db": args.steps}
    skipped: list[str] = []
    mlflow = tb_writer = None  # the mlflow module (a run started) and a SummaryWriter
    if not args.no_compare:
        mlflow, tb_writer = compare_trackers(work, "overhead", "see bench/requirements-compare.txt", skipped)
    if mlflow is not None:
        loggers["mlflow"] = lambda step, m: mlflow.log_metrics(m, step=step)
        block_steps["mlflow"] = max(20, args.steps // 5)
    if tb_writer is not None:
        writer = tb_writer

        def tb_log(step: int, m: dict[str, float]) -> None:
            for k, v in m.items():
                writer.add_scalar(k, v, step)

        loggers["tensorboard"] = tb_log
        flushers["tensorboard"] = writer.flush
        block_steps["tensorboard"] = args.steps

    next_step = dict.fromkeys(loggers, 0)
    call_s: dict[str, list[float]] = {k: [] for k in loggers}
    cpu_s: dict[str, list[float]] = {k: [] for k in loggers}
    main_cpu_s: dict[str, list[float]] = {k: [] for k in loggers}

    def block(name: str, n: int) -> float:
        log = loggers[name]
        in_calls = 0.0
        t0, cpu0, main0 = time.perf_counter(), time.process_time(), time.thread_time()
        for i in range(n):
            x, y = batches[i % len(batches)]
            metrics = trainer.train_step(x, y, 0)
            assert metrics is not None
            next_step[name] += 1
            c0 = time.perf_counter()
            log(next_step[name], metrics)
            in_calls += time.perf_counter() - c0
        if name in flushers:
            flushers[name]()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        call_s[name].append(in_calls / n)
        cpu_s[name].append(cpu / n)
        main_cpu_s[name].append((time.thread_time() - main0) / n)
        return elapsed / n

    for name in loggers:  # warm-up: first-call costs, caches, the MLflow schema
        block(name, 50)
    for k in call_s:
        call_s[k].clear()
        cpu_s[k].clear()
        main_cpu_s[k].clear()
    per_round = interleaved_rounds(list(loggers), block, block_steps, args.rounds)

    sink.on_end("succeeded", None)
    sink.close()
    stored = sum(len(s.steps) for s in db.run_points(engine, run_id).values())
    expected = next_step["db"] * 16
    close_trackers(mlflow, tb_writer)

    baseline = [r["none"] for r in per_round]
    print()
    print(f"machine: {started}")
    print(f"no sink: step time {summary([b * 1000 for b in baseline])} ms")
    results: dict[str, Any] = {"machine": started, "rounds": per_round, "skipped": skipped}
    for name in loggers:
        if name == "none":
            continue
        ratios = [r[name] / r["none"] for r in per_round]
        cpu_ratios = [c / b for c, b in zip(cpu_s[name], cpu_s["none"], strict=True)]
        main_ratios = [c / b for c, b in zip(main_cpu_s[name], main_cpu_s["none"], strict=True)]
        results[name] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "cpu_ratio_median": statistics.median(cpu_ratios),
            "cpu_ratio_min": min(cpu_ratios),
            "cpu_ratio_max": max(cpu_ratios),
            "main_thread_cpu_ratio_median": statistics.median(main_ratios),
            "in_calls_ms_median": statistics.median(call_s[name]) * 1000,
        }
        print(
            f"{name:>11}: wall step time ÷ no sink {summary(ratios)}; process CPU ÷ no sink "
            f"{summary(cpu_ratios)}; training-thread CPU ÷ no sink {summary(main_ratios)}; "
            f"{statistics.median(call_s[name]) * 1e6:.1f} µs per step in the call"
        )
    print(f"db points stored {stored} of {expected} sent, dropped {sink.dropped_points}")
    results["db_points"] = {"stored": stored, "sent": expected, "dropped": sink.dropped_points}
    for s in skipped:
        print(f"skipped: {s}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

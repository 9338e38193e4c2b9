"""Own-loop tracking overhead: the step time of a plain PyTorch loop (a 2-modality MLP of its
own, batch 64, torch 1 thread) with `bml_core.init` + `run.log_step` ÷ the same loop without
logging (target <= 1.02), interleaved in one process. When mlflow and tensorboard are
importable (`make bench-compare-venv`), MLflow `log_metrics` (SQLite store) and TensorBoard
`add_scalar` log the same keys (the ones log_step computes, by the same code) in the same rounds.

    .venv/bin/python bench/own_loop.py            # bml vs none
    .venv-compare/bin/python bench/own_loop.py    # + mlflow, tensorboard

Each round runs one block per variant in a shuffled order; a block's time is the wall time of
its steps plus the flush of an asynchronous writer at its end (the sink's thread,
TensorBoard's), so that no block leaves work to the next one. Reported: each variant's step
time ÷ the no-logging block of the same round, median [min - max]."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from store_common import machine, summary  # noqa: E402

Logger = Callable[[int, Any, Any, Any, Any], None]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, default=200, help="steps per block (MLflow: a fifth)")
    ap.add_argument("--no-compare", action="store_true", help="skip MLflow and TensorBoard")
    ap.add_argument("--json", type=Path, help="write the raw figures here")
    ap.add_argument(
        "--balancer",
        action="store_true",
        help="instead: Balancer(['ogm_ge']) step ÷ the native Trainer's OGM-GE step (same weights, batches)",
    )
    args = ap.parse_args()
    if args.balancer:
        balancer_vs_native(args)
        return

    import torch
    from torch import nn

    import bml_core

    torch.set_num_threads(1)
    started = machine()
    work = Path(tempfile.mkdtemp(prefix="bml-own-loop-"))

    class Net(nn.Module):  # the user's model: nothing from bml_core
        def __init__(self) -> None:
            super().__init__()
            self.audio = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
            self.visual = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
            self.head = nn.Linear(512, 10)

        def forward(self, xa: torch.Tensor, xv: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            f = {"audio": self.audio(xa), "visual": self.visual(xv)}
            return self.head(torch.cat([f["audio"], f["visual"]], 1)), f

    torch.manual_seed(0)
    model = Net()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    data = [
        (
            torch.randn(64, 256, generator=g),
            torch.randn(64, 256, generator=g),
            torch.randint(0, 10, (64,), generator=g),
        )
        for _ in range(50)
    ]
    run = bml_core.init(
        name="own-loop-bench",
        group="bench",
        modalities=["audio", "visual"],
        num_classes=10,
        store=f"sqlite:///{work / 'bml.db'}",
    )
    scorer = run.scorer

    def log_bml(step: int, logits: Any, feats: Any, y: Any, loss: Any) -> None:
        run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss, step=step)

    loggers: dict[str, Logger] = {"none": lambda *a: None, "bml": log_bml}
    flushers: dict[str, Callable[[], Any]] = {"bml": lambda: run.flush(60)}
    block_steps = {"none": args.steps, "bml": args.steps}
    skipped: list[str] = []
    mlflow_run = tb_writer = None
    if not args.no_compare:
        try:
            import logging

            import mlflow

            logging.getLogger("mlflow").setLevel(logging.ERROR)
            mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
            mlflow.set_experiment("own-loop")
            mlflow_run = mlflow.start_run()

            def log_mlflow(step: int, logits: Any, feats: Any, y: Any, loss: Any) -> None:
                m = scorer.compute(logits, scorer.decompose(model.head, feats), y, loss)
                mlflow.log_metrics(m, step=step)

            loggers["mlflow"] = log_mlflow
            block_steps["mlflow"] = max(20, args.steps // 5)
        except ImportError:
            skipped.append("mlflow (not installed: make bench-compare-venv)")
        try:
            from torch.utils.tensorboard import SummaryWriter

            tb_writer = SummaryWriter(str(work / "tb"))
            writer = tb_writer

            def log_tb(step: int, logits: Any, feats: Any, y: Any, loss: Any) -> None:
                m = scorer.compute(logits, scorer.decompose(model.head, feats), y, loss)
                for k, v in m.items():
                    writer.add_scalar(k, v, step)

            loggers["tensorboard"] = log_tb
            flushers["tensorboard"] = writer.flush
            block_steps["tensorboard"] = args.steps
        except ImportError:
            skipped.append("tensorboard (not installed: make bench-compare-venv)")

    next_step = dict.fromkeys(loggers, 0)
    call_s: dict[str, list[float]] = {k: [] for k in loggers}

    def block(name: str, n: int) -> float:
        log = loggers[name]
        in_calls = 0.0
        t0 = time.perf_counter()
        for i in range(n):
            xa, xv, y = data[i % len(data)]
            logits, feats = model(xa, xv)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            next_step[name] += 1
            c0 = time.perf_counter()
            log(next_step[name], logits, feats, y, loss)
            in_calls += time.perf_counter() - c0
        if name in flushers:
            flushers[name]()
        call_s[name].append(in_calls / n)
        return (time.perf_counter() - t0) / n

    for name in loggers:  # warm-up
        block(name, 30)
    for v in call_s.values():
        v.clear()
    rng = random.Random(0)
    per_round: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = list(loggers)
        rng.shuffle(order)
        step_s = {name: block(name, block_steps[name]) for name in order}
        per_round.append(step_s)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v * 1000:.3f} ms" for k, v in step_s.items()), flush=True)

    run.finish()
    import db

    engine = db.make_engine(f"sqlite:///{work / 'bml.db'}")
    stored = sum(len(s.steps) for s in db.run_points(engine, run.id).values())
    if mlflow_run is not None:
        import mlflow

        mlflow.end_run()
    if tb_writer is not None:
        tb_writer.close()

    baseline = [r["none"] for r in per_round]
    print()
    print(f"machine: {started}")
    print(f"no logging: step time {summary([b * 1000 for b in baseline])} ms")
    results: dict[str, Any] = {"machine": started, "rounds": per_round, "skipped": skipped}
    for name in loggers:
        if name == "none":
            continue
        ratios = [r[name] / r["none"] for r in per_round]
        results[name] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "in_calls_ms_median": statistics.median(call_s[name]) * 1000,
        }
        print(
            f"{name:>11}: step time ÷ no logging {summary(ratios)}; "
            f"{statistics.median(call_s[name]) * 1e6:.1f} µs per step in the call"
        )
    print(f"bml points stored {stored} (steps {next_step['bml']}), dropped {run.sink.dropped_points}")
    results["bml_points"] = {"stored": stored, "steps": next_step["bml"], "dropped": run.sink.dropped_points}
    for s in skipped:
        print(f"skipped: {s}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def balancer_vs_native(args: argparse.Namespace) -> None:
    """A plain loop with bml_core.Balancer(["ogm_ge"]) (telemetry to an SQLite own-loop run)
    ÷ the native Trainer.train_step with OGM-GE (its metrics computed, no store writes), on
    the same synthetic batches and a copy of the same initial weights; interleaved rounds in a
    shuffled order, median [min - max] of the per-round ratios."""
    import copy

    import torch
    import torch.nn.functional as F
    from torch import nn

    import bml_core
    from bml_core.config import load_config
    from bml_core.trainer import Trainer

    torch.set_num_threads(1)
    started = machine()
    work = Path(tempfile.mkdtemp(prefix="bml-balancer-"))
    cfg = load_config(
        {
            "name": "native-ogm-ge",
            "dataset": {"name": "synthetic", "params": {"num_samples": 2000}},
            "train": {"epochs": 1, "batch_size": 64, "device": "cpu"},
            "strategies": [{"name": "ogm_ge"}],
        }
    )
    trainer = Trainer(cfg, sinks=[], run_dir=None)
    batches = [(x, y) for x, y in trainer.iter_batches("train")][:20]

    class Own(nn.Module):  # the user's model: encoders + linear head (weights copied from native)
        def __init__(self) -> None:
            super().__init__()
            self.encoders = nn.ModuleDict(
                {m: copy.deepcopy(trainer.model.encoders[m]) for m in trainer.modalities}
            )
            self.head = copy.deepcopy(trainer.model.fusion.fc)

    model = Own()
    o = cfg.optim
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    run = bml_core.init(
        name="balancer-bench",
        modalities=trainer.modalities,
        num_classes=trainer.num_classes,
        store=f"sqlite:///{work / 'bml.db'}",
    )
    balancer = bml_core.Balancer(model, ["ogm_ge"], run=run, seed=cfg.seed)

    def own_block(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            x, y = batches[i % len(batches)]
            out = balancer.forward(x, y)
            loss = F.cross_entropy(out.logits, y)
            opt.zero_grad()
            balancer.backward(loss, out, y)
            opt.step()
        run.sink.flush(60)
        return (time.perf_counter() - t0) / n

    def native_block(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            x, y = batches[i % len(batches)]
            trainer.train_step(x, y, 0)
        return (time.perf_counter() - t0) / n

    blocks = {"native": native_block, "balancer": own_block}
    for f in blocks.values():
        f(20)
    rng = random.Random(0)
    per_round: list[dict[str, float]] = []
    for r in range(args.rounds):
        order = list(blocks)
        rng.shuffle(order)
        step_s = {name: blocks[name](args.steps) for name in order}
        per_round.append(step_s)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v * 1000:.3f} ms" for k, v in step_s.items()), flush=True)
    run.finish()
    ratios = [r["balancer"] / r["native"] for r in per_round]
    print()
    print(f"machine: {started}")
    print(f"native OGM-GE step: {summary([r['native'] * 1000 for r in per_round])} ms")
    print(f"Balancer(['ogm_ge']) step ÷ native OGM-GE step: {summary(ratios)}")
    if args.json:
        args.json.write_text(
            json.dumps({"machine": started, "rounds": per_round, "ratio_median": statistics.median(ratios)})
        )


if __name__ == "__main__":
    main()

"""Own-loop tracking overhead: the step time of a plain PyTorch loop (a 2-modality model of
its own, batch 64, torch 1 thread, CPU) with `bml_core.init` + `run.log_step` ÷ the same loop
without logging (target <= 1.02), interleaved in one process. Two models (`--model`): `mlp`
(two 2-layer MLP encoders 256->256->256, a step of about 2 ms) and `cnn` (two small CNN
encoders on 1x32x32 "spectrogram" and 3x32x32 "frame" inputs, a step of tens of ms); both
end in an nn.Linear head over the concatenated features (10 classes). When mlflow and
tensorboard are importable (`make bench-compare-venv`), MLflow `log_metrics` (SQLite store)
and TensorBoard `add_scalar` log the same keys (computed by the same StepScorer, in the
loop) in the same rounds.

    .venv/bin/python bench/own_loop.py --model mlp            # bml vs none
    .venv-compare/bin/python bench/own_loop.py --model cnn    # + mlflow, tensorboard
    .venv/bin/python bench/own_loop.py --diagnose             # + bml-eager, bml-noyield, bml-calls

`--diagnose` adds three rows to tell the costs apart: `bml-eager` (the scorer thread woken
for every step, no GIL yields: the batching's "without"), `bml-noyield` (batched, no GIL
yields) and `bml-calls` (log_step's call only: the scorer never runs, what it would score
is discarded).

Each round runs one block per variant in a shuffled order; a block's time is the wall time of
its steps plus the flush of an asynchronous writer at its end (the scorer and sink threads,
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
from store_common import close_trackers, compare_trackers, interleaved_rounds, machine, summary  # noqa: E402

Logger = Callable[[int, Any, Any, Any, Any], None]
STEPS = {"mlp": 200, "cnn": 20}  # per block unless --steps
MODELS = {
    "mlp": "two 2-layer MLP encoders 256->256->256 on [64, 256] inputs, Linear(512, 10) head",
    "cnn": "two 3-conv CNN encoders (16-32-64 channels, 3x3, max-pool, global average, Linear(64, 128)) "
    "on [64, 1, 32, 32] and [64, 3, 32, 32] inputs, Linear(256, 10) head",
}


def build_model(kind: str) -> tuple[Any, list[tuple[Any, Any, Any]]]:
    """The user's model (nothing from bml_core) and 50 batches of 64 (audio, visual, labels)."""
    import torch
    from torch import nn

    def cnn(channels: int) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(64, 128),
            nn.ReLU(),
        )

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            if kind == "mlp":
                self.audio: nn.Module = nn.Sequential(
                    nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU()
                )
                self.visual: nn.Module = nn.Sequential(
                    nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU()
                )
                self.head = nn.Linear(512, 10)
            else:
                self.audio, self.visual, self.head = cnn(1), cnn(3), nn.Linear(256, 10)

        def forward(self, xa: torch.Tensor, xv: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            f = {"audio": self.audio(xa), "visual": self.visual(xv)}
            return self.head(torch.cat([f["audio"], f["visual"]], 1)), f

    torch.manual_seed(0)
    model = Net()
    g = torch.Generator().manual_seed(0)
    shapes = ((256,), (256,)) if kind == "mlp" else ((1, 32, 32), (3, 32, 32))
    data = [
        (
            torch.randn(64, *shapes[0], generator=g),
            torch.randn(64, *shapes[1], generator=g),
            torch.randint(0, 10, (64,), generator=g),
        )
        for _ in range(50)
    ]
    return model, data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=sorted(MODELS), default="mlp", help="the user's model (see above)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--steps", type=int, help="steps per block (default: mlp 200, cnn 20; MLflow: a fifth)")
    ap.add_argument("--no-compare", action="store_true", help="skip MLflow and TensorBoard")
    ap.add_argument("--diagnose", action="store_true", help="add bml-eager and bml-calls (see above)")
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
    steps = args.steps or STEPS[args.model]

    import torch
    from torch import nn

    import bml_core

    torch.set_num_threads(1)
    started = machine()
    work = Path(tempfile.mkdtemp(prefix="bml-own-loop-"))
    model, data = build_model(args.model)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    store = f"sqlite:///{work / 'bml.db'}"

    def new_run(name: str, **options: Any) -> Any:
        return bml_core.init(
            name=name, group="bench", modalities=["audio", "visual"], num_classes=10, store=store, **options
        )

    runs = {"bml": new_run("own-loop-bench")}
    if args.diagnose:
        runs["bml-eager"] = new_run("own-loop-eager", scorer_options={"wake_every": 1, "yield_every": 0})
        runs["bml-noyield"] = new_run("own-loop-noyield", scorer_options={"yield_every": 0})
        runs["bml-calls"] = new_run("own-loop-calls")
        runs["bml-calls"]._scoring.submit = lambda snap: None  # the call only: nothing scored
    scorer = runs["bml"].scorer

    def logger(run: Any) -> Logger:
        def log(step: int, logits: Any, feats: Any, y: Any, loss: Any) -> None:
            run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss, step=step)

        return log

    loggers: dict[str, Logger] = {"none": lambda *a: None}
    flushers: dict[str, Callable[[], Any]] = {}
    block_steps = {"none": steps}
    for name, run in runs.items():
        loggers[name], flushers[name], block_steps[name] = logger(run), run.flush, steps
    skipped: list[str] = []
    mlflow = tb_writer = None  # the mlflow module (a run started) and a SummaryWriter
    if not args.no_compare:
        mlflow, tb_writer = compare_trackers(work, "own-loop", "make bench-compare-venv", skipped)
    if mlflow is not None:

        def log_mlflow(step: int, logits: Any, feats: Any, y: Any, loss: Any) -> None:
            m = scorer.compute(logits, scorer.decompose(model.head, feats), y, loss)
            mlflow.log_metrics(m, step=step)

        loggers["mlflow"] = log_mlflow
        block_steps["mlflow"] = max(5, steps // 5)
    if tb_writer is not None:
        writer = tb_writer

        def log_tb(step: int, logits: Any, feats: Any, y: Any, loss: Any) -> None:
            m = scorer.compute(logits, scorer.decompose(model.head, feats), y, loss)
            for k, v in m.items():
                writer.add_scalar(k, v, step)

        loggers["tensorboard"] = log_tb
        flushers["tensorboard"] = writer.flush
        block_steps["tensorboard"] = steps

    next_step = dict.fromkeys(loggers, 0)
    call_s: dict[str, list[float]] = {k: [] for k in loggers}
    cpu_s: dict[str, list[tuple[float, float]]] = {k: [] for k in loggers}  # (training thread, process)
    flush_s: dict[str, list[float]] = {k: [] for k in loggers}  # the block-end flush, in the block's time

    def block(name: str, n: int) -> float:
        log = loggers[name]
        in_calls = 0.0
        t0, c_thread, c_proc = time.perf_counter(), time.thread_time(), time.process_time()
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
        f0 = time.perf_counter()
        if name in flushers:
            flushers[name]()
        flush_s[name].append(time.perf_counter() - f0)
        call_s[name].append(in_calls / n)
        cpu_s[name].append(((time.thread_time() - c_thread) / n, (time.process_time() - c_proc) / n))
        return (time.perf_counter() - t0) / n

    for name in loggers:  # warm-up
        block(name, max(5, steps // 4))
    for v in (*call_s.values(), *cpu_s.values(), *flush_s.values()):
        v.clear()
    per_round = interleaved_rounds(list(loggers), block, block_steps, args.rounds)

    wakes = runs["bml"]._scoring.wakes
    for run in runs.values():
        run.finish()
    import db

    engine = db.make_engine(store)
    main_run = runs["bml"]
    stored = sum(len(s.steps) for s in db.run_points(engine, main_run.id).values())
    close_trackers(mlflow, tb_writer)

    baseline = [r["none"] for r in per_round]
    print()
    print(f"machine: {started}")
    print(f"model: {args.model} ({MODELS[args.model]}), batch 64, SGD, torch 1 thread, CPU")
    print(f"no logging: step time {summary([b * 1000 for b in baseline])} ms")

    def cpu(name: str, which: int) -> float:  # CPU time per step, µs (median over the blocks)
        return statistics.median(c[which] for c in cpu_s[name]) * 1e6

    print(
        f"no logging: CPU per step {cpu('none', 0):.1f} µs training thread, {cpu('none', 1):.1f} µs process"
    )
    results: dict[str, Any] = {
        "machine": started,
        "model": args.model,
        "rounds": per_round,
        "skipped": skipped,
    }
    for name in loggers:
        if name == "none":
            continue
        ratios = [r[name] / r["none"] for r in per_round]
        results[name] = {
            "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios),
            "ratio_max": max(ratios),
            "in_calls_ms_median": statistics.median(call_s[name]) * 1000,
            "flush_ms_median": statistics.median(flush_s[name]) * 1000,
            "cpu_us_per_step_extra": {
                "training_thread": cpu(name, 0) - cpu("none", 0),
                "process": cpu(name, 1) - cpu("none", 1),
            },
        }
        print(
            f"{name:>11}: step time ÷ no logging {summary(ratios)}; "
            f"{statistics.median(call_s[name]) * 1e6:.1f} µs per step in the call; CPU per step "
            f"{cpu(name, 0) - cpu('none', 0):+.1f} µs training thread, {cpu(name, 1) - cpu('none', 1):+.1f} µs process; "
            f"block-end flush {statistics.median(flush_s[name]) * 1000:.1f} ms"
        )
    bml_steps = next_step["bml"]
    print(
        f"bml points stored {stored} (steps {bml_steps}), dropped {main_run.sink.dropped_points}, "
        f"scorer woke {wakes} times ({bml_steps / max(wakes, 1):.1f} steps per wake)"
    )
    results["bml_points"] = {
        "stored": stored,
        "steps": bml_steps,
        "dropped": main_run.sink.dropped_points,
        "scorer_wakes": wakes,
    }
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

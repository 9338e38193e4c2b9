"""Step-time overhead of every discovered strategy (built-ins and BML_PLUGINS plug-ins)
relative to joint training.

Same model initialisation and the same batches for every variant; variants are interleaved
round by round in one process so machine noise hits all of them alike. Reports the median
step time per variant and its ratio to joint training, plus the official per-sample-loop
score (a Python loop over the batch) against our vectorised one.

    python bench/step_overhead.py                      # MLP and small CNN on the CPU
    python bench/step_overhead.py --device cuda --suite resnet18   # CREMA-D-shaped ResNet-18
    python bench/step_overhead.py --strategies opm pmr             # a subset (and joint)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

from bml_core.config import ConfigError, load_config
from bml_core.imbalance import official_loop_score
from bml_core.strategies import all_specs, get_spec
from bml_core.trainer import Trainer

# per-strategy settings that measure the worst case (defaults otherwise)
BENCH_PARAMS: dict[str, dict[str, Any]] = {"opm": {"p_exe": 1.0}}
COMBINATIONS: dict[str, list[Any]] = {"opm+ogm_ge": [{"name": "opm", "p_exe": 1.0}, "ogm_ge"]}


def variants(only: list[str] | None = None) -> dict[str, list[Any]]:
    """joint, then one variant per discovered strategy (with BENCH_PARAMS), then COMBINATIONS."""
    out: dict[str, list[Any]] = {"joint": []}
    for spec in all_specs():
        if spec.name != "joint" and (only is None or spec.name in only):
            out[spec.name] = [{"name": spec.name, **BENCH_PARAMS.get(spec.name, {})}]
    if only is None:
        out.update(COMBINATIONS)
    return out


SUITES: dict[str, dict[str, Any]] = {
    "mlp": {
        "modalities": [
            {"name": "audio", "strength": 1.0, "shape": [256]},
            {"name": "visual", "strength": 0.6, "shape": [32]},
        ],
        "encoders": {"audio": {"name": "mlp"}, "visual": {"name": "mlp"}},
        "num_samples": 2000,
    },
    "cnn": {
        "modalities": [
            {"name": "audio", "strength": 1.0, "shape": [64, 64]},
            {"name": "visual", "strength": 0.6, "shape": [3, 64, 64]},
        ],
        "encoders": {"audio": {"name": "cnn"}, "visual": {"name": "cnn"}},
        "num_samples": 400,
    },
    # CREMA-D shapes as in the papers: 1x257x188 spectrogram, one 3x224x224 frame
    "resnet18": {
        "modalities": [
            {"name": "audio", "strength": 1.0, "shape": [1, 257, 188]},
            {"name": "visual", "strength": 0.6, "shape": [1, 3, 224, 224]},
        ],
        "encoders": {"audio": {"name": "resnet18"}, "visual": {"name": "resnet18"}},
        "num_samples": 256,
    },
}


class LoopScoreTrainer(Trainer):
    """Joint training whose probe scores use the official per-sample loop."""

    def probe_imbalance(self, feats, y):  # type: ignore[no-untyped-def]
        probe = super().probe_imbalance(feats, y)
        probe.scores = torch.stack([official_loop_score(u, y) for u in probe.logits.values()])
        return probe


def _needs_shared_head(strategies: list[Any]) -> bool:
    for s in strategies:
        spec = get_spec(s if isinstance(s, str) else s["name"])
        if spec is not None and spec.has("needs_shared_head"):
            return True
    return False


def make_trainer(
    suite: dict[str, Any], strategies: list[Any], device: str, amp: str, loop: bool = False
) -> Trainer:
    """A trainer as `fit` would start it (on_fit_start and the first on_epoch_start called);
    strategies that need `model.head: shared` get it (the others keep the concat head)."""
    model: dict[str, Any] = {"encoders": suite["encoders"]}
    if _needs_shared_head(strategies):
        model["head"] = "shared"
    cfg = load_config(
        {
            "seed": 0,
            "dataset": {"params": {"num_samples": suite["num_samples"], "modalities": suite["modalities"]}},
            "model": model,
            "strategies": strategies,
            "optim": {"lr": 0.01, "scheduler": {"name": "none"}},
            "train": {"epochs": 1, "batch_size": 64, "device": device, "amp": amp},
        }
    )
    trainer = (LoopScoreTrainer if loop else Trainer)(cfg)
    ctx = trainer.context(0)
    for event in ("on_fit_start", "on_epoch_start"):
        for s in trainer.hooks[event]:
            getattr(s, event)(ctx)
    return trainer


def mmpareto_within_bound(res: dict[str, Any], clock: str = "thread_cpu") -> tuple[float, float] | None:
    """(MMPareto's step-time ratio to joint, its bound 1 + M): its 1 + M gradient evaluations
    are restricted to the encoders, so a step must cost less than 1 + M joint steps (each a
    forward and a full backward). None when the suite did not run mmpareto."""
    ratio = res["ratio_to_joint"].get("mmpareto")
    if ratio is None:
        return None
    return ratio[clock], 1.0 + res["modalities"]


def time_steps(
    trainer: Trainer, batches: list[tuple[dict[str, torch.Tensor], torch.Tensor]]
) -> dict[str, float]:
    """Mean per-step wall time, main-thread CPU time and whole-process CPU time (ms).
    CPU times are robust to other processes on a shared machine; wall time is what a user
    waits for (it hides work done on a second core, such as prefetched GE noise)."""
    wall0, thread0, proc0 = time.perf_counter(), time.thread_time(), time.process_time()
    for x, y in batches:
        trainer.train_step(x, y, epoch=0)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    n = len(batches)
    return {
        "wall": (time.perf_counter() - wall0) * 1000 / n,
        "thread_cpu": (time.thread_time() - thread0) * 1000 / n,
        "process_cpu": (time.process_time() - proc0) * 1000 / n,
    }


CLOCKS = ("wall", "thread_cpu", "process_cpu")


def run_suite(
    name: str, device: str, amp: str, rounds: int, steps: int, only: list[str] | None = None
) -> dict[str, Any]:
    suite = SUITES[name]
    trainers: dict[str, Trainer] = {}
    skipped: dict[str, str] = {}
    for v, strategies in variants(only).items():
        try:
            trainers[v] = make_trainer(suite, strategies, device, amp)
        except ConfigError as exc:  # e.g. a strategy whose rules refuse this suite's model
            skipped[v] = str(exc)
    trainers["joint (official loop score)"] = make_trainer(suite, [], device, amp, loop=True)
    first = trainers["joint"]
    ds = first.bundle.train
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(steps):
        idx = torch.randperm(len(ds), generator=g)[:64]
        x, y = ds.get_batch(idx)  # type: ignore[attr-defined]
        batches.append(({m: t.to(first.device) for m, t in x.items()}, y.to(first.device)))
    for t in trainers.values():  # warm-up
        time_steps(t, batches[:3])
    per_round: dict[str, list[dict[str, float]]] = {v: [] for v in trainers}
    for r in range(rounds):
        order = list(trainers) if r % 2 == 0 else list(reversed(trainers))
        for v in order:
            per_round[v].append(time_steps(trainers[v], batches))
    step_ms = {v: {c: statistics.median(t[c] for t in ts) for c in CLOCKS} for v, ts in per_round.items()}
    # ratio within each round, then the median over rounds: robust to slow drifts of the machine
    ratios = {
        v: {
            c: statistics.median(a[c] / b[c] for a, b in zip(per_round[v], per_round["joint"], strict=True))
            for c in CLOCKS
        }
        for v in trainers
    }
    samples_per_s = {v: 64 / (ms["wall"] / 1000) for v, ms in step_ms.items()}
    cost = {v: "+".join(_cost(s) for s in strategies) or "none" for v, strategies in variants(only).items()}
    return {
        "suite": name,
        "step_ms": step_ms,
        "ratio_to_joint": ratios,
        "samples_per_s": samples_per_s,
        "cost_class": cost,
        "skipped": skipped,
        "modalities": len(suite["modalities"]),
    }


def _cost(strategy: Any) -> str:
    spec = get_spec(strategy if isinstance(strategy, str) else strategy["name"])
    return spec.cost if spec is not None else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", nargs="+", default=["mlp", "cnn"], choices=sorted(SUITES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=None, help="steps per variant per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--strategies", nargs="+", default=None, help="only these strategies (and joint)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = []
    for name in args.suite:
        steps = args.steps or {"mlp": 60, "cnn": 8, "resnet18": 20}[name]
        res = run_suite(name, args.device, args.amp, args.rounds, steps, args.strategies)
        results.append(res)
        print(
            f"\n## {name} (device {args.device}, amp {args.amp}, batch 64, {args.rounds} rounds x {steps} steps)"
        )
        print(
            "| variant | cost class | step ms (wall) | samples/s | ÷ joint, wall "
            "| ÷ joint, main-thread CPU | ÷ joint, process CPU |"
        )
        print("|---|---|---|---|---|---|---|")
        for v, ms in res["step_ms"].items():
            r = res["ratio_to_joint"][v]
            print(
                f"| {v} | {res['cost_class'].get(v, 'none')} | {ms['wall']:.2f} | {res['samples_per_s'][v]:.0f} "
                f"| {r['wall']:.3f} | {r['thread_cpu']:.3f} | {r['process_cpu']:.3f} |"
            )
        for v, why in res["skipped"].items():
            print(f"skipped {v}: {why}")
        check = mmpareto_within_bound(res)
        if check is not None:
            verdict = "below" if check[0] < check[1] else "NOT below"
            print(
                f"mmpareto: {check[0]:.2f} joint steps per step (main-thread CPU), {verdict} 1 + M = {check[1]:.0f}"
            )
    meta = {
        "torch": torch.__version__,
        "device": args.device,
        "cuda": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()

"""ASHA vs the full grid (issue 23): the same grid of OPM q_base x lr on the bundled mfeat demo,
searched twice through real workers with `bml tune --sampler grid` — once with the ASHA pruner,
once with none (every configuration trained to its last epoch) — and compared on wall time
to the best validation accuracy, the best value each found and the epochs each trained.

    python bench/tune_vs_grid.py [--workers 2] [--epochs 100] [--seeds 0,1,2] [--q-base 0.2,0.4,0.6,0.8]
        [--lr 0.003,0.01,0.03] [--home PATH] [--json PATH]

The store (SQLite under a fresh BML_HOME), the embedded broker and the workers are
bench/strategy_grid.py's. Both studies run in the same store one after the other, the ASHA
one first and then the grid, each with `--parallel` equal to the worker count. Time to best:
from the study's first trial start to the completion of the first trial that reached the
study's best value; time to target: to the completion of the first trial whose value reached
--target (default 0.98). Epochs trained: the runs' progress x epochs, summed. Exit status 0, or 1
when a study failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster_common import cluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BML = str(Path(sys.executable).parent / "bml")


def study_config(epochs: int) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "examples" / "mfeat-imbalance.yaml").read_text())
    raw["strategies"] = [{"name": "opm"}]
    raw["train"] = {**raw["train"], "epochs": epochs}
    raw["name"] = "tune-vs-grid"
    return raw


def run_study(
    cfg: Path, name: str, pruner: str, q_base: str, lr: str, parallel: int, seeds: str | None = None
) -> float:
    n = len(q_base.split(",")) * len(lr.split(","))
    cmd = [
        BML, "tune", str(cfg),
        "--space", f"opm.q_base=cat({q_base})",
        "--space", f"optim.lr=cat({lr})",
        "--sampler", "grid", "--pruner", pruner,
        "--trials", str(n), "--parallel", str(parallel),
        "--name", name, "--metric", "val/acc", "--poll", "0.25",
    ] + (["--seeds", seeds] if seeds else [])  # fmt: skip
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"bml tune {name} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return wall


def measure(engine: Any, name: str, epochs: int, wall: float, target: float) -> dict[str, Any]:
    import optuna

    import db
    from db.studies import optuna_storage

    study = optuna.load_study(study_name=name, storage=optuna_storage(engine))
    trials = study.trials
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None]
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    best = max(t.value for t in done if t.value is not None)
    start = min(t.datetime_start for t in trials if t.datetime_start is not None)
    first_best = min(t.datetime_complete for t in done if t.value == best and t.datetime_complete)
    reached = [
        t.datetime_complete for t in done if t.value is not None and t.value >= target and t.datetime_complete
    ]
    runs = db.list_runs(engine, group=name, limit=1000).runs
    trained = sum(r.progress * epochs for r in runs)
    return {
        "study": name,
        "trials": len(trials),
        "completed": len(done),
        "pruned": len(pruned),
        "best_val_acc": best,
        "best_params": study.best_params,
        "time_to_best_s": (first_best - start).total_seconds(),
        "time_to_target_s": (min(reached) - start).total_seconds() if reached else None,
        "wall_s": wall,
        "epochs_trained": trained,
        "runs": len(runs),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--epochs", type=int, default=100,
        help="max epochs per trial (at 30 an mfeat trial trains ~2 s against ~4 s of process start-up)",
    )  # fmt: skip
    ap.add_argument("--seeds", help="seeds per trial, e.g. 0,1,2 (the objective is their mean)")
    ap.add_argument("--q-base", default="0.2,0.4,0.6,0.8")
    ap.add_argument("--lr", default="0.003,0.01,0.03")
    ap.add_argument("--target", type=float, default=0.98, help="the validation accuracy to reach")
    ap.add_argument("--home", type=Path)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    home = a.home or Path(tempfile.mkdtemp(prefix="bml-tune-bench-"))
    cfg = home / "opm-mfeat.yaml"
    home.mkdir(parents=True, exist_ok=True)
    cfg.write_text(yaml.safe_dump(study_config(a.epochs)))
    results = []
    with cluster(home, "embedded", a.workers) as c:
        for name, pruner in (("asha-grid", "asha"), ("full-grid", "none")):
            wall = run_study(cfg, name, pruner, a.q_base, a.lr, a.workers, a.seeds)
            results.append(measure(c.engine, name, a.epochs, wall, a.target))
    asha, grid = results
    doc = {
        "results": results,
        "time_to_best_ratio": grid["time_to_best_s"] / asha["time_to_best_s"],
        "target": a.target,
        "time_to_target_ratio": grid["time_to_target_s"] / asha["time_to_target_s"]
        if grid["time_to_target_s"] and asha["time_to_target_s"]
        else None,
        "wall_ratio": grid["wall_s"] / asha["wall_s"],
        "epochs_ratio": grid["epochs_trained"] / asha["epochs_trained"],
        "same_best": asha["best_val_acc"] == grid["best_val_acc"],
        "seeds": a.seeds or "config seed",
        "epochs": a.epochs,
    }
    for r in results:
        print(
            f"{r['study']:10s} trials {r['trials']} (pruned {r['pruned']}), best val/acc "
            f"{r['best_val_acc']:.4f} {r['best_params']}, time to best {r['time_to_best_s']:.1f} s, "
            f"to val/acc >= {a.target:g} {r['time_to_target_s'] if r['time_to_target_s'] is not None else float('nan'):.1f} s, "
            f"wall {r['wall_s']:.1f} s, epochs trained {r['epochs_trained']:.0f}"
        )
    print(
        f"full grid / ASHA: time to best {doc['time_to_best_ratio']:.2f}x, "
        f"to target {doc['time_to_target_ratio'] or float('nan'):.2f}x, wall {doc['wall_ratio']:.2f}x, "
        f"epochs {doc['epochs_ratio']:.2f}x; same best value: {doc['same_best']}"
    )
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(doc, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

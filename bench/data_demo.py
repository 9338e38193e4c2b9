"""Joint vs OGM-GE vs OPM on the bundled real demo data (UCI Multiple Features, `mfeat`),
over several seeds: fused and per-modality test accuracy, printed as a Markdown table.

    .venv/bin/python bench/data_demo.py                       # the example config, seeds 0,1,2
    .venv/bin/python bench/data_demo.py --set dataset.params.views=[fac,zer] --seeds 0,1,2

Runs in this process with torch.set_num_threads(1), one run after another."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bml_core.config import load_config  # noqa: E402
from bml_core.trainer import Trainer  # noqa: E402

DEFAULT_CONFIG = ROOT / "examples" / "mfeat-imbalance.yaml"
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "joint": [],
    "ogm_ge": [{"name": "ogm_ge"}],
    "opm": [{"name": "opm"}],
}


def run_one(config: Path, overrides: list[str], setting: str, seed: int) -> dict[str, Any]:
    cfg = load_config(config, overrides + [f"seed={seed}"])
    raw = cfg.to_dict()
    base = {s["name"]: s for s in raw["strategies"]}
    # keep each strategy's parameters from the config file when it names them
    raw["strategies"] = [base.get(s["name"], s) for s in SETTINGS[setting]]
    cfg = load_config(raw)
    return Trainer(cfg).fit()


def mean_sd(values: list[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--settings", default="joint,ogm_ge,opm")
    parser.add_argument("--json", type=Path, help="also write every summary here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    summaries: dict[str, list[dict[str, Any]]] = {}
    modalities: list[str] = []
    t0 = time.perf_counter()
    for setting in args.settings.split(","):
        results = []
        for seed in seeds:
            summary = run_one(args.config, args.overrides, setting, seed)
            results.append(summary)
            per = summary["test"]["acc_per_modality"]
            modalities = list(per)
            print(
                f"{setting:7s} seed {seed}: test acc {summary['test']['acc']:.4f} "
                + " ".join(f"{m}={a:.4f}" for m, a in per.items())
                + f" best epoch {summary['best_epoch']}",
                file=sys.stderr,
                flush=True,
            )
        summaries[setting] = results
        rows.append(
            {
                "setting": setting,
                "fused": mean_sd([r["test"]["acc"] for r in results]),
                **{m: mean_sd([r["test"]["acc_per_modality"][m] for r in results]) for m in modalities},
                "degree": mean_sd([r["test"]["imbalance_degree"] for r in results]),
            }
        )
    print(
        "| strategy | fused test acc % | "
        + " | ".join(f"{m} (uni-modal) %" for m in modalities)
        + " | imbalance degree ×100 |"
    )
    print("|---|---|" + "---|" * len(modalities) + "---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['fused']} | "
            + " | ".join(r[m] for m in modalities)
            + f" | {r['degree']} |"
        )
    print(f"\n{len(seeds)} seeds ({args.seeds}), {time.perf_counter() - t0:.0f} s in total", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Training fingerprints of the built-in strategies (issue 9: the plug-in port must be bitwise
identical to the code before it).

Each case trains a tiny synthetic run on the CPU (one thread, a fixed seed) and records a
sha256 of every final parameter tensor's bytes and of each per-step / per-eval metric series
(the float64 bytes of its values in step order). `python tests/fingerprints/make_fingerprint.py`
writes `tests/fingerprints/strategies.json`; tests/test_fingerprints.py recomputes and compares.
Made on the code before the port (commit noted in the JSON); never regenerate it to make the
test pass."""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "strategies.json"
# time/step_ms is wall time, lr is config; neither says anything about the computation
SKIP_KEYS = {"time/step_ms"}

BASE: dict[str, Any] = {
    "seed": 3,
    "dataset": {
        "params": {
            "num_samples": 240,
            "modalities": [
                {"name": "audio", "strength": 1.5, "shape": [12]},
                {"name": "visual", "strength": 0.6, "shape": [8]},
            ],
        }
    },
    "model": {
        "feature_dim": 12,
        "encoders": {"audio": {"hidden_dim": 24, "dropout": 0.1}, "visual": {"hidden_dim": 24}},
    },
    "optim": {"lr": 0.05, "scheduler": {"name": "step", "step_size": 2, "gamma": 0.5}},
    # the fingerprint was made when the imbalance degree zeroed features and mAP skipped
    # classes without positives; issue 11 item 5 changed both defaults, so pin the old forms
    "train": {
        "epochs": 3,
        "batch_size": 32,
        "threads": 1,
        "device": "cpu",
        "shapley_absent": "feature",
        "map_absent": "skip",
    },
}

CASES: dict[str, dict[str, Any]] = {
    "joint": {"strategies": []},
    "ogm": {"strategies": [{"name": "ogm", "alpha": 0.6}]},
    "ogm_ge": {"strategies": [{"name": "ogm_ge", "alpha": 0.5, "start_epoch": 1}]},
    "opm": {"strategies": [{"name": "opm", "p_exe": 0.8}]},
    "opm+ogm_ge": {"strategies": [{"name": "opm", "p_exe": 0.9, "rescale": "per_modality"}, "ogm_ge"]},
    "opm_previous_vs_min_3mod_sum_adam": {
        "strategies": [{"name": "opm", "q_source": "previous", "ratio": "vs_min"}],
        "extra_modality": True,
        "model": {"fusion": "sum"},
        "optim": {"name": "adam", "lr": 0.01},
    },
}


def config_for(case: str) -> dict[str, Any]:
    spec = copy.deepcopy(CASES[case])
    raw = copy.deepcopy(BASE)
    raw["name"] = case
    raw["strategies"] = spec.pop("strategies")
    if spec.pop("extra_modality", False):
        raw["dataset"]["params"]["modalities"].append({"name": "text", "strength": 0.4, "shape": [5]})
    for key, value in spec.items():
        raw[key] = {**raw[key], **value}
    return raw


def _digest_floats(values: list[float]) -> str:
    return hashlib.sha256(struct.pack(f"<{len(values)}d", *values)).hexdigest()


def fingerprint(case: str) -> dict[str, Any]:
    import torch

    from bml_core.config import load_config
    from bml_core.sinks import MemorySink
    from bml_core.trainer import Trainer

    torch.set_num_threads(1)
    sink = MemorySink()
    trainer = Trainer(load_config(config_for(case)), sinks=[sink])
    summary = trainer.fit()
    params = {
        name: hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
        for name, t in trainer.model.state_dict().items()
    }
    series: dict[str, list[float]] = {}
    for _, _, metrics in sink.steps:
        for k, v in metrics.items():
            if k not in SKIP_KEYS:
                series.setdefault(k, []).append(float(v))
    evals: dict[str, list[float]] = {}
    for _, _, metrics in sink.evals:
        for k, v in metrics.items():
            evals.setdefault(k, []).append(float(v))
    return {
        "steps": len(sink.steps),
        "params": params,
        "step_metrics": {k: _digest_floats(v) for k, v in sorted(series.items())},
        "eval_metrics": {k: _digest_floats(v) for k, v in sorted(evals.items())},
        "test_acc": summary["test"]["acc"],
    }


def main() -> None:
    root = HERE.parents[1]
    sys.path.insert(0, str(root))
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    ).stdout.strip()
    out = {"made_on_commit": commit, "cases": {case: fingerprint(case) for case in CASES}}
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT} ({len(CASES)} cases)")


if __name__ == "__main__":
    main()

"""Training fingerprints of the built-in strategies (issue 9: the plug-in port must be bitwise
identical to the code before it).

Each case trains a tiny synthetic run on the CPU (one thread, a fixed seed) and records a
sha256 of every final parameter tensor's bytes and of each per-step / per-eval metric series
(the float64 bytes of its values in step order).

Bitwise results depend on the machine's float kernels (an AMD EPYC and an Intel Xeon with
AVX-512 give different bits from the same code), so the reference is the code before the
port, REFERENCE_COMMIT, run on the same machine: `reference_fingerprints()` extracts that
commit's `bml_core` with `git archive` and trains the cases with it in a child process.
`tests/fingerprints/strategies.json` keeps the reference's fingerprints per platform (torch
version, CPU vendor, ATen CPU capability), so a known platform needs no git history;
`python tests/fingerprints/make_fingerprint.py` adds (or replaces) the entry of this
platform, always computed by the reference code, never by the code under test."""

from __future__ import annotations

import copy
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "strategies.json"
# the last commit before the plug-in port (issue 9)
REFERENCE_COMMIT = "c6dbe0044d200379286ee91a908a085359add65d"
# train options added after REFERENCE_COMMIT; BASE pins them to that code's behaviour, and
# the reference code, which does not know them, runs without them
LEGACY_TRAIN_KEYS = ("shapley_absent", "map_absent")
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


def platform() -> dict[str, str]:
    """What decides the bits of a CPU training run besides the code: the torch build, the CPU
    vendor and the ATen CPU capability (the vectorised kernels torch dispatches to)."""
    import torch

    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "torch": torch.__version__,
        "vendor": vendor,
        "capability": torch.backends.cpu.get_cpu_capability(),
    }


def stored_cases(here: dict[str, str] | None = None) -> dict[str, Any] | None:
    """The stored reference fingerprints of this platform (an entry without a capability
    matches any capability of its vendor and torch), or None."""
    here = here or platform()
    for entry in json.loads(OUT.read_text())["platforms"]:
        same_build = entry["torch"] == here["torch"] and entry["vendor"] == here["vendor"]
        if same_build and entry.get("capability") in (None, here["capability"]):
            return dict(entry["cases"])
    return None


class NoReference(RuntimeError):
    pass


def reference_fingerprints(timeout_s: float = 600.0) -> dict[str, Any]:
    """Every case trained by the code of REFERENCE_COMMIT on this machine (its `bml_core`
    from `git archive`, in a child process where it comes first on sys.path)."""
    with tempfile.TemporaryDirectory(prefix="bml-reference-") as tmp:
        archive = subprocess.run(
            ["git", "archive", REFERENCE_COMMIT, "--", "bml_core", ":(exclude)bml_core/data/assets"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        if archive.returncode != 0:
            raise NoReference(
                f"git archive {REFERENCE_COMMIT[:12]} failed ({archive.stderr.decode(errors='replace').strip()}): "
                "the reference code needs the repository's history (a full clone)"
            )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--emit-reference", tmp],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the reference code failed:\n{proc.stderr[-3000:]}")
        return dict(json.loads(proc.stdout))


def _emit_reference(code_dir: str) -> None:
    sys.path.insert(0, code_dir)
    import bml_core

    assert Path(bml_core.__file__).resolve().is_relative_to(Path(code_dir).resolve()), bml_core.__file__
    for key in LEGACY_TRAIN_KEYS:
        BASE["train"].pop(key)
    print(json.dumps({case: fingerprint(case) for case in CASES}))


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--emit-reference":
        _emit_reference(sys.argv[2])
        return
    sys.path.insert(0, str(ROOT))
    here = platform()
    cases = reference_fingerprints()
    doc = json.loads(OUT.read_text()) if OUT.exists() else {"platforms": []}
    doc["reference_commit"] = REFERENCE_COMMIT
    doc["platforms"] = [
        e
        for e in doc["platforms"]
        if not (
            e["torch"] == here["torch"]
            and e["vendor"] == here["vendor"]
            and e.get("capability") == here["capability"]
        )
    ] + [{**here, "cases": cases}]
    OUT.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}: {len(CASES)} cases for {here}")


if __name__ == "__main__":
    main()

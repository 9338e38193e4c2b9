"""`bml train`: exit codes, field-level errors, nothing written on bad input, resume."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--set", "train.epochs=1", "--set", "dataset.params.num_samples=300", "--no-progress"]


def run_bml(bml_exe: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([bml_exe, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_train_writes_summary_json(bml_exe: str, tmp_path: Path, _isolated_home: Path) -> None:
    out = tmp_path / "summary.json"
    r = run_bml(
        bml_exe, "train", str(ROOT / "examples/synthetic-ogm-ge.yaml"), *FAST, "--summary-json", str(out)
    )
    assert r.returncode == 0, r.stderr
    summary = json.loads(out.read_text())
    assert summary["run"]["strategies"] == ["ogm_ge"] and summary["run"]["status"] == "succeeded"
    assert set(summary["test"]["acc_per_modality"]) == {"audio", "visual"}
    run_dirs = list((_isolated_home / "runs").iterdir())
    assert len(run_dirs) == 1
    assert {"last.pt", "best.pt", "metrics.jsonl", "summary.json", "config.json"} <= {
        p.name for p in run_dirs[0].iterdir()
    }
    first = json.loads((run_dirs[0] / "metrics.jsonl").read_text().splitlines()[1])
    assert first["event"] in ("step", "log")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "bogus=1"], "bogus: unknown key"),
        (["--set", "strategies=[ogm_ge]", "--set", "strategies.0.alpha=-1"], "strategies.0.alpha"),
        (["--set", "strategies=[opm]", "--set", "strategies.0.q_base=1.5"], "strategies.0.q_base"),
        (["--set", "strategies=[opm]", "--set", "strategies.0.p_exe=-0.2"], "strategies.0.p_exe"),
        (
            [
                "--set",
                "strategies=[ogm]",
                "--set",
                "strategies.0.start_epoch=4",
                "--set",
                "strategies.0.end_epoch=1",
            ],
            "end_epoch",
        ),
        (
            ["--set", "dataset.name=features", "--set", "dataset.path=/nonexistent/feats.npz"],
            "/nonexistent/feats.npz",
        ),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    bml_exe: str, tmp_path: Path, _isolated_home: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "summary.json"
    r = run_bml(bml_exe, "train", *FAST, *args, "--summary-json", str(out))
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert not out.exists()
    assert not (_isolated_home / "runs").exists()


def test_mismatched_lengths_exit_2(bml_exe: str, tmp_path: Path, _isolated_home: Path) -> None:
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_audio=np.zeros((10, 4)), x_visual=np.zeros((9, 3)), y=np.arange(10) % 2)
    r = run_bml(bml_exe, "train", *FAST, "--set", "dataset.name=features", "--set", f"dataset.path={bad}")
    assert r.returncode == 2
    assert "x_visual" in r.stderr and "9" in r.stderr and str(bad) in r.stderr
    assert not (_isolated_home / "runs").exists()


def test_unknown_key_in_yaml_file(bml_exe: str, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("train: {epochs: 1}\nstrategies:\n  - {name: opm, qbase: 0.3}\n")
    r = run_bml(bml_exe, "train", str(cfg))
    assert r.returncode == 2
    assert "strategies.0.qbase: unknown key" in r.stderr


def test_features_file_trains(bml_exe: str, tmp_path: Path) -> None:
    from bml_core.data.features import save_features

    rng = np.random.default_rng(0)
    y = np.arange(120) % 3
    path = save_features(
        tmp_path / "f.h5",
        {"audio": rng.normal(size=(120, 5)) + y[:, None], "visual": rng.normal(size=(120, 2, 6, 6))},
        y,
        split=np.array(["train"] * 80 + ["val"] * 20 + ["test"] * 20),
        classes=["a", "b", "c"],
    )
    out = tmp_path / "s.json"
    r = run_bml(
        bml_exe,
        "train",
        "--set",
        "dataset.name=features",
        "--set",
        f"dataset.path={path}",
        "--set",
        "train.epochs=1",
        "--no-progress",
        "--summary-json",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["run"]["dataset"] == "features"


def test_resume_flag_continues_a_run(bml_exe: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    base = ["train", *FAST, "--out", str(run_dir)]
    assert run_bml(bml_exe, *base).returncode == 0
    again = run_bml(bml_exe, *base)
    assert again.returncode == 2 and "--resume" in again.stderr
    more = run_bml(bml_exe, "train", *FAST[:-1], "--set", "train.epochs=2", "--out", str(run_dir), "--resume")
    assert more.returncode == 0, more.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    steps_one_epoch = summary["train"]["steps"] // 2
    assert summary["train"]["steps"] == 2 * steps_one_epoch

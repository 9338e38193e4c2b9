"""Hardening (issue 15): checkpoints never run code, bounds on what can exhaust memory or
time, clear one-line errors instead of tracebacks."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bml_core.config import ConfigError, DatasetConfig, load_config
from bml_core.trainer import CheckpointError, Trainer, load_checkpoint

TINY = {
    "dataset": {"params": {"num_samples": 120}},
    "model": {"feature_dim": 8},
    "optim": {"scheduler": {"name": "none"}},
    "train": {"epochs": 1, "batch_size": 32, "threads": 1, "device": "cpu"},
}


class _Evil:
    """Unpickling this calls os.system: what a crafted checkpoint does."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _evil_checkpoint(path: Path, marker: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": 1, "model": _Evil(marker)}, path)


# --------------------------------------------------------------------------- checkpoints


def test_a_malicious_checkpoint_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    run_dir = tmp_path / "run"
    _evil_checkpoint(run_dir / "last.pt", marker)
    with pytest.raises(CheckpointError, match="refusing to load checkpoint"):
        load_checkpoint(run_dir / "last.pt")
    trainer = Trainer(load_config(TINY), run_dir=run_dir)
    with pytest.raises(CheckpointError) as exc:
        trainer.fit()
    assert "system" in str(exc.value)  # names what it refused
    assert not marker.exists()
    _evil_checkpoint(run_dir / "best.pt", marker)
    with pytest.raises(CheckpointError):
        trainer._load_best()
    assert not marker.exists()


def test_the_cli_refuses_a_malicious_checkpoint_on_resume(bml_exe: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    out = tmp_path / "run"
    _evil_checkpoint(out / "last.pt", marker)
    r = subprocess.run(
        [
            bml_exe,
            "train",
            "--out",
            str(out),
            "--resume",
            "--no-progress",
            "--set",
            "train.epochs=1",
            "--set",
            "dataset.params.num_samples=120",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 1, r.stderr
    assert "refusing to load checkpoint" in r.stderr and "Traceback" not in r.stderr
    assert not marker.exists()


def test_real_checkpoints_load_with_weights_only(tmp_path: Path) -> None:
    """The trainer's own checkpoints (numpy RNG state included) pass the safe loader, and a
    resumed run ends where an uninterrupted one does."""
    cfg = load_config({**TINY, "train": {**TINY["train"], "epochs": 2}})
    Trainer(cfg, run_dir=tmp_path / "a").fit()
    state = load_checkpoint(tmp_path / "a" / "last.pt")
    assert state["progress"]["epoch"] == 2 and state["rng"]["numpy"][0] == "MT19937"
    resumed = Trainer(cfg, run_dir=tmp_path / "a")
    assert resumed.try_resume() and resumed.epoch == 2


# --------------------------------------------------------------------------- bounds


def _bml(
    bml_exe: str, *args: str, limit_kb: int | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    cmd = " ".join(shlex.quote(a) for a in [bml_exe, *args])
    if limit_kb is not None:
        cmd = f"ulimit -v {limit_kb}; exec {cmd}"
    return subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)


def _features(path: Path, y: np.ndarray, x_a: np.ndarray | None = None, **extra: np.ndarray) -> Path:
    rng = np.random.default_rng(0)
    n = len(y)
    a = x_a if x_a is not None else rng.standard_normal((n, 4)).astype(np.float32)
    np.savez(path, x_a=a, x_b=rng.standard_normal((n, 3)).astype(np.float32), y=y, **extra)
    return path


def test_a_huge_label_without_classes_exits_2_fast_under_2gb(bml_exe: str, tmp_path: Path) -> None:
    y = np.array([0, 1] * 20 + [10**9])
    path = _features(tmp_path / "f.npz", y)
    t0 = time.monotonic()
    r = _bml(
        bml_exe,
        "train",
        "--set",
        "dataset.name=features",
        "--set",
        f"dataset.path={path}",
        "--no-progress",
        "--out",
        str(tmp_path / "o"),
        limit_kb=2 * 1024 * 1024,
    )
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - t0 < 30
    assert "y:" in r.stderr and "1000000000" in r.stderr and "index 40" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused_naming_array_and_index(tmp_path: Path, bad: float) -> None:
    from bml_core.data import DatasetError
    from bml_core.data.features import load_features

    x = np.zeros((12, 4), dtype=np.float32)
    x[5, 3] = bad
    path = _features(tmp_path / "f.npz", np.array([0, 1] * 6), x_a=x)
    with pytest.raises(DatasetError) as exc:
        load_features(path)
    assert exc.value.field == "x_a" and "index [5, 3]" in str(exc.value) and "sample 5" in str(exc.value)


def test_too_many_classes_are_refused(tmp_path: Path) -> None:
    from bml_core.data import DatasetError
    from bml_core.data.features import load_features

    path = _features(tmp_path / "f.npz", np.array([0, 1, 2, -1]))
    with pytest.raises(DatasetError, match="index 3"):
        load_features(path)
    from bml_core.data import build_dataset

    # refused when the config is read (issue 14: dataset.params is validated with the config)
    # and again by the builder, for a DatasetConfig that never went through validate_config
    for params, field in (({"num_classes": 10**9}, "num_classes"), ({"num_samples": 10**7}, "")):
        with pytest.raises(ConfigError) as cexc:
            load_config({"dataset": {"params": params}})
        assert f"dataset.params{'.' + field if field else ''}" in cexc.value.as_dict()
    with pytest.raises(DatasetError) as exc:
        build_dataset(DatasetConfig(params={"num_classes": 10**9}))
    assert exc.value.field == "dataset.params.num_classes"
    with pytest.raises(DatasetError) as exc:
        build_dataset(DatasetConfig(params={"num_samples": 10**7}))
    assert "values" in str(exc.value)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"optim": {"lr": float("inf")}}, "optim.lr"),
        ({"optim": {"lr": float("nan")}}, "optim.lr"),
        ({"optim": {"weight_decay": float("inf")}}, "optim.weight_decay"),
        ({"strategies": [{"name": "ogm_ge", "alpha": float("inf")}]}, "strategies.0.alpha"),
        ({"train": {"epochs": 1e21}}, "train.epochs"),
        ({"train": {"epochs": 10**21}}, "train.epochs"),
        ({"train": {"epochs": True}}, "train.epochs"),
        ({"train": {"batch_size": 2.0}}, "train.batch_size"),
        ({"train": {"batch_size": 10**12}}, "train.batch_size"),
        ({"strategies": [{"name": "opm", "warmup_epochs": False}]}, "strategies.0.warmup_epochs"),
        ({"seed": 2**70}, "seed"),
        ({"seed": 2**63}, "seed"),
        ({"name": "a\x00b"}, "name"),
        ({"group": "g\x1b[31m"}, "group"),
        ({"tags": ["x" * 101]}, "tags.0"),
        ({"tags": [str(i) for i in range(65)]}, "tags"),
        ({"model": {"feature_dim": 10**9}}, "model.feature_dim"),
        ({"dataset": {"params": {"num_samples": float("inf")}}}, "dataset.params"),
        ({"dataset": {"params": {"x": [1, {"y": float("nan")}]}}}, "dataset.params"),
    ],
)
def test_values_that_exhaust_or_overflow_are_refused_naming_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(raw)
    assert field in exc.value.as_dict(), exc.value.errors


def test_largest_allowed_values_still_validate() -> None:
    cfg = load_config({"seed": 2**63 - 1, "train": {"epochs": 100_000}, "tags": ["t" * 100]})
    assert cfg.seed == 2**63 - 1


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "optim.lr=inf"], "optim.lr"),
        (["--set", "optim.lr=.inf"], "optim.lr"),
        (["--set", "train.epochs=1e21"], "train.epochs"),
        (["--set", "train.epochs=true"], "train.epochs"),
        (["--set", f"seed={2**70}"], "seed"),
    ],
)
def test_cli_refuses_bad_values_with_exit_2(
    bml_exe: str, tmp_path: Path, args: list[str], field: str
) -> None:
    r = _bml(bml_exe, "train", *args, "--no-progress", "--out", str(tmp_path / "o"))
    assert r.returncode == 2, r.stderr
    assert field in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "o").exists()


def test_an_empty_config_file_is_refused(bml_exe: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    r = _bml(bml_exe, "train", str(empty), "--no-progress", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "is empty" in r.stderr
    (tmp_path / "comments.yaml").write_text("# nothing here\n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(tmp_path / "comments.yaml")
    (tmp_path / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    r = _bml(bml_exe, "train", str(tmp_path / "latin1.yaml"), "--no-progress", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "is not UTF-8 text" in r.stderr and "Traceback" not in r.stderr


def test_too_many_seeds_per_launch_are_refused() -> None:
    from services.actions import prepare

    with pytest.raises(ConfigError) as exc:
        prepare({"name": "x"}, list(range(1001)))
    assert "seeds" in exc.value.as_dict()


# --------------------------------------------------------------------------- CLI messages


@pytest.fixture
def migrated_home(bml_exe: str, _isolated_home: Path) -> Path:
    assert _bml(bml_exe, "db", "upgrade").returncode == 0
    return _isolated_home


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["export", "1", "-o", "/missing/x.csv"], "the folder /missing does not exist"),
        (["export", "99999999999999999999999"], "no run with id 99999999999999999999999"),
        (["cancel", "99999999999999999999999"], "no run with id 99999999999999999999999"),
        (["rerun", "99999999999999999999999"], "no run with id 99999999999999999999999"),
        (["export", "1"], "no run with id 1"),
    ],
)
def test_cli_expected_failures_are_one_line_exit_2(
    bml_exe: str, migrated_home: Path, tmp_path: Path, args: list[str], needle: str
) -> None:
    r = _bml(bml_exe, *args)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_export_into_a_folder_is_refused(bml_exe: str, migrated_home: Path, tmp_path: Path) -> None:
    r = _bml(bml_exe, "export", "1", "-o", str(tmp_path))
    assert r.returncode == 2 and "is a folder" in r.stderr and "Traceback" not in r.stderr


def test_train_out_naming_a_file_and_a_missing_gpu_exit_2(bml_exe: str, tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    r = _bml(bml_exe, "train", "--out", str(a_file), "--no-progress")
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr
    assert a_file.read_text() == "x"
    n = torch.cuda.device_count()
    r = _bml(
        bml_exe,
        "train",
        "--device",
        f"cuda:{n + 7}",
        "--no-progress",
        "--out",
        str(tmp_path / "o"),
        "--set",
        "train.epochs=1",
        "--set",
        "dataset.params.num_samples=120",
    )
    assert r.returncode == 2, r.stderr
    assert "train.device" in r.stderr and f"cuda:{n + 7}" in r.stderr and "Traceback" not in r.stderr


def test_an_unexpected_error_is_one_line_and_debug_shows_the_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """main()'s last resort, exercised through a throw-away command added for this test."""
    from bml_cli import main as cli

    @cli.app.command("boom-for-test", hidden=True)
    def _boom() -> None:
        raise ValueError("first line\nsecond line")

    try:
        with pytest.raises(SystemExit) as exc:
            cli.main(["boom-for-test"])
        assert exc.value.code == 1
        err = capsys.readouterr().err
        assert err.strip() == "error: ValueError: first line (run again with --debug for details)"
        with pytest.raises(ValueError):
            cli.main(["--debug", "boom-for-test"])
    finally:
        cli.app.registered_commands = [c for c in cli.app.registered_commands if c.name != "boom-for-test"]


# --------------------------------------------------------------------------- ports and the store


def test_bml_up_and_dashboard_refuse_a_port_in_use(bml_exe: str, _isolated_home: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for cmd in (["up", "--port", str(port)], ["dashboard", "--port", str(port)]):
            t0 = time.monotonic()
            r = _bml(bml_exe, *cmd, timeout=60)
            assert r.returncode == 2, (cmd, r.stdout, r.stderr)
            assert f"port {port} on 127.0.0.1 is already in use" in r.stderr
            assert "dashboard:" not in r.stdout and "http://" not in r.stdout
            assert time.monotonic() - t0 < 30
    r = _bml(bml_exe, "up", "--port", "70000", timeout=60)
    assert r.returncode == 2 and "not a TCP port" in r.stderr
    assert not (_isolated_home / "logs").exists()  # nothing was started


def test_the_dashboard_says_an_unreachable_store_is_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    import db
    from app.store import store_problem

    monkeypatch.setenv("BML_DATABASE_URL", "postgresql+psycopg://bml@127.0.0.1:1/nowhere")
    engine = db.make_engine()
    try:
        kind, reason = store_problem(engine) or ("", "")
    finally:
        engine.dispose()
    assert kind == "unreachable" and "127.0.0.1:1" in reason
    assert "bml db upgrade" not in reason


def test_the_dashboard_never_shows_error_details_to_visitors() -> None:
    from services.processes import dashboard_command

    cmd = dashboard_command(8501, "127.0.0.1")
    assert cmd[cmd.index("--client.showErrorDetails") + 1] == "none"


@pytest.mark.parametrize("strategy", sorted(__import__("bml_core.config", fromlist=["x"]).strategy_params()))
def test_every_strategys_checkpoint_loads_with_weights_only(strategy: str, tmp_path: Path) -> None:
    """What each built-in strategy keeps in its state is a tensor or a plain value, so the
    safe loader reads it back and the run resumes."""
    raw = {
        **TINY,
        "dataset": {"params": {"num_samples": 400}},  # held-out splits need a few per class
        "strategies": [strategy],
        "train": {**TINY["train"], "epochs": 2},
    }
    try:
        cfg = load_config(raw)
    except ConfigError as exc:  # a method that trains one shared head says so
        assert "model.head" in exc.as_dict(), exc.errors
        cfg = load_config({**raw, "model": {**TINY["model"], "head": "shared"}})
    Trainer(cfg, run_dir=tmp_path).fit()
    assert load_checkpoint(tmp_path / "last.pt")["progress"]["epoch"] == 2
    assert Trainer(cfg, run_dir=tmp_path).try_resume()

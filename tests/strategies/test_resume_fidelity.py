"""Issue 21: resume from a checkpoint mid-run is bitwise for every method changed to its
authors' code, at its new defaults (AGM, MLA, MSLR, MSES, MMPareto, ReconBoost, MMCosine,
InfoReg, PMR, Diagnosing & Re-learning), stopped in the middle of the third epoch (after the state the change added
has been built: MLA's P, MSLR's multiplier window, MSES's best epoch and restore state,
InfoReg's anchors and trace window, PMR's prototypes). For each stateful method a control
resumes from a checkpoint whose strategy state is replaced by a fresh one (as if it had not
been saved): the comparison must then fail, so the bitwise check does see that state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.helpers.resume import states_equal, stop_at_check
from tests.strategies.strategy_helpers import small

CASES: dict[str, list[Any]] = {
    "agm": [{"name": "agm"}],
    "mla": ["mla"],
    "mslr": [{"name": "mslr", "window": 1}],
    "mses": [{"name": "mses", "patience": 1}],
    "mmpareto": ["mmpareto"],
    "reconboost": ["reconboost"],
    "mmcosine": ["mmcosine"],
    "infreg": [{"name": "infreg", "window": 1}],
    "pmr": ["pmr"],
    "relearn": [{"name": "relearn", "every": 1}],  # official timing: re-initialised after epoch 1
}
STATEFUL = ("agm", "mla", "mslr", "mses", "reconboost", "infreg", "pmr", "relearn")


SHARED_HEAD = ("mla", "reconboost")  # they train one head shared by every modality


def _raw(method: str) -> dict[str, Any]:
    model: dict[str, Any] = {
        "encoders": {"audio": {"hidden_dim": 32, "dropout": 0.2}, "visual": {"name": "mlp"}}
    }
    if method in SHARED_HEAD:
        model["head"] = "shared"
    return small(
        strategies=CASES[method],
        model=model,
        train={"epochs": 3, "batch_size": 20},
        optim={"lr": 0.05, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}},
    )


def _run(raw: dict[str, Any], tmp_path: Path, forget_state: bool) -> bool:
    """Uninterrupted vs stopped mid epoch 2 then resumed; True when model, optimizer and
    strategy state and the test summary are identical. `forget_state` replaces the saved
    strategy state by a freshly built strategy's before resuming."""
    cfg = load_config(raw)
    steps = Trainer(cfg).steps_per_epoch
    stop_after = 2 * steps + steps // 2
    full_summary = Trainer(cfg, run_dir=tmp_path / "full").fit()
    first = Trainer(cfg, run_dir=tmp_path / "resumed", stop_requested=stop_at_check(stop_after))
    assert first.fit()["run"]["status"] == "cancelled"
    if forget_state:
        path = tmp_path / "resumed" / "last.pt"
        ckpt = torch.load(path, weights_only=False)
        fresh = Trainer(cfg)
        ckpt["strategies"] = [s.state_dict() for s in fresh.strategies]
        assert not states_equal(ckpt["strategies"], [s.state_dict() for s in first.strategies])
        torch.save(ckpt, path)
    summary = Trainer(cfg, run_dir=tmp_path / "resumed").fit()
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)
    resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)
    return all(states_equal(full[p], resumed[p]) for p in ("model", "optimizer", "strategies")) and (
        summary["test"] == full_summary["test"]
    )


@pytest.mark.parametrize("method", list(CASES))
def test_resume_is_bitwise_at_the_authors_defaults(tmp_path: Path, method: str) -> None:
    assert _run(_raw(method), tmp_path, forget_state=False)


@pytest.mark.parametrize("method", STATEFUL)
def test_resume_check_fails_when_the_state_is_not_saved(tmp_path: Path, method: str) -> None:
    assert not _run(_raw(method), tmp_path, forget_state=True)

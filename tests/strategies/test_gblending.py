"""Gradient-Blending (STRATEGIES.md 2.8 and section 3): weights from given loss curves
(including a head whose held-out loss rose: weight 0), the held-out part of the training
split (fixed seed, never trained on), online re-estimation, offline side training with its
advisory, a clear error when the set is too small for the held-out part; resume."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bml_core.config import ConfigError, advisories, load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.gblending.impl import blend_weights
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise


def test_weights_from_given_loss_curves() -> None:
    # heads: audio, visual, fused
    train_start = torch.tensor([2.0, 2.0, 2.0])
    heldout_start = torch.tensor([2.1, 2.1, 2.1])
    train_end = torch.tensor([1.0, 1.5, 0.8])
    heldout_end = torch.tensor([1.6, 2.3, 1.5])  # visual's held-out loss rose
    # dG = [0.5, -0.2, 0.6]; dO = [0.6 - 0.1, 0.8 - 0.1, 0.7 - 0.1] = [0.5, 0.7, 0.6]
    # raw = [0.5 / 0.25, 0, 0.6 / 0.36] = [2, 0, 5/3]
    w = blend_weights(train_start, heldout_start, train_end, heldout_end)
    assert w is not None
    assert torch.allclose(w, torch.tensor([2.0, 0.0, 5 / 3]) / (2 + 5 / 3))
    assert w[1].item() == 0.0 and w.sum().item() == pytest.approx(1.0)


def test_no_head_generalised_keeps_the_previous_weights() -> None:
    start = torch.tensor([1.0, 1.0])
    assert blend_weights(start, start, start * 0.5, start * 1.5) is None


def _raw(**params: object) -> dict:
    return small(
        strategies=[{"name": "gblending", "super_epoch": 1, **params}],
        train={"epochs": 2, "batch_size": 32, "threads": 1},
    )


def test_heldout_part_is_fixed_and_never_trained_on() -> None:
    a = Trainer(load_config(_raw()))
    b = Trainer(load_config({**_raw(), "seed": 7}))
    n = len(a.bundle.train)
    assert a.train_index is not None
    assert len(a.heldout_index) == -(-n * 1 // 10)  # ceil(0.1 n)
    assert torch.equal(a.heldout_index, b.heldout_index)  # the same samples for every run seed
    assert set(a.train_index.tolist()).isdisjoint(a.heldout_index.tolist())
    assert len(a.train_index) + len(a.heldout_index) == n
    for epoch in range(2):
        assert sorted(a._epoch_order(epoch).tolist()) == a.train_index.tolist()
    # the strategy's own train batches skip it too
    assert sum(len(y) for _, y in a.iter_batches("train")) == len(a.train_index)
    assert sum(len(y) for _, y in a.iter_batches("heldout")) == len(a.heldout_index)
    full, rest = divmod(len(a.train_index), 32)
    assert a.steps_per_epoch == full + (1 if rest >= 2 else 0)
    # without a strategy that needs it, nothing is held out
    plain = Trainer(load_config(small()))
    assert plain.train_index is None and len(plain.heldout_index) == 0


def test_online_weights_change_per_super_epoch_and_are_logged() -> None:
    sink = MemorySink()
    trainer = Trainer(load_config(_raw()), sinks=[sink])
    trainer.fit()
    first = [sink.steps[0][2][f"gblending/weight/{k}"] for k in ("audio", "visual", "fused")]
    assert first == pytest.approx([1 / 3] * 3)
    last = [sink.steps[-1][2][f"gblending/weight/{k}"] for k in ("audio", "visual", "fused")]
    assert sum(last) == pytest.approx(1.0) and last != pytest.approx(first)
    assert "train/loss_term/gblending/visual" in sink.steps[-1][2]


def test_offline_trains_copies_first_and_says_what_it_costs() -> None:
    raw = _raw(mode="offline")
    cfg = load_config(raw)
    assert any("extra" in a and "offline" in a for a in advisories(cfg))
    sink = MemorySink()
    trainer = Trainer(cfg, sinks=[sink])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    strategy = trainer.strategies[0]
    strategy.on_fit_start(trainer.context(0))
    w = strategy.state["w"]
    assert w.sum().item() == pytest.approx(1.0) and (w >= 0).all()
    # the copies trained, not the model
    assert all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    assert any("gblending offline: weights" in e[1] for e in sink.events)


def test_too_small_a_set_for_the_heldout_part_is_a_clear_error() -> None:
    raw = _raw(mode="offline", heldout_fraction=0.02)
    raw["dataset"]["params"]["num_samples"] = 120  # 84 train samples -> 2 held out < 2 per class
    with pytest.raises(ConfigError) as err:
        Trainer(load_config(raw))
    msg = err.value.as_dict()["strategies.0.heldout_fraction"]
    assert "at least 12" in msg and "raise heldout_fraction" in msg


def test_cli_too_small_exits_2(bml_exe: str, tmp_path: Path, _isolated_home: Path) -> None:
    from tests.test_cli_train import run_bml

    r = run_bml(
        bml_exe,
        "train",
        "--set",
        "train.epochs=1",
        "--set",
        "dataset.params.num_samples=60",
        "--set",
        "strategies=[gblending]",
        "--set",
        "strategies.0.mode=offline",
        "--no-progress",
    )
    assert r.returncode == 2, r.stderr
    assert "strategies.0.heldout_fraction" in r.stderr


def test_resume_is_bitwise(tmp_path: Path) -> None:
    raw = _raw()
    raw["train"]["epochs"] = 3
    raw["train"]["batch_size"] = 40
    assert_resume_bitwise(raw, tmp_path, stop_after=9)


def test_few_estimates_advisory() -> None:
    cfg = load_config({"strategies": ["gblending"], "train": {"epochs": 20}})
    assert any("1 estimate" not in a and "2 estimate(s) in 20 epochs" in a for a in advisories(cfg))
    cfg = load_config({"strategies": [{"name": "gblending", "super_epoch": 5}], "train": {"epochs": 20}})
    assert not any("estimate" in a for a in advisories(cfg))

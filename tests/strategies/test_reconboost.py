"""ReconBoost (STRATEGIES.md 2.10): the per-sample weight w1 - w2 q_{-m}(y), the stage/phase
schedule, phase 1 trains one modality (the others untouched), fresh optimizer state per phase,
`reconboost/stage` every step, F = beta sum_m f_m at evaluation; resume mid-stage."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bml_core.config import ConfigError, load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.reconboost.impl import sample_weights, schedule
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise


def test_per_sample_weight() -> None:
    others = torch.tensor([[0.0, math.log(3.0)], [0.0, math.log(3.0)]])  # softmax [0.25, 0.75]
    w = sample_weights(others, torch.tensor([1, 0]), w1=5.0, w2=1.0)
    assert torch.allclose(w, torch.tensor([5.0 - 0.75, 5.0 - 0.25]))
    w = sample_weights(others, torch.tensor([1, 0]), w1=2.0, w2=2.0)
    assert torch.allclose(w, torch.tensor([0.5, 1.5]))


def test_schedule_rotates_modalities() -> None:
    mods = ["a", "v"]
    got = [schedule(e, 2, 1, mods) for e in range(7)]
    assert got == [(0, 1, "a"), (0, 1, "a"), (0, 2, "a"), (1, 1, "v"), (1, 1, "v"), (1, 2, "v"), (2, 1, "a")]


def test_w2_not_below_w1_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(
            {"model": {"head": "shared"}, "strategies": [{"name": "reconboost", "w1": 1.0, "w2": 1.0}]}
        )
    assert "w1 > w2" in str(err.value)


def _raw(**train: object) -> dict:
    raw = small(
        strategies=[{"name": "reconboost", "stage_epochs": 1, "correct_epochs": 1}],
        train={"epochs": 3, "batch_size": 32, "threads": 1, **train},
    )
    raw["model"] = {**raw["model"], "head": "shared"}
    return raw


def test_phase_one_trains_one_modality_and_phases_start_fresh() -> None:
    trainer = Trainer(load_config(_raw()))
    strategy = trainer.strategies[0]
    strategy.on_fit_start(trainer.context(0))
    strategy.on_epoch_start(trainer.context(0))  # stage 0, phase 1: audio
    visual_before = [p.detach().clone() for p in trainer.model.encoder_parameters("visual")]
    audio_before = [p.detach().clone() for p in trainer.model.encoder_parameters("audio")]
    for i in range(3):
        x, y = trainer.bundle.train.get_batch(torch.arange(32 * i, 32 * (i + 1)))  # type: ignore[attr-defined]
        metrics = trainer.train_step(x, y, epoch=0)
        assert metrics is not None and metrics["reconboost/stage"] == 0 and metrics["reconboost/phase"] == 1
        assert 4.0 <= metrics["reconboost/sample_weight"] <= 5.0
    visual_after = trainer.model.encoder_parameters("visual")
    assert all(torch.equal(a, b) for a, b in zip(visual_before, visual_after, strict=True))
    assert not all(
        torch.equal(a, b)
        for a, b in zip(audio_before, trainer.model.encoder_parameters("audio"), strict=True)
    )
    assert all(p not in trainer.optimizer.state for p in visual_after)
    assert trainer.optimizer.state  # momentum of audio and the head
    strategy.on_epoch_start(trainer.context(1))  # phase 2 begins: fresh state
    assert not trainer.optimizer.state
    metrics = trainer.train_step(x, y, epoch=1)
    assert metrics is not None and metrics["reconboost/phase"] == 2
    assert all(p in trainer.optimizer.state for p in visual_after)  # everything trains
    assert trainer.model.extras["reconboost_beta"].value.grad is not None  # beta learns in phase 2


def test_stage_is_a_step_series_and_evaluation_is_the_ensemble() -> None:
    sink = MemorySink()
    trainer = Trainer(load_config(_raw()), sinks=[sink])
    summary = trainer.fit()
    stages = [m["reconboost/stage"] for _, _, m in sink.steps]
    per_epoch = trainer.steps_per_epoch
    assert stages == [0.0] * (2 * per_epoch) + [1.0] * per_epoch
    feats, y = trainer.encode_split(trainer.bundle.test, "test")
    beta = trainer.model.extras["reconboost_beta"].value
    z = beta * trainer.model.fusion.stacked(feats).sum(0)  # type: ignore[operator]
    # the model now holds the val-selected checkpoint, which "test" evaluated
    assert summary["test"]["acc"] == pytest.approx((z.argmax(1) == y).float().mean().item())


@pytest.mark.parametrize("stop_after", [4, 14])  # mid phase 1 of stage 0; mid phase 2
def test_resume_mid_stage_is_bitwise(tmp_path: Path, stop_after: int) -> None:
    assert_resume_bitwise(_raw(batch_size=40, epochs=3), tmp_path, stop_after=stop_after)

"""Diagnosing & re-learning (STRATEGIES.md 2.11): purity on a hand-made clustering, k-means
purity on separable data, alpha = tanh(lam gap), the blend of parameters AND BatchNorm
buffers; in a run: each re-initialisation is an event, the encoder's optimizer state is
reset, alpha is logged; resume across a re-initialisation is bitwise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.relearn.impl import kmeans_purity, purity, relearn_alpha, soft_reinit
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise


def test_purity_of_a_hand_made_clustering() -> None:
    labels = np.array([0, 0, 1, 1, 1, 2])
    clusters = np.array([0, 0, 0, 1, 1, 1])
    # cluster 0: labels 0,0,1 -> 2; cluster 1: labels 1,1,2 -> 2
    assert purity(labels, clusters) == pytest.approx(4 / 6)
    assert purity(labels, np.zeros(6, dtype=int)) == pytest.approx(3 / 6)


def test_kmeans_purity_on_separable_features() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    feats = rng.normal(size=(60, 4)) * 0.05 + np.eye(3, 4)[labels] * 10.0
    assert kmeans_purity(feats, labels, 3) == 1.0


def test_alpha() -> None:
    assert relearn_alpha(0.2, 3.0) == pytest.approx(math.tanh(0.6))
    assert relearn_alpha(0.0, 3.0) == 0.0


def test_soft_reinit_blends_parameters_and_batchnorm_buffers() -> None:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    init = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module.train()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(1.0)
    module(torch.randn(8, 3) * 5)  # moves running_mean / running_var, num_batches_tracked = 1
    now = {k: v.detach().clone() for k, v in module.state_dict().items()}
    soft_reinit(module, init, alpha=0.25)
    after = module.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var"):
        assert torch.allclose(after[k], 0.25 * init[k] + 0.75 * now[k]), k
    assert not torch.equal(now["1.running_mean"], init["1.running_mean"])
    assert after["1.num_batches_tracked"].item() == 1  # the counter is kept


def _raw(**train: object) -> dict:
    return small(
        # form: ours (the timing, buffer blend and optimizer reset checked here); the authors'
        # form is checked in tests/strategies/reference/test_relearn_reference.py
        strategies=[{"name": "relearn", "every": 1, "times": 1, "form": "ours"}],
        train={"epochs": 3, "batch_size": 32, "threads": 1, **train},
    )


def test_reinit_is_an_event_resets_the_encoder_state_and_is_logged() -> None:
    sink = MemorySink()
    trainer = Trainer(load_config(_raw(epochs=1)), sinks=[sink])
    trainer.fit()  # one epoch: no re-initialisation after the last epoch
    assert not any("relearn re-initialisation" in e[1] for e in sink.events)
    strategy = trainer.strategies[0]
    init = {m: strategy.initial(trainer.context(0), m) for m in trainer.modalities}
    before = {
        m: [p.detach().clone() for p in trainer.model.encoder_parameters(m)] for m in trainer.modalities
    }
    assert all(p in trainer.optimizer.state for p in trainer.model.encoder_parameters("audio"))
    alphas, gaps = strategy.diagnose(trainer.context(0))
    assert all(0.0 <= a < 1.0 for a in alphas) and all(0.0 <= g <= 1.0 for g in gaps)
    trainer.cfg.train.epochs = 5  # pretend more epochs follow
    strategy.on_epoch_end(trainer.context(0), None)
    assert strategy.state["count"] == 1
    for i, m in enumerate(trainer.modalities):
        a = alphas[i]
        names = [n for n, _ in trainer.model.encoders[m].named_parameters()]
        for name, old, new in zip(names, before[m], trainer.model.encoder_parameters(m), strict=True):
            assert torch.allclose(new, a * init[m][name] + (1 - a) * old, atol=1e-6)
        assert all(p not in trainer.optimizer.state for p in trainer.model.encoder_parameters(m))
    assert any("relearn re-initialisation 1/1" in e[1] for e in sink.events)


def test_run_logs_alpha_and_emits_the_event() -> None:
    sink = MemorySink()
    Trainer(load_config(_raw(epochs=2)), sinks=[sink]).fit()
    events = [e[1] for e in sink.events if "relearn re-initialisation" in e[1]]
    assert len(events) == 1 and "after epoch 0" in events[0]
    first, last = sink.steps[0][2], sink.steps[-1][2]
    assert (
        first["relearn/alpha/audio"] == 0.0 and first["relearn/purity_gap/audio"] == 0.0
    )  # no diagnosis yet
    assert last["relearn/alpha/visual"] == pytest.approx(math.tanh(3.0 * last["relearn/purity_gap/visual"]))
    assert last["relearn/purity_gap/visual"] > 0.0


@pytest.mark.parametrize("stop_after", [5, 11])  # before and after the re-initialisation
def test_resume_across_a_reinit_is_bitwise(tmp_path: Path, stop_after: int) -> None:
    full = assert_resume_bitwise(_raw(batch_size=40), tmp_path, stop_after=stop_after)
    assert full.full.strategies[0].state["count"] == 1

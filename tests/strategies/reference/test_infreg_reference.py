"""Ours (infreg.preset: official, the default) against the authors' InfoReg epoch
(infreg_official.py, GeWu-Lab/InfoReg_CVPR2025@939b2ed main.py): with `cnn` (BatchNorm)
encoders, the same model, optimizer (SGD, momentum 0.9, weight decay 1e-4, main.py L714) and
batches, over enough epochs that the prime learning window opens and closes, the window test k,
both betas, the losses, every gradient just before each step, the weights and BatchNorm buffers
after each epoch and the audio Fisher traces agree to 1e-6. The paper preset (gap / B, betas
of above-mean modalities, trace of every encoder, `previous` window) fails this comparison."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import SGD_MOMENTUM, bn_buffers, small_cnn
from tests.strategies.reference.infreg_official import official_epoch

STEPS = 2
BATCH = 16
HIGH = 0.01


def _trainer(**params: object) -> Trainer:
    raw = small_cnn(
        num_samples=96,
        strategies=[{"name": "infreg", **params}],
        train={"epochs": 20, "batch_size": BATCH},
        optim=SGD_MOMENTUM,
    )
    return Trainer(load_config(raw))


def _compare_with_the_official_run(
    trainer: Trainer, epochs: range, history: list[float] | None = None
) -> dict[str, Any]:
    """Run `epochs` x STEPS steps of ours and of the official loop side by side, both starting
    from the same earlier trace history (as after a resume); assert each quantity agrees;
    return what was seen (k per epoch, betas)."""
    model = trainer.model
    ref = copy.deepcopy(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    names = [n for n, _ in model.named_parameters()]
    ref_params = dict(ref.named_parameters())
    head = ref.fusion.fc

    def encode(x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return ref.encoders["audio"](x["audio"]), ref.encoders["visual"](x["visual"])

    strat = trainer.strategies[0]
    grads: list[dict[str, torch.Tensor]] = []
    step = trainer.optimizer_step

    def record() -> None:
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        step()

    trainer.optimizer_step = record  # type: ignore[method-assign]
    traces: list[float] = list(history or [])
    strat.state["history"] = list(traces)
    seen: dict[str, Any] = {"k": [], "beta": [], "beta2": []}
    gen = torch.Generator().manual_seed(0)
    for epoch in epochs:
        order = torch.randperm(len(trainer.bundle.train), generator=gen)
        batches = [
            trainer.bundle.train.get_batch(order[i * BATCH : (i + 1) * BATCH])  # type: ignore[attr-defined]
            for i in range(STEPS)
        ]
        log = official_epoch(
            ref, ref.encoders["audio"], ref.encoders["visual"], head, encode, batches, ref_opt, epoch, traces
        )
        ctx = trainer.context(epoch)
        strat.on_epoch_start(ctx)
        assert strat.state["open"] == (log[0]["k"] > 0.05), epoch
        assert strat.state["growth"] == pytest.approx(log[0]["k"], abs=1e-6), epoch
        seen["k"].append(log[0]["k"])
        grads.clear()
        for (x, y), want in zip(batches, log, strict=True):
            metrics = trainer.train_step(x, y, epoch)
            assert metrics is not None
            assert metrics["infreg/beta/audio"] == pytest.approx(want["beta"], abs=1e-6), epoch
            assert metrics["infreg/beta/visual"] == pytest.approx(want["beta2"], abs=1e-6), epoch
            assert metrics["train/loss_term/ce"] == pytest.approx(want["loss"], rel=1e-6, abs=1e-6)
            assert metrics["train/loss_term/uni_ce"] == pytest.approx(
                want["loss_a"] + want["loss_v"], rel=1e-6, abs=1e-6
            )
            seen["beta"].append(want["beta"])
            seen["beta2"].append(want["beta2"])
        for got, want in zip(grads, log, strict=True):
            want_by_name = {
                n: want["grads"][id(ref_params[n])] for n in names if id(ref_params[n]) in want["grads"]
            }
            assert set(got) == set(want_by_name)
            for n, g in want_by_name.items():
                assert torch.allclose(got[n], g, atol=1e-6), (epoch, n)
        strat.on_epoch_end(ctx, None)
        assert strat.state["history"][-1] == pytest.approx(traces[-1], rel=1e-5, abs=1e-9), epoch
        for (n, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-6), (epoch, n)
        got, want_bn = bn_buffers(model), bn_buffers(ref)
        assert got.keys() == want_bn.keys() and got
        for key in want_bn:
            assert torch.allclose(got[key], want_bn[key], atol=1e-6), (epoch, key)
    return seen


def test_official_preset_matches_the_authors_epochs_across_the_window() -> None:
    """From epoch 0 (k = 1, the window opens): both branches of the beta rule fire."""
    seen = _compare_with_the_official_run(_trainer(), range(6))
    assert all(k > 0.05 for k in seen["k"]), seen["k"]
    assert any(b > 0 for b in seen["beta"]) and any(b > 0 for b in seen["beta2"])


def test_official_preset_matches_the_authors_run_as_the_window_closes() -> None:
    """From epoch 10 after ten earlier traces of 0.01 (ten times this model's): k = 1/10 opens
    the window at epoch 10, the first small trace closes it (k < 0) from epoch 11 on."""
    seen = _compare_with_the_official_run(_trainer(), range(10, 14), history=[HIGH] * 10)
    assert seen["k"][0] == pytest.approx(0.1) and all(k < 0.05 for k in seen["k"][1:]), seen["k"]
    assert any(b > 0 for b in seen["beta"][:STEPS] + seen["beta2"][:STEPS])
    assert all(b == 0 for b in seen["beta"][STEPS:] + seen["beta2"][STEPS:])


def test_paper_preset_is_not_the_authors_run() -> None:
    with pytest.raises(AssertionError):
        _compare_with_the_official_run(_trainer(preset="paper"), range(6))

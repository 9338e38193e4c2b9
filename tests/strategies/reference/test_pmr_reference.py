"""Ours (pmr defaults: form switch, ema_skip_first) against the authors' PMR
(pmr_official.py, fanyunfeng-bit/Modal-Imbalance-PMR@3615e48 main_Prototype_grad.py): with
`cnn` (BatchNorm) encoders, the prototypes of epochs 0-3 (eval mode, first all_num // 10
batches, EMA from epoch 2 on), and on a step the prototype scores, both weights, the loss
terms, every gradient and the BatchNorm buffers agree to 1e-6. The earlier defaults (form
smooth; EMA from epoch 1) fail it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import SGD_MOMENTUM, bn_buffers, small_cnn
from tests.strategies.reference.pmr_official import calculate_prototype, official_step

BATCH = 16


def _trainer(**params: object) -> Trainer:
    raw = small_cnn(
        strategies=[{"name": "pmr", **params}],
        train={"epochs": 4, "batch_size": BATCH},
        optim=SGD_MOMENTUM,
    )
    return Trainer(load_config(raw))


def _encode(model: torch.nn.Module) -> Any:
    def encode(x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return model.encoders["audio"](x["audio"]), model.encoders["visual"](x["visual"])

    return encode


def _compare(trainer: Trainer, epochs: int = 4) -> None:
    """Each epoch: ours and the authors' prototypes from the same batches and model, then one
    step of each (ours through the trainer) on the same batch; assert everything agrees."""
    model = trainer.model
    strat = trainer.strategies[0]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    a_proto = v_proto = None
    for epoch in range(epochs):
        trainer.epoch = epoch  # the prototype pass's batch order follows the run's epoch
        batches = list(trainer.iter_batches("train", 1.0))
        assert len(batches) // 10 >= 1
        ref = copy.deepcopy(model)
        # main(): before epoch 0 with epoch = 0; after epoch e-1 with epoch = e-1
        a_proto, v_proto = calculate_prototype(
            ref, _encode(ref), batches, trainer.num_classes, max(epoch - 1, 0), a_proto, v_proto
        )
        strat.on_epoch_start(trainer.context(epoch))
        protos = strat.state["prototypes"]
        assert torch.allclose(protos["audio"], a_proto, atol=1e-6), epoch
        assert torch.allclose(protos["visual"], v_proto, atol=1e-6), epoch
        assert bn_buffers(model).keys() == bn_buffers(ref).keys()  # the pass ran in eval mode
        for k, v in bn_buffers(ref).items():
            assert torch.equal(bn_buffers(model)[k], v), k

        x, y = batches[epoch % len(batches)]
        want = official_step(ref, _encode(ref), ref.fusion.fc, x, y, a_proto, v_proto)
        want_grads = {n: p.grad.clone() for n, p in ref.named_parameters() if p.grad is not None}
        grads: dict[str, torch.Tensor] = {}
        step = trainer.optimizer_step

        def record(step: Any = step, grads: dict[str, torch.Tensor] = grads) -> None:
            grads.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
            step()

        trainer.optimizer_step = record  # type: ignore[method-assign]
        metrics = trainer.train_step(x, y, epoch)
        trainer.optimizer_step = step  # type: ignore[method-assign]
        assert metrics is not None
        assert metrics["pmr/score/audio"] * len(y) == pytest.approx(want["score_a"], rel=1e-6)
        assert metrics["pmr/score/visual"] * len(y) == pytest.approx(want["score_v"], rel=1e-6)
        assert metrics["pmr/weight/audio"] == pytest.approx(want["beta"], abs=1e-6), epoch
        assert metrics["pmr/weight/visual"] == pytest.approx(want["lam"], abs=1e-6), epoch
        assert metrics["train/loss_term/ce"] == pytest.approx(want["ce"], rel=1e-6)
        assert metrics["train/loss_term/pmr_pce"] == pytest.approx(want["proto"], rel=1e-6, abs=1e-7)
        assert set(grads) == set(want_grads)
        for n, g in want_grads.items():
            assert torch.allclose(grads[n], g, atol=1e-6), (epoch, n)
        for k, v in bn_buffers(ref).items():
            assert torch.allclose(bn_buffers(model)[k], v, atol=1e-6), k


def test_pmr_defaults_match_the_authors_prototypes_and_steps() -> None:
    _compare(_trainer())


def test_smooth_form_is_not_the_authors_weight() -> None:
    with pytest.raises(AssertionError):
        _compare(_trainer(form="smooth"))


def test_ema_from_the_first_recomputation_is_not_the_authors() -> None:
    with pytest.raises(AssertionError):
        _compare(_trainer(ema_skip_first=False))

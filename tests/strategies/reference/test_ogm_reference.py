"""Ours (ogm, `params: conv_only`, the authors' 4-D rule) against the authors' OGM step
(ogm_official.py, GeWu-Lab/OGM-GE_CVPR2022@343dc1d main.py): with `cnn` (BatchNorm) encoders,
on three consecutive steps the coefficients, every gradient after the modulation and the
weights and BatchNorm buffers after the step agree to 1e-6. Our default `params: weights`
also scales the 2-D weights of an encoder's Linear layers; on the authors' ResNet-18
encoders (no Linear) the two select the same tensors, on `cnn` they differ (checked here)."""

from __future__ import annotations

import copy

import pytest
import torch

from bml_core.config import load_config
from bml_core.trainer import Trainer
from tests.helpers.configs import SGD_MOMENTUM, small_cnn
from tests.strategies.reference.ogm_official import official_step


def _trainer(**params: object) -> Trainer:
    raw = small_cnn(
        strategies=[{"name": "ogm", "alpha": 0.8, **params}],
        train={"epochs": 1, "batch_size": 16},
        optim=SGD_MOMENTUM,
    )
    return Trainer(load_config(raw))


def _compare(trainer: Trainer) -> None:
    model = trainer.model
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    def encode(x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return ref.encoders["audio"](x["audio"]), ref.encoders["visual"](x["visual"])

    step = trainer.optimizer_step
    grads: dict[str, torch.Tensor] = {}

    def record() -> None:
        grads.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        step()

    trainer.optimizer_step = record  # type: ignore[method-assign]
    for i in range(3):
        x, y = trainer.bundle.train.get_batch(torch.arange(i * 16, i * 16 + 16))  # type: ignore[attr-defined]
        opt.zero_grad()
        ca, cv = official_step(
            ref, encode, ref.fusion.fc, ref.encoders["audio"], ref.encoders["visual"], x, y, 0.8
        )
        want = {n: p.grad.clone() for n, p in ref.named_parameters() if p.grad is not None}
        opt.step()
        grads.clear()
        metrics = trainer.train_step(x, y, 0)
        assert metrics is not None
        assert metrics["ogm/coef/audio"] == pytest.approx(ca, abs=1e-6), i
        assert metrics["ogm/coef/visual"] == pytest.approx(cv, abs=1e-6), i
        assert set(grads) == set(want)
        for n, g in want.items():
            assert torch.allclose(grads[n], g, atol=1e-6), (i, n)
        for (n, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
            assert torch.allclose(p, q, atol=1e-6), (i, n)
        for (k, b), c in zip(model.state_dict().items(), ref.state_dict().values(), strict=True):
            if "running" in k:
                assert torch.allclose(b, c, atol=1e-6), (i, k)


def test_ogm_conv_only_matches_the_authors_step() -> None:
    _compare(_trainer(params="conv_only"))


def test_ogm_weights_selection_is_not_the_authors_on_a_cnn_with_a_linear_layer() -> None:
    with pytest.raises(AssertionError):
        _compare(_trainer(params="weights"))

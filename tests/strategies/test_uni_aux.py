"""uni_aux (STRATEGIES.md section 2.1): the formulas against hand-computed numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import ConfigError, load_config, validate_config
from bml_core.sinks import MemorySink
from bml_core.strategies.spec import get_spec
from bml_core.strategies.uni_aux.impl import (
    scale_gradients_,
    uni_aux_loss,
    uni_aux_terms,
    unimodal_cross_entropy,
)
from bml_core.trainer import Trainer
from tests.helpers.configs import SMALL, small
from tests.helpers.resume import assert_resume_bitwise

LN = math.log
# Two modalities, two samples, two classes, y = [0, 1]:
#   u_a: sample 0 [0, 0]     -> p(y=0) = 1/2  -> CE = ln 2
#        sample 1 [0, ln 3]  -> p(y=1) = 3/4  -> CE = ln 4/3       mean_a = (ln 2 + ln 4/3) / 2 = ln(8/3) / 2
#   u_v: sample 0 [ln 3, 0]  -> p(y=0) = 3/4  -> CE = ln 4/3
#        sample 1 [ln 3, 0]  -> p(y=1) = 1/4  -> CE = ln 4         mean_v = (ln 4/3 + ln 4) / 2 = ln(16/3) / 2
#   z = u_a + u_v: sample 0 [ln 3, 0] -> ln 4/3; sample 1 [ln 3, ln 3] -> ln 2
#                                                                  CE(z) = (ln 4/3 + ln 2) / 2 = ln(8/3) / 2
U = torch.tensor(
    [
        [[0.0, 0.0], [0.0, LN(3)]],
        [[LN(3), 0.0], [LN(3), 0.0]],
    ]
)
Y = torch.tensor([0, 1])


def test_unimodal_cross_entropy_per_modality() -> None:
    got = unimodal_cross_entropy(U, Y)
    assert got.tolist() == pytest.approx([LN(8 / 3) / 2, LN(16 / 3) / 2])


def test_loss_is_fused_ce_plus_weighted_unimodal_ce() -> None:
    z = U.sum(0)
    lambdas = torch.tensor([1.0, 0.5])
    # terms: 1 * ln(8/3)/2 and 0.5 * ln(16/3)/2 = ln(16/3)/4
    assert uni_aux_terms(U, Y, lambdas).tolist() == pytest.approx([LN(8 / 3) / 2, LN(16 / 3) / 4])
    # L = ln(8/3)/2 + ln(8/3)/2 + ln(16/3)/4 = ln(8/3) + ln(16/3)/4
    assert float(uni_aux_loss(z, U, Y, lambdas)) == pytest.approx(LN(8 / 3) + LN(16 / 3) / 4)
    # lambda_m = 1 (the default): ln(8/3)/2 + ln(8/3)/2 + ln(16/3)/2
    ones = torch.ones(2)
    assert float(uni_aux_loss(z, U, Y, ones)) == pytest.approx(LN(8 / 3) + LN(16 / 3) / 2)


def test_split_heads_train_their_own_block_and_the_shared_bias() -> None:
    # concat head, C = 2, d_a = d_v = 1: W = [[1, 0], [0, 1]] (columns: a | v), b = [0.4, -0.2].
    # u_a = W_a h_a + b/2 with h_a = [1]: [1 + 0.2, 0 - 0.1] = [1.2, -0.1], y = 0.
    # dCE/du_a = softmax(u_a) - onehot(0); softmax([1.2, -0.1]) = [1/(1+e^-1.3), e^-1.3/(1+e^-1.3)]
    #          = [0.785835, 0.214165] -> [-0.214165, 0.214165]
    # dCE/dW_a = (dCE/du_a) * h_a = [-0.214165, 0.214165]; dCE/dW_v = 0; dCE/db = (dCE/du_a) / 2
    from bml_core.models.fusion import ConcatFusion

    head = ConcatFusion({"a": 1, "v": 1}, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        head.fc.bias.copy_(torch.tensor([0.4, -0.2]))
    feats = {"a": torch.tensor([[1.0]]), "v": torch.tensor([[2.0]])}
    u = head.unimodal_logits(feats)
    assert u["a"][0].tolist() == pytest.approx([1.2, -0.1])
    term = uni_aux_terms(u["a"][None], torch.tensor([0]), torch.ones(1))
    term.sum().backward()
    p = 1 / (1 + math.exp(-1.3))
    g = head.fc.weight.grad
    assert g is not None and head.fc.bias.grad is not None
    assert g[:, 0].tolist() == pytest.approx([p - 1, 1 - p], abs=1e-6)
    assert g[:, 1].tolist() == [0.0, 0.0]
    assert head.fc.bias.grad.tolist() == pytest.approx([(p - 1) / 2, (1 - p) / 2], abs=1e-6)


def test_encoder_grad_scale_multiplies_in_place() -> None:
    g1, g2 = torch.tensor([1.0, -2.0]), torch.tensor([[3.0]])
    scale_gradients_([g1, g2], 3.0)
    assert g1.tolist() == [3.0, -6.0] and g2.tolist() == [[9.0]]
    scale_gradients_([g1], 1.0)  # gamma = 1: untouched
    assert g1.tolist() == [3.0, -6.0]


# ---------------------------------------------------------------- the strategy in the trainer


def _trainer(strategies: list, **over: object) -> Trainer:
    return Trainer(load_config(small(strategies=strategies, **over)))


def _batch(trainer: Trainer, n: int = 32) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    return trainer.bundle.train.get_batch(torch.arange(n))  # type: ignore[attr-defined,no-any-return]


def test_spec_defaults_bounds_and_rules() -> None:
    spec = get_spec("uni_aux")
    assert spec is not None and spec.has("needs_unimodal_logits_with_grad") and spec.cost == "cheap"
    assert [f.key for f in spec.metrics] == ["uni_aux/loss"]
    p = load_config(small(strategies=["uni_aux"])).strategies[0]
    assert (p.lam, p.lambdas, p.encoder_grad_scale) == (1.0, {}, 1.0)  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": [{"name": "uni_aux", "encoder_grad_scale": 0}]})
    assert "strategies.0.encoder_grad_scale" in exc.value.as_dict()
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": [{"name": "uni_aux", "lambdas": {"visual": -1.0}}]})
    assert "must be >= 0" in exc.value.as_dict()["strategies.0.lambdas"]
    with pytest.raises(ConfigError) as exc:  # FiLM has no per-modality blocks: aux heads needed
        validate_config({"strategies": ["uni_aux"], "model": {"fusion": "film"}})
    assert "model.heads" in exc.value.as_dict()
    validate_config({"strategies": ["uni_aux"], "model": {"fusion": "film", "heads": "aux"}})
    with pytest.raises(ConfigError) as exc:
        _trainer([{"name": "uni_aux", "lambdas": {"depth": 1.0}}])
    assert "depth" in exc.value.as_dict()["strategies.uni_aux.lambdas"]


@pytest.mark.parametrize("heads", ["split", "aux"])
def test_step_loss_is_fused_ce_plus_weighted_unimodal_ce(heads: str) -> None:
    """The trainer's loss equals CE(z) + 1.0 CE(u_audio) + 0.25 CE(u_visual), recomputed here
    from the model's own outputs before the step (no dropout in this model)."""
    trainer = _trainer(
        [{"name": "uni_aux", "lambdas": {"visual": 0.25}}], model={**SMALL["model"], "heads": heads}
    )
    x, y = _batch(trainer)
    model = trainer.model
    with torch.no_grad():
        h = model.encode(x)
        z = model.fusion(h)
        if heads == "aux":
            assert model.aux_heads is not None
            u = {m: model.aux_heads[m](h[m]) for m in ("audio", "visual")}
        else:
            u = model.fusion.unimodal_logits(h)
    ce = {m: float(F.cross_entropy(u[m], y)) for m in u}
    expected = float(F.cross_entropy(z, y)) + 1.0 * ce["audio"] + 0.25 * ce["visual"]
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    assert metrics["train/loss"] == pytest.approx(expected, rel=1e-5)
    assert metrics["uni_aux/loss/audio"] == pytest.approx(ce["audio"], rel=1e-5)
    assert metrics["uni_aux/loss/visual"] == pytest.approx(ce["visual"], rel=1e-5)
    assert metrics["train/loss_term/uni_aux"] == pytest.approx(ce["audio"] + 0.25 * ce["visual"], rel=1e-5)


def test_outside_its_epochs_it_adds_nothing_but_still_logs() -> None:
    trainer = _trainer([{"name": "uni_aux", "start_epoch": 1}])
    x, y = _batch(trainer)
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None and "train/loss_term/uni_aux" not in metrics
    assert "train/loss_term/ce" not in metrics  # the fused CE is the only term
    assert "uni_aux/loss/visual" in metrics


def _grads_at_step(trainer: Trainer) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}

    def grab(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        for name, p in trainer.model.named_parameters():
            if p.grad is not None:
                seen[name] = p.grad.clone()

    trainer.optimizer.register_step_pre_hook(grab)
    x, y = _batch(trainer)
    trainer.train_step(x, y, 0)
    return seen


def test_encoder_grad_scale_multiplies_encoder_gradients_only() -> None:
    plain = _grads_at_step(_trainer(["uni_aux"]))
    scaled = _grads_at_step(_trainer([{"name": "uni_aux", "encoder_grad_scale": 3.0}]))
    assert plain.keys() == scaled.keys()
    for name, g in plain.items():
        if name.startswith("encoders."):
            assert torch.equal(scaled[name], g * 3.0), name  # same op, bitwise
        else:
            assert torch.equal(scaled[name], g), name  # the fusion head is untouched


def test_composes_with_opm() -> None:
    sink = MemorySink()
    cfg = load_config(small(strategies=["opm", {"name": "uni_aux", "encoder_grad_scale": 2.0}]))
    Trainer(cfg, sinks=[sink]).fit()
    keys = set(sink.steps[-1][2])
    assert {
        "opm/drop_prob/audio",
        "uni_aux/loss/audio",
        "uni_aux/loss/visual",
        "train/loss_term/uni_aux",
    } <= keys
    assert all(math.isfinite(v) for _, _, mets in sink.steps for v in mets.values())


def test_stopped_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    raw = small(
        strategies=[{"name": "uni_aux", "lam": 0.5, "encoder_grad_scale": 2.0}],
        model={
            **SMALL["model"],
            "encoders": {"audio": {"hidden_dim": 32, "dropout": 0.2}, "visual": {"name": "mlp"}},
        },
        train={"epochs": 3, "batch_size": 20, "threads": 1},
    )
    assert_resume_bitwise(raw, tmp_path, stop_after=5)


def test_live_draws_its_panel_from_the_spec() -> None:
    from app.views.live.data import panels

    by_prefix = {prefix: panel for panel in panels() for prefix in panel.prefixes}
    assert by_prefix["uni_aux/loss/"].title == "uni_aux: uni-modal loss CE(u_m) per modality"
    assert by_prefix["uni_aux/loss/"].keys(["uni_aux/loss/audio", "train/loss"]) == ["uni_aux/loss/audio"]

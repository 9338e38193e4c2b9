"""PMR (STRATEGIES.md section 2.4): every formula against hand-computed numbers, the plug-in
in the trainer (prototypes, loss term, OPM composition, rules) and bitwise resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bml_core.config import ConfigError, load_config
from bml_core.strategies.pmr.impl import (
    class_means,
    ema_prototypes,
    epoch_prototypes,
    pmr_weights,
    prototype_batches,
    prototype_ce,
    prototype_distances,
    prototype_entropy,
    prototype_score,
)
from bml_core.trainer import Trainer
from tests.strategies.strategy_helpers import assert_resume_is_bitwise, small

LN2, LN3 = math.log(2.0), math.log(3.0)


def test_prototype_batches_is_the_first_fraction_floor_at_least_one() -> None:
    assert prototype_batches(10, 0.1) == 1  # official all_num // 10
    assert prototype_batches(25, 0.1) == 2  # floor(2.5)
    assert prototype_batches(5, 0.1) == 1  # floor(0.5) = 0 -> at least one batch
    assert prototype_batches(40, 0.25) == 10
    assert prototype_batches(7, 1.0) == 7


def test_class_means_hand_computed() -> None:
    feats = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [0.0, 0.0]])
    labels = torch.tensor([0, 0, 1, 1])
    c = class_means(feats, labels, num_classes=3)
    # class 0: ((1+3)/2, (2+4)/2) = (2, 3); class 1: ((5+0)/2, (6+0)/2) = (2.5, 3)
    # class 2 has no sample: mean of all features ((1+3+5+0)/4, (2+4+6+0)/4) = (2.25, 3)
    assert torch.equal(c, torch.tensor([[2.0, 3.0], [2.5, 3.0], [2.25, 3.0]]))
    previous = torch.tensor([[9.0, 9.0], [9.0, 9.0], [7.0, 8.0]])
    c = class_means(feats, labels, num_classes=3, fallback=previous)
    assert torch.equal(c[2], torch.tensor([7.0, 8.0]))  # an absent class keeps its old prototype
    assert torch.equal(c[:2], torch.tensor([[2.0, 3.0], [2.5, 3.0]]))


def test_ema_with_momentum() -> None:
    new, old = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    # (1 - 0.2) * (1, 0) + 0.2 * (0, 1) = (0.8, 0.2)
    assert torch.allclose(ema_prototypes(new, old, 0.2), torch.tensor([[0.8, 0.2]]))
    assert torch.equal(ema_prototypes(new, old, 0.0), new)  # CREMA-D script: mu = 0
    assert torch.equal(ema_prototypes(new, None, 0.2), new)  # first computation: no EMA


def test_epoch_prototypes_use_only_the_first_batches_then_ema() -> None:
    batches = [
        ({"a": torch.tensor([[2.0], [4.0]]), "v": torch.tensor([[1.0], [1.0]])}, torch.tensor([0, 1])),
        ({"a": torch.tensor([[6.0], [8.0]]), "v": torch.tensor([[3.0], [5.0]])}, torch.tensor([0, 1])),
        ({"a": torch.tensor([[1e6], [1e6]]), "v": torch.tensor([[1e6], [1e6]])}, torch.tensor([0, 1])),
    ]
    first = epoch_prototypes(iter(batches), num_batches=2, num_classes=2, previous=None, momentum=0.2)
    # a: class 0 (2+6)/2 = 4, class 1 (4+8)/2 = 6; v: (1+3)/2 = 2, (1+5)/2 = 3; batch 3 unused
    assert torch.equal(first["a"], torch.tensor([[4.0], [6.0]]))
    assert torch.equal(first["v"], torch.tensor([[2.0], [3.0]]))
    second = epoch_prototypes(iter(batches[:1]), num_batches=1, num_classes=2, previous=first, momentum=0.2)
    # a: 0.8 * (2, 4) + 0.2 * (4, 6) = (2.4, 4.4); v: 0.8 * (1, 1) + 0.2 * (2, 3) = (1.2, 1.4)
    assert torch.allclose(second["a"], torch.tensor([[2.4], [4.4]]))
    assert torch.allclose(second["v"], torch.tensor([[1.2], [1.4]]))


def test_distances_hand_computed_and_equal_to_a_loop() -> None:
    h = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    protos = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    # ||(0,0)-(0,0)|| = 0, ||(0,0)-(3,0)|| = 3, ||(3,4)-(0,0)|| = 5, ||(3,4)-(3,0)|| = 4
    assert torch.allclose(prototype_distances(h, protos), torch.tensor([[0.0, 3.0], [5.0, 4.0]]))
    torch.manual_seed(0)
    h, protos = torch.randn(9, 5), torch.randn(4, 5)
    loop = torch.tensor(
        [
            [torch.sqrt(torch.dot(h[i] - protos[k], h[i] - protos[k])).item() for k in range(4)]
            for i in range(9)
        ]
    )  # the official EU_dist, as the reference
    assert torch.allclose(prototype_distances(h, protos), loop, atol=1e-5)


def test_prototype_score_and_pce() -> None:
    d = torch.tensor([[0.0, LN3], [LN3, 0.0]])
    # softmax(-d) rows: (1, 1/3) / (4/3) = (3/4, 1/4) and (1/4, 3/4)
    assert prototype_score(d, torch.tensor([0, 0])).item() == pytest.approx(0.75 + 0.25)
    assert prototype_score(d, torch.tensor([0, 1])).item() == pytest.approx(0.75 + 0.75)
    # CE(-d, y) with y = (0, 1): mean of -log(3/4), -log(3/4) = log(4/3)
    assert prototype_ce(d, torch.tensor([0, 1])).item() == pytest.approx(math.log(4 / 3))
    # y = (1, 1): mean of -log(1/4), -log(3/4) = (log 4 + log(4/3)) / 2
    assert prototype_ce(d, torch.tensor([1, 1])).item() == pytest.approx((math.log(4) + math.log(4 / 3)) / 2)


def test_prototype_entropy() -> None:
    # softmax(-(0, 0)) = (1/2, 1/2): entropy ln 2; softmax(-(0, ln 3)) = (3/4, 1/4):
    # -(3/4 ln 3/4 + 1/4 ln 1/4); the batch mean of both
    d = torch.tensor([[0.0, 0.0], [0.0, LN3]])
    h2 = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert prototype_entropy(d).item() == pytest.approx((LN2 + h2) / 2)


def test_smooth_weight_alpha_clip_rho_minus_one() -> None:
    # rho = max s / s: (2, 1) -> (1, 2): weights alpha * clip((0, 1), 0, 1) = (0, 1)
    assert torch.allclose(pmr_weights(torch.tensor([2.0, 1.0]), 1.0), torch.tensor([0.0, 1.0]))
    # (2, 1.6) -> rho (1, 1.25): (0, 0.25); alpha 2: (0, 0.5)
    assert torch.allclose(pmr_weights(torch.tensor([2.0, 1.6]), 1.0), torch.tensor([0.0, 0.25]))
    assert torch.allclose(pmr_weights(torch.tensor([2.0, 1.6]), 2.0), torch.tensor([0.0, 0.5]))
    # (3, 1) -> rho (1, 3): clipped at 1, times alpha 2 = (0, 2)
    assert torch.allclose(pmr_weights(torch.tensor([3.0, 1.0]), 2.0), torch.tensor([0.0, 2.0]))
    # M = 3: (1, 2, 1.6) -> rho (2, 1, 1.25) -> (1, 0, 0.25); the dominant modality gets 0
    assert torch.allclose(pmr_weights(torch.tensor([1.0, 2.0, 1.6]), 1.0), torch.tensor([1.0, 0.0, 0.25]))
    # equal scores: nobody is weaker
    assert torch.equal(pmr_weights(torch.tensor([1.5, 1.5]), 1.0), torch.zeros(2))


def test_switch_form_is_the_official_script() -> None:
    # official: ratio_a_p = s_a / s_v > 1 -> visual coefficient alpha, audio 0; < 1 the reverse;
    # = 1 both 0. Generalised: alpha wherever rho_m = max s / s_m > 1.
    assert torch.equal(pmr_weights(torch.tensor([2.0, 1.6]), 2.0, "switch"), torch.tensor([0.0, 2.0]))
    assert torch.equal(pmr_weights(torch.tensor([1.0, 1.9]), 2.0, "switch"), torch.tensor([2.0, 0.0]))
    assert torch.equal(pmr_weights(torch.tensor([1.0, 1.0]), 2.0, "switch"), torch.zeros(2))
    assert torch.equal(
        pmr_weights(torch.tensor([1.0, 2.0, 2.0]), 1.0, "switch"), torch.tensor([1.0, 0.0, 0.0])
    )
    with pytest.raises(ValueError, match="unknown PMR form"):
        pmr_weights(torch.tensor([1.0, 2.0]), 1.0, "hard")


# ---------------------------------------------------------------- the plug-in in the trainer


def _trainer(**strategy: object) -> Trainer:
    raw = small(strategies=[{"name": "pmr", **strategy}], train={"epochs": 1})
    raw["model"]["encoders"]["audio"]["dropout"] = 0.5  # eval mode matters for the prototypes
    return Trainer(load_config(raw))


def _manual_prototypes(trainer: Trainer, fraction: float) -> dict[str, torch.Tensor]:
    """Class means over the first floor(fraction * batches) training batches, eval mode."""
    n = max(1, math.floor(fraction * trainer.steps_per_epoch))
    ctx = trainer.context(trainer.epoch)
    feats: dict[str, list[torch.Tensor]] = {m: [] for m in trainer.modalities}
    ys = []
    trainer.model.eval()
    with torch.no_grad():
        for i, (x, y) in enumerate(ctx.iter_batches("train", fraction)):
            if i == n:
                break
            for m, h in trainer.model.encode(x).items():
                feats[m].append(h)
            ys.append(y)
    trainer.model.train()
    y_all = torch.cat(ys)
    out = {}
    for m, parts in feats.items():
        h = torch.cat(parts)
        out[m] = torch.stack([h[y_all == k].mean(0) for k in range(trainer.num_classes)])
    return out


def test_epoch_start_prototypes_then_ema_in_the_trainer() -> None:
    # ema_skip_first: false blends from the first recomputation on (the authors' skip is
    # checked in tests/strategies/reference/test_pmr_reference.py)
    trainer = _trainer(proto_fraction=0.25, momentum=0.2, ema_skip_first=False)
    pmr = trainer.strategies[0]
    assert trainer.steps_per_epoch == 8  # 252 training samples / 32: floor(0.25 * 8) = 2 batches
    pmr.on_epoch_start(trainer.context(0))
    first = _manual_prototypes(trainer, 0.25)
    for m in trainer.modalities:
        assert torch.allclose(pmr.state["prototypes"][m], first[m], atol=1e-6)
    assert trainer.model.training  # the eval-mode pass restored train mode
    with torch.no_grad():  # move the encoders, then the next epoch's prototypes blend
        for p in trainer.model.parameters():
            p.add_(0.1)
    trainer.epoch = 1
    pmr.on_epoch_start(trainer.context(1))
    second = _manual_prototypes(trainer, 0.25)
    for m in trainer.modalities:
        expected = 0.8 * second[m] + 0.2 * first[m]
        assert torch.allclose(pmr.state["prototypes"][m], expected, atol=1e-5)
    pmr.on_epoch_start(trainer.context(1))  # the same epoch again (a resume): kept, not recomputed
    assert torch.allclose(
        pmr.state["prototypes"]["audio"], 0.8 * second["audio"] + 0.2 * first["audio"], atol=1e-5
    )


def test_step_adds_the_weighted_prototype_loss() -> None:
    trainer = _trainer(alpha=2.0, form="smooth")
    pmr = trainer.strategies[0]
    pmr.on_epoch_start(trainer.context(0))
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    trainer.model.train()
    with torch.no_grad():  # the audio dropout draws from the global generator: replay it
        state = torch.get_rng_state()
        h = trainer.model.encode(x)
        torch.set_rng_state(state)
    protos = pmr.state["prototypes"]
    d = {m: prototype_distances(h[m], protos[m]) for m in trainer.modalities}
    scores = torch.stack([prototype_score(d[m], y) for m in trainer.modalities])
    weights = pmr_weights(scores, 2.0)
    expected = sum(weights[i] * prototype_ce(d[m], y) for i, m in enumerate(trainer.modalities))
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    assert metrics["train/loss_term/pmr_pce"] == pytest.approx(float(expected), rel=1e-5)
    for i, m in enumerate(trainer.modalities):
        assert metrics[f"pmr/weight/{m}"] == pytest.approx(float(weights[i]), rel=1e-5, abs=1e-7)
        assert metrics[f"pmr/score/{m}"] == pytest.approx(float(scores[i]) / 32, rel=1e-5)
    assert metrics["pmr/weight/audio"] == 0.0 < metrics["pmr/weight/visual"]  # audio leads here


def test_inactive_epochs_weight_zero_and_the_entropy_term() -> None:
    trainer = _trainer(start_epoch=1)
    pmr = trainer.strategies[0]
    pmr.on_epoch_start(trainer.context(0))
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None and metrics["train/loss_term/pmr_pce"] == 0.0
    assert metrics["pmr/weight/visual"] == 0.0
    trainer = _trainer(per_mu=0.5, per_epochs=1)
    trainer.strategies[0].on_epoch_start(trainer.context(0))
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    # -per_mu * entropy of the dominant modality's prototype distribution: in [-0.5 ln 6, 0)
    assert -0.5 * math.log(6) <= metrics["train/loss_term/pmr_entropy"] < 0
    metrics = trainer.train_step(x, y, 1)  # past per_epochs: no entropy term
    assert metrics is not None and "train/loss_term/pmr_entropy" not in metrics


def test_config_bounds_and_the_opm_order_rule() -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(small(strategies=[{"name": "pmr", "proto_fraction": 0.0}]))
    assert "strategies.0.proto_fraction" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_config(small(strategies=[{"name": "pmr", "form": "hard"}]))
    assert "strategies.0.form" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_config(small(strategies=["opm", "pmr"]))
    assert "list pmr before opm" in str(exc.value)
    load_config(small(strategies=["pmr", "opm"]))  # legal


def test_with_opm_the_distances_use_the_undropped_features() -> None:
    trainer = Trainer(
        load_config(small(strategies=["pmr", {"name": "opm", "p_exe": 1.0}], train={"epochs": 1}))
    )
    pmr, opm = trainer.strategies
    opm.forced_q = torch.tensor([0.9, 0.0])  # type: ignore[attr-defined]
    pmr.on_epoch_start(trainer.context(0))
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    with torch.no_grad():
        h = trainer.model.encode(x)  # no dropout in this model
    d = {m: prototype_distances(h[m], pmr.state["prototypes"][m]) for m in trainer.modalities}
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None and metrics["opm/dropped/audio"] > 0.5
    for m in trainer.modalities:
        assert metrics[f"pmr/pce/{m}"] == pytest.approx(float(prototype_ce(d[m], y)), rel=1e-5)


@pytest.mark.parametrize("where", [5, "boundary"])
def test_resume_is_bitwise(tmp_path: Path, where: int | str) -> None:
    assert_resume_is_bitwise(
        tmp_path,
        [{"name": "pmr", "proto_fraction": 0.2, "momentum": 0.2}, {"name": "opm", "p_exe": 0.8}],
        where,
    )


def test_a_step_driven_by_hand_computes_the_prototypes_first() -> None:
    trainer = _trainer()
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    assert trainer.strategies[0].state["prototypes"] is None
    metrics = trainer.train_step(x, y, 0)  # no on_epoch_start: the step runs it
    assert metrics is not None and math.isfinite(metrics["train/loss_term/pmr_pce"])
    assert trainer.strategies[0].state["epoch"] == 0
    assert torch.is_grad_enabled() and trainer.model.training  # the no-grad eval pass left nothing behind


def test_state_tensors_follow_the_run_device_on_load() -> None:
    from bml_core.strategies.base import tensors_to

    state = {
        "prototypes": {"a": torch.ones(2)},
        "anchors": [[torch.zeros(1)]],
        "epoch": 3,
        "t": (torch.ones(1),),
    }
    moved = tensors_to(state, torch.device("meta"))
    assert moved["prototypes"]["a"].device.type == "meta" and moved["anchors"][0][0].device.type == "meta"
    assert moved["epoch"] == 3 and isinstance(moved["t"], tuple) and moved["t"][0].device.type == "meta"

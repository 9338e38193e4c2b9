"""InfoReg (STRATEGIES.md section 2.6): every formula against hand-computed numbers, the
plug-in in the trainer (loss term, proximal term only while open and only above the mean,
window and trace per epoch, OPM composition) and bitwise resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import ConfigError, load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.infreg.impl import (
    accumulate_squared_gradients_,
    add_proximal_gradient_,
    fisher_trace,
    infreg_betas,
    proximal_step_,
    trace_growth,
    window_open,
)
from bml_core.trainer import Trainer
from tests.strategies.strategy_helpers import assert_resume_is_bitwise, small


def test_beta_only_above_the_mean_score() -> None:
    # s = (40, 20), B = 32: mean 30, gaps (10, -10); tanh(10/32) = tanh(0.3125) = 0.302710,
    # exp(0.302710) = 1.353522, beta_a = 0.95 * 1.353522 = 1.285845; beta_v = 0 (below the mean)
    b = infreg_betas(torch.tensor([40.0, 20.0]), beta0=0.95, batch_size=32)
    assert b[0].item() == pytest.approx(1.285845, rel=1e-5)
    assert b[1].item() == 0.0
    # M = 3, s = (30, 24, 18), B = 6: mean 24, gaps (6, 0, -6) / 6 = (1, 0, -1); tanh 1 = 0.761594,
    # exp(0.761594) = 2.141688; beta = (0.95 * 2.141688, 0, 0) = (2.034603, 0, 0): at the mean is not above
    b = infreg_betas(torch.tensor([30.0, 24.0, 18.0]), beta0=0.95, batch_size=6)
    assert b[0].item() == pytest.approx(2.034603, rel=1e-5)
    assert b[1].item() == 0.0 and b[2].item() == 0.0
    # two above the mean: s = (10, 10, 4), B = 1: mean 8, gaps (2, 2, -4): tanh 2 = 0.964028,
    # beta0 = 1: exp(0.964028) = 2.622237 for both
    b = infreg_betas(torch.tensor([10.0, 10.0, 4.0]), beta0=1.0, batch_size=1)
    assert torch.allclose(b, torch.tensor([2.622237, 2.622237, 0.0]), rtol=1e-5)


def test_proximal_term_adds_beta_times_distance_to_the_anchor() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    p.grad = torch.tensor([0.1, 0.1])
    q = torch.nn.Parameter(torch.tensor([5.0]))  # no gradient: left alone
    anchors = [torch.tensor([0.0, 0.0]), torch.tensor([4.0])]
    add_proximal_gradient_([p, q], anchors, 0.5)
    # (0.1, 0.1) + 0.5 * ((1, 2) - (0, 0)) = (0.6, 1.1)
    assert torch.allclose(p.grad, torch.tensor([0.6, 1.1]))
    assert q.grad is None
    add_proximal_gradient_([p], [torch.tensor([1.0, 0.0])], torch.tensor(2.0))
    # (0.6, 1.1) + 2 * ((1, 2) - (1, 0)) = (0.6, 5.1)
    assert torch.allclose(p.grad, torch.tensor([0.6, 5.1]))


def test_proximal_step_only_while_open_and_only_where_beta_nonzero() -> None:
    pa = torch.nn.Parameter(torch.tensor([3.0]))
    pv = torch.nn.Parameter(torch.tensor([3.0]))
    anchors = [[torch.tensor([1.0])], [torch.tensor([1.0])]]
    for open_ in (False, True):
        pa.grad, pv.grad = torch.tensor([0.5]), torch.tensor([0.5])
        proximal_step_([[pa], [pv]], anchors, [1.5, 0.0], window_is_open=open_)
        # open: audio 0.5 + 1.5 * (3 - 1) = 3.5; visual (beta 0) unchanged; closed: both unchanged
        assert pa.grad.item() == (3.5 if open_ else 0.5)
        assert pv.grad.item() == 0.5


def test_fisher_trace_of_accumulated_squared_gradients() -> None:
    w = torch.nn.Parameter(torch.zeros(2))
    u = torch.nn.Parameter(torch.zeros(1, 1))
    acc = [torch.zeros(2), torch.zeros(1, 1)]
    for gw, gu in (([1.0, 2.0], [[1.0]]), ([3.0, -1.0], [[1.0]])):
        w.grad, u.grad = torch.tensor(gw), torch.tensor(gu)
        accumulate_squared_gradients_(acc, [w, u])
    # w: (1 + 9, 4 + 1) = (10, 5); u: 1 + 1 = 2; trace = mean(10, 5) + mean(2) = 7.5 + 2 = 9.5
    assert torch.equal(acc[0], torch.tensor([10.0, 5.0]))
    assert fisher_trace(acc).item() == 9.5


def test_window_rule_relative_growth_with_zero_padding() -> None:
    # no history yet: open (the official k = 1 at epoch 0)
    assert trace_growth([], 2) == 1.0 and window_open([], 2, 0.05)
    # window 2, history (4): padded (0, 0, 0, 4): tr1 = (0 + 4)/2 = 2, tr2 = 0 -> (2 - 0)/2 = 1
    assert trace_growth([4.0], 2) == 1.0
    # (2, 2, 3, 5): tr1 = (3 + 5)/2 = 4, tr2 = (2 + 2)/2 = 2 -> (4 - 2)/4 = 0.5: open
    assert trace_growth([2.0, 2.0, 3.0, 5.0], 2) == 0.5
    # shifted (official): tr2 = (2 + 3)/2 = 2.5 -> (4 - 2.5)/4 = 0.375
    assert trace_growth([2.0, 2.0, 3.0, 5.0], 2, "shifted") == 0.375
    # (4, 6, 5, 5): tr1 = 5, tr2 = 5 -> 0: closed
    assert not window_open([4.0, 6.0, 5.0, 5.0], 2, 0.05)
    # window 3, (3, 6, 9, 3): last 3 (6, 9, 3) mean 6; previous 3 padded (0, 0, 3) mean 1 -> 5/6
    assert trace_growth([3.0, 6.0, 9.0, 3.0], 3) == pytest.approx(5 / 6)
    # exactly at the threshold is not "exceeds": (19, 19, 20, 20): (20 - 19)/20 = 0.05
    assert trace_growth([19.0, 19.0, 20.0, 20.0], 2) == 0.05
    assert not window_open([19.0, 19.0, 20.0, 20.0], 2, 0.05)
    assert window_open([19.0, 19.0, 20.0, 20.0], 2, 0.04)
    # a shrinking trace: (8, 8, 4, 4): (4 - 8)/4 = -1
    assert trace_growth([8.0, 8.0, 4.0, 4.0], 2) == -1.0
    with pytest.raises(ValueError, match="unknown window comparison"):
        trace_growth([1.0], 2, "overlap")


# ---------------------------------------------------------------- the plug-in in the trainer


def _trainer(**strategy: object) -> Trainer:
    """These tests pin the paper reading (preset: paper); tests/strategies/reference/ checks official."""
    cfg = small(strategies=[{"name": "infreg", "preset": "paper", **strategy}], train={"epochs": 1})
    return Trainer(load_config(cfg))


def _grads_after_step_events(trainer: Trainer, x: dict, y: torch.Tensor, edit: bool) -> list[torch.Tensor]:
    """compute_loss -> backward -> (on_gradients when `edit`) on a fixed batch, no optimizer step."""
    infreg = trainer.strategies[0]
    model = trainer.model
    model.zero_grad(set_to_none=True)
    ctx = trainer.context(0, y)
    h = model.encode(x)
    z = model.fusion(h)
    u = ctx.unimodal_logits(h)
    terms = infreg.compute_loss(ctx, h, z, u, y)
    uni = terms["uni_ce"]
    assert uni is not None
    (F.cross_entropy(z, y) + uni).backward()
    if edit:
        infreg.on_gradients(ctx)
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_loss_term_is_the_sum_of_unimodal_cross_entropies() -> None:
    trainer = _trainer()
    trainer.strategies[0].on_epoch_start(trainer.context(0))
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    with torch.no_grad():
        u = trainer.model.fusion.unimodal_logits(trainer.model.encode(x))
        expected = sum(F.cross_entropy(u[m], y) for m in ("audio", "visual"))
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    assert metrics["train/loss_term/uni_ce"] == pytest.approx(float(expected), rel=1e-6)


@pytest.mark.parametrize("open_", [True, False])
def test_proximal_term_only_while_open_and_only_above_the_mean(open_: bool) -> None:
    trainer = _trainer(beta0=0.95)
    infreg = trainer.strategies[0]
    infreg.on_epoch_start(trainer.context(0))
    infreg.state["open"] = open_
    with torch.no_grad():  # theta - anchor = 0.01 for every encoder parameter
        for m in trainer.modalities:
            for p in trainer.model.encoder_parameters(m):
                p.add_(0.01)
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    with torch.no_grad():
        u = trainer.model.fusion.unimodal_logits(trainer.model.encode(x))
        s = torch.stack([u[m].softmax(-1).gather(1, y[:, None]).sum() for m in trainer.modalities])
    assert s[0] > s[1]  # audio above the mean score, visual below
    beta_a = 0.95 * math.exp(math.tanh((s[0] - s.mean()).item() / 32))
    plain = _grads_after_step_events(trainer, x, y, edit=False)
    edited = _grads_after_step_events(trainer, x, y, edit=True)
    names = [n for n, p in trainer.model.named_parameters() if p.grad is not None]
    for name, g0, g1 in zip(names, plain, edited, strict=True):
        if name.startswith("encoders.audio") and open_:
            assert torch.allclose(g1 - g0, torch.full_like(g0, beta_a * 0.01), atol=1e-6), name
        else:
            assert torch.equal(g0, g1), name  # visual (below the mean), the head, or window closed
    ctx = trainer.context(0, y)
    infreg.compute_loss(
        ctx,
        trainer.model.encode(x),
        torch.zeros(32, 6),
        trainer.model.fusion.unimodal_logits(trainer.model.encode(x)),
        y,
    )
    infreg.on_gradients(ctx)
    logged = ctx.metrics
    assert logged["infreg/beta/audio"] == pytest.approx(beta_a if open_ else 0.0, rel=1e-5)
    assert logged["infreg/beta/visual"] == 0.0 and logged["infreg/window"] == float(open_)


def test_window_and_trace_follow_the_epoch_history() -> None:
    sink = MemorySink()
    trainer = Trainer(
        load_config(
            small(strategies=[{"name": "infreg", "window": 1, "threshold": 0.2}], train={"epochs": 4})
        ),
        sinks=[sink],
    )
    trainer.fit()
    history = trainer.strategies[0].state["history"]
    assert len(history) == 4 and all(t > 0 for t in history)
    per_epoch = {e: m for _, e, m in sink.steps}  # the last step of each epoch
    for e in range(4):
        assert per_epoch[e]["infreg/window"] == float(window_open(history[:e], 1, 0.2)), e
        assert per_epoch[e]["infreg/trace"] == pytest.approx(history[e - 1] if e else 0.0)
        if not per_epoch[e]["infreg/window"]:
            assert per_epoch[e]["infreg/beta/audio"] == per_epoch[e]["infreg/beta/visual"] == 0.0


def test_fisher_accumulator_sums_the_edited_squared_gradients() -> None:
    trainer = _trainer()
    infreg = trainer.strategies[0]
    infreg.on_epoch_start(trainer.context(0))
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    total = [torch.zeros_like(p) for p in infreg._weights]
    for _ in range(2):
        grads = _grads_after_step_events(trainer, x, y, edit=True)
        named = dict(
            zip([id(p) for p in trainer.model.parameters() if p.grad is not None], grads, strict=True)
        )
        for t, p in zip(total, infreg._weights, strict=True):
            t += named[id(p)] ** 2
    assert all(torch.allclose(a, t) for a, t in zip(infreg.state["fisher"], total, strict=True))
    linears = [mod.weight for mod in trainer.model.encoders.modules() if isinstance(mod, torch.nn.Linear)]
    assert [id(w) for w in infreg._weights] == [id(w) for w in linears]  # the encoders' weight tensors


def test_composes_with_opm_and_config_bounds() -> None:
    sink = MemorySink()
    Trainer(load_config(small(strategies=["opm", "infreg"], train={"epochs": 1})), sinks=[sink]).fit()
    assert {"opm/drop_prob/audio", "infreg/beta/audio", "train/loss_term/uni_ce"} <= set(sink.steps[-1][2])
    with pytest.raises(ConfigError) as exc:
        load_config(small(strategies=[{"name": "infreg", "window": 0}]))
    assert "strategies.0.window" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        load_config(small(strategies=["infreg"], model={"fusion": "film"}))
    assert "model.heads" in str(exc.value)  # needs uni-modal logits with gradient


@pytest.mark.parametrize("where", [5, "boundary"])
def test_resume_is_bitwise(tmp_path: Path, where: int | str) -> None:
    assert_resume_is_bitwise(
        tmp_path, [{"name": "opm", "p_exe": 0.8}, {"name": "infreg", "window": 1}], where
    )


def test_a_step_driven_by_hand_takes_the_anchors_first() -> None:
    trainer = _trainer()
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    before = [p.detach().clone() for p in trainer.model.encoder_parameters("audio")]
    metrics = trainer.train_step(x, y, 0)  # no on_epoch_start: the step runs it
    assert metrics is not None and metrics["infreg/window"] == 1.0
    anchors = trainer.strategies[0].state["anchors"][0]
    assert all(torch.equal(a, b) for a, b in zip(anchors, before, strict=True))


def test_official_preset_betas_follow_the_authors_two_branches() -> None:
    """GeWu-Lab/InfoReg_CVPR2025@939b2ed main.py L465-481: batch sums, no / B, 0.95 and 0.1."""
    from bml_core.strategies.infreg.impl import official_betas

    # audio ahead by 0.5: 0.95 * exp(tanh(0.5)) = 0.95 * exp(0.462117) = 1.508060
    b = official_betas(torch.tensor([10.5, 10.0]), 0.95, 0.1)
    assert torch.allclose(b, torch.tensor([1.508060, 0.0]), atol=1e-5)
    # visual ahead by 0.5: 0.1 * exp(0.462117) = 0.158743
    b = official_betas(torch.tensor([10.0, 10.5]), 0.95, 0.1)
    assert torch.allclose(b, torch.tensor([0.0, 0.158743]), atol=1e-5)
    assert official_betas(torch.tensor([3.0, 3.0]), 0.95, 0.1).tolist() == [0.0, 0.0]


def test_official_preset_defaults_window_and_trace_of_the_first_encoder() -> None:
    cfg = small(strategies=["infreg"], train={"epochs": 1})
    trainer = Trainer(load_config(cfg))
    infreg = trainer.strategies[0]
    assert infreg.params.preset == "official" and infreg._compare == "shifted"
    audio = [p for p in trainer.model.encoder_parameters("audio") if p.dim() >= 2]
    assert [id(p) for p in infreg._weights] == [id(p) for p in audio]

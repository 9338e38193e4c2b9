"""mslr and mses (STRATEGIES.md section 2.2): the formulas against hand-computed numbers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import ConfigError, load_config, validate_config
from bml_core.sinks import MemorySink
from bml_core.strategies.mslr.impl import MSES, mses_update, mslr_ratio, mslr_update, smoothed_loss
from bml_core.strategies.spec import get_spec
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise

# val accuracy per epoch (rows), modalities a, v (columns)
HISTORY = torch.tensor([[0.5, 0.2], [0.6, 0.2], [0.7, 0.1]], dtype=torch.float64)


def test_ratio_is_current_over_the_mean_of_the_last_window() -> None:
    # window 2: means [(0.6 + 0.7)/2, (0.2 + 0.1)/2] = [0.65, 0.15] -> [0.7/0.65, 0.1/0.15] = [14/13, 2/3]
    assert mslr_ratio(HISTORY, 2).tolist() == pytest.approx([14 / 13, 2 / 3])
    # window 5 > 3 epochs: every epoch, means [0.6, 0.5/3] -> [0.7/0.6, 0.1/(0.5/3)] = [7/6, 0.6]
    assert mslr_ratio(HISTORY, 5).tolist() == pytest.approx([7 / 6, 0.6])
    # one epoch: the current value is the whole window -> 1
    assert mslr_ratio(HISTORY[:1], 5).tolist() == [1.0, 1.0]
    # a zero mean (a modality at 0 accuracy throughout) leaves the multiplier alone
    assert mslr_ratio(torch.zeros(2, 2, dtype=torch.float64), 5).tolist() == [1.0, 1.0]


def test_multiplier_update_compounds_over_epochs() -> None:
    # start [1, 2], window 2, history above: [1 * 14/13, 2 * 2/3] = [14/13, 4/3]
    mult = mslr_update(torch.tensor([1.0, 2.0], dtype=torch.float64), HISTORY, 2)
    assert mult.tolist() == pytest.approx([14 / 13, 4 / 3])
    # one modality over three epochs, window 2: acc 0.5 -> ratio 1 (mult 1);
    # acc 0.6 -> 0.6 / 0.55 = 12/11 (mult 12/11); acc 0.3 -> 0.3 / 0.45 = 2/3 (mult 12/11 * 2/3 = 8/11)
    accs = [0.5, 0.6, 0.3]
    mult = torch.ones(1, dtype=torch.float64)
    seen = []
    for t in range(3):
        mult = mslr_update(mult, torch.tensor(accs[: t + 1], dtype=torch.float64)[:, None], 2)
        seen.append(float(mult))
    assert seen == pytest.approx([1.0, 12 / 11, 8 / 11])


def test_mses_smoothed_loss_is_point_six_previous_plus_point_four_current() -> None:
    first = torch.tensor([1.0, 2.0], dtype=torch.float64)
    assert smoothed_loss(None, first).tolist() == [1.0, 2.0]
    # [0.6 * 1 + 0.4 * 0.5, 0.6 * 2 + 0.4 * 3] = [0.8, 2.4]
    assert smoothed_loss(first, torch.tensor([0.5, 3.0], dtype=torch.float64)).tolist() == pytest.approx(
        [0.8, 2.4]
    )


def test_mses_freezes_after_patience_epochs_without_improvement() -> None:
    # patience 2. Raw val losses, a: 1.0, 0.5, 0.9, 0.9, 0.9; v: 2.0, 1.5, 1.2, 1.0, 0.9
    # smoothed a: 1.0, 0.8, 0.84, 0.864, 0.8784   (0.6 prev + 0.4 cur)
    #   epoch 0 improves (inf -> 1.0), epoch 1 improves (0.8), epochs 2, 3 do not:
    #   since_best 0, 0, 1, 2 -> frozen at epoch 3 (2 >= patience); epoch 4: stays frozen, count kept
    # smoothed v: 2.0, 1.8, 1.56, 1.336, 1.1616 -> improves every epoch, never frozen
    raw = torch.tensor([[1.0, 2.0], [0.5, 1.5], [0.9, 1.2], [0.9, 1.0], [0.9, 0.9]], dtype=torch.float64)
    smoothed: torch.Tensor | None = None
    best = torch.full((2,), math.inf, dtype=torch.float64)
    since = torch.zeros(2, dtype=torch.long)
    frozen = torch.zeros(2, dtype=torch.bool)
    log = []
    for t in range(5):
        smoothed = smoothed_loss(smoothed, raw[t])
        best, since, frozen, improved, newly = mses_update(smoothed, best, since, frozen, patience=2)
        log.append((smoothed.tolist(), since.tolist(), frozen.tolist(), improved.tolist(), newly.tolist()))
    assert [row[0][0] for row in log] == pytest.approx([1.0, 0.8, 0.84, 0.864, 0.8784])
    assert [row[0][1] for row in log] == pytest.approx([2.0, 1.8, 1.56, 1.336, 1.1616])
    assert [row[1] for row in log] == [[0, 0], [0, 0], [1, 0], [2, 0], [2, 0]]
    assert [row[2] for row in log] == [[False, False]] * 3 + [[True, False]] * 2
    assert [row[3][0] for row in log] == [True, True, False, False, False]
    assert [row[4] for row in log] == [[False, False]] * 3 + [[True, False], [False, False]]
    assert best.tolist() == pytest.approx([0.8, 1.1616])


# ---------------------------------------------------------------- the strategies in the trainer

PLAIN_SGD = {"name": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0, "scheduler": {"name": "none"}}


def _first_step(
    strategies: list,
) -> tuple[Trainer, dict[str, float], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One step of a fresh run: the group learning rates and gradients the optimizer sees."""
    trainer = Trainer(load_config(small(strategies=strategies, optim=PLAIN_SGD)))
    ctx = trainer.context(0)
    for s in trainer.strategies:
        s.on_fit_start(ctx)
    seen_lr: dict[str, float] = {}
    grads: dict[str, torch.Tensor] = {}

    def grab(opt: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        seen_lr.update({g["name"]: g["lr"] for g in opt.param_groups})
        grads.update({n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None})

    trainer.optimizer.register_step_pre_hook(grab)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    trainer.train_step(x, y, 0)
    return trainer, seen_lr, grads, before


def test_mslr_sets_param_group_learning_rates_never_gradients() -> None:
    joint, joint_lr, joint_grads, _ = _first_step([])
    trainer, lr, grads, before = _first_step([{"name": "mslr", "start_mults": [0.5, 2.0]}])
    # the optimizer steps with lr 0.05 * 0.5 on audio, 0.05 * 2 on visual, 0.05 on the head
    assert lr == {"audio": 0.025, "visual": 0.1, "head": 0.05}
    assert joint_lr == {"audio": 0.05, "visual": 0.05, "head": 0.05}
    # the gradients are those of joint training, bitwise
    assert grads.keys() == joint_grads.keys()
    assert all(torch.equal(grads[n], joint_grads[n]) for n in grads)
    # plain SGD: theta <- theta - lr_group * g
    for n, p in trainer.model.named_parameters():
        step = {"encoders.audio": 0.025, "encoders.visual": 0.1}.get(".".join(n.split(".")[:2]), 0.05)
        torch.testing.assert_close(p.detach(), before[n] - step * grads[n])
    # the base rate stays the scheduler's; the multiplier is the trainer's, checkpointed
    assert [g["lr"] for g in trainer.optimizer.param_groups] == [0.05, 0.05, 0.05]
    assert trainer.lr_mults == {"audio": 0.5, "visual": 2.0}


def test_mslr_update_follows_the_logged_val_accuracy() -> None:
    """Three epochs, window 2: after each validation mult_m *= acc_m(t) / mean(acc_m over the
    last 2 epochs), recomputed here with plain floats from the logged val accuracies; the
    steps of the next epoch use the new multiplier."""
    sink = MemorySink()
    cfg = load_config(
        small(
            strategies=[{"name": "mslr", "window": 2, "form": "compound"}], train={"epochs": 3, "threads": 1}
        )
    )
    Trainer(cfg, sinks=[sink]).fit()
    for m in ("audio", "visual"):
        accs = [ev[f"val/acc/{m}"] for _, _, ev in sink.evals]
        mult, ratios, mults = 1.0, [], []
        for t in range(3):
            recent = accs[max(0, t - 1) : t + 1]
            ratio = accs[t] / (sum(recent) / len(recent))
            mult *= ratio
            ratios.append(ratio)
            mults.append(mult)
        assert [ev[f"mslr/ratio/{m}"] for _, _, ev in sink.evals] == pytest.approx(ratios)
        assert ratios[0] == 1.0  # the first epoch is its own window
        for e in range(3):  # multiplier in force during epoch e: the one set after epoch e - 1
            in_force = 1.0 if e == 0 else mults[e - 1]
            logged = [sm[f"mslr/lr_mult/{m}"] for _, ep, sm in sink.steps if ep == e]
            assert logged == pytest.approx([in_force] * len(logged)), (m, e)
    assert any(abs(ev["mslr/ratio/visual"] - 1.0) > 1e-3 for _, _, ev in sink.evals)  # it did move


def test_mses_val_loss_is_each_modalitys_val_cross_entropy() -> None:
    trainer = Trainer(load_config(small(strategies=["mses"])))
    strategy = trainer.strategies[0]
    assert isinstance(strategy, MSES)
    got = strategy.val_losses(trainer.context(0))
    feats, y = trainer.encode_split(trainer.bundle.val, "val")
    with torch.no_grad():
        u = trainer.model.fusion.unimodal_logits(feats)
    expected = [float(F.cross_entropy(u[m], y)) for m in ("audio", "visual")]
    assert got.tolist() == pytest.approx(expected, rel=1e-6)


# scripted uni-modal val losses per epoch (a stalls after epoch 1; v improves until epoch 2)
SCRIPT = {"audio": [1.0, 0.5, 0.9, 0.9, 0.9], "visual": [2.0, 1.5, 1.2, 3.0, 3.0]}


def _scripted(self: MSES, ctx: object) -> torch.Tensor:
    epoch = ctx.epoch  # type: ignore[attr-defined]
    return torch.tensor([SCRIPT[m][epoch] for m in self.modalities], dtype=torch.float64)


class _Snapshots(MemorySink):
    """Keeps each encoder's weights as they are when each epoch's metrics are sent."""

    def __init__(self) -> None:
        super().__init__()
        self.trainer: Trainer | None = None
        self.weights: list[dict[str, dict[str, torch.Tensor]]] = []

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        super().on_eval(step, epoch, metrics)
        assert self.trainer is not None
        enc = self.trainer.model.encoders
        self.weights.append({m: {k: v.clone() for k, v in enc[m].state_dict().items()} for m in enc})


def test_mses_freezes_restores_best_weights_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """patience 1. Smoothed audio: 1.0, 0.8, 0.84 -> best after epoch 1, no gain after
    epoch 2 -> frozen then, its epoch-1 weights restored, LR multiplier 0 from epoch 3 on.
    Smoothed visual: 2.0, 1.8, 1.56, 2.136 -> frozen after epoch 3 (best: epoch 2), and with
    every encoder frozen the run stops after epoch 3 (of 5)."""
    monkeypatch.setattr(MSES, "val_losses", _scripted)
    sink = _Snapshots()
    cfg = load_config(
        small(strategies=[{"name": "mses", "patience": 1, "form": "ours"}], train={"epochs": 5, "threads": 1})
    )
    trainer = Trainer(cfg, sinks=[sink])
    sink.trainer = trainer
    summary = trainer.fit()
    assert (
        summary["train"]["stopped_by"]["strategy"] == "mses" and summary["train"]["stopped_by"]["epoch"] == 3
    )
    assert [ev["mses/smoothed_loss/audio"] for _, _, ev in sink.evals] == pytest.approx(
        [1.0, 0.8, 0.84, 0.864]
    )
    assert [ev["mses/smoothed_loss/visual"] for _, _, ev in sink.evals] == pytest.approx(
        [2.0, 1.8, 1.56, 2.136]
    )
    # after epoch 2 (sent after the restore) audio holds its weights of epoch 1 and keeps them
    for k, v in sink.weights[1]["audio"].items():
        assert torch.equal(sink.weights[2]["audio"][k], v) and torch.equal(sink.weights[3]["audio"][k], v), k
    assert any(not torch.equal(sink.weights[1]["visual"][k], v) for k, v in sink.weights[2]["visual"].items())
    for k, v in sink.weights[2]["visual"].items():  # visual: restored to epoch 2 after epoch 3
        assert torch.equal(sink.weights[3]["visual"][k], v), k
    mult = {e: {sm["mses/lr_mult/audio"] for _, ep, sm in sink.steps if ep == e} for e in range(4)}
    assert mult == {0: {1.0}, 1: {1.0}, 2: {1.0}, 3: {0.0}}
    assert trainer.lr_mults == {"audio": 0.0, "visual": 0.0}
    st = trainer.strategies[0].state
    assert st["frozen"].tolist() == [True, True] and st["since_best"].tolist() == [1, 1]


def test_one_of_mslr_and_mses_and_their_start_mults_are_checked() -> None:
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": ["mslr", "mses"]})
    assert "either mslr or mses" in exc.value.as_dict()["strategies"]
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": [{"name": "mslr", "window": 0}]})
    assert "strategies.0.window" in exc.value.as_dict()
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": [{"name": "mses", "start_mults": [1.0, -0.5]}]})
    assert "must be > 0" in exc.value.as_dict()["strategies.0.start_mults"]
    with pytest.raises(ConfigError) as exc:
        Trainer(load_config(small(strategies=[{"name": "mslr", "start_mults": [1.0, 2.0, 3.0]}])))
    assert "3 values for 2 modalities" in exc.value.as_dict()["strategies.mslr.start_mults"]
    spec = get_spec("mslr")
    assert (
        spec is not None
        and spec.has("needs_val")
        and [f.key for f in spec.metrics] == ["mslr/lr_mult", "mslr/ratio"]
    )


@pytest.mark.parametrize("name", ["mslr", "mses"])
def test_composes_with_opm(name: str) -> None:
    sink = MemorySink()
    Trainer(
        load_config(small(strategies=["opm", {"name": name, "start_mults": [0.5, 1.5]}])), sinks=[sink]
    ).fit()
    keys = set(sink.steps[-1][2])
    assert {"opm/drop_prob/audio", f"{name}/lr_mult/audio", f"{name}/lr_mult/visual"} <= keys


def test_mslr_stopped_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    raw = small(
        strategies=[{"name": "mslr", "window": 2, "start_mults": [0.7, 1.3]}],
        train={"epochs": 3, "batch_size": 20, "threads": 1},
    )
    full = assert_resume_bitwise(
        raw, tmp_path, stop_after=13 + 6
    )  # 252 samples / 20: 13 steps an epoch; mid epoch 1
    assert full.checkpoint["strategies"][0]["state"]["acc_history"].shape == (2, 2)


def test_mses_stopped_then_resumed_equals_uninterrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the scripted losses audio freezes (and is restored) after epoch 2; the run is
    stopped in the middle of epoch 3 and resumed."""
    monkeypatch.setattr(MSES, "val_losses", _scripted)
    raw = small(
        strategies=[{"name": "mses", "patience": 1}], train={"epochs": 5, "batch_size": 20, "threads": 1}
    )
    full = assert_resume_bitwise(raw, tmp_path, stop_after=3 * 13 + 5)  # mid epoch 3
    st = full.checkpoint["strategies"][0]["state"]
    assert st["frozen"].tolist() == [True, True] and set(st["best_weights"]) == {"audio", "visual"}


def test_live_draws_the_multipliers_each_on_its_own_panel() -> None:
    from app.views.live.data import panels

    # issue 14: never two strategies on one chart
    by_prefix = {prefix: panel for panel in panels() for prefix in panel.prefixes}
    mslr, mses = by_prefix["mslr/lr_mult/"], by_prefix["mses/lr_mult/"]
    assert mslr is not mses and mslr.prefixes == ("mslr/lr_mult/",) and mses.prefixes == ("mses/lr_mult/",)
    assert "MSLR: learning-rate multiplier" in mslr.title

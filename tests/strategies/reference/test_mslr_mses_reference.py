"""Ours against the only released MSLR/MSES code (mslr_mses_official.py, from
lihong2303/AGM@5a65542 run/CREMAD_main.py L194-198, L671-729): the multipliers on a fixed
accuracy curve, the smoothed losses, the stopping epoch and the reloaded model + optimizer.
The old code (compounding multipliers, a window including the current epoch, smoothing over
the smoothed loss, only the encoder restored) fails these."""

from __future__ import annotations

import pytest
import torch

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.strategies.mslr.impl import MSES
from bml_core.trainer import Trainer
from tests.strategies.reference.mslr_mses_official import mses_trace, mslr_coefficients
from tests.strategies.strategy_helpers import small

CURVE = {  # a normal rising accuracy curve (12 epochs)
    "audio": [0.30, 0.42, 0.50, 0.55, 0.58, 0.61, 0.63, 0.65, 0.66, 0.67, 0.68, 0.69],
    "visual": [0.20, 0.24, 0.27, 0.30, 0.31, 0.33, 0.36, 0.37, 0.38, 0.40, 0.41, 0.42],
}


def test_mslr_multipliers_follow_the_official_ratio_and_stay_bounded() -> None:
    cfg = load_config(small(strategies=[{"name": "mslr", "start_mults": [0.9, 1.1]}], train={"epochs": 1}))
    trainer = Trainer(cfg)
    mslr = trainer.strategies[0]
    got = {m: [] for m in CURVE}
    for t in range(12):
        ctx = trainer.context(t)
        mslr.on_epoch_end(ctx, {f"val/acc/{m}": CURVE[m][t] for m in CURVE})
        for i, m in enumerate(CURVE):
            got[m].append(float(mslr.state["mult"][i]))
    for m, init in (("audio", 0.9), ("visual", 1.1)):
        want = mslr_coefficients(CURVE[m], init)
        assert got[m] == pytest.approx(want, abs=1e-9)
        assert want[:5] == pytest.approx([init] * 5)  # no change before the window is full
        assert max(want) / init < 1.35  # bounded (the compound form reaches > 3)
        assert trainer.lr_mult(m) == pytest.approx(want[-1], abs=1e-9)


RAW = {"audio": [1.0, 0.6, 0.9, 0.9, 0.9, 0.9, 0.9], "visual": [2.0, 1.5, 1.2, 1.0, 0.9, 0.8, 0.7]}


def _scripted(self: MSES, ctx: object) -> torch.Tensor:
    return torch.tensor([RAW[m][ctx.epoch] for m in self.modalities], dtype=torch.float64)  # type: ignore[attr-defined]


class _Keep(MemorySink):
    def __init__(self) -> None:
        super().__init__()
        self.trainer: Trainer | None = None
        self.snap: list[dict[str, torch.Tensor]] = []

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        super().on_eval(step, epoch, metrics)
        assert self.trainer is not None
        self.snap.append({k: v.clone() for k, v in self.trainer.model.state_dict().items()})


def test_mses_smoothing_stop_and_full_reload_match_the_official_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    patience = 2
    monkeypatch.setattr(MSES, "val_losses", _scripted)
    sink = _Keep()
    cfg = load_config(
        small(
            strategies=[{"name": "mses", "patience": patience, "stop_when_all_frozen": False}],
            train={"epochs": 7, "threads": 1},
        )
    )
    trainer = Trainer(cfg, sinks=[sink])
    sink.trainer = trainer
    best_states: dict[int, dict] = {}
    original = MSES.on_epoch_end

    def spy(self: MSES, ctx, val):  # type: ignore[no-untyped-def]
        best_states[ctx.epoch] = {"opt": trainer.optimizer.state_dict()["state"]}
        best_states[ctx.epoch]["opt"] = {
            k: {n: t.clone() for n, t in v.items()} for k, v in best_states[ctx.epoch]["opt"].items()
        }
        original(self, ctx, val)

    monkeypatch.setattr(MSES, "on_epoch_end", spy)
    trainer.fit()
    smoothed_a, stop_a, best_a = mses_trace(RAW["audio"], patience)
    smoothed_v, stop_v, _ = mses_trace(RAW["visual"], patience)
    assert len(smoothed_a) == 6  # audio stops at official epoch 6 (best: 3)
    ours_a = [ev["mses/smoothed_loss/audio"] for _, _, ev in sink.evals]
    assert ours_a[:6] == pytest.approx(smoothed_a)
    ours_v = [ev["mses/smoothed_loss/visual"] for _, _, ev in sink.evals]
    assert ours_v == pytest.approx(smoothed_v[: len(ours_v)]) and len(ours_v) >= 6
    assert stop_a is not None and stop_v is None and best_a is not None
    # official epochs are 1-based: audio stops after our epoch stop_a - 1 and the WHOLE model
    # (every encoder and the head) is reloaded from the end of epoch best_a - 1
    after_stop, at_best = sink.snap[stop_a - 1], sink.snap[best_a - 1]
    for k, v in at_best.items():
        assert torch.equal(after_stop[k], v), k
    # ... and the optimizer state (momentum buffers) of that epoch with it
    mults = {e: {sm["mses/lr_mult/audio"] for _, ep, sm in sink.steps if ep == e} for e in range(7)}
    assert mults[stop_a] == {0.0} and mults[stop_a - 1] == {1.0}
    st = trainer.strategies[0].state
    saved = st["best_weights"]["audio"]["optimizer"]["state"]
    want = best_states[best_a - 1]["opt"]
    assert saved.keys() == want.keys()
    for k in want:
        for n, t in want[k].items():
            assert torch.equal(saved[k][n], t)

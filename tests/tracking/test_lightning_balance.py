"""BmlBalanceCallback with the real `lightning` package on CPU: examples/lightning_own.py (a
LightningModule with two encoders, OPM + OGM-GE, BmlLogger) trains and its run holds the native
keys per step; infreg gets the epoch calls from the train-epoch hooks; a strategy the module
cannot support is refused at setup."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from sqlalchemy import Engine

import db

lightning = pytest.importorskip("lightning")
from bml_core.balancer import BalancerError  # noqa: E402
from bml_core.integrations.lightning import BmlBalanceCallback  # noqa: E402

torch.set_num_threads(1)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "lightning_own.py"


def _example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("lightning_own", EXAMPLE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_trains_with_opm_and_ogm_ge_and_shows_the_keys(engine: Engine) -> None:
    run_id = _example().main(store=engine)
    info = db.get_run(engine, run_id)
    assert info.status == "succeeded"
    keys = set(db.series_keys(engine, run_id))
    for m in ("audio", "visual"):
        assert {f"imbalance/ratio/{m}", f"ogm/coef/{m}", f"opm/drop_prob/{m}", f"train/acc/{m}"} <= keys
    pts = db.series_since(engine, run_id, keys=["ogm/coef/audio", "train/acc"])
    assert len(pts["ogm/coef/audio"].steps) == 8  # 4 batches x 2 epochs
    assert len(pts["train/acc"].steps) == 8


def test_a_strategy_the_module_cannot_support_is_refused() -> None:
    mod = _example()

    class NoHead(mod.AV):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            del self.head

    for strategies, model, match in ((["ogm"], NoHead(), "model.head"), (["mla"], mod.AV(), "mla")):
        trainer = lightning.Trainer(
            max_epochs=1,
            accelerator="cpu",
            logger=False,
            callbacks=[BmlBalanceCallback(strategies)],
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        with pytest.raises(BalancerError, match=match):
            trainer.fit(model, mod.loader())


def _trainer(callback: BmlBalanceCallback, epochs: int) -> lightning.Trainer:
    return lightning.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        logger=False,
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_infreg_gets_the_epoch_calls_and_pmr_is_refused() -> None:
    """The train-epoch hooks drive Balancer.epoch_start / epoch_end: infreg's Fisher trace of
    each epoch is recorded; pmr (it needs a train loader) is refused in setup."""
    mod = _example()
    callback = BmlBalanceCallback(["infreg"])
    _trainer(callback, 2).fit(mod.AV(), mod.loader())
    assert callback.balancer is not None and callback.balancer.epoch == 2
    history = callback.balancer.strategies[0].state["history"]
    assert len(history) == 2 and all(t > 0 for t in history)
    with pytest.raises(BalancerError, match=r"'pmr' needs loaders\['train'\]"):
        _trainer(BmlBalanceCallback(["pmr"]), 1).fit(mod.AV(), mod.loader())

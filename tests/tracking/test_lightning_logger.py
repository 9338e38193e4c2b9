"""BmlLogger with the real `lightning` package on CPU: a tiny LightningModule with two
encoders trains, its per-step telemetry (native keys), its own logged values and its
validation land in the store as an own-loop run; a failing fit fails the run."""

from __future__ import annotations

import pytest
import torch
from sqlalchemy import Engine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import db

lightning = pytest.importorskip("lightning")
from bml_core.integrations.lightning_logger import BmlLogger  # noqa: E402

MODS = ["audio", "visual"]


class TwoEncoders(lightning.LightningModule):
    def __init__(self, fail_at: int | None = None, lr: float = 0.1):
        super().__init__()
        self.save_hyperparameters()
        self.encoders = nn.ModuleDict({"audio": nn.Linear(5, 8), "visual": nn.Linear(7, 8)})
        self.head = nn.Linear(16, 3)

    def forward(self, xa: torch.Tensor, xv: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        feats = {"audio": self.encoders["audio"](xa).relu(), "visual": self.encoders["visual"](xv).relu()}
        return self.head(torch.cat([feats["audio"], feats["visual"]], 1)), feats

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.hparams.fail_at is not None and self.global_step == self.hparams.fail_at:
            raise RuntimeError("exploded at step 3")
        xa, xv, y = batch
        logits, feats = self(xa, xv)
        loss = nn.functional.cross_entropy(logits, y)
        self.logger.experiment.log_step(
            logits=logits, features=feats, head=self.head, y=y, loss=loss, step=self.global_step + 1
        )
        self.log("custom/batch_idx", float(batch_idx))
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        xa, xv, y = batch
        logits, feats = self(xa, xv)
        self.log("val/acc", (logits.argmax(1) == y).float().mean())
        u = self.logger.experiment.scorer.decompose(self.head, feats)
        for m in MODS:
            self.log(f"val/acc/{m}", (u[m].argmax(1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _loader(n: int = 64) -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    ds = TensorDataset(torch.randn(n, 5, generator=g) + y[:, None], torch.randn(n, 7, generator=g), y)
    return DataLoader(ds, batch_size=16)


def _trainer(logger: BmlLogger) -> lightning.Trainer:
    return lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )


def test_lightning_run_shows_the_native_keys(engine: Engine) -> None:
    torch.manual_seed(0)
    logger = BmlLogger(name="pl", group="own", modalities=MODS, num_classes=3, store=engine)
    _trainer(logger).fit(TwoEncoders(), _loader(), _loader(32))
    run = logger.experiment
    assert logger.version == run.id and db.get_run(engine, run.id).status == "running"
    logger.finish()
    info = db.get_run(engine, run.id)
    assert info.status == "succeeded" and {"own-loop", "lightning"} <= set(info.tags)
    assert info.config["config"]["lr"] == 0.1, info.config  # save_hyperparameters -> the stored config
    keys = db.series_keys(engine, run.id)
    for m in MODS:
        assert {f"imbalance/ratio/{m}", f"train/acc/{m}", f"val/acc/{m}"} <= set(keys)
    pts = db.series_since(engine, run.id, keys=["imbalance/ratio/audio", "val/acc", "custom/batch_idx"])
    assert pts["imbalance/ratio/audio"].steps == list(range(1, 9))  # 4 batches x 2 epochs
    assert len(pts["val/acc"].steps) == 2 and len(pts["custom/batch_idx"].steps) == 8
    assert info.summary is not None and set(info.summary["val"]["acc_per_modality"]) == set(MODS)
    assert info.summary["val"]["acc"] == max(pts["val/acc"].values)


def test_a_failing_fit_fails_the_run(engine: Engine) -> None:
    logger = BmlLogger(name="pl-fail", modalities=MODS, num_classes=3, store=engine)
    with pytest.raises(RuntimeError, match="exploded"):
        _trainer(logger).fit(TwoEncoders(fail_at=3), _loader())
    info = db.get_run(engine, logger.experiment.id)
    assert info.status == "failed" and "RuntimeError: exploded at step 3" in (info.error or "")
    assert db.series_since(engine, info.id, keys=["train/acc"])["train/acc"].steps == [1, 2, 3]

"""A LightningModule of one's own with two encoders, balanced by OPM + OGM-GE through
BmlBalanceCallback and recorded by BmlLogger (tiny, CPU, seconds):
    python examples/lightning_own.py  (needs pip install -e '.[lightning]')"""

from __future__ import annotations

import lightning
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bml_core.integrations.lightning import BmlBalanceCallback, BmlLogger


class AV(lightning.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({"audio": nn.Linear(5, 8), "visual": nn.Linear(7, 8)})
        self.head = nn.Linear(16, 3)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        xa, xv, y = batch
        out = self.balancer.forward({"audio": xa, "visual": xv}, y)
        return self.balancer.total_loss(F.cross_entropy(out.logits, y), out)  # + strategies' loss terms

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def loader(n: int = 64) -> DataLoader[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (n,), generator=g)
    ds = TensorDataset(torch.randn(n, 5, generator=g) + y[:, None], torch.randn(n, 7, generator=g), y)
    return DataLoader(ds, batch_size=16)


def main(store: object = None) -> int:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    logger = BmlLogger(name="lightning-own", modalities=["audio", "visual"], num_classes=3, store=store)
    trainer = lightning.Trainer(
        max_epochs=2,
        accelerator="cpu",
        logger=logger,
        callbacks=[BmlBalanceCallback(["opm", "ogm_ge"])],
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(AV(), loader())
    logger.finish()
    print(f"run {logger.experiment.id}: open /live")
    return int(logger.experiment.id)


if __name__ == "__main__":
    main()

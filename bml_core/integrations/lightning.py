"""Lightning integration (extra `[lightning]`): `BmlLogger` (the store as a Lightning logger) and
`BmlBalanceCallback`, which applies strategies to a LightningModule exposing `encoders`
(nn.ModuleDict) and `head`, through bml_core.Balancer (the strategies' own code).

    class Mine(lightning.LightningModule):
        def training_step(self, batch, i):
            x, y = batch
            out = self.balancer.forward(x, y)     # set by the callback; OPM masks applied
            return self.balancer.total_loss(F.cross_entropy(out.logits, y), out)  # + uni_aux's terms

    trainer = lightning.Trainer(logger=BmlLogger(...), callbacks=[BmlBalanceCallback(["opm", "ogm_ge"])])

The callback builds the Balancer in `setup` (refusing a strategy the module cannot support, with
the missing piece named) and modulates in `on_before_optimizer_step`: there, under AMP, Lightning
has already unscaled the gradients (in `on_after_backward` they are still scaled). A strategy
with epoch events (infreg) gets `Balancer.epoch_start` / `epoch_end` from the train-epoch hooks;
those that need the optimizer or loaders (pmr, mslr, mses) are refused in `setup` (use an own
loop). The step's telemetry goes to the BmlLogger's run when the trainer has one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning

from bml_core.balancer import Balancer, BalancerError
from bml_core.integrations.lightning_logger import BmlLogger

__all__ = ["BmlBalanceCallback", "BmlLogger"]


class BmlBalanceCallback(lightning.Callback):
    """Applies `strategies` (names) to the module's encoders / head; `seed`: the strategies'
    noise seed."""

    def __init__(self, strategies: Sequence[str] = ("ogm_ge",), seed: int = 0):
        self.strategies = list(strategies)
        self.seed = seed
        self.balancer: Balancer | None = None

    def setup(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, stage: str) -> None:
        run = None
        for logger in trainer.loggers:
            if isinstance(logger, BmlLogger):
                run = logger.experiment
        self.balancer = Balancer(pl_module, self.strategies, run=run, seed=self.seed)
        object.__setattr__(pl_module, "balancer", self.balancer)  # a plain attribute, not a submodule

    def on_train_epoch_start(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if self.balancer is not None:
            self.balancer.epoch = trainer.current_epoch
            if self.balancer.needs_epoch_calls:  # infreg's anchors, ...
                self.balancer.epoch_start()

    def on_train_epoch_end(self, trainer: lightning.Trainer, pl_module: lightning.LightningModule) -> None:
        if self.balancer is not None and self.balancer.needs_epoch_calls and self.balancer.epoch_end():
            trainer.should_stop = True

    def on_before_optimizer_step(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule, optimizer: Any
    ) -> None:
        balancer = self.balancer
        if balancer is None or balancer.last is None:
            raise BalancerError(
                "BmlBalanceCallback: training_step must call self.balancer.forward(x, y) (the callback "
                "modulates the gradients of that forward pass)"
            )
        y, out = balancer.last
        if y is None:
            raise BalancerError("BmlBalanceCallback: call self.balancer.forward(x, y) with the labels y")
        balancer.after_backward(out, y, None)
        balancer.last = None

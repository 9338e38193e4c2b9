"""What `StepContext.trainer` lends the strategies in an own loop: a small Runtime over the
user's model, optimizer and loaders (bml_core.strategies.base.Runtime), so the strategy
implementations run unchanged. Only the parts an epoch-level strategy reads are lent (lr
multipliers, optimizer state, features of a split, uni-modal logits, evaluation); the rest
(extra forward passes, the whole step) is refused with a BalancerError."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from bml_core.balancer.errors import BalancerError
from bml_core.optim import GroupLrMultipliers

if TYPE_CHECKING:
    from bml_core.balancer.engine import Balancer


class OwnLoopRuntime(GroupLrMultipliers):
    """The Runtime of a Balancer: param groups matched to modalities by identity of the
    encoders' parameters; lr multipliers applied for each `optimizer.step()` only (a step
    pre-hook multiplies the group's rate, a post-hook restores it, so the user's scheduler
    keeps owning the base rates, as the native trainer's `optimizer_step`)."""

    def __init__(
        self,
        balancer: Balancer,
        optimizer: torch.optim.Optimizer | None,
        loaders: Mapping[str, Iterable[Any]],
    ):
        self.balancer = balancer
        self.model = balancer.view
        self.optimizer = optimizer
        self.device = next(balancer.model.parameters()).device
        self._loaders = dict(loaders)
        self.lr_mults: dict[str, float] = {}
        self.init_snapshot = None
        self._param_groups: dict[str, dict[str, Any]] = {}
        self._saved: list[tuple[dict[str, Any], float, float]] = []
        self.group_error: BalancerError | None = None  # raised for a strategy that sets lr multipliers
        if optimizer is not None:
            try:
                self._param_groups = self._match_groups(optimizer)
            except BalancerError as exc:
                self.group_error = exc
            optimizer.register_step_pre_hook(self._pre_step)
            optimizer.register_step_post_hook(self._post_step)

    # ------------------------------------------------------------------ optimiser
    def _match_groups(self, optimizer: torch.optim.Optimizer) -> dict[str, dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}
        for m in self.balancer.modalities:
            want = {id(p) for p in self.model.encoder_parameters(m)}
            hit = [g for g in optimizer.param_groups if {id(p) for p in g["params"]} == want]
            if not hit:
                raise BalancerError(
                    f"optimizer has no parameter group holding exactly model.encoders[{m!r}]'s parameters "
                    "(per-modality learning rates act on groups): build it as "
                    "torch.optim.SGD(bml_core.Balancer.param_groups(model), lr=...)"
                )
            groups[m] = hit[0]
        return groups

    def _pre_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._saved = [
            (self._param_groups[m], self._param_groups[m]["lr"], f)
            for m, f in self.lr_mults.items()
            if f != 1.0
        ]
        for group, lr, mult in self._saved:
            group["lr"] = lr * mult

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for group, lr, _ in self._saved:
            group["lr"] = lr
        self._saved = []

    # param_group, set_lr_mult, lr_mult, reset_optimizer_state: GroupLrMultipliers

    # ------------------------------------------------------------------ data
    @property
    def num_classes(self) -> int:
        return self.balancer.num_classes

    @property
    def steps_per_epoch(self) -> int:
        return len(self._loader("train"))  # type: ignore[arg-type]

    def loaders(self) -> dict[str, Any]:
        return dict(self._loaders)

    def _loader(self, split: str) -> Iterable[Any]:
        if split not in self._loaders:
            raise BalancerError(f"no loaders[{split!r}]: pass Balancer(..., loaders={{{split!r}: ...}})")
        return self._loaders[split]

    def iter_batches(self, split: str, fraction: float = 1.0, seed: int | None = None) -> Iterator[Any]:
        """The loader's batches (x: dict, y) in its own order; the first ceil(fraction * len)
        of them when it has a length. `seed` is ignored (the loader owns its order)."""
        loader = self._loader(split)
        n = len(loader) if hasattr(loader, "__len__") else None  # type: ignore[arg-type]
        take = max(1, math.ceil(n * fraction)) if n else None
        for i, (x, y) in enumerate(loader):
            if take is not None and i >= take:
                return
            yield ({m: t.to(self.device) for m, t in x.items()}, y.to(self.device))

    def iter_features(
        self, split: str, fraction: float = 1.0
    ) -> Iterator[tuple[dict[str, torch.Tensor], Any]]:
        module = self.balancer.model
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                for x, y in self.iter_batches(split, fraction):
                    yield self.balancer._features(x), y
        finally:
            module.train(was_training)

    def unimodal_logits(
        self, h: dict[str, torch.Tensor], heads: str | None = None
    ) -> dict[str, torch.Tensor]:
        if heads == "aux":
            raise BalancerError("aux heads are not lent by the Balancer: u_m comes from model.head")
        return self.balancer._unimodal(h)

    def evaluate_split(self, split: str) -> dict[str, float]:
        return self.balancer.evaluate(split)

    def event(self, level: str, message: str) -> None:
        self.balancer.events.append((level, message))
        if self.balancer.run is not None:
            self.balancer.run.event(level, message)

    # ------------------------------------------------------------------ not lent
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # copy, pickle and hasattr probes: plain Python semantics
            raise AttributeError(name)
        raise NotLent(f"the Balancer's own-loop runtime does not lend {name!r} to strategies")


class NotLent(BalancerError, AttributeError):
    """A strategy asked the own-loop runtime for a part of the trainer it does not lend (an
    AttributeError too, so getattr(runtime, name, default) and hasattr keep working)."""

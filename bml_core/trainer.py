"""The training loop. One plain loop whose strategy events are visible in order
(STRATEGIES.md section 1; each strategy in config order, only those implementing an event):

  on_fit_start · on_epoch_start · per step: before_forward -> encode -> probe_imbalance
  -> on_features -> fuse -> on_logits -> fused CE + compute_loss terms -> backward
  -> on_gradients -> before_optimizer_step -> optimiser step (or a strategy's training_step)
  · after the epoch's eval: on_epoch_end -> should_stop (a checkpointed, clean stop)

Every step emits the CONTRACT.md metric keys to the sinks (one host sync per step); every
epoch evaluates on val, checkpoints (model, optimiser, scheduler, scaler, strategy state,
RNG states), and the checkpoint chosen on val is tested at the end. The official codes'
number (the best test accuracy over epochs) is recorded beside it, labelled as selected on
test, and never used to choose anything."""

from __future__ import annotations

import copy
import math
import os
import pickle
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bml_core.alerts import AlertMonitor
from bml_core.config import ConfigError, RunConfig, advisories
from bml_core.data import DatasetBundle, MultimodalDataset, TensorDataset, build_dataset
from bml_core.data.base import stable_seed
from bml_core.imbalance import UnimodalProbe, discrepancy_ratio, probe_unimodal_logits
from bml_core.metrics import (
    accuracy,
    imbalance_degree,
    linear_probe_accuracy,
    macro_f1,
    mean_average_precision,
    shapley_values,
)
from bml_core.models import MultimodalModel, build_model
from bml_core.optim import GroupLrMultipliers, build_optimizer, build_scheduler
from bml_core.sinks import MetricSink, SinkGroup
from bml_core.strategies.base import EVENTS, Batch, StepContext, Strategy, overrides
from bml_core.strategies.runtime import build_strategies, wants_aux_heads
from bml_core.strategies.spec import plugin_errors


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be loaded safely (it needs objects beyond tensors and plain values)."""


# What the trainer's checkpoints hold besides tensors and plain Python values: numpy's RNG
# state (an ndarray of uint32). Nothing else is unpickled: torch.load(weights_only=True).
_NUMPY_RECONSTRUCT = getattr(np, "_core", np).multiarray._reconstruct  # numpy 2 (_core) or 1 (core)
CHECKPOINT_SAFE_GLOBALS: list[Any] = [
    np.ndarray,
    np.dtype,
    type(np.dtype(np.uint32)),
    _NUMPY_RECONSTRUCT,
]


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load with weights_only=True and only CHECKPOINT_SAFE_GLOBALS allowed: a checkpoint
    whose pickle names any other callable (e.g. `os.system`) is refused before anything runs."""
    try:
        with torch.serialization.safe_globals(CHECKPOINT_SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.findall(r"GLOBAL ([\w.]+)|global '?([\w.]+)", str(exc))
        names = sorted({a or b for a, b in unsafe})
        what = f" ({', '.join(names)})" if names else ""
        raise CheckpointError(
            f"refusing to load checkpoint {path}: it needs objects other than tensors and plain "
            f"values{what}, which could run code; delete it (or the run directory) to start afresh"
        ) from None


CHECKPOINT_LAST = "last.pt"


class TrainingDiverged(RuntimeError):
    """A NaN/inf loss or metric with `alerts.divergence.stop` on: the run stops (failed)."""


CHECKPOINT_BEST = "best.pt"
GPU_RESIDENT_BYTES = 1 << 30  # in-memory datasets below this move to the GPU once
# The held-out part of the training split (strategies with needs_heldout) is drawn with this
# fixed seed, so every run and every method holds out the same samples (STRATEGIES.md 3).
HELDOUT_SEED = 0


def resolve_device(name: str) -> torch.device:
    """The torch device of `train.device`; ConfigError (field train.device) when this machine
    does not have it."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            [("train.device", f"asks for {name} but no GPU is available here; use cpu or auto")]
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(
            [("train.device", f"asks for {name} but this machine has {n} GPU(s): cuda:0..cuda:{n - 1}")]
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError([("train.device", "asks for mps but it is not available here; use cpu or auto")])
    return dev


def enable_determinism() -> None:
    """PyTorch's deterministic algorithms (`train.deterministic`): cuBLAS needs a fixed
    workspace (CUBLAS_WORKSPACE_CONFIG, read when its handle is made, so set before the
    first GEMM), cuDNN its deterministic kernels and no autotuning."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@dataclass
class EvalResult:
    loss: float
    acc: float
    f1: float
    map: float
    acc_per_modality: dict[str, float]
    imbalance_degree: float
    shapley: dict[str, float]

    def as_metrics(self, prefix: str) -> dict[str, float]:
        out = {
            f"{prefix}/acc": self.acc,
            f"{prefix}/f1": self.f1,
            f"{prefix}/map": self.map,
            f"{prefix}/loss": self.loss,
            f"{prefix}/imbalance_degree": self.imbalance_degree,
        }
        out.update({f"{prefix}/acc/{m}": a for m, a in self.acc_per_modality.items()})
        return out

    def as_summary(self, with_degree: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "acc": self.acc,
            "f1": self.f1,
            "map": self.map,
            "loss": self.loss,
            "acc_per_modality": dict(self.acc_per_modality),
        }
        if with_degree:
            out["imbalance_degree"] = self.imbalance_degree
            out["shapley"] = dict(self.shapley)
        return out


class Trainer(GroupLrMultipliers):
    """Trains one run. `stop_requested` is polled after every step (cancel / SIGTERM): the
    step finishes, a checkpoint is written and `fit` returns with status `cancelled`."""

    def __init__(
        self,
        cfg: RunConfig,
        bundle: DatasetBundle | None = None,
        sinks: list[MetricSink] | None = None,
        run_dir: str | Path | None = None,
        stop_requested: Callable[[], bool] | None = None,
        resume: bool = True,
    ):
        self.cfg = cfg
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        if cfg.train.deterministic:
            enable_determinism()
        self.device = resolve_device(cfg.train.device)
        self.bundle = bundle if bundle is not None else build_dataset(cfg.dataset)
        self.modalities = self.bundle.modalities
        self.sink = SinkGroup(sinks or [])
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.stop_requested = stop_requested or (lambda: False)
        self.resume = resume

        seed_everything(cfg.seed)
        self.model = build_model(
            cfg.model,
            self.bundle.input_shapes,
            self.bundle.num_classes,
            aux_heads=wants_aux_heads(cfg),
            sequences=self.bundle.info.get("sequences", ()),
        ).to(self.device)
        self.strategies = build_strategies(cfg.strategies, self.model, self.device, cfg.seed)
        # the strategies implementing each event, in config order (the loop skips no-ops)
        self.hooks: dict[str, list[Strategy]] = {
            e: [s for s in self.strategies if overrides(s, e)] for e in EVENTS
        }
        self.step_owner = next(
            (s for s in self.strategies if s.spec is not None and s.spec.has("overrides_step")), None
        )
        self.needs_unimodal_grad = any(
            s.spec is not None and s.spec.has("needs_unimodal_logits_with_grad") for s in self.strategies
        )
        # the rho logged per step is the form the run's strategies use (issue 11 item 5)
        self.ratio_kind = next(
            (r for p in cfg.strategies if isinstance(r := getattr(p, "ratio", None), str)), "pairwise_mean"
        )
        self.init_snapshot: dict[str, torch.Tensor] | None = None
        if any(s.spec is not None and s.spec.has("needs_init_snapshot") for s in self.strategies):
            self.init_snapshot = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.optimizer = build_optimizer(cfg, self.model)
        self._param_groups = {pg["name"]: pg for pg in self.optimizer.param_groups}
        self.lr_mults: dict[str, float] = {}  # per group name; checkpointed
        self.scheduler = build_scheduler(cfg, self.optimizer)
        self.amp_dtype = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[cfg.train.amp]
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.train.amp == "fp16" else None

        self.train_index, self.heldout_index = self._heldout_split()
        n_train = len(self.bundle.train) if self.train_index is None else len(self.train_index)
        bs = cfg.train.batch_size
        full, rest = divmod(n_train, bs)
        self.steps_per_epoch = full + (
            1 if rest >= 2 or full == 0 else 0
        )  # a 1-sample batch breaks BatchNorm
        self.total_steps = self.steps_per_epoch * cfg.train.epochs
        self.num_classes = self.bundle.num_classes
        # imbalance alerts over the metrics as they are produced (bml_core/alerts; checkpointed)
        self.alerts = AlertMonitor(
            cfg.alerts,
            self.modalities,
            self.steps_per_epoch,
            [p.model_dump(mode="json") for p in cfg.strategies],
            cfg.optim.lr,
        )

        # progress state (checkpointed)
        self.epoch = 0
        self.batch_in_epoch = 0
        self.global_step = 0
        self.skipped_steps = 0
        self.train_seconds = 0.0
        self.samples_seen = 0
        self.best: dict[str, Any] = {"acc": -math.inf, "epoch": -1, "step": 0}
        # the official protocol's number (best test accuracy over epochs): reported, never used
        self.best_test: dict[str, Any] = {"acc": -math.inf, "epoch": -1}
        self.stopped_by: dict[str, Any] | None = None  # a strategy's should_stop
        self.history: list[dict[str, Any]] = []
        self._resident: dict[str, TensorDataset] = {}
        self._best_state: dict[str, torch.Tensor] | None = None
        self._encoder_params = {m: self.model.encoder_parameters(m) for m in self.modalities}
        self._segment_index: dict[tuple[int, ...], torch.Tensor] = {}
        mods = self.modalities
        self._step_metric_names = ["train/loss", "train/acc"] + [
            f"{family}/{m}"
            for family in ("train/loss", "train/acc", "imbalance/score", "imbalance/ratio", "grad/norm")
            for m in mods
        ]

    # ------------------------------------------------------------------ data

    def _heldout_split(self) -> tuple[torch.Tensor | None, torch.Tensor]:
        """(indices trained on, held-out indices) of the training split. Strategies declaring
        needs_heldout set `heldout_fraction`; the largest is taken (one held-out part shared),
        drawn with HELDOUT_SEED. Without one: (None, empty) and training is unchanged."""
        owners = [
            (i, float(getattr(p, "heldout_fraction", 0.0)))
            for i, (p, s) in enumerate(zip(self.cfg.strategies, self.strategies, strict=True))
            if s.spec is not None and s.spec.has("needs_heldout")
        ]
        if not owners or max(f for _, f in owners) <= 0:
            return None, torch.zeros(0, dtype=torch.long)
        i, fraction = max(owners, key=lambda o: o[1])
        n = len(self.bundle.train)
        k = math.ceil(n * fraction)
        need = 2 * self.bundle.num_classes
        if k < need or n - k < 2:
            name = self.cfg.strategies[i].name
            raise ConfigError(
                [
                    (
                        f"strategies.{i}.heldout_fraction",
                        f"{name} holds out {fraction:g} of the {n} training samples = {k}, but its "
                        f"held-out part needs at least {need} (2 per class) and leaves at least 2 to "
                        "train on: raise heldout_fraction or use a larger dataset",
                    )
                ]
            )
        g = torch.Generator().manual_seed(stable_seed(HELDOUT_SEED, "heldout"))
        perm = torch.randperm(n, generator=g)
        return perm[k:].sort().values, perm[:k].sort().values

    def _on_device(self, split: str, ds: MultimodalDataset) -> MultimodalDataset:
        """Small in-memory splits move to the GPU once instead of once per batch."""
        if self.device.type != "cuda" or not isinstance(ds, TensorDataset):
            return ds
        if split not in self._resident:
            nbytes = sum(t.numel() * t.element_size() for t in ds.x.values())
            if nbytes > GPU_RESIDENT_BYTES:
                return ds
            self._resident[split] = TensorDataset(
                {m: t.to(self.device) for m, t in ds.x.items()}, ds.y.to(self.device)
            )
        return self._resident[split]

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(stable_seed(self.cfg.seed, epoch, "order"))
        if self.train_index is None:
            return torch.randperm(len(self.bundle.train), generator=g)
        return self.train_index[torch.randperm(len(self.train_index), generator=g)]

    def _batches(
        self,
        ds: MultimodalDataset,
        order: torch.Tensor,
        batch_size: int,
        start: int,
        limit: int | None = None,
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        chunks = list(torch.split(order, batch_size))
        if limit is not None:
            chunks = chunks[:limit]
        chunks = chunks[start:]
        if isinstance(ds, TensorDataset):
            for idx in chunks:
                x, y = ds.get_batch(idx.to(ds.y.device))
                yield (
                    {m: t.to(self.device, non_blocking=True) for m, t in x.items()},
                    y.to(self.device, non_blocking=True),
                )
            return
        loader = DataLoader(
            ds,
            batch_sampler=[c.tolist() for c in chunks],
            num_workers=self.cfg.train.num_workers,
            pin_memory=self.device.type == "cuda",
        )
        for x, y in loader:
            yield (
                {m: t.to(self.device, non_blocking=True) for m, t in x.items()},
                y.to(self.device, non_blocking=True),
            )

    def _autocast(self) -> AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ one step

    def probe_imbalance(self, feats: dict[str, torch.Tensor], y: torch.Tensor) -> UnimodalProbe:
        """METHODS.md sections 2-3: uni-modal logits and scores, every step, every strategy."""
        return UnimodalProbe(probe_unimodal_logits(self.model, feats), y)

    def context(self, epoch: int, y: torch.Tensor | None = None, training: bool = True) -> StepContext:
        """The context handed to strategy events (step events fill in scores and labels)."""
        return StepContext(
            epoch=epoch,
            step=self.global_step + 1,
            modalities=self.modalities,
            y=y,
            trainer=self,
            batch_idx=self.batch_in_epoch,
            training=training,
        )

    def train_step(self, x: dict[str, torch.Tensor], y: torch.Tensor, epoch: int) -> dict[str, float] | None:
        """One optimiser step. Returns the step's metrics, or None when the step was skipped
        (every sample dropped)."""
        t0 = time.perf_counter()
        ctx = self.context(epoch, y)
        if self.step_owner is not None:
            return self._strategy_step(ctx, (x, y), t0)
        model = self.model
        model.train()
        for s in self.hooks["before_forward"]:
            x, y = s.before_forward(ctx, (x, y))
            ctx.y = y
        with self._autocast():
            feats = model.encode(x)
            u_grad = self.unimodal_logits(feats) if self.needs_unimodal_grad else None
            if u_grad is not None and self.cfg.model.heads == "split":
                probe = UnimodalProbe({m: u.detach() for m, u in u_grad.items()}, y)
            else:
                probe = self.probe_imbalance(feats, y)
            ctx.scores = probe.scores
            for s in self.hooks["on_features"]:
                feats = s.on_features(ctx, feats)
            logits = model.fusion(feats)
            for s in self.hooks["on_logits"]:
                logits = s.on_logits(ctx, feats, logits, True)
            keep = ctx.keep
            per_sample = F.cross_entropy(logits.float(), y, reduction="none")
            if keep is None:
                ce = per_sample.mean()
            else:
                w = keep.float()
                ce = (per_sample * w).sum() / w.sum().clamp_min(1.0)
            losses: dict[str, torch.Tensor] = {"ce": ce}
            u = u_grad if u_grad is not None else probe.logits
            for s in self.hooks["compute_loss"]:
                for name, term in s.compute_loss(ctx, feats, logits, u, y).items():
                    if term is None:
                        losses.pop(name, None)
                    else:
                        losses[name] = term
            loss = self._sum_losses(losses)

        self.optimizer.zero_grad(set_to_none=True)
        if not any(s.backward(ctx, losses) for s in self.hooks["backward"]):
            self.backward(loss)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # OGM-GE works on unscaled gradients
        for s in self.hooks["on_gradients"]:
            s.on_gradients(ctx)
        for s in self.hooks["before_optimizer_step"]:
            s.before_optimizer_step(ctx)

        # every metric of the step in one vector, then one host sync
        batch = y.shape[0]
        keep = ctx.keep
        term_names = [] if list(losses) == ["ce"] else [f"train/loss_term/{n}" for n in losses]
        values = [
            loss.detach().float().reshape(1),
            self._batch_acc(logits, y, keep).reshape(1),
            probe.loss,
            probe.accuracy,
            probe.scores / batch,
            ctx.ratio(self.ratio_kind),
            self._encoder_grad_norms(),
            *([torch.stack([t.detach().float() for t in losses.values()])] if term_names else []),
            *ctx.metric_values,
        ]
        if keep is not None:
            values.append(keep.sum().reshape(1).float())
        host = torch.cat([v.float() for v in values]).tolist()
        samples_left = host.pop() if keep is not None else batch
        metrics = dict(zip(self._step_metric_names + term_names + ctx.metric_names, host, strict=True))
        metrics.update(zip(ctx.host_names, ctx.host_values, strict=True))
        if samples_left == 0:
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps += 1
            self.sink.on_event(
                "warning", f"step skipped at epoch {epoch}: every sample had every modality dropped"
            )
            return None
        self.optimizer_step()
        return self._step_done(metrics, batch, t0)

    def _strategy_step(self, ctx: StepContext, batch: Batch, t0: float) -> dict[str, float] | None:
        """A step run by the strategy that declares overrides_step (it calls ctx.backward and
        self-steps through ctx.optimizer or returns metrics for the trainer to record)."""
        assert self.step_owner is not None
        self.model.train()
        metrics = self.step_owner.training_step(ctx, batch)
        if metrics is None:
            self.skipped_steps += 1
            return None
        metrics = {**metrics, **ctx.metrics}
        return self._step_done(metrics, batch[1].shape[0], t0)

    def _step_done(self, metrics: dict[str, float], batch: int, t0: float) -> dict[str, float]:
        self.global_step += 1
        self.samples_seen += batch
        metrics["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        metrics["time/step_ms"] = (time.perf_counter() - t0) * 1000.0
        return metrics

    @staticmethod
    def _sum_losses(losses: dict[str, torch.Tensor]) -> torch.Tensor:
        terms = iter(losses.values())
        total = next(terms, None)
        if total is None:
            raise RuntimeError("the strategies removed every loss term")
        for t in terms:
            total = total + t
        return total

    # ------------------------------------------------------------------ what ctx lends strategies

    def backward(self, loss: torch.Tensor) -> None:
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def optimizer_step(self) -> None:
        """optimizer.step() (through the grad scaler), with each group's lr multiplier applied
        for this step only, so the scheduler keeps owning the base rates."""
        scaled = [
            (param_group, param_group["lr"])
            for name, param_group in self._param_groups.items()
            if self.lr_mults.get(name, 1.0) != 1.0
        ]
        for param_group, lr in scaled:
            param_group["lr"] = lr * self.lr_mults[param_group["name"]]
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        for param_group, lr in scaled:
            param_group["lr"] = lr

    # param_group, set_lr_mult, lr_mult, reset_optimizer_state: GroupLrMultipliers (bml_core/optim.py)

    def forward(
        self, x: dict[str, torch.Tensor], present: set[str] | None = None, zero: str = "input"
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(features, fused logits) with the modalities outside `present` absent: zero input
        (through the encoder) or zero features."""
        model = self.model
        present = set(self.modalities) if present is None else set(present)
        if zero == "input":
            feats = model.encode({m: (t if m in present else torch.zeros_like(t)) for m, t in x.items()})
        elif zero == "features":
            batch = next(iter(x.values())).shape[0]
            dims = model.feature_dims()
            ref = next(iter(model.parameters()))
            feats = {
                m: model.encoders[m](x[m])
                if m in present
                else torch.zeros(batch, dims[m], device=ref.device, dtype=ref.dtype)
                for m in self.modalities
            }
        else:
            raise ValueError(f"zero must be 'input' or 'features', not {zero!r}")
        return feats, model.fusion(feats)

    def unimodal_logits(
        self, h: dict[str, torch.Tensor], heads: str | None = None
    ) -> dict[str, torch.Tensor]:
        heads = heads or self.cfg.model.heads
        if heads == "aux":
            if self.model.aux_heads is None:
                raise RuntimeError("no aux heads: set model.heads: aux (or declare needs_aux_heads)")
            return {m: self.model.aux_heads[m](h[m]) for m in self.modalities}
        return self.model.fusion.unimodal_logits(h)

    def loaders(self) -> dict[str, Any]:
        return {"train": self.bundle.train, "val": self.bundle.val, "test": self.bundle.test}

    def iter_batches(self, split: str, fraction: float = 1.0, seed: int | None = None) -> Iterator[Batch]:
        if split == "heldout":  # the held-out part of the training split, in a fixed order
            ds = self._on_device("train", self.bundle.train)
            order = self.heldout_index
            n = len(order)
        else:
            ds = self._on_device(split, self.loaders()[split])
            n = len(ds)
            if split == "train":
                g = torch.Generator().manual_seed(
                    seed if seed is not None else stable_seed(self.cfg.seed, self.epoch, "strategy")
                )
                if self.train_index is None:
                    order = torch.randperm(n, generator=g)
                else:  # never the held-out part
                    n = len(self.train_index)
                    order = self.train_index[torch.randperm(n, generator=g)]
            else:
                order = torch.arange(n)
        take = max(1, math.ceil(n * fraction)) if n else 0
        return self._batches(ds, order[:take], self.cfg.train.batch_size, 0)

    def iter_features(
        self, split: str, fraction: float = 1.0
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad(), self._autocast():
                for x, y in self.iter_batches(split, fraction):
                    yield self.model.encode(x), y
        finally:
            self.model.train(was_training)

    def evaluate_split(self, split: str) -> dict[str, float]:
        return self.evaluate(self.loaders()[split], split).as_metrics(split)

    def clone_model(self) -> MultimodalModel:
        return copy.deepcopy(self.model)

    def scale_loss(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss as the AMP grad scaler scales it (itself without fp16), for strategies
        that take gradients with torch.autograd.grad; on_gradients sees them unscaled."""
        return self.scaler.scale(loss) if self.scaler is not None else loss

    def event(self, level: str, message: str) -> None:
        self.sink.on_event(level, message)

    def step_metrics(
        self,
        ctx: StepContext,
        loss: torch.Tensor,
        logits: torch.Tensor,
        u: dict[str, torch.Tensor],
        y: torch.Tensor,
        grad_norms: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """The CONTRACT.md step metrics for a strategy's own training_step (fused loss and
        accuracy, the probe's per-modality numbers from u, encoder gradient norms) plus every
        metric logged on ctx, with one host sync; ctx's device metrics are consumed."""
        probe = UnimodalProbe({m: t.detach().float() for m, t in u.items()}, y)
        ctx.scores = probe.scores
        batch = y.shape[0]
        values = [
            loss.detach().float().reshape(1),
            self._batch_acc(logits.detach(), y, None).reshape(1),
            probe.loss,
            probe.accuracy,
            probe.scores / batch,
            discrepancy_ratio(probe.scores, self.ratio_kind),
            grad_norms if grad_norms is not None else self._encoder_grad_norms(),
            *ctx.metric_values,
        ]
        host = torch.cat([v.detach().float().reshape(-1) for v in values]).tolist()
        metrics = dict(zip(self._step_metric_names + ctx.metric_names, host, strict=True))
        metrics.update(zip(ctx.host_names, ctx.host_values, strict=True))
        ctx.metric_names, ctx.metric_values, ctx.host_names, ctx.host_values = [], [], [], []
        return metrics

    def _encoder_grad_norms(self) -> torch.Tensor:
        """L2 norm of each encoder's whole gradient, [M], from one fused norm pass."""
        grads: list[torch.Tensor] = []
        counts: list[int] = []
        for m in self.modalities:
            gs = [p.grad for p in self._encoder_params[m] if p.grad is not None]
            grads += gs
            counts.append(len(gs))
        if not grads:
            return torch.zeros(len(self.modalities), device=self.device)
        key = tuple(counts)
        if key not in self._segment_index:
            self._segment_index[key] = torch.repeat_interleave(
                torch.arange(len(counts), device=self.device), torch.tensor(counts, device=self.device)
            )
        sq = torch.stack(torch._foreach_norm(grads)).float().square_()
        return (
            torch.zeros(len(counts), device=self.device).index_add_(0, self._segment_index[key], sq).sqrt_()
        )

    @staticmethod
    def _batch_acc(logits: torch.Tensor, y: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        hit = (logits.argmax(1) == y).float()
        if keep is None:
            return hit.mean()
        w = keep.float()
        return (hit * w).sum() / w.sum().clamp_min(1.0)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def encode_split(self, ds: MultimodalDataset, split: str) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Every sample's pooled features (eval mode, no training randomness) and labels."""
        self.model.eval()
        ds = self._on_device(split, ds)
        was_training, ds.training = ds.training, False
        order = torch.arange(len(ds))
        feats_parts: dict[str, list[torch.Tensor]] = {m: [] for m in self.modalities}
        ys: list[torch.Tensor] = []
        with self._autocast():
            for x, y in self._batches(ds, order, max(self.cfg.train.batch_size, 256), 0):
                for m, h in self.model.encode(x).items():
                    feats_parts[m].append(h.float())
                ys.append(y)
        ds.training = was_training
        return {m: torch.cat(v) for m, v in feats_parts.items()}, torch.cat(ys)

    @torch.no_grad()
    def evaluate(self, ds: MultimodalDataset, split: str = "val") -> EvalResult:
        """Fused and per-modality accuracy, macro-F1, mAP, loss and the Shapley imbalance degree."""
        feats, y = self.encode_split(ds, split)
        logits = self._eval_logits(feats).float()
        unimodal = self.model.fusion.unimodal_logits(feats)
        probs = logits.softmax(1)
        absent = self._absent_features(ds, feats)

        def subset_accuracy(keep: frozenset[str]) -> float:
            masked = {m: (h if m in keep else absent[m]) for m, h in feats.items()}
            return accuracy(self._eval_logits(masked), y)

        phi = shapley_values(self.modalities, subset_accuracy)
        return EvalResult(
            loss=float(F.cross_entropy(logits, y)),
            acc=accuracy(logits, y),
            f1=macro_f1(logits.argmax(1), y, self.bundle.num_classes),
            map=mean_average_precision(probs.cpu(), y.cpu(), self.cfg.train.map_absent),
            acc_per_modality={m: accuracy(u.float(), y) for m, u in unimodal.items()},
            imbalance_degree=imbalance_degree(phi),
            shapley=phi,
        )

    def _eval_logits(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fused logits at evaluation, through the strategies' on_logits (training=False)."""
        z = self.model.fusion(feats)
        if self.hooks["on_logits"]:
            ctx = self.context(self.epoch, training=False)
            for s in self.hooks["on_logits"]:
                z = s.on_logits(ctx, feats, z, False)
        return z

    @torch.no_grad()
    def _absent_features(
        self, ds: MultimodalDataset, feats: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """What the fusion head sees for a modality left out of a Shapley subset
        (`train.shapley_absent`): `input` (default, BalanceBenchmark) = the encoder's output
        for an all-zero input of that modality; `feature` = a zero feature. In eval mode the
        encoders treat samples independently, so one zero sample (the dataset's input shape;
        its dtype for in-memory data, float32 for files) stands for every sample. Reads no
        data and draws no random numbers."""
        if self.cfg.train.shapley_absent == "feature" or len(ds) == 0:
            return {m: torch.zeros_like(h) for m, h in feats.items()}
        self.model.eval()
        out: dict[str, torch.Tensor] = {}
        with self._autocast():
            for m, h in feats.items():
                dtype = ds.x[m].dtype if isinstance(ds, TensorDataset) else torch.float32
                zero_input = torch.zeros((1, *self.bundle.input_shapes[m]), dtype=dtype, device=self.device)
                out[m] = self.model.encoders[m](zero_input).float().expand_as(h)
        return out

    @torch.no_grad()
    def _test_accuracy(self) -> float:
        """Fused test accuracy of the current weights (the official protocol's per-epoch test)."""
        feats, y = self.encode_split(self.bundle.test, "test")
        return accuracy(self._eval_logits(feats).float(), y)

    # ------------------------------------------------------------------ checkpoints

    def _rng_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def _set_rng_state(self, state: dict[str, Any]) -> None:
        torch.set_rng_state(state["torch"])
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": 1,
            "config": self.cfg.to_dict(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler else None,
            "scaler": self.scaler.state_dict() if self.scaler else None,
            "strategies": [s.state_dict() for s in self.strategies],
            "rng": self._rng_state(),
            "progress": {
                "epoch": self.epoch,
                "batch_in_epoch": self.batch_in_epoch,
                "global_step": self.global_step,
                "skipped_steps": self.skipped_steps,
                "train_seconds": self.train_seconds,
                "samples_seen": self.samples_seen,
                "best": self.best,
                "best_test": self.best_test,
                "history": self.history,
                "stopped_by": self.stopped_by,
                "lr_mults": self.lr_mults,
                "alerts": self.alerts.state_dict(),
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # load_state_dict replaces the group dicts: look them up again (lr multipliers, param_group)
        self._param_groups = {pg["name"]: pg for pg in self.optimizer.param_groups}
        if self.scheduler and state["scheduler"]:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        for s, st in zip(self.strategies, state["strategies"], strict=True):
            s.load_state_dict(st)
        self._set_rng_state(state["rng"])
        p = state["progress"]
        self.epoch, self.batch_in_epoch, self.global_step = p["epoch"], p["batch_in_epoch"], p["global_step"]
        self.skipped_steps, self.train_seconds = p["skipped_steps"], p["train_seconds"]
        self.samples_seen, self.best, self.history = p["samples_seen"], p["best"], p["history"]
        self.best_test = p.get("best_test", {"acc": -math.inf, "epoch": -1})
        self.stopped_by, self.lr_mults = p.get("stopped_by"), dict(p.get("lr_mults", {}))
        if p.get("alerts"):
            self.alerts.load_state_dict(p["alerts"])

    def _save(self, name: str, obj: Any) -> None:
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / f".{name}.tmp"
        torch.save(obj, tmp)
        os.replace(tmp, self.run_dir / name)

    def _save_best(self, epoch: int) -> None:
        if self.run_dir is None:
            self._best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self._save(CHECKPOINT_BEST, {"model": self.model.state_dict(), "epoch": epoch})

    def _load_best(self) -> bool:
        if self.run_dir is None:
            if self._best_state is None:
                return False
            self.model.load_state_dict(self._best_state)
            return True
        path = self.run_dir / CHECKPOINT_BEST
        if not path.is_file():
            return False
        self.model.load_state_dict(load_checkpoint(path, self.device)["model"])
        return True

    def save_checkpoint(self) -> None:
        if not self.sink.flush():  # never let a checkpoint run ahead of the recorded metrics
            self.sink.on_event("warning", "a sink could not write everything before this checkpoint")
        self._save(CHECKPOINT_LAST, self.state_dict())

    def try_resume(self) -> bool:
        if self.run_dir is None or not self.resume:
            return False
        path = self.run_dir / CHECKPOINT_LAST
        if not path.is_file():
            return False
        # RNG states must stay CPU tensors; load_state_dict moves weights and optimiser state
        self.load_state_dict(load_checkpoint(path, "cpu"))
        return True

    # ------------------------------------------------------------------ the loop

    def fit(self) -> dict[str, Any]:
        """Train (resuming when a checkpoint exists), test the val-selected checkpoint,
        and return the summary. Sinks receive every event."""
        resumed = self.try_resume()
        cfg = self.cfg
        self.sink.on_start(
            {
                "name": cfg.name,
                "modalities": self.modalities,
                "total_steps": self.total_steps,
                "steps_per_epoch": self.steps_per_epoch,
                "start_step": self.global_step,
                "resumed": resumed,
                "device": str(self.device),
                "dataset": self.bundle.describe(),
            }
        )
        if resumed:
            self.sink.on_event(
                "info", f"resumed from checkpoint at epoch {self.epoch}, step {self.global_step}"
            )
        else:
            for msg in advisories(cfg):
                self.sink.on_event("warning", msg)
            for err in plugin_errors():
                self.sink.on_event("warning", f"strategy plug-in not loaded: {err}")
        status = "succeeded"
        try:
            ctx = self.context(self.epoch)  # after a resume, each strategy's state is loaded already
            for s in self.hooks["on_fit_start"]:
                s.on_fit_start(ctx)
            while self.epoch < cfg.train.epochs and self.stopped_by is None:
                if self._run_epoch():
                    status = "cancelled"
                    break
            summary = self._finish(status) if status == "succeeded" else None
        except BaseException as exc:
            self.sink.on_event("error", f"{type(exc).__name__}: {exc}")
            self.sink.on_end("failed", None)
            self.sink.close()
            raise
        self.sink.on_end(status, summary)
        self.sink.close()
        return summary if summary is not None else {"run": self._run_info(status)}

    def _run_epoch(self) -> bool:
        """Train one epoch (from batch_in_epoch), evaluate, checkpoint. True when stopped."""
        epoch, cfg = self.epoch, self.cfg
        train = self._on_device("train", self.bundle.train)
        train.training = True
        train.set_epoch(epoch, cfg.seed)
        self.bundle.train.set_epoch(epoch, cfg.seed)
        if self.batch_in_epoch == 0:
            ctx = self.context(epoch)
            for s in self.hooks["on_epoch_start"]:
                s.on_epoch_start(ctx)
        order = self._epoch_order(epoch)
        t_epoch = time.perf_counter()
        stopped = False
        for x, y in self._batches(
            train, order, cfg.train.batch_size, self.batch_in_epoch, self.steps_per_epoch
        ):
            metrics = self.train_step(x, y, epoch)
            self.batch_in_epoch += 1
            if metrics is not None:
                self.sink.on_step(self.global_step, epoch, metrics)
                self._emit_alerts(self.alerts.on_step(self.global_step, epoch, metrics))
            if self.stop_requested():
                stopped = True
                break
        self.train_seconds += time.perf_counter() - t_epoch
        if stopped and self.batch_in_epoch < self.steps_per_epoch:
            self.save_checkpoint()
            self.sink.on_event(
                "info", f"stopped at epoch {epoch}, step {self.global_step}; checkpoint written"
            )
            return True

        last = epoch == cfg.train.epochs - 1
        val_metrics: dict[str, float] | None = None
        if (epoch + 1) % cfg.train.eval_every == 0 or last:
            result = self.evaluate(self.bundle.val, "val")
            val_metrics = result.as_metrics("val")
            self.history.append({"epoch": epoch, "step": self.global_step, "val": result.as_summary(False)})
            if result.acc > self.best["acc"]:
                self.best = {"acc": result.acc, "epoch": epoch, "step": self.global_step}
                self._save_best(epoch)
            if cfg.train.test_selected and len(self.bundle.test) > 0:
                test_acc = self._test_accuracy()
                if test_acc > self.best_test["acc"]:
                    self.best_test = {"acc": test_acc, "epoch": epoch}
        ctx = self.context(epoch)
        for s in self.hooks["on_epoch_end"]:
            s.on_epoch_end(ctx, dict(val_metrics) if val_metrics is not None else None)
        # what on_epoch_end logged (per-epoch strategy series) goes out with the eval metrics
        epoch_metrics = {**(val_metrics or {}), **ctx.metrics}
        if epoch_metrics:
            self.sink.on_eval(self.global_step, epoch, epoch_metrics)
            self._emit_alerts(self.alerts.on_eval(self.global_step, epoch, epoch_metrics))
        if self.scheduler is not None:
            self.scheduler.step()
        self.epoch += 1
        self.batch_in_epoch = 0
        if not stopped and self.epoch < cfg.train.epochs:
            self._ask_should_stop(ctx)
        self.save_checkpoint()
        return stopped

    def _emit_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """New alerts go to every sink; a divergence stops the run unless configured not to."""
        for alert in alerts:
            self.sink.on_alert(alert)
            if alert["detector"] == "divergence" and self.alerts.stop_on_divergence:
                raise TrainingDiverged(f"{alert['message']} (set alerts.divergence.stop=false to keep going)")

    def _ask_should_stop(self, ctx: StepContext) -> None:
        """A strategy may end the run after an epoch: it stops cleanly (checkpointed, tested,
        status succeeded); a resumed run does not train further."""
        for s in self.hooks["should_stop"]:
            if s.should_stop(ctx):
                self.stopped_by = {"strategy": s.params.name, "epoch": ctx.epoch, "step": self.global_step}
                self.sink.on_event(
                    "info",
                    f"{s.params.name} stopped the run after epoch {ctx.epoch} (step {self.global_step}); "
                    "testing the val-selected checkpoint",
                )
                return

    def linear_probe(self) -> dict[str, float]:
        """Per modality: a linear classifier fitted on the frozen encoder's train features,
        accuracy on test (the CVPR paper's uni-modal accuracy)."""
        train_x, train_y = self.encode_split(self.bundle.train, "train")
        test_x, test_y = self.encode_split(self.bundle.test, "test")
        return {
            m: linear_probe_accuracy(train_x[m], train_y, test_x[m], test_y, self.bundle.num_classes)
            for m in self.modalities
        }

    def _run_info(self, status: str) -> dict[str, Any]:
        return {
            "name": self.cfg.name,
            "seed": self.cfg.seed,
            "strategies": [s.name for s in self.cfg.strategies] or ["joint"],
            "dataset": self.cfg.dataset.name,
            "status": status,
        }

    def _test_selected_summary(self) -> dict[str, Any] | None:
        if not self.cfg.train.test_selected or self.best_test["epoch"] < 0:
            return None
        return {
            "acc": float(self.best_test["acc"]),
            "epoch": int(self.best_test["epoch"]),
            "note": (
                "best test accuracy over the evaluated epochs, the number both official codes "
                "report; selected on test (optimistic), never used for model selection; the "
                "val-selected result is `test`"
            ),
        }

    def _finish(self, status: str) -> dict[str, Any]:
        test_last = self.evaluate(self.bundle.test, "test")
        selected = self._load_best()
        test = self.evaluate(self.bundle.test, "test") if selected else test_last
        best_val = next((h["val"] for h in self.history if h["epoch"] == self.best["epoch"]), None)
        test_summary = test.as_summary(True)
        if self.cfg.train.linear_probe:
            probe = self.linear_probe()
            test_summary["linear_probe_acc_per_modality"] = probe
            self._emit_alerts(
                self.alerts.on_reference(self.global_step, self.epoch, test.acc_per_modality, probe)
            )
        seconds = self.train_seconds
        return {
            "run": self._run_info(status),
            "best_epoch": int(self.best["epoch"]),
            "selection": "val" if selected else "last",
            "val": best_val,
            "test": test_summary,
            "test_last_epoch": test_last.as_summary(True),
            "test_selected_on_test": self._test_selected_summary(),
            "train": {
                "steps": self.global_step,
                "skipped_steps": self.skipped_steps,
                "seconds": seconds,
                "samples_per_second": self.samples_seen / seconds if seconds > 0 else 0.0,
                "device": str(self.device),
                **({"stopped_by": self.stopped_by} if self.stopped_by is not None else {}),
            },
            "alerts": list(self.alerts.alerts),
        }


def train(
    cfg: RunConfig,
    sinks: list[MetricSink] | None = None,
    run_dir: str | Path | None = None,
    bundle: DatasetBundle | None = None,
    stop_requested: Callable[[], bool] | None = None,
    resume: bool = True,
) -> dict[str, Any]:
    """Convenience: build a Trainer and fit it."""
    return Trainer(cfg, bundle, sinks, run_dir, stop_requested, resume).fit()

"""`BmlLogger`: a Lightning `Logger` that records a Lightning run into BML Studio's store as an
own-loop run (bml_core.tracking.Run), beside native runs on /live, /compare and /report.

    logger = BmlLogger(name="mine", group="own", modalities=["audio", "visual"], num_classes=6)
    trainer = lightning.Trainer(logger=logger, ...)

Whatever the module logs with `self.log(...)` is stored under its key; `val/acc` (with
`val/acc/<m>`, `val/f1`, `val/map`, `val/loss`) and the same under `test/` become evaluations,
so the run's summary holds them as a native run's does. The paper's per-step telemetry with the
native keys: call `self.logger.experiment.log_step(logits=..., features=..., head=..., y=...,
step=self.global_step)` in `training_step` (or let the strategy Callback do it). Needs the
extra: `pip install -e '.[lightning]'`."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment
from lightning.pytorch.utilities import rank_zero_only

from bml_core.tracking import Run, init

EVAL_FIELDS = ("acc", "f1", "map", "loss", "imbalance_degree")


def _plain(params: Any) -> dict[str, Any]:
    """Hyperparameters (a dict, Namespace or AttributeDict) as plain JSON-ready values."""
    raw = vars(params) if hasattr(params, "__dict__") and not isinstance(params, Mapping) else dict(params)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        if isinstance(v, bool | int | float | str) or v is None:
            out[str(k)] = v
        elif isinstance(v, Mapping):
            out[str(k)] = _plain(v)
        elif isinstance(v, list | tuple) and all(isinstance(i, bool | int | float | str) for i in v):
            out[str(k)] = list(v)
        else:
            out[str(k)] = repr(v)
    return out


class BmlLogger(Logger):
    """A Lightning logger whose experiment is a `bml_core.tracking.Run` (created on first use,
    on rank 0 only). `finalize("success")` keeps the run open so that `trainer.test` after
    `trainer.fit` still logs into it; it ends at `finish()`, or as succeeded when the process
    exits. A failed fit fails it, Ctrl-C cancels it."""

    def __init__(
        self,
        name: str,
        modalities: Sequence[str],
        num_classes: int,
        group: str = "own",
        config: Mapping[str, Any] | None = None,
        store: Any = None,
        tags: Sequence[str] = ("lightning",),
        **init_options: Any,
    ):
        super().__init__()
        self._name = name
        self._group = group
        self._config: dict[str, Any] = dict(config or {})
        self._init = {
            "modalities": list(modalities),
            "num_classes": num_classes,
            "store": store,
            "tags": list(tags),
            **init_options,
        }
        self._run: Run | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | str:
        return self._run.id if self._run is not None else "pending"

    @property
    @rank_zero_experiment
    def experiment(self) -> Run:
        if self._run is None:
            self._run = init(name=self._name, group=self._group, config=self._config, **self._init)
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        plain = _plain(params)
        if self._run is None:
            self._config.update(plain)  # part of the run's stored config
        else:  # Lightning touches `experiment` before it logs the hyperparameters
            self._run.update_config(plain)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        run = self.experiment
        metrics = dict(metrics)
        epoch = metrics.pop("epoch", None)
        if epoch is not None:
            run.epoch = int(epoch)
        for split in ("val", "test"):
            if f"{split}/acc" not in metrics:
                continue
            fields = {f: float(metrics.pop(f"{split}/{f}")) for f in EVAL_FIELDS if f"{split}/{f}" in metrics}
            per = {m: metrics.get(f"{split}/acc/{m}") for m in run.modalities}
            per_mod = {m: float(v) for m, v in per.items() if v is not None}
            if len(per_mod) == len(run.modalities):
                for m in run.modalities:
                    metrics.pop(f"{split}/acc/{m}")
            run.log_eval(
                split,
                acc=fields.pop("acc"),
                acc_per_modality=per_mod if len(per_mod) == len(run.modalities) else None,
                step=step,
                epoch=run.epoch,
                **fields,
            )
        if metrics:
            run.log(metrics, step=step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._run is None:
            return
        if status == "success":
            self._run.sink.flush(10.0)
            return
        handled = sys.exc_info()[1]
        if isinstance(handled, KeyboardInterrupt):
            self._run.event("warning", "interrupted (KeyboardInterrupt): cancelled")
            self._run.finish(status="cancelled")
        elif status == "failed":
            if handled is not None:
                self._run.event("error", f"{type(handled).__name__}: {handled}")
            self._run.finish(status="failed")
        else:  # "finished": a signal ended the fit
            self._run.finish()

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """End the run now (succeeded), with an optional summary update."""
        if self._run is not None:
            self._run.finish(summary)

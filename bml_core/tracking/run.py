"""`bml_core.init(...)` -> `Run`: the paper's per-step imbalance telemetry from anyone's loop.

    with bml_core.init(name="mine", group="own", config={...}, modalities=["audio", "visual"],
                       num_classes=6) as run:
        for x, y in loader:
            ...
            run.log_step(logits=out, unimodal_logits={"audio": ua, "visual": uv}, y=y)
        run.log_eval("val", acc=0.61, acc_per_modality={"audio": 0.55, "visual": 0.31})

The run is a row of the same store the dashboard reads (status `running`, tag `own-loop`),
its metrics go through the store's DbMetricSink (batched by a writer thread; the training
thread only appends to a bounded queue, so a slow or absent store never blocks or stops the
loop; points beyond the bound are counted and reported as an event), the sink's heartbeat
keeps it alive, and a process that dies stops the heartbeat: the run is failed by the reaper.
An exception inside the `with` fails the run with the error, Ctrl-C cancels it."""

from __future__ import annotations

import atexit
import math
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from bml_core.alerts import AlertMonitor
from bml_core.alerts.config import AlertsConfig
from bml_core.compare.grouping import strategy_label
from bml_core.tracking.offthread import OffThreadScorer, StepMetrics, StepSnapshot, watched
from bml_core.tracking.scores import StepScorer, TrackingInputError, _check_keys
from bml_core.tracking.store import (
    create_run_and_sink,
    open_store,
    stop_requested_in_store,
    update_config_in_store,
)

STEPS_PER_EPOCH_DEFAULT = 100  # the alerts' windows when the loop does not say
MAX_STEP = 2**63 - 1  # the store's step column


def _stop_poll_interval_s() -> float:
    """BML_OWN_LOOP_POLL_S (default 1 s): how often the run reads its cancel flag."""
    raw = os.environ.get("BML_OWN_LOOP_POLL_S", "")
    try:
        value = float(raw) if raw else 1.0
    except ValueError:
        raise TrackingInputError(f"BML_OWN_LOOP_POLL_S={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise TrackingInputError(f"BML_OWN_LOOP_POLL_S={raw!r} must be a number of seconds > 0")
    return value


SCORER_OPTIONS = ("wake_every", "batch_max", "max_wait_s", "yield_every", "yield_s", "max_pending")


def _scorer_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """scorer_options={...}: OffThreadScorer's wake and batch settings, checked by name."""
    out = dict(options or {})
    unknown = [k for k in out if k not in SCORER_OPTIONS]
    if unknown:
        raise TrackingInputError(
            f"scorer_options has unknown keys {unknown}: the settings are {', '.join(SCORER_OPTIONS)}"
        )
    for key, value in out.items():
        seconds = key.endswith("_s")
        kinds = (int, float) if seconds else (int,)
        ok = not isinstance(value, bool) and isinstance(value, kinds)
        ok = ok and (value > 0 if key == "max_wait_s" else value >= (0 if key.startswith("yield") else 1))
        if not ok:
            what = "a number of seconds" if seconds else "an integer"
            bound = "> 0" if key == "max_wait_s" else ">= 0" if key.startswith("yield") else ">= 1"
            raise TrackingInputError(f"scorer_options[{key!r}] must be {what} {bound}, got {value!r}")
    return out


def _json_ready(value: Any, path: str) -> Any:
    """The config as JSON (the store's config column); a value that is not is refused."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    raise TrackingInputError(
        f"{path} is a {type(value).__name__}, which the store cannot keep: pass numbers, strings, "
        "lists or dicts in config=..."
    )


class Run:
    """An own-loop run. Create it with `bml_core.init`; use it as a context manager or call
    `finish()`. `step` is the last step recorded (log_step counts from 1, like native runs)."""

    def __init__(
        self,
        *,
        name: str,
        group: str,
        config: Mapping[str, Any] | None,
        modalities: Sequence[str],
        num_classes: int,
        store: Any = None,
        tags: Sequence[str] = (),
        ratio: str = "pairwise_mean",
        head: nn.Module | None = None,
        alerts: Mapping[str, Any] | AlertsConfig | None = None,
        steps_per_epoch: int | None = None,
        total_steps: int | None = None,
        sink_options: Mapping[str, Any] | None = None,
        scorer_options: Mapping[str, Any] | None = None,
    ):
        mods = list(modalities) if not isinstance(modalities, str) else []
        if len(mods) < 2 or len(set(mods)) != len(mods) or not all(isinstance(m, str) and m for m in mods):
            raise TrackingInputError(
                f"modalities must list at least two distinct modality names, got {modalities!r}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise TrackingInputError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if ratio not in ("pairwise_mean", "vs_rest", "vs_min"):
            raise TrackingInputError(f"ratio must be pairwise_mean, vs_rest or vs_min, got {ratio!r}")
        user = _json_ready(dict(config or {}), "config")
        scorer_kw = _scorer_options(scorer_options)  # before the run is created in the store
        cfg_alerts = alerts if isinstance(alerts, AlertsConfig) else AlertsConfig.model_validate(alerts or {})
        self.modalities = mods
        self.num_classes = num_classes
        self.head = head
        self.scorer = StepScorer(mods, num_classes, ratio)
        self._names_unimodal = tuple(f"unimodal_logits[{m!r}]" for m in mods)
        self._names_features = tuple(f"features[{m!r}]" for m in mods)
        strategies = user.get("strategies") if isinstance(user.get("strategies"), list) else []
        dataset = user.get("dataset")
        dataset_name = dataset if isinstance(dataset, str) else (dataset or {}).get("name", "own")
        seed = user.get("seed", 0)
        self.doc: dict[str, Any] = {
            "name": name,
            "group": group,
            "tags": list(tags),
            "source": "own_loop",
            "seed": int(seed) if isinstance(seed, int) and not isinstance(seed, bool) else 0,
            "strategies": strategies,
            "dataset": {"name": str(dataset_name or "own")},
            "modalities": mods,
            "num_classes": num_classes,
            "ratio": ratio,
            "config": user,
        }
        self.alerts = AlertMonitor(
            cfg_alerts,
            mods,
            int(steps_per_epoch or STEPS_PER_EPOCH_DEFAULT),
            [s if isinstance(s, dict) else {"name": str(s)} for s in strategies],
            None,
        )
        self.engine = open_store(store)
        self.id, self.sink = create_run_and_sink(
            self.engine, self.doc, strategy_label(strategies), dict(sink_options or {})
        )
        self.step = 0
        self.epoch = 0
        self.status = "running"
        self.summary: dict[str, Any] | None = None
        self._t0 = time.perf_counter()
        self._last_step_t: float | None = None
        self._samples = 0
        self._head_copy: tuple[nn.Linear, tuple[int, int], torch.Tensor, torch.Tensor | None] | None = None
        self._evals: dict[str, list[dict[str, Any]]] = {}
        if total_steps is not None and (
            isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1
        ):
            raise TrackingInputError(
                f"total_steps must be a positive integer (for the progress), got {total_steps!r}"
            )
        self.sink.on_start({"total_steps": total_steps, "device": "own loop", "start_step": 0})
        self._alerts_lock = threading.Lock()
        self._stop_requested: str | None = None
        self._scoring = OffThreadScorer(
            self.scorer,
            self._record_step,
            self._score_failed,
            poll=self._poll_stop,
            poll_interval_s=_stop_poll_interval_s(),
            name=f"bml-own-loop-scorer-{self.id}",
            **scorer_kw,
        )
        self.sink.flush = self.flush  # run.sink.flush() waits for the scorer too
        self._atexit = _exit_hook(weakref.ref(self))
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ logging

    def _check_open(self, what: str) -> None:
        if self.status != "running":
            raise RuntimeError(f"run {self.id} is {self.status}: {what} after finish() is refused")
        error = self._scoring.take_error()
        if error is not None:  # found on the scorer thread since the last call: raised here, once
            raise error

    def _next_step(self, step: int | None, advance: bool) -> int:
        if step is None:
            return self.step + 1 if advance else self.step
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= MAX_STEP:
            raise TrackingInputError(f"step must be an integer from 0 to {MAX_STEP}, got {step!r}")
        return step

    def _emit_alerts(self, alerts: list[dict[str, Any]]) -> None:
        for alert in alerts:
            self.sink.on_alert(alert)

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record any metrics at `step` (default: the current step). Values are numbers or
        one-element tensors; a step lower than an earlier one is stored too (never dropped).
        Checked in the call; the tensors are copied (no host sync) and read, written and
        given to the alerts on the run's scorer thread, after the steps logged before."""
        self._check_open("log()")
        if not isinstance(metrics, Mapping):
            raise TrackingInputError(f"metrics must be a dict {{key: number}}, got {type(metrics).__name__}")
        at = self._next_step(step, advance=False)
        numbers: dict[str, float] = {}
        tensors: list[str] = []
        for key, value in metrics.items():
            if not isinstance(key, str) or not key:
                raise TrackingInputError(f"metric key {key!r} must be a non-empty string")
            if isinstance(value, torch.Tensor):
                if value.numel() != 1:
                    raise TrackingInputError(f"metrics[{key!r}] is a tensor of {value.numel()} values")
                tensors.append(key)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise TrackingInputError(f"metrics[{key!r}] = {value!r} is not a number")
            else:
                numbers[key] = float(value)
        # one copy of the tensors' values: the loop may change them in place before they are read
        stacked = torch.stack([metrics[k].detach().float().reshape(()) for k in tensors]) if tensors else None
        order, epoch = list(metrics), self.epoch
        self.step = max(self.step, at)

        def record() -> None:  # on the scorer thread
            values = dict(numbers)
            if stacked is not None:
                values.update(zip(tensors, stacked.tolist(), strict=True))
            self._record_step(at, epoch, {k: values[k] for k in order})

        self._scoring.submit_call(record)

    def log_step(
        self,
        *,
        logits: torch.Tensor,
        y: torch.Tensor,
        unimodal_logits: Mapping[str, torch.Tensor] | None = None,
        features: Mapping[str, torch.Tensor] | None = None,
        head: nn.Module | None = None,
        loss: torch.Tensor | float | None = None,
        step: int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> StepMetrics:
        """One training step's metrics (the native run's keys) from the fused logits, the
        labels and either the uni-modal logits or the features (decomposed through `head`, the
        nn.Linear over their concatenation in modality order). Returns what was recorded: a
        read-only mapping computed on the run's scorer thread (reading it waits for it).

        In the call: the checks without a tensor operation (keys, shapes, types: a
        TrackingInputError naming the argument, nothing recorded), a copy of the head's weight
        and bias and a queue append: no host sync. The scores, ratios and accuracies are
        computed on the run's scorer thread; NaN / inf in logits, loss or the per-modality
        tensors is found there: that step is not recorded, an error event says so, and the
        TrackingInputError (naming the argument and the step) is raised by the run's next
        log_step / log / log_eval / finish, before that call records anything (or by reading
        this step's result, if that comes first). A float loss that is NaN / inf is refused here."""
        self._check_open("log_step()")
        now = time.perf_counter()
        if (unimodal_logits is None) == (features is None):
            raise TrackingInputError(
                "log_step needs exactly one of unimodal_logits={m: ...} or features={m: ...}"
            )
        mods = self.modalities
        weight = bias = None
        if unimodal_logits is not None:
            _check_keys("unimodal_logits", unimodal_logits, mods)
            self.scorer.check_inputs(logits, unimodal_logits, y, loss)
            per = [unimodal_logits[m].detach() for m in mods]
            names = self._names_unimodal
        else:
            assert features is not None
            _check_keys("features", features, mods)
            layer = head if head is not None else self.head
            if layer is None:
                raise TrackingInputError(
                    "log_step(features=...) needs head=<the nn.Linear over the concatenated features> "
                    "(here or in bml_core.init(head=...)), or pass unimodal_logits=... instead"
                )
            self.scorer.check_head(layer, features)
            self.scorer.check_inputs(logits, None, y, loss)
            per = [features[m].detach() for m in mods]
            names = self._names_features
            assert isinstance(layer, nn.Linear)
            weight, bias = self._copy_of(layer)
        logits = logits.detach()
        loss_d = loss.detach() if isinstance(loss, torch.Tensor) else loss
        if loss_d is not None and not isinstance(loss_d, torch.Tensor) and not math.isfinite(loss_d):
            raise TrackingInputError(
                "loss holds NaN or inf: this step was not recorded (the steps already stored are kept); "
                "check the learning rate and the inputs"
            )
        at = self._next_step(step, advance=True)
        step_ms = (now - self._last_step_t) * 1000.0 if self._last_step_t is not None else None
        self._last_step_t = now
        self._samples += int(y.shape[0])
        tensors = dict(zip(mods, per, strict=True))
        snap = StepSnapshot(
            step=at,
            epoch=self.epoch,
            logits=logits,
            y=y,
            loss=loss_d,
            unimodal=tensors if features is None else None,
            features=tensors if features is not None else None,
            weight=weight,
            bias=bias,
            versions=tuple(t._version for t in watched(logits, y, per, loss_d)),
            step_ms=step_ms,
            extra={k: float(v) for k, v in extra.items()} if extra else None,
            names=names,
        )
        self.step = max(self.step, at)
        return self._scoring.submit(snap)

    def _copy_of(self, layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A copy of the head's weight and bias (the optimiser changes them in place after
        log_step); the same copy again while neither changed (their version counters)."""
        b = layer.bias
        versions = (layer.weight._version, -1 if b is None else b._version)
        cached = self._head_copy
        if cached is not None and cached[0] is layer and cached[1] == versions:
            return cached[2], cached[3]
        weight = layer.weight.detach().clone()
        bias = b.detach().clone() if b is not None else None
        self._head_copy = (layer, versions, weight, bias)  # the layer itself: no id reused
        return weight, bias

    def _record_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """On the scorer thread: the step's metrics to the sink and the alerts."""
        self.sink.on_step(step, epoch, metrics)
        with self._alerts_lock:
            alerts = self.alerts.on_step(step, epoch, metrics)
        self._emit_alerts(alerts)

    def _score_failed(self, snap: StepSnapshot, exc: BaseException) -> None:
        self.sink.on_event("error", f"step {snap.step} not recorded: {type(exc).__name__}: {exc}")

    def _poll_stop(self) -> None:
        """On the scorer thread, every second: has the dashboard asked this run to stop?"""
        if self._stop_requested is None and stop_requested_in_store(self.engine, self.id):
            self._stop_requested = "cancel requested in the store (the dashboard's Cancel or `bml cancel`)"
            self.sink.on_event("warning", f"{self._stop_requested}: run.should_stop is now True")

    @property
    def should_stop(self) -> bool:
        """True once the run was asked to stop from outside the loop (Cancel on the Runs
        page, `bml cancel <id>`, a run deleted or failed by the reaper); polled from the store
        about every second off the training thread. The loop ends when it likes (e.g. `if
        run.should_stop: break`); the run then ends `cancelled`. Reading it costs nothing."""
        return self._stop_requested is not None

    def flush(self, timeout_s: float = 60.0) -> bool:
        """Wait until every step logged so far is scored and written to the store (False on
        timeout). Never needed in a loop; finish() does it."""
        deadline = time.monotonic() + timeout_s
        if not self._scoring.drain(timeout_s):
            return False
        return bool(type(self.sink).flush(self.sink, max(0.0, deadline - time.monotonic())))

    def log_eval(
        self,
        split: str,
        *,
        acc: float,
        acc_per_modality: Mapping[str, float] | None = None,
        f1: float | None = None,
        map: float | None = None,
        loss: float | None = None,
        imbalance_degree: float | None = None,
        step: int | None = None,
        epoch: int | None = None,
    ) -> dict[str, float]:
        """An evaluation on `split` (`val`, `test`, ...): `<split>/acc`, `<split>/acc/<m>`,
        `<split>/f1`, `<split>/map`, `<split>/loss`, `<split>/imbalance_degree` at `step`; the
        summary's `val` is the evaluation with the best validation accuracy, `test` the last."""
        self._check_open("log_eval()")
        if not isinstance(split, str) or not split or "/" in split:
            raise TrackingInputError(f"split must be a name such as 'val' or 'test', got {split!r}")
        if acc_per_modality is not None:
            _check_keys("acc_per_modality", acc_per_modality, self.modalities)
        at = self._next_step(step, advance=False)
        if epoch is not None:
            self.epoch = int(epoch)
        fields = {"acc": acc, "f1": f1, "map": map, "loss": loss, "imbalance_degree": imbalance_degree}
        metrics: dict[str, float] = {}
        for key, value in fields.items():
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TrackingInputError(f"log_eval({key}={value!r}): not a number")
            metrics[f"{split}/{key}"] = float(value)
        for m, a in (acc_per_modality or {}).items():
            metrics[f"{split}/acc/{m}"] = float(a)
        record: dict[str, Any] = {k: float(v) for k, v in fields.items() if v is not None}
        record["acc_per_modality"] = {m: float(a) for m, a in (acc_per_modality or {}).items()}
        record["epoch"] = at_epoch = self.epoch
        self._evals.setdefault(split, []).append(record)
        is_val = split == "val"

        def write() -> None:  # on the scorer thread, after the steps logged before (the alerts' windows)
            self.sink.on_eval(at, at_epoch, metrics)
            if is_val:
                with self._alerts_lock:
                    alerts = self.alerts.on_eval(at, at_epoch, dict(metrics))
                self._emit_alerts(alerts)

        self._scoring.submit_call(write)
        if is_val:
            self.epoch += 0 if epoch is not None else 1
        return dict(metrics)

    def update_config(self, values: Mapping[str, Any]) -> None:
        """Add `values` to the run's stored config (e.g. hyperparameters known only after
        init). Written at once; when the store is away, recorded as an event instead."""
        self._check_open("update_config()")
        self.doc["config"].update(_json_ready(dict(values), "config"))
        try:
            update_config_in_store(self.engine, self.id, self.doc)
        except Exception as exc:  # noqa: BLE001 - the store may be away: never stop the loop
            self.event("warning", f"config not updated ({type(exc).__name__}: {exc}); values: {dict(values)}")

    def event(self, level: str, message: str) -> None:
        """A line in the run's events (`debug`, `info`, `warning`, `error`)."""
        self.sink.on_event(level, str(message))

    # ------------------------------------------------------------------ the end

    def build_summary(self, status: str) -> dict[str, Any]:
        """CONTRACT.md's summary from what was logged."""
        seconds = time.perf_counter() - self._t0
        out: dict[str, Any] = {
            "run": {
                "name": self.doc["name"],
                "seed": self.doc["seed"],
                "strategies": self.doc["strategies"],
                "dataset": self.doc["dataset"]["name"],
                "status": status,
                "source": "own_loop",
            },
            "train": {
                "steps": self.step,
                "seconds": seconds,
                "samples_per_second": self._samples / seconds if seconds > 0 else 0.0,
            },
        }
        vals = self._evals.get("val") or []
        if vals:
            best = max(vals, key=lambda r: r["acc"])
            out["best_epoch"] = best["epoch"]
            out["val"] = {k: v for k, v in best.items() if k != "epoch"}
        for split, records in self._evals.items():
            if split != "val":
                out[split] = {k: v for k, v in records[-1].items() if k != "epoch"}
        out["alerts"] = list(self.alerts.alerts)
        return out

    def finish(self, summary: Mapping[str, Any] | None = None, status: str = "succeeded") -> None:
        """End the run: `status` (succeeded | failed | cancelled) and the summary (the one
        built from log_eval, updated with `summary`). Waits for the steps still being scored
        and for the store to take what is queued. A run asked to stop (`should_stop`) that
        ends without an error ends `cancelled`. A step found NaN / inf on the scorer thread
        since the last call: the run ends `failed` with that error, which is then raised."""
        if self.status != "running":
            return
        self._scoring.drain()
        error = self._scoring.take_error()  # a step found bad on the scorer thread since the last call
        if error is not None and status == "succeeded":
            self.event("error", f"{type(error).__name__}: {error}")
            status = "failed"
        self._end(summary, status)
        if error is not None:
            raise error

    def _end(self, summary: Mapping[str, Any] | None, status: str) -> None:
        if self.status != "running":
            return
        if status not in ("succeeded", "failed", "cancelled"):
            raise TrackingInputError(f"status must be succeeded, failed or cancelled, got {status!r}")
        self._scoring.close()
        if status == "succeeded" and self._stop_requested is not None:
            status = "cancelled"
            self.event("warning", f"stopped by the loop after {self._stop_requested}: cancelled")
        doc = self.build_summary(status)
        if summary:
            doc.update(_json_ready(dict(summary), "summary"))
        self.summary = doc
        self.status = status
        self.sink.on_end(status, doc)
        self.sink.close()
        atexit.unregister(self._atexit)

    def _at_exit(self) -> None:
        """The interpreter exits with the run still open: failed after an uncaught exception,
        else succeeded."""
        if self.status != "running":
            return
        exc = getattr(sys, "last_value", None)
        if exc is not None:
            self.event("error", f"{type(exc).__name__}: {exc}")
            self._end(None, "failed")
        else:
            self._end(None, "succeeded")

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.finish()
        elif isinstance(exc, KeyboardInterrupt):
            self.event("warning", "interrupted (KeyboardInterrupt): cancelled")
            self._end(None, "cancelled")
        else:
            tail = "".join(traceback.format_exception(exc_type, exc, tb))[-3000:]
            self.event("debug", f"traceback:\n{tail}")
            self.event("error", f"{type(exc).__name__}: {exc}")
            self._end(None, "failed")

    def __repr__(self) -> str:
        return f"<bml_core Run {self.id} {self.doc['name']!r} {self.status} step {self.step}>"


def _exit_hook(ref: weakref.ReferenceType[Run]) -> Any:
    def hook() -> None:
        run = ref()
        if run is not None:
            run._at_exit()

    return hook


def init(
    name: str,
    group: str = "own",
    config: Mapping[str, Any] | None = None,
    modalities: Sequence[str] = (),
    num_classes: int = 0,
    store: Any = None,
    tags: Sequence[str] = (),
    **options: Any,
) -> Run:
    """Start an own-loop run in the store (`store`: an Engine or URL; else BML_DATABASE_URL,
    else the SQLite store under BML_HOME). Options: ratio (pairwise_mean | vs_rest | vs_min),
    head (the nn.Linear for log_step(features=...)), alerts (the `alerts:` config),
    steps_per_epoch (the alerts' windows), total_steps (progress and ETA on /runs),
    sink_options (DbMetricSink keywords), scorer_options (the scorer thread's wake_every,
    batch_max, max_wait_s, yield_every, yield_s, max_pending: see tracking/offthread.py)."""
    return Run(
        name=name,
        group=group,
        config=config,
        modalities=modalities,
        num_classes=num_classes,
        store=store,
        tags=tags,
        **options,
    )

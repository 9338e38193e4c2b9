"""Event consumers of the trainer (progress bar, JSONL file, ...). The store's DbMetricSink
implements the same interface in `db/`. A sink never changes training."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Any

from bml_core.finitejson import finite_float, finite_json


class MetricSink:
    """Base class: every hook is optional. Metric values are plain floats (NaN/inf allowed)."""

    def on_start(self, info: dict[str, Any]) -> None:
        """Once per (re)start: run name, modalities, total_steps, steps_per_epoch, start step."""

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """After every optimiser step (1-based global step)."""

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        """After an evaluation on the validation split (keys `val/...`)."""

    def on_event(self, level: str, message: str) -> None:
        """A human-readable event: advisories, checkpoints, skipped steps."""

    def on_alert(self, alert: dict[str, Any]) -> None:
        """An imbalance alert (bml_core/alerts): key, detector, severity, modality, step,
        step_range, evidence, advice, message. A resumed run may send one again with the
        same key: consumers that keep alerts keep one per key."""

    def on_end(self, status: str, summary: dict[str, Any] | None) -> None:
        """Once at the end: status is succeeded, failed or cancelled."""

    def flush(self) -> bool:
        """Make everything received so far durable; False if that could not be done in
        reasonable time. The trainer calls it before each checkpoint, so a checkpoint is
        never ahead of the recorded metrics: a run resumed after a crash re-sends every
        step its sinks may have lost."""
        return True

    def close(self) -> None:
        """Flush and release resources; called exactly once."""


class SinkGroup(MetricSink):
    """Fans each event out to several sinks."""

    def __init__(self, sinks: list[MetricSink]):
        self.sinks = list(sinks)

    def on_start(self, info: dict[str, Any]) -> None:
        for s in self.sinks:
            s.on_start(info)

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        for s in self.sinks:
            s.on_step(step, epoch, metrics)

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        for s in self.sinks:
            s.on_eval(step, epoch, metrics)

    def on_event(self, level: str, message: str) -> None:
        for s in self.sinks:
            s.on_event(level, message)

    def on_alert(self, alert: dict[str, Any]) -> None:
        for s in self.sinks:
            s.on_alert(alert)

    def on_end(self, status: str, summary: dict[str, Any] | None) -> None:
        for s in self.sinks:
            s.on_end(status, summary)

    def flush(self) -> bool:
        return all([s.flush() for s in self.sinks])

    def close(self) -> None:
        for s in self.sinks:
            s.close()


class MemorySink(MetricSink):
    """Keeps everything in lists (tests, notebooks)."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = {}
        self.steps: list[tuple[int, int, dict[str, float]]] = []
        self.evals: list[tuple[int, int, dict[str, float]]] = []
        self.events: list[tuple[str, str]] = []
        self.alerts: list[dict[str, Any]] = []
        self.status: str | None = None
        self.summary: dict[str, Any] | None = None
        self.closed = False

    def on_start(self, info: dict[str, Any]) -> None:
        self.info = dict(info)

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.steps.append((step, epoch, dict(metrics)))

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.evals.append((step, epoch, dict(metrics)))

    def on_event(self, level: str, message: str) -> None:
        self.events.append((level, message))

    def on_alert(self, alert: dict[str, Any]) -> None:
        self.alerts.append(alert)

    def on_end(self, status: str, summary: dict[str, Any] | None) -> None:
        self.status, self.summary = status, summary

    def close(self) -> None:
        self.closed = True

    def series(self, key: str) -> list[tuple[int, float]]:
        rows = self.steps + self.evals
        return sorted((step, m[key]) for step, _, m in rows if key in m)


class JsonlSink(MetricSink):
    """Appends one JSON object per event to a file (`metrics.jsonl` in the run directory)."""

    def __init__(self, path: str | Path, flush_interval_s: float = 1.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = self.path.open("a", buffering=1 << 16)
        self._flush_interval_s = flush_interval_s
        self._last_flush = time.monotonic()

    def _write(self, obj: dict[str, Any]) -> None:
        self._fh.write(json.dumps(obj, separators=(",", ":")) + "\n")
        now = time.monotonic()
        if now - self._last_flush > self._flush_interval_s:
            self._fh.flush()
            self._last_flush = now

    def on_start(self, info: dict[str, Any]) -> None:
        self._write({"event": "start", "time": time.time(), **info})

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self._write(
            {
                "event": "step",
                "step": step,
                "epoch": epoch,
                "metrics": {k: finite_float(v, "string") for k, v in metrics.items()},
            }
        )

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self._write(
            {
                "event": "eval",
                "step": step,
                "epoch": epoch,
                "metrics": {k: finite_float(v, "string") for k, v in metrics.items()},
            }
        )

    def on_event(self, level: str, message: str) -> None:
        self._write({"event": "log", "time": time.time(), "level": level, "message": message})

    def on_alert(self, alert: dict[str, Any]) -> None:
        self._write({"event": "alert", "time": time.time(), **finite_json(alert, "string")})

    def on_end(self, status: str, summary: dict[str, Any] | None) -> None:
        self._write({"event": "end", "time": time.time(), "status": status, "summary": summary})

    def flush(self) -> bool:
        self._fh.flush()
        return True

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()


class ProgressSink(MetricSink):
    """A rich progress bar with the loss, accuracies and discrepancy ratios on stderr."""

    def __init__(self, stream: IO[str] | None = None, refresh_per_second: float = 4.0):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.console = Console(file=stream or sys.stderr)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            refresh_per_second=refresh_per_second,
            transient=False,
        )
        self._task: Any = None
        self._modalities: list[str] = []
        self._val = ""

    def on_start(self, info: dict[str, Any]) -> None:
        self._modalities = list(info.get("modalities", []))
        self.progress.start()
        self._task = self.progress.add_task(
            str(info.get("name", "train")),
            total=info.get("total_steps"),
            completed=info.get("start_step", 0),
            status="",
        )

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if self._task is None:
            return
        parts = [f"ep {epoch}", f"loss {metrics.get('train/loss', float('nan')):.3f}"]
        for m in self._modalities:
            r = metrics.get(f"imbalance/ratio/{m}")
            if r is not None:
                parts.append(f"ρ {m} {r:.2f}")
        self.progress.update(self._task, completed=step, status=" ".join(parts) + self._val)

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        accs = " ".join(f"{m} {metrics.get(f'val/acc/{m}', float('nan')):.3f}" for m in self._modalities)
        self._val = f" | val acc {metrics.get('val/acc', float('nan')):.3f} ({accs})"

    def on_alert(self, alert: dict[str, Any]) -> None:
        color = {"critical": "red", "warning": "yellow"}.get(str(alert.get("severity")), "cyan")
        text = f"alert ({alert.get('detector')}, step {alert.get('step')}): {alert.get('message')}"
        self.console.print(text, style=color, markup=False, highlight=False)

    def on_event(self, level: str, message: str) -> None:
        if level in ("warning", "error"):
            self.console.print(f"[{'yellow' if level == 'warning' else 'red'}]{level}: {message}")

    def close(self) -> None:
        self.progress.stop()

"""The own-loop run's scorer thread: `log_step` takes what the step's numbers need (detached
tensors; a copy of the head's weight and bias, which the optimiser changes in place) and
returns at once; this thread computes the metrics with `StepScorer.compute` (the same code,
on the same values, as computing them in the call) and hands them to the sink and the
alerts. The training thread keeps only the checks that must fail in the call (shapes, keys,
NaN / inf: one host sync).

Bounded: beyond `max_pending` queued steps the step is scored in the calling thread (never
dropped, never more memory). A tensor changed in place between `log_step` and its scoring
is detected by its version counter: that step is not recorded and an error event says so.
Between steps the thread also polls `poll` (the store's cancel flag) every `poll_interval_s`."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch

from bml_core.tracking.scores import StepScorer, TrackingInputError


class StepSnapshot(NamedTuple):
    """What one `log_step` handed over: everything its metrics are computed from."""

    step: int
    epoch: int
    logits: torch.Tensor
    y: torch.Tensor
    loss: torch.Tensor | float | None
    unimodal: dict[str, torch.Tensor] | None
    features: dict[str, torch.Tensor] | None
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    versions: tuple[int, ...]  # of watched(), when logged: an in-place change shows as a new version
    step_ms: float | None
    extra: dict[str, float] | None
    names: tuple[str, ...]  # the arguments the per-modality tensors came from, for messages


def watched(
    logits: torch.Tensor, y: torch.Tensor, per_modality: Sequence[torch.Tensor], loss: Any
) -> tuple[torch.Tensor, ...]:
    """The tensors a snapshot refers to without copying them (their versions are recorded)."""
    loss_t = (loss,) if isinstance(loss, torch.Tensor) else ()
    return (logits, y, *per_modality, *loss_t)


def _check_versions(snap: StepSnapshot) -> None:
    per = snap.features if snap.features is not None else snap.unimodal
    assert per is not None
    tensors = watched(snap.logits, snap.y, list(per.values()), snap.loss)
    names = ("logits", "y", *snap.names, "loss")
    for name, t, version in zip(names, tensors, snap.versions, strict=False):
        if t._version != version:
            raise TrackingInputError(
                f"{name} was changed in place after log_step(step={snap.step}) and before it was scored: "
                "this step was not recorded; pass a tensor the loop does not overwrite (e.g. .clone())"
            )


def _unimodal(scorer: StepScorer, snap: StepSnapshot) -> dict[str, torch.Tensor]:
    if snap.features is not None:
        assert snap.weight is not None
        return scorer.decompose_with(snap.weight, snap.bias, snap.features)
    assert snap.unimodal is not None
    return snap.unimodal


def _finish(snap: StepSnapshot, metrics: dict[str, float]) -> dict[str, float]:
    if snap.step_ms is not None:
        metrics["time/step_ms"] = snap.step_ms
    if snap.extra:
        metrics.update(snap.extra)
    return metrics


def score_snapshot(scorer: StepScorer, snap: StepSnapshot) -> dict[str, float]:
    """One step's metrics, as `log_step` computed them in the call before (the reference
    the batched path is tested against)."""
    _check_versions(snap)
    return _finish(snap, scorer.compute(snap.logits, _unimodal(scorer, snap), snap.y, snap.loss))


def score_snapshots(scorer: StepScorer, snaps: list[StepSnapshot]) -> list[dict[str, float] | BaseException]:
    """Several steps' metrics: the steps of one batch shape (and device, dtype) in one
    `StepScorer.compute_many`; each result in its step's place, or the error for that step."""
    out: list[dict[str, float] | BaseException | None] = [None] * len(snaps)
    groups: dict[tuple[Any, ...], list[tuple[int, dict[str, torch.Tensor]]]] = {}
    for i, snap in enumerate(snaps):
        try:
            _check_versions(snap)
            u = _unimodal(scorer, snap)
        except Exception as exc:  # noqa: BLE001 - this step's error, in its place
            out[i] = exc
            continue
        key = (tuple(snap.logits.shape), snap.logits.dtype, snap.logits.device, snap.y.dtype)
        groups.setdefault(key, []).append((i, u))
    for members in groups.values():
        args = [(snaps[i].logits, u, snaps[i].y, snaps[i].loss) for i, u in members]
        results = scorer.compute_many(args)
        for (i, _), res in zip(members, results, strict=True):
            out[i] = res if isinstance(res, BaseException) else _finish(snaps[i], res)
    return [r if r is not None else RuntimeError("not scored") for r in out]


class StepMetrics(Mapping[str, float]):
    """What `log_step` recorded ({key: value}). Computed on the run's scorer thread: reading
    it waits for that step (the loop that never reads it never waits)."""

    __slots__ = ("_error", "_owner", "_values", "step")

    def __init__(self, owner: OffThreadScorer, step: int):
        self._owner = owner
        self._values: dict[str, float] | None = None
        self._error: BaseException | None = None
        self.step = step

    def _set(self, values: dict[str, float] | None, error: BaseException | None) -> None:
        self._values, self._error = values, error

    @property
    def ready(self) -> bool:
        return self._values is not None or self._error is not None

    def result(self, timeout_s: float | None = None) -> dict[str, float]:
        """The values as a dict; TrackingInputError when the step could not be scored,
        TimeoutError when it is not scored within `timeout_s`."""
        if not self.ready:
            self._owner.wait_for(self, timeout_s)
        if self._error is not None:
            raise self._error
        if self._values is None:
            raise TimeoutError(f"step {self.step} was not scored within {timeout_s}s")
        return self._values

    def __getitem__(self, key: str) -> float:
        return self.result()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.result())

    def __len__(self) -> int:
        return len(self.result())

    def __repr__(self) -> str:
        return f"StepMetrics(step={self.step}, {self.result() if self.ready else 'pending'})"


class OffThreadScorer:
    """The queue and the thread. `record(step, epoch, metrics)` runs on the thread (or in the
    caller when the queue is full); `on_error(snapshot, exc)` when a step cannot be scored."""

    def __init__(
        self,
        scorer: StepScorer,
        record: Callable[[int, int, dict[str, float]], None],
        on_error: Callable[[StepSnapshot, BaseException], None],
        *,
        poll: Callable[[], None] | None = None,
        poll_interval_s: float = 1.0,
        max_pending: int = 256,
        wake_every: int = 32,
        batch_max: int = 64,
        idle_wait_s: float = 0.05,
        name: str = "bml-own-loop-scorer",
    ):
        self.scorer = scorer
        self.record = record
        self.on_error = on_error
        self.poll = poll
        self.poll_interval_s = poll_interval_s
        self.max_pending = max_pending
        self.wake_every = wake_every
        self.batch_max = batch_max
        self.idle_wait_s = idle_wait_s
        self.scored_inline = 0  # steps scored in the caller because the queue was full
        self._q: deque[tuple[StepSnapshot, StepMetrics]] = deque()
        self._cv = threading.Condition()
        self._busy = 0
        self._closing = False
        self._next_poll = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side

    def submit(self, snap: StepSnapshot) -> StepMetrics:
        result = StepMetrics(self, snap.step)
        q = self._q
        if len(q) >= self.max_pending or not self._thread.is_alive():
            self.scored_inline += 1
            self._process([(snap, result)])
            return result
        q.append((snap, result))  # deque.append is atomic: no lock on the training thread
        if len(q) == self.wake_every:
            with self._cv:
                self._cv.notify()
        return result

    def wait_for(self, result: StepMetrics, timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cv:
            self._cv.notify()
            while not result.ready:
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or not self._thread.is_alive():
                    break
                self._cv.wait(0.05 if left is None else min(left, 0.05))
        if not result.ready and not self._thread.is_alive():
            self._drain_here()

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until every submitted step is scored and recorded; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            self._cv.notify()
            while self._q or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._cv.wait(min(left, 0.05))
        if not self._thread.is_alive():
            self._drain_here()
        return not (self._q or self._busy)

    def close(self, timeout_s: float = 60.0) -> None:
        self.drain(timeout_s)
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join(5.0)
        self._drain_here()

    @property
    def pending(self) -> int:
        return len(self._q) + self._busy

    # ------------------------------------------------------------------ the thread

    def _take(self) -> list[tuple[StepSnapshot, StepMetrics]]:
        items: list[tuple[StepSnapshot, StepMetrics]] = []
        q = self._q
        while len(items) < self.batch_max:
            try:
                items.append(q.popleft())
            except IndexError:
                break
        return items

    def _drain_here(self) -> None:
        while items := self._take():
            self._process(items)

    def _process(self, items: list[tuple[StepSnapshot, StepMetrics]]) -> None:
        try:
            results = score_snapshots(self.scorer, [snap for snap, _ in items])
        except Exception as exc:  # noqa: BLE001 - reported on the run, never raised into training
            results = [exc] * len(items)
        for (snap, result), res in zip(items, results, strict=True):
            if isinstance(res, BaseException):
                result._set(None, res)
                self.on_error(snap, res)
            else:
                self.record(snap.step, snap.epoch, res)
                result._set(res, None)

    def _loop(self) -> None:
        q = self._q
        while True:
            with self._cv:
                while not q and not self._closing and not self._poll_due():
                    self._cv.wait(self.idle_wait_s)
                if self._closing and not q:
                    return
            if self._poll_due():
                self._next_poll = time.monotonic() + self.poll_interval_s
                with contextlib.suppress(Exception):  # the store may be away: polled again later
                    self.poll()  # type: ignore[misc]
            while True:
                self._busy = 1  # before the pop: drain() never sees an empty queue and an idle thread early
                items = self._take()
                if not items:
                    self._busy = 0
                    break
                try:
                    self._process(items)
                finally:
                    self._busy = 0
                with self._cv:
                    self._cv.notify_all()

    def _poll_due(self) -> bool:
        return self.poll is not None and time.monotonic() >= self._next_poll

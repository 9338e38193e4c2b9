"""The own-loop run's scorer thread: `log_step` takes what the step's numbers need (detached
tensors; a copy of the head's weight and bias, which the optimiser changes in place) and
returns at once; this thread computes the metrics with `StepScorer.compute_many` (the same
values as `StepScorer.compute` in the call, bit for bit) and hands them to the sink and the
alerts. The training thread keeps only the checks without a tensor operation (keys, shapes,
types): no host sync, no detector. NaN / inf is found here; the error is kept and raised by the
run's next call (`take_error`), and by the step's `StepMetrics` when it is read.

The thread wakes rarely and does little Python per wake, so that it seldom holds the GIL when
the training thread wants it back (after each torch op): it wakes when `wake_every` steps are
queued or `max_wait_s` after it last woke (or when a caller waits: `drain`, a `StepMetrics`
read), scores up to `batch_max` steps per batch, and after every `yield_every` recorded
items sleeps `yield_s` (a sleep releases the GIL for long enough that a waiting training
thread takes it; `time.sleep(0)` does not reliably).

Bounded: beyond `max_pending` queued steps the step is scored in the calling thread (never
dropped, never more memory). A tensor changed in place between `log_step` and its scoring
is detected by its version counter: that step is not recorded and an error says so.
Between wakes the thread also polls `poll` (the store's cancel flag) every `poll_interval_s`.
`submit_call(fn)` runs `fn` on the thread in queue order (`Run.log` and `Run.log_eval`: their
sink writes and alert detectors, after the steps logged before them)."""

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


def _named(snap: StepSnapshot, exc: BaseException) -> BaseException:
    """A NaN / inf error of decomposed features names `features[m]`, the argument given."""
    message = str(exc)
    per = snap.features if snap.features is not None else snap.unimodal
    assert per is not None
    for m, name in zip(per, snap.names, strict=True):
        message = message.replace(f"unimodal_logits[{m!r}]", name)
    return exc if message == str(exc) else TrackingInputError(message)


def score_snapshot(scorer: StepScorer, snap: StepSnapshot) -> dict[str, float]:
    """One step's metrics, as `log_step` computed them in the call before (the reference
    the batched path is tested against)."""
    _check_versions(snap)
    return _finish(snap, scorer.compute(snap.logits, _unimodal(scorer, snap), snap.y, snap.loss, snap.step))


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
        results = scorer.compute_many(args, [snaps[i].step for i, _ in members])
        for (i, _), res in zip(members, results, strict=True):
            out[i] = _named(snaps[i], res) if isinstance(res, BaseException) else _finish(snaps[i], res)
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
        """The values as a dict; TrackingInputError when the step could not be scored (then
        raised here, not again by the run's next call), TimeoutError when it is not scored
        within `timeout_s`."""
        if not self.ready:
            self._owner.wait_for(self, timeout_s)
        if self._error is not None:
            self._owner.forget_error(self._error)
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


Item = tuple[StepSnapshot, StepMetrics] | Callable[[], None]


class OffThreadScorer:
    """The queue and the thread. `record(step, epoch, metrics)` runs on the thread (or in the
    caller when the queue is full); `on_error(snapshot, exc)` when a step cannot be scored.
    The first TrackingInputError of a step is also kept until `take_error` hands it over."""

    def __init__(
        self,
        scorer: StepScorer,
        record: Callable[[int, int, dict[str, float]], None],
        on_error: Callable[[StepSnapshot, BaseException], None],
        *,
        poll: Callable[[], None] | None = None,
        poll_interval_s: float = 1.0,
        max_pending: int = 512,
        wake_every: int = 16,
        batch_max: int = 64,
        max_wait_s: float = 0.25,
        yield_every: int = 8,
        yield_s: float = 5e-5,
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
        self.max_wait_s = max_wait_s
        self.yield_every = yield_every
        self.yield_s = yield_s
        self.scored_inline = 0  # steps scored in the caller because the queue was full
        self.wakes = 0  # for the benchmark: how often the thread woke with work
        self._q: deque[Item] = deque()
        self._cv = threading.Condition()
        self._busy = 0
        self._urgent = False  # a caller waits (drain, a StepMetrics read): do not wait for more steps
        self._closing = False
        self._error: BaseException | None = None
        self._next_poll = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ caller side

    def submit(self, snap: StepSnapshot) -> StepMetrics:
        result = StepMetrics(self, snap.step)
        self._put((snap, result))
        return result

    def submit_call(self, fn: Callable[[], None]) -> None:
        """Run `fn()` on the thread after everything queued before it."""
        self._put(fn)

    def _put(self, item: Item) -> None:
        q = self._q
        if len(q) >= self.max_pending or not self._thread.is_alive():
            self.scored_inline += 1
            self._process([item])
            return
        q.append(item)  # deque.append is atomic: no lock on the training thread
        if len(q) == self.wake_every:
            with self._cv:
                self._cv.notify()

    def take_error(self) -> BaseException | None:
        """The first TrackingInputError found since the last call (then forgotten), or None."""
        error, self._error = self._error, None
        return error

    def forget_error(self, error: BaseException) -> None:
        if self._error is error:
            self._error = None

    def _wake_now(self) -> None:
        self._urgent = True
        self._cv.notify_all()

    def wait_for(self, result: StepMetrics, timeout_s: float | None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cv:
            self._wake_now()
            while not result.ready:
                left = None if deadline is None else deadline - time.monotonic()
                if (left is not None and left <= 0) or not self._thread.is_alive():
                    break
                self._cv.wait(0.05 if left is None else min(left, 0.05))
                self._wake_now()
        if not result.ready and not self._thread.is_alive():
            self._drain_here()

    def drain(self, timeout_s: float = 60.0) -> bool:
        """Wait until every submitted step is scored and recorded; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            self._wake_now()
            while self._q or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    break
                self._cv.wait(min(left, 0.05))
                self._wake_now()
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

    def _take(self) -> list[Item]:
        items: list[Item] = []
        q = self._q
        while len(items) < self.batch_max:
            try:
                items.append(q.popleft())
            except IndexError:
                break
        return items

    def _drain_here(self) -> None:
        while items := self._take():
            self._process(items, pause=False)

    def _process(self, items: list[Item], pause: bool = False) -> None:
        """Score the batch's steps together, then record every item in queue order; on the
        thread (`pause`), sleep `yield_s` after every `yield_every` items."""
        steps = [it for it in items if isinstance(it, tuple)]
        try:
            results = iter(score_snapshots(self.scorer, [snap for snap, _ in steps]))
        except Exception as exc:  # noqa: BLE001 - reported on the run, never raised into training
            results = iter([exc] * len(steps))
        every = self.yield_every if pause and self.yield_s > 0 else 0
        for n, item in enumerate(items, 1):
            if isinstance(item, tuple):
                snap, result = item
                res = next(results)
                if isinstance(res, BaseException):
                    if isinstance(res, TrackingInputError) and self._error is None:
                        self._error = res
                    result._set(None, res)
                    self.on_error(snap, res)
                else:
                    self.record(snap.step, snap.epoch, res)
                    result._set(res, None)
            else:
                try:
                    item()  # Run's closures report their own failures as events
                except Exception as exc:  # noqa: BLE001 - never raised into training, kept for the next call
                    if self._error is None:
                        self._error = exc
            if every and n % every == 0:
                time.sleep(self.yield_s)

    def _loop(self) -> None:
        q = self._q
        while True:
            with self._cv:
                deadline = time.monotonic() + self.max_wait_s
                while not (self._closing or self._urgent or len(q) >= self.wake_every):
                    now = time.monotonic()
                    wake_at = min(deadline, self._next_poll) if self.poll is not None else deadline
                    if now >= wake_at:
                        break
                    self._cv.wait(wake_at - now)
                self._urgent = False
                if self._closing and not q:
                    return
            if self._poll_due():
                self._next_poll = time.monotonic() + self.poll_interval_s
                with contextlib.suppress(Exception):  # the store may be away: polled again later
                    self.poll()  # type: ignore[misc]
            if q:
                self.wakes += 1
            while True:
                self._busy = 1  # before the pop: drain() never sees an empty queue and an idle thread early
                items = self._take()
                if not items:
                    self._busy = 0
                    break
                try:
                    self._process(items, pause=True)
                finally:
                    self._busy = 0
                with self._cv:
                    self._cv.notify_all()

    def _poll_due(self) -> bool:
        return self.poll is not None and time.monotonic() >= self._next_poll

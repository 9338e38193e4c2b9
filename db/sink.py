"""DbMetricSink: the trainer's sink that streams a run into the store.

The training thread only appends to an in-memory queue (bounded by `max_pending_points`);
a writer thread drains it every `flush_interval_s` (or as soon as `flush_points` are
waiting) and writes each batch in one transaction: the points with one bulk upsert
(idempotent on (series, step), so a resumed run that sends steps again duplicates
nothing), the rollups they touch, events, progress, heartbeat, and at the end the status
and summary. When the database is unreachable the writer keeps the batch and retries with
exponential backoff; points that arrive while the queue is full are dropped, counted,
and recorded on the run (`runs.dropped_points` and an event) once it is reachable again."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from bml_core.sinks import MetricSink
from db.engine import make_engine, write_tx
from db.errors import InvalidMetricKey
from db.ingest import PointRow, dialect_insert, ensure_series, insert_points, refresh_rollups, validate_key
from db.models import Event, Run, utcnow
from db.queries import require_run
from db.runs import TERMINAL_STATUSES, max_error_chars, max_event_chars

log = logging.getLogger("bml.db.sink")


class StepItem(NamedTuple):
    """One training step's metrics, as queued by `on_step`."""

    step: int
    metrics: dict[str, float]


class EvalItem(NamedTuple):
    """One evaluation's metrics (`on_eval`)."""

    step: int
    metrics: dict[str, float]


class EventItem(NamedTuple):
    """A human-readable event (`on_event`): wall-clock time, level, message."""

    time: float
    level: str
    message: str


class AlertItem(NamedTuple):
    """An imbalance alert (`on_alert`): stored as an event of kind `alert`, once per key."""

    time: float
    alert: dict[str, Any]


class StartItem(NamedTuple):
    """The trainer's start info (`on_start`): total steps, device, resumed, start step."""

    info: dict[str, Any]


class EndItem(NamedTuple):
    """The run's end (`on_end`): final status and summary."""

    status: str
    summary: dict[str, Any] | None


QueueItem = StepItem | EvalItem | EventItem | AlertItem | StartItem | EndItem
EVENT_LEVELS = {"debug", "info", "warning", "error"}
MAX_STEP = 2**63 - 1


@dataclass
class _Batch:
    """Items taken off the queue for one transaction (kept as is across retries)."""

    steps: list[StepItem] = field(default_factory=list)
    evals: list[EvalItem] = field(default_factory=list)
    events: list[EventItem] = field(default_factory=list)
    alerts: list[AlertItem] = field(default_factory=list)
    start: dict[str, Any] | None = None
    end: EndItem | None = None
    points: int = 0  # metric values in steps + evals
    queued: int = 0  # what the batch counts in the queue bound (points + events)

    def empty(self) -> bool:
        return not (
            self.steps
            or self.evals
            or self.events
            or self.alerts
            or self.start is not None
            or self.end is not None
        )


@dataclass
class _Plan:
    """A transaction decided before it opens (DbMetricSink._plan)."""

    step_keys: set[str]
    eval_keys: set[str]
    new_keys: list[str]  # valid keys with no series yet
    refused_now: dict[str, str]  # key -> why it is refused (reported once)
    skip: set[str]  # every refused key
    now: datetime
    outage: float | None  # monotonic start of the outage this commit ends
    dropped: int  # points dropped while the buffer was full, not yet reported
    dropped_events: int


def _spans(batch: _Batch, plan: _Plan, ids: dict[str, int]) -> dict[int, tuple[int, int]]:
    """Series id -> the (first, last) step the batch wrote to it: what the rollups refresh."""
    spans: dict[int, tuple[int, int]] = {}
    for items, group_keys in ((batch.steps, plan.step_keys), (batch.evals, plan.eval_keys)):
        if not items:
            continue
        lo = min(step for step, _ in items)
        hi = max(step for step, _ in items)
        for key in group_keys - plan.skip:
            sid = ids[key]
            old = spans.get(sid)
            spans[sid] = (lo, hi) if old is None else (min(old[0], lo), max(old[1], hi))
    return spans


def _is_transient(exc: BaseException) -> bool:
    """Connection trouble, locks, timeouts: worth retrying. Constraint or type errors are not."""
    if isinstance(exc, OperationalError | InterfaceError | DisconnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class DbMetricSink(MetricSink):
    """Streams a run's metrics, evals, events, progress and end status into the store.

    engine: an Engine, or a URL (None: BML_DATABASE_URL / the SQLite file under BML_HOME).
    run_id: an existing run (RunNotFound otherwise).
    max_pending_points: the memory bound: points (and events) queued or held while the
      database is away; beyond it new points are dropped and counted (or, with
      block_when_full, the producer waits for room).
    close_timeout_s: how long close() keeps retrying an unreachable database before it
      gives up, reports the points it could not write on stderr and in the log."""

    def __init__(
        self,
        engine: Engine | str | None,
        run_id: int,
        *,
        flush_interval_s: float = 0.5,
        flush_points: int = 20_000,
        max_pending_points: int = 500_000,
        block_when_full: bool = False,
        retry_initial_s: float = 0.05,
        retry_max_s: float = 5.0,
        close_timeout_s: float = 120.0,
        heartbeat_interval_s: float = 5.0,
        record_status: bool = True,
    ):
        self.engine = engine if isinstance(engine, Engine) else make_engine(engine)
        self.run_id = int(run_id)
        with self.engine.connect() as conn:
            require_run(conn, self.run_id)
        self.flush_interval_s = flush_interval_s
        self.flush_points = flush_points
        self.max_pending_points = max_pending_points
        self.block_when_full = block_when_full
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.close_timeout_s = close_timeout_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.record_status = record_status

        self._items: deque[QueueItem] = deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._pending = 0  # points + events queued or held by the writer, not yet committed
        self._dropped_unrecorded = 0  # dropped points not yet added to runs.dropped_points
        self._dropped_events_unrecorded = 0
        self._closed = False
        self._stopping = False
        self._deadline = math.inf
        self._sids: dict[str, int] = {}
        self._refused: set[str] = set()
        self._total_steps: int | None = None
        self._last_error_message: str | None = None
        self._last_commit = time.monotonic()
        self._outage_since: float | None = None

        # figures for tests, benchmarks and the caller
        self.written_points = 0
        self.dropped_points = 0
        self.lost_points = 0  # still queued when close() gave up on an unreachable database
        self.max_pending_seen = 0
        self.retries = 0
        self.last_db_error: str | None = None

        self._thread = threading.Thread(target=self._writer_loop, name=f"bml-db-sink-{run_id}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ trainer side

    def _put(self, item: QueueItem, count: int) -> None:
        with self._lock:
            if self._closed:
                return
            if count and self._pending + count > self.max_pending_points:
                if self.block_when_full:
                    while self._pending + count > self.max_pending_points and self._thread.is_alive():
                        self._room.wait(0.1)
                if self._pending + count > self.max_pending_points:
                    if isinstance(item, EventItem):
                        self._dropped_events_unrecorded += 1
                    else:
                        self._dropped_unrecorded += count
                        self.dropped_points += count
                    return
            self._pending += count
            if self._pending > self.max_pending_seen:
                self.max_pending_seen = self._pending
            self._items.append(item)
            wake = self._pending >= self.flush_points
        if wake:
            self._wake.set()

    def on_start(self, info: dict[str, Any]) -> None:
        self._put(StartItem(dict(info)), 0)

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not 0 <= step <= MAX_STEP:
            raise ValueError(f"step {step} refused: steps are integers from 0 to {MAX_STEP}")
        self._put(StepItem(step, dict(metrics)), len(metrics))

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        if not 0 <= step <= MAX_STEP:
            raise ValueError(f"step {step} refused: steps are integers from 0 to {MAX_STEP}")
        self._put(EvalItem(step, dict(metrics)), len(metrics))

    def on_event(self, level: str, message: str) -> None:
        level = level if level in EVENT_LEVELS else "info"
        if level == "error":
            self._last_error_message = message
        self._put(EventItem(time.time(), level, message), 1)

    def on_alert(self, alert: dict[str, Any]) -> None:
        self._put(AlertItem(time.time(), dict(alert)), 1)

    def on_end(self, status: str, summary: dict[str, Any] | None) -> None:
        self._put(EndItem(status, summary), 0)

    @property
    def pending_points(self) -> int:
        """Points and events queued or held, not yet committed."""
        return self._pending

    def flush(self, timeout_s: float = 30.0) -> bool:
        """Wait until everything queued so far is committed; False on timeout."""
        deadline = time.monotonic() + timeout_s
        self._wake.set()
        with self._lock:
            while self._pending > 0 or self._items:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._room.wait(min(left, 0.05))
                self._wake.set()
        return True

    def close(self) -> None:
        """Write everything still queued (retrying up to close_timeout_s) and stop the writer."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = time.monotonic() + self.close_timeout_s
            self._stopping = True
        self._wake.set()
        self._thread.join(self.close_timeout_s + 10.0)
        if self.lost_points or self._thread.is_alive():
            lost = self.lost_points or self._pending
            msg = (
                f"bml: the store at {self.engine.url.render_as_string(hide_password=True)} stayed "
                f"unreachable for {self.close_timeout_s:g}s at close: {lost} metric points of run "
                f"{self.run_id} were not written ({self.last_db_error})"
            )
            log.error(msg)
            print(msg, file=sys.stderr)

    # ------------------------------------------------------------------ writer side

    def _writer_loop(self) -> None:
        while True:
            if not self._stopping:
                self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            stopping = self._stopping
            wrote = False
            while self._items:
                batch = self._take_batch()
                if not self._commit_with_retry(batch):
                    return
                wrote = True
                if not stopping and self._pending < self.flush_points:
                    break
            heartbeat_due = time.monotonic() - self._last_commit >= self.heartbeat_interval_s
            if not wrote and heartbeat_due and not stopping:
                self._commit_with_retry(_Batch())
            if stopping and not self._items:
                return

    def _take_batch(self) -> _Batch:
        batch = _Batch()
        while self._items and batch.points < self.flush_points:
            item = self._items.popleft()
            if isinstance(item, StepItem):
                batch.steps.append(item)
                batch.points += len(item.metrics)
                batch.queued += len(item.metrics)
            elif isinstance(item, EvalItem):
                batch.evals.append(item)
                batch.points += len(item.metrics)
                batch.queued += len(item.metrics)
            elif isinstance(item, EventItem):
                batch.events.append(item)
                batch.queued += 1
            elif isinstance(item, AlertItem):
                batch.alerts.append(item)
                batch.queued += 1
            elif isinstance(item, StartItem):
                batch.start = item.info
            else:
                batch.end = item
                break  # nothing follows the end; commit it with what came before
        return batch

    def _done(self, batch: _Batch) -> None:
        with self._lock:
            self._pending -= batch.queued
            self._room.notify_all()

    def _commit_with_retry(self, batch: _Batch) -> bool:
        delay = self.retry_initial_s
        while True:
            try:
                self._commit(batch)
            except Exception as exc:  # noqa: BLE001 - sorted below: retried, or counted and reported
                if not _is_transient(exc):
                    return self._drop_points(batch, exc)
                self.retries += 1
                self.last_db_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    log.warning("store unreachable, holding points and retrying: %s", self.last_db_error)
                if self._stopping and time.monotonic() >= self._deadline:
                    with self._lock:
                        self.lost_points = self._pending
                    return False
                wait = (
                    delay if not self._stopping else min(delay, max(0.0, self._deadline - time.monotonic()))
                )
                time.sleep(wait)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self._done(batch)
            return True

    def _drop_points(self, batch: _Batch, exc: BaseException) -> bool:
        """The database refused the batch (not a connection problem): count its points as
        dropped and still record its events, start and end without them."""
        reason = f"{type(exc).__name__}: {exc}"[:max_error_chars]
        if batch.points == 0:
            log.error("store refused the run %d update: %s", self.run_id, reason)
            self._done(batch)
            return True
        log.error("store refused a batch of %d points of run %d: %s", batch.points, self.run_id, reason)
        with self._lock:
            self._dropped_unrecorded += batch.points
            self.dropped_points += batch.points
        message = f"{batch.points} metric points could not be stored and were dropped: {reason}"
        rest = _Batch(
            events=[*batch.events, EventItem(time.time(), "error", message)],
            alerts=batch.alerts,
            start=batch.start,
            end=batch.end,
            queued=batch.queued,
        )
        return self._commit_with_retry(rest)

    def _rows(
        self, items: Iterable[StepItem | EvalItem], ids: dict[str, int], skip: set[str]
    ) -> tuple[list[PointRow], int, list[str]]:
        """(rows, points skipped, messages) for (step, metrics) items."""
        rows: list[PointRow] = []
        extend = rows.extend
        skipped = 0
        messages: list[str] = []
        for step, metrics in items:
            if not skip:
                mark = len(rows)
                try:
                    extend(zip(map(ids.__getitem__, metrics), repeat(step), map(float, metrics.values())))
                    continue
                except (TypeError, ValueError, KeyError):
                    del rows[mark:]
            for key, value in metrics.items():
                if key in skip:
                    skipped += 1
                    continue
                try:
                    rows.append((ids[key], step, float(value)))
                except (TypeError, ValueError, KeyError):
                    skipped += 1
                    messages.append(f"value {value!r} of {key!r} at step {step} is not a number: dropped")
        return rows, skipped, messages

    def _plan(self, batch: _Batch) -> _Plan:
        """What the transaction will do, decided before it opens (no store access): the keys
        of the batch, the new ones to create a series for, the ones refused now, the losses
        to report."""
        with self._lock:
            dropped = self._dropped_unrecorded
            dropped_events = self._dropped_events_unrecorded
        step_keys: set[str] = set()
        for _, metrics in batch.steps:
            step_keys.update(metrics)
        eval_keys: set[str] = set()
        for _, metrics in batch.evals:
            eval_keys.update(metrics)
        refused_now: dict[str, str] = {}
        valid: list[str] = []
        for key in step_keys | eval_keys:
            if key in self._sids or key in self._refused:
                continue
            try:
                valid.append(validate_key(key))
            except InvalidMetricKey as exc:
                refused_now[key] = str(exc)
        return _Plan(
            step_keys=step_keys,
            eval_keys=eval_keys,
            new_keys=valid,
            refused_now=refused_now,
            skip=self._refused | set(refused_now),
            now=utcnow(),
            outage=self._outage_since,
            dropped=dropped,
            dropped_events=dropped_events,
        )

    def _events(self, plan: _Plan, batch: _Batch, messages: list[str]) -> list[dict[str, Any]]:
        """The event rows of the transaction: the batch's own, then the sink's reports (keys
        refused, values dropped, points lost while the store was away, an outage that ended)."""
        now = plan.now
        events: list[dict[str, Any]] = [
            {"run_id": self.run_id, "time": _ts(t), "level": level, "message": msg[:max_event_chars]}
            for t, level, msg in batch.events
        ]
        for msg in plan.refused_now.values():
            events.append({"run_id": self.run_id, "time": now, "level": "error", "message": msg})
            log.error("run %d: %s", self.run_id, msg)
        for msg in messages[:20]:
            events.append({"run_id": self.run_id, "time": now, "level": "error", "message": msg})
        if plan.dropped or plan.dropped_events:
            events.append(
                {
                    "run_id": self.run_id,
                    "time": now,
                    "level": "error",
                    "message": f"{plan.dropped} metric points and {plan.dropped_events} events were dropped: "
                    f"the store was unreachable and the sink's buffer ({self.max_pending_points} points) was full",
                }
            )
        if plan.outage is not None:
            events.append(
                {
                    "run_id": self.run_id,
                    "time": now,
                    "level": "warning",
                    "message": f"the store was unreachable for {time.monotonic() - plan.outage:.1f}s "
                    f"({self.last_db_error}); held points were written after it came back",
                }
            )
        if batch.start is not None:
            self._start_event(batch.start, events, now)
        return events

    def _commit(self, batch: _Batch) -> None:
        """One transaction: series for new keys, the points and their rollups, events, alerts
        and the run row; the writer's state advances only once it committed."""
        plan = self._plan(batch)
        with write_tx(self.engine) as conn:
            ids = dict(self._sids)
            if plan.new_keys:
                ids.update(ensure_series(conn, self.run_id, plan.new_keys))
            rows, skipped, messages = self._rows(batch.steps, ids, plan.skip)
            eval_rows, eval_skipped, eval_messages = self._rows(batch.evals, ids, plan.skip)
            rows += eval_rows
            skipped += eval_skipped
            messages += eval_messages
            insert_points(conn, rows)
            refresh_rollups(conn, _spans(batch, plan, ids))
            events = self._events(plan, batch, messages)
            if events:
                conn.execute(insert(Event), events)
            if batch.alerts:
                insert_alerts(conn, self.run_id, [(_ts(t), a) for t, a in batch.alerts])
            self._update_run(conn, batch, plan.now, skipped + plan.dropped, rows)
        # committed: only now is the writer's state advanced
        self._sids = ids
        self._refused |= set(plan.refused_now)
        self.written_points += len(rows)
        self.dropped_points += skipped
        self._last_commit = time.monotonic()
        if plan.outage is not None:
            log.warning("store reachable again after %.1fs", time.monotonic() - plan.outage)
            self._outage_since = None
        with self._lock:
            self._dropped_unrecorded -= plan.dropped
            self._dropped_events_unrecorded -= plan.dropped_events

    def _start_event(self, info: dict[str, Any], events: list[dict[str, Any]], now: Any) -> None:
        total = info.get("total_steps")
        self._total_steps = int(total) if total else None
        events.append(
            {
                "run_id": self.run_id,
                "time": now,
                "level": "info",
                "message": f"training {'resumed' if info.get('resumed') else 'started'} on "
                f"{info.get('device', '?')}: {total} steps, from step {info.get('start_step', 0)}",
            }
        )

    def _update_run(self, conn: Connection, batch: _Batch, now: Any, lost: int, rows: list[PointRow]) -> None:
        values: dict[str, Any] = {"heartbeat_at": now}
        if batch.start is not None and self._total_steps is not None:
            values["total_steps"] = self._total_steps
        if batch.steps:
            last = max(step for step, _ in batch.steps)
            values["step"] = last
            if self._total_steps:
                values["progress"] = min(1.0, last / self._total_steps)
        if lost:
            values["dropped_points"] = Run.dropped_points + lost
        if batch.end is not None and self.record_status:
            status, summary = batch.end
            if status in TERMINAL_STATUSES:
                values["status"] = status
                values["finished_at"] = now
                if status == "succeeded":
                    values["progress"] = 1.0
                if status == "failed" and self._last_error_message:
                    values["error"] = self._last_error_message[:max_error_chars]
            if summary is not None:
                values["summary"] = summary
        conn.execute(update(Run).where(Run.id == self.run_id).values(**values))


ALERT_LEVELS = {"critical": "error", "warning": "warning", "info": "info"}


def insert_alerts(conn: Connection, run_id: int, alerts: list[tuple[datetime, dict[str, Any]]]) -> None:
    """Store alerts as events of kind `alert`; one already stored under the same key (a
    resumed run sends it again) is left as it is."""
    rows = []
    for when, a in alerts:
        doc = {
            k: a.get(k)
            for k in ("severity", "modality", "detector", "evidence", "advice", "step_range", "epoch")
        }
        rows.append(
            {
                "run_id": run_id,
                "time": when,
                "level": ALERT_LEVELS.get(str(a.get("severity")), "warning"),
                "message": str(a.get("message", ""))[:max_event_chars],
                "kind": "alert",
                "step": a.get("step"),
                "alert_key": str(a.get("key") or f"{a.get('detector')}:{a.get('modality')}:{a.get('step')}")[
                    :200
                ],
                "data": doc,
            }
        )
    insert_stmt: Any = dialect_insert(conn, Event.__table__)
    stmt = insert_stmt.on_conflict_do_nothing(index_elements=["run_id", "alert_key"])
    conn.execute(stmt, rows)


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)

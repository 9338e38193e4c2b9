"""`DbMetricSink`: the trainer's side (a bounded queue), the writer thread (batches, retries
with backoff, losses counted) and the transaction that executes a commit's plan
(`db.sink.plan`)."""

from __future__ import annotations

import logging
import math
import sys
import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, update
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

from bml_core.sinks import MetricSink
from db.engine import make_engine, write_tx
from db.ingest import dialect_insert, ensure_series, insert_points, refresh_rollups
from db.models import Event, Run, utcnow
from db.queries import require_run
from db.runs import max_error_chars
from db.sink.plan import (
    EVENT_LEVELS,
    MAX_STEP,
    AlertItem,
    Batch,
    EndItem,
    EvalItem,
    EventItem,
    QueueItem,
    SinkState,
    StartItem,
    StepItem,
    alert_rows,
    plan_keys,
    plan_writes,
)

log = logging.getLogger("bml.db.sink")
EVAL_FLUSH_MIN_GAP_S = 0.05  # evaluations wake the writer at once, at most this often


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
        self._eval_woken_at = -math.inf
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
        # committed now rather than at the next flush interval: an evaluation is rare (once an
        # epoch) and is what a study's pruner and Live's evaluation panels wait for; an own
        # loop that logs evaluations every step still wakes the writer at most every
        # EVAL_FLUSH_MIN_GAP_S (the rest wait for the next flush: never a commit per step)
        now = time.monotonic()
        if now - self._eval_woken_at >= EVAL_FLUSH_MIN_GAP_S:
            self._eval_woken_at = now
            self._wake.set()

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
                self._commit_with_retry(Batch())
            if stopping and not self._items:
                return

    def _take_batch(self) -> Batch:
        batch = Batch()
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

    def _done(self, batch: Batch) -> None:
        with self._lock:
            self._pending -= batch.queued
            self._room.notify_all()

    def _commit_with_retry(self, batch: Batch) -> bool:
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

    def _drop_points(self, batch: Batch, exc: BaseException) -> bool:
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
        rest = Batch(
            events=[*batch.events, EventItem(time.time(), "error", message)],
            alerts=batch.alerts,
            start=batch.start,
            end=batch.end,
            queued=batch.queued,
        )
        return self._commit_with_retry(rest)

    def _commit(self, batch: Batch) -> None:
        """One transaction executing the batch's plan: series for new keys, the points and
        their rollups, events, alerts and the run row; the writer's state advances only once
        it committed."""
        with self._lock:
            dropped = self._dropped_unrecorded
            dropped_events = self._dropped_events_unrecorded
        plan = plan_keys(
            batch,
            self._sids,
            self._refused,
            now=utcnow(),
            outage=self._outage_since,
            dropped=dropped,
            dropped_events=dropped_events,
        )
        with write_tx(self.engine) as conn:
            ids = dict(self._sids)
            if plan.new_keys:
                ids.update(ensure_series(conn, self.run_id, plan.new_keys))
            state = SinkState(
                self.run_id,
                self.max_pending_points,
                self.record_status,
                self._total_steps,
                self._last_error_message,
                self.last_db_error,
                None if plan.outage is None else time.monotonic() - plan.outage,
            )
            writes = plan_writes(batch, plan, ids, state)
            self._total_steps = writes.total_steps
            for msg in plan.refused_now.values():
                log.error("run %d: %s", self.run_id, msg)
            insert_points(conn, writes.points)
            refresh_rollups(conn, writes.spans)
            if writes.events:
                conn.execute(insert(Event), writes.events)
            if writes.alerts:
                _insert_alert_rows(conn, writes.alerts)
            values: dict[str, Any] = dict(writes.run_values)
            if writes.lost:
                values["dropped_points"] = Run.dropped_points + writes.lost
            conn.execute(update(Run).where(Run.id == self.run_id).values(**values))
        # committed: only now is the writer's state advanced
        self._sids = ids
        self._refused |= set(plan.refused_now)
        self.written_points += len(writes.points)
        self.dropped_points += writes.skipped
        self._last_commit = time.monotonic()
        if plan.outage is not None:
            log.warning("store reachable again after %.1fs", time.monotonic() - plan.outage)
            self._outage_since = None
        with self._lock:
            self._dropped_unrecorded -= plan.dropped
            self._dropped_events_unrecorded -= plan.dropped_events


def insert_alerts(conn: Connection, run_id: int, alerts: list[tuple[datetime, dict[str, Any]]]) -> None:
    """Store alerts as events of kind `alert`; one already stored under the same key (a
    resumed run sends it again) is left as it is."""
    _insert_alert_rows(conn, alert_rows(run_id, alerts))


def _insert_alert_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    insert_stmt: Any = dialect_insert(conn, Event.__table__)
    stmt = insert_stmt.on_conflict_do_nothing(index_elements=["run_id", "alert_key"])
    conn.execute(stmt, rows)

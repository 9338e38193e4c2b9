"""What one commit of `DbMetricSink` writes, decided without the store: the queue's items,
the batch a commit takes off the queue, and the pure planner.

`plan_keys` runs before the transaction opens: the batch's metric keys, the new ones that
need a series, the ones refused now. `plan_writes` runs once the series ids are known: the
point rows, the steps each series' rollups must be refreshed over, the event and alert rows,
the values of the run row. Neither touches the store; `db.sink.writer` executes the plan in
one transaction."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import repeat
from typing import Any, NamedTuple

from db.errors import InvalidMetricKey
from db.ingest import PointRow, validate_key
from db.runs import TERMINAL_STATUSES, max_error_chars, max_event_chars


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
ALERT_LEVELS = {"critical": "error", "warning": "warning", "info": "info"}


@dataclass
class Batch:
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
class Plan:
    """A transaction decided before it opens (`plan_keys`)."""

    step_keys: set[str]
    eval_keys: set[str]
    new_keys: list[str]  # valid keys with no series yet
    refused_now: dict[str, str]  # key -> why it is refused (reported once)
    skip: set[str]  # every refused key
    now: datetime
    outage: float | None  # monotonic start of the outage this commit ends
    dropped: int  # points dropped while the buffer was full, not yet reported
    dropped_events: int


@dataclass
class Writes:
    """The rows of one transaction (`plan_writes`)."""

    points: list[PointRow]
    skipped: int  # values not written (refused key, not a number): counted as dropped
    spans: dict[int, tuple[int, int]]  # series id -> (first, last) step: the rollups to refresh
    events: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    run_values: dict[str, Any]  # the run row's new values, but dropped_points
    lost: int  # added to runs.dropped_points
    total_steps: int | None  # the run's total steps after this batch


@dataclass(frozen=True)
class SinkState:
    """What a commit needs besides the batch: the sink's run and settings, and what the
    trainer and earlier commits told it."""

    run_id: int
    max_pending_points: int
    record_status: bool = True
    total_steps: int | None = None  # as known before this batch
    last_error: str | None = None  # the trainer's last error event: a failed run's error
    last_db_error: str | None = None
    outage_s: float | None = None  # how long the store was away, when this commit ends an outage


def plan_keys(
    batch: Batch,
    known: Collection[str],
    refused: set[str],
    *,
    now: datetime,
    outage: float | None,
    dropped: int,
    dropped_events: int,
) -> Plan:
    """The keys of the batch, the new ones to create a series for (not in `known`, not
    refused before), the ones refused now, and the losses to report."""
    step_keys: set[str] = set()
    for _, metrics in batch.steps:
        step_keys.update(metrics)
    eval_keys: set[str] = set()
    for _, metrics in batch.evals:
        eval_keys.update(metrics)
    refused_now: dict[str, str] = {}
    valid: list[str] = []
    for key in step_keys | eval_keys:
        if key in known or key in refused:
            continue
        try:
            valid.append(validate_key(key))
        except InvalidMetricKey as exc:
            refused_now[key] = str(exc)
    return Plan(
        step_keys=step_keys,
        eval_keys=eval_keys,
        new_keys=valid,
        refused_now=refused_now,
        skip=refused | set(refused_now),
        now=now,
        outage=outage,
        dropped=dropped,
        dropped_events=dropped_events,
    )


def point_rows(
    items: Iterable[StepItem | EvalItem], ids: Mapping[str, int], skip: set[str]
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


def rollup_spans(batch: Batch, plan: Plan, ids: Mapping[str, int]) -> dict[int, tuple[int, int]]:
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


def start_total_steps(info: dict[str, Any]) -> int | None:
    total = info.get("total_steps")
    return int(total) if total else None


def event_rows(plan: Plan, batch: Batch, messages: list[str], state: SinkState) -> list[dict[str, Any]]:
    """The event rows of the transaction: the batch's own, then the sink's reports (keys
    refused, values dropped, points lost while the store was away, an outage that ended
    after `state.outage_s` seconds), then the start of training."""
    now, run_id = plan.now, state.run_id
    events: list[dict[str, Any]] = [
        {"run_id": run_id, "time": _ts(t), "level": level, "message": msg[:max_event_chars]}
        for t, level, msg in batch.events
    ]
    for msg in plan.refused_now.values():
        events.append({"run_id": run_id, "time": now, "level": "error", "message": msg})
    for msg in messages[:20]:
        events.append({"run_id": run_id, "time": now, "level": "error", "message": msg})
    if plan.dropped or plan.dropped_events:
        events.append(
            {
                "run_id": run_id,
                "time": now,
                "level": "error",
                "message": f"{plan.dropped} metric points and {plan.dropped_events} events were dropped: "
                f"the store was unreachable and the sink's buffer ({state.max_pending_points} points) was full",
            }
        )
    if state.outage_s is not None:
        events.append(
            {
                "run_id": run_id,
                "time": now,
                "level": "warning",
                "message": f"the store was unreachable for {state.outage_s:.1f}s "
                f"({state.last_db_error}); held points were written after it came back",
            }
        )
    if batch.start is not None:
        info = batch.start
        events.append(
            {
                "run_id": run_id,
                "time": now,
                "level": "info",
                "message": f"training {'resumed' if info.get('resumed') else 'started'} on "
                f"{info.get('device', '?')}: {info.get('total_steps')} steps, from step {info.get('start_step', 0)}",
            }
        )
    return events


def alert_rows(run_id: int, alerts: Iterable[tuple[datetime, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Alerts as event rows of kind `alert`, each under its key (`alert_key`)."""
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
    return rows


def run_values(
    batch: Batch, now: datetime, total_steps: int | None, *, record_status: bool, last_error: str | None
) -> dict[str, Any]:
    """The run row's new values: heartbeat, total steps, step and progress, and at the end
    status, finish time, error and summary."""
    values: dict[str, Any] = {"heartbeat_at": now}
    if batch.start is not None and total_steps is not None:
        values["total_steps"] = total_steps
    if batch.steps:
        last = max(step for step, _ in batch.steps)
        values["step"] = last
        if total_steps:
            values["progress"] = min(1.0, last / total_steps)
    if batch.end is not None and record_status:
        status, summary = batch.end
        if status in TERMINAL_STATUSES:
            values["status"] = status
            values["finished_at"] = now
            if status == "succeeded":
                values["progress"] = 1.0
            if status == "failed" and last_error:
                values["error"] = last_error[:max_error_chars]
        if summary is not None:
            values["summary"] = summary
    return values


def plan_writes(batch: Batch, plan: Plan, ids: Mapping[str, int], state: SinkState) -> Writes:
    """Every row the transaction writes, given the series id of each key of the batch."""
    total_steps = state.total_steps if batch.start is None else start_total_steps(batch.start)
    rows, skipped, messages = point_rows(batch.steps, ids, plan.skip)
    eval_rows, eval_skipped, eval_messages = point_rows(batch.evals, ids, plan.skip)
    rows += eval_rows
    skipped += eval_skipped
    messages += eval_messages
    return Writes(
        points=rows,
        skipped=skipped,
        spans=rollup_spans(batch, plan, ids),
        events=event_rows(plan, batch, messages, state),
        alerts=alert_rows(state.run_id, [(_ts(t), a) for t, a in batch.alerts]),
        run_values=run_values(
            batch, plan.now, total_steps, record_status=state.record_status, last_error=state.last_error
        ),
        lost=skipped + plan.dropped,
        total_steps=total_steps,
    )


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)

"""DbMetricSink: the trainer's sink that streams a run into the store.

The training thread only appends to an in-memory queue (bounded by `max_pending_points`);
a writer thread drains it every `flush_interval_s` (or as soon as `flush_points` are
waiting) and writes each batch in one transaction: the points with one bulk upsert
(idempotent on (series, step), so a resumed run that sends steps again duplicates
nothing), the rollups they touch, events, progress, heartbeat, and at the end the status
and summary. When the database is unreachable the writer keeps the batch and retries with
exponential backoff; points that arrive while the queue is full are dropped, counted,
and recorded on the run (`runs.dropped_points` and an event) once it is reachable again.

The package: `plan` (the queue's items, their limits and the pure planner: what a
commit writes, decided without the store) and `writer` (`DbMetricSink`: the queue, the
writer thread and the transaction that executes a plan)."""

from __future__ import annotations

from db.sink.plan import AlertItem, EndItem, EvalItem, EventItem, StartItem, StepItem
from db.sink.writer import DbMetricSink, insert_alerts

__all__ = [
    "AlertItem",
    "DbMetricSink",
    "EndItem",
    "EvalItem",
    "EventItem",
    "StartItem",
    "StepItem",
    "insert_alerts",
]

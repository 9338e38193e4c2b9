"""A run's events (log lines, status changes, alerts): `run_events`, `get_event`,
`alert_counts`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, or_, select

from db.models import Event
from db.queries.runs import require_run


@dataclass(frozen=True)
class EventInfo:
    id: int
    run_id: int
    time: datetime
    level: str
    message: str
    kind: str = "log"  # log | alert (status changes and advisories are log events)
    step: int | None = None
    data: dict[str, Any] | None = None  # alerts: severity, modality, detector, evidence, advice

    def to_dict(self) -> dict[str, Any]:
        """The Events JSON of CONTRACT.md: id, run_id, kind, step, created_at, message,
        level; alerts add severity, modality, detector, evidence, advice."""
        out: dict[str, Any] = {
            "id": self.id,
            "run_id": self.run_id,
            "kind": self.kind,
            "step": self.step,
            "created_at": self.time.isoformat(),
            "level": self.level,
            "message": self.message,
        }
        if self.kind == "alert":
            data = self.data or {}
            for k in ("severity", "modality", "detector", "step_range"):
                out[k] = data.get(k)
            out["evidence"] = data.get("evidence") or {}
            out["advice"] = data.get("advice") or {"strategies": []}
        return out


def _event(r: Any) -> EventInfo:
    return EventInfo(
        id=int(r.id),
        run_id=int(r.run_id),
        time=r.time,
        level=r.level,
        message=r.message,
        kind=r.kind or "log",
        step=None if r.step is None else int(r.step),
        data=r.data,
    )


_EVENT_COLUMNS = (
    Event.id,
    Event.run_id,
    Event.time,
    Event.level,
    Event.message,
    Event.kind,
    Event.step,
    Event.data,
)


def run_events(
    engine: Engine, run_id: int, after_id: int = 0, limit: int | None = None, kind: str | None = None
) -> list[EventInfo]:
    """The run's events in order; `after_id` for incremental polling; `kind` ("alert",
    "log") filters."""
    with engine.connect() as conn:
        require_run(conn, run_id)
        query = select(*_EVENT_COLUMNS).where(Event.run_id == run_id, Event.id > after_id).order_by(Event.id)
        if kind == "log":
            query = query.where(or_(Event.kind.is_(None), Event.kind == "log"))
        elif kind is not None:
            query = query.where(Event.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        return [_event(r) for r in conn.execute(query)]


def get_event(engine: Engine, event_id: int) -> EventInfo | None:
    """One event by id (the dashboard's `advice=ALERT_ID`), or None."""
    with engine.connect() as conn:
        r = conn.execute(select(*_EVENT_COLUMNS).where(Event.id == event_id)).first()
        return None if r is None else _event(r)


def alert_counts(engine: Engine, run_ids: Iterable[int] | None = None) -> dict[int, dict[str, int]]:
    """Per run: the number of alerts by severity (runs without alerts are absent)."""
    ids = None if run_ids is None else [int(i) for i in run_ids]
    if ids == []:
        return {}
    level = Event.level
    query = (
        select(Event.run_id, level, func.count()).where(Event.kind == "alert").group_by(Event.run_id, level)
    )
    if ids is not None:
        query = query.where(Event.run_id.in_(ids))
    names = {"error": "critical", "warning": "warning", "info": "info"}
    out: dict[int, dict[str, int]] = {}
    with engine.connect() as conn:
        for run_id, lvl, n in conn.execute(query):
            out.setdefault(int(run_id), {})[names.get(lvl, lvl)] = int(n)
    return out

"""Raw points of a run's series: keys, incremental polls (`series_since`), tails, the
export (`run_points`) and the latest values. Values read back as floats: NULL is NaN."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, func, select, union_all
from sqlalchemy.orm import aliased

from db.errors import SeriesNotFound
from db.models import Event, Point, Run, Series
from db.queries.runs import require_run


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


@dataclass(frozen=True)
class SeriesData:
    key: str
    steps: list[int]
    values: list[float]


def _series_ids(conn: Connection, run_id: int, keys: Iterable[str] | None = None) -> dict[str, int]:
    require_run(conn, run_id)
    query = select(Series.key, Series.id).where(Series.run_id == run_id).order_by(Series.key)
    ids = {k: int(i) for k, i in conn.execute(query)}
    if keys is None:
        return ids
    wanted = list(keys)
    missing = [k for k in wanted if k not in ids]
    if missing:
        raise SeriesNotFound(
            f"run {run_id} has no series {missing[0]!r} (it has {len(ids)} keys: see series_keys)"
        )
    return {k: ids[k] for k in wanted}


def series_keys(engine: Engine, run_id: int) -> list[str]:
    """The run's metric keys, sorted."""
    with engine.connect() as conn:
        return list(_series_ids(conn, run_id))


# Several series are read in one statement (one round trip): a UNION ALL of per-series
# range scans, at most this many per statement (SQLite caps compound SELECTs at 500).
series_per_statement = 200


def _read_series(
    conn: Connection, ids: Mapping[str, int], where: Mapping[str, Any], newest_first: bool, limit: int | None
) -> dict[str, SeriesData]:
    """Per key: points (step, value) of its series with step > where[key] (None: all), in
    step order; with newest_first, the last `limit` points (still returned in step order)."""
    by_sid: dict[int, tuple[list[int], list[float]]] = {sid: ([], []) for sid in ids.values()}
    items = list(ids.items())
    for start in range(0, len(items), series_per_statement):
        parts = []
        for key, sid in items[start : start + series_per_statement]:
            q = select(Point.series_id, Point.step, Point.value).where(Point.series_id == sid)
            if where.get(key) is not None:
                q = q.where(Point.step > where[key])
            q = q.order_by(Point.step.desc() if newest_first else Point.step)
            if limit is not None:
                q = q.limit(limit)
            parts.append(select(q.subquery()))
        stmt = parts[0] if len(parts) == 1 else union_all(*parts)
        for sid, step, value in conn.execute(stmt):
            steps, values = by_sid[sid]
            steps.append(int(step))
            values.append(_f(value))
    out: dict[str, SeriesData] = {}
    for key, sid in ids.items():
        steps, values = by_sid[sid]
        if newest_first:
            steps.reverse()
            values.reverse()
        if any(a >= b for a, b in zip(steps, steps[1:], strict=False)):  # UNION ALL promises no order
            order = sorted(range(len(steps)), key=steps.__getitem__)
            steps, values = [steps[i] for i in order], [values[i] for i in order]
        out[key] = SeriesData(key, steps, values)
    return out


def series_since(
    engine: Engine,
    run_id: int,
    after_step: int | Mapping[str, int] | None = None,
    keys: Iterable[str] | None = None,
    limit: int | None = None,
) -> dict[str, SeriesData]:
    """Points with step > after_step (per key when a mapping; None: from the start), in
    step order, at most `limit` per key: the incremental poll of a live chart."""
    with engine.connect() as conn:
        ids = _series_ids(conn, run_id, keys)
        if isinstance(after_step, Mapping):
            where = {k: after_step.get(k) for k in ids}
        else:
            where = dict.fromkeys(ids, after_step)
        return _read_series(conn, ids, where, newest_first=False, limit=limit) if ids else {}


def series_tail(
    engine: Engine, run_id: int, n: int = 100, keys: Iterable[str] | None = None
) -> dict[str, SeriesData]:
    """The last `n` points of each series (of `keys`, or all), in step order."""
    with engine.connect() as conn:
        ids = _series_ids(conn, run_id, keys)
        return _read_series(conn, ids, {}, newest_first=True, limit=n) if ids else {}


def run_points(engine: Engine, run_id: int) -> dict[str, SeriesData]:
    """Every point of every series of the run (export)."""
    return series_since(engine, run_id)


def latest_values(
    engine: Engine, run_id: int, keys: Iterable[str] | None = None
) -> dict[str, tuple[int, float]]:
    """{key: (last step, value at that step)} for the run's series."""
    with engine.connect() as conn:
        ids = _series_ids(conn, run_id, keys)
        if not ids:
            return {}
        inner = aliased(Point)
        last = select(func.max(inner.step)).where(inner.series_id == Series.id).scalar_subquery()
        query = (
            select(Series.key, Point.step, Point.value)
            .join(Point, Point.series_id == Series.id)
            .where(Series.id.in_(list(ids.values())), Point.step == last)
        )
        return {k: (int(s), _f(v)) for k, s, v in conn.execute(query)}


def change_mark(engine: Engine, run_id: int) -> tuple[Any, ...] | None:
    """A value that changes whenever anything the Live page draws of the run changes: the
    number of its series and the sum of their newest steps (one index probe per series; a
    point is only ever added after a series' last step), its newest event id (alerts are
    events), and the run row's status, attempt, step, progress, heartbeat and cancel flag.
    None when there is no such run. One statement, no points read (about 1 ms on SQLite),
    so the page can ask it often and rebuild its charts only when it moved
    (`app/views/live/data.py`)."""
    newest = select(func.max(Point.step)).where(Point.series_id == Series.id).scalar_subquery()
    maxima = select(newest.label("newest")).where(Series.run_id == run_id).subquery()
    statement = select(
        Run.status,
        Run.attempt,
        Run.step,
        Run.progress,
        Run.heartbeat_at,
        Run.cancel_requested,
        select(func.count()).select_from(maxima).scalar_subquery(),
        select(func.sum(maxima.c.newest)).scalar_subquery(),
        select(func.max(Event.id)).where(Event.run_id == run_id).scalar_subquery(),
    ).where(Run.id == run_id)
    with engine.connect() as conn:
        row = conn.execute(statement).one_or_none()
    return None if row is None else tuple(row)

"""Reads for the app and the CLI. Every function returns plain data (dataclasses, dicts,
lists of numbers): no ORM object or session leaves this module.

Values read back as floats: NULL in the store is NaN, +/-inf stay infinite. Downsampled
reads use the rollups kept by the writer (`db.ingest`), so their cost depends on the
number of buckets asked for, not on the length of the series."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, exists, func, or_, select, text, union_all
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import ColumnElement

from bml_core.configpaths import diff_configs
from db.errors import RunNotFound, SeriesNotFound
from db.ingest import NAN_SUM_SQL, ROLLUP_WIDTHS
from db.models import Event, Point, Rollup, Run, RunTag, Series

# A rollup width is used when rounding the bucket width up to a multiple of it costs at
# most this share of extra width (so the bucket count stays close to the one asked for).
bucket_width_slack = 1.25
default_max_buckets = 2_000


def _f(value: Any) -> float:
    return math.nan if value is None else float(value)


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunInfo:
    """A run as listed: everything but its config."""

    id: int
    name: str
    group: str
    tags: list[str]
    status: str
    strategy: str
    dataset: str
    seed: int
    attempt: int
    max_attempts: int
    worker: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    progress: float
    step: int
    total_steps: int | None
    error: str | None
    summary: dict[str, Any] | None
    cancel_requested: bool
    dropped_points: int
    sweep_id: int | None
    owner: str | None = None  # who launched it (None: before accounts existed)
    rerun_of: int | None = None  # the run this one exactly reruns
    retry_of: int | None = None  # the run this one is a retry (clone) of

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: timestamps as ISO 8601 strings."""
        out = asdict(self)
        for k, v in out.items():
            if isinstance(v, datetime):
                out[k] = v.isoformat()
        return out


@dataclass(frozen=True)
class RunDetail(RunInfo):
    """A run with its full config and the tail of its traceback."""

    config: dict[str, Any] = field(default_factory=dict)
    traceback_tail: str | None = None
    environment: dict[str, Any] | None = None  # versions, commit, hardware, data fingerprints


@dataclass(frozen=True)
class RunPage:
    runs: list[RunInfo]
    total: int  # runs matching the filters, over all pages
    limit: int | None
    offset: int


# The listed columns are RunInfo's fields (but tags, read from run_tags), in that order:
# adding a field to RunInfo and to the model is all it takes to list it.
_LIST_FIELDS = [f.name for f in fields(RunInfo) if f.name != "tags"]
_LIST_COLUMNS = tuple(getattr(Run, name) for name in _LIST_FIELDS)


def _run_info(row: Sequence[Any], tags: list[str]) -> dict[str, Any]:
    info = dict(zip(_LIST_FIELDS, row, strict=False))
    info["cancel_requested"] = bool(info["cancel_requested"])
    info["progress"] = float(info["progress"])
    info["tags"] = tags
    return info


def _tags_of(conn: Connection, run_ids: Sequence[int] | None, where: Any = None) -> dict[int, list[str]]:
    """Tags of the given runs, or (run_ids None) of every run matching `where`."""
    tags: dict[int, list[str]] = defaultdict(list)
    query = select(RunTag.run_id, RunTag.tag).order_by(RunTag.tag)
    if run_ids is not None:
        if not run_ids:
            return tags
        query = query.where(RunTag.run_id.in_(run_ids))
    else:
        query = query.where(RunTag.run_id.in_(select(Run.id).where(where)))
    for run_id, tag in conn.execute(query):
        tags[run_id].append(tag)
    return tags


def require_run(conn: Connection, run_id: int) -> None:
    if conn.execute(select(Run.id).where(Run.id == run_id)).first() is None:
        raise RunNotFound(run_id)


def get_run(engine: Engine, run_id: int) -> RunDetail:
    """One run with its config; RunNotFound for an unknown id."""
    with engine.connect() as conn:
        row = conn.execute(
            select(*_LIST_COLUMNS, Run.config, Run.traceback_tail, Run.environment).where(Run.id == run_id)
        ).first()
        if row is None:
            raise RunNotFound(run_id)
        tags = _tags_of(conn, [run_id])[run_id]
    n = len(_LIST_FIELDS)
    return RunDetail(
        **_run_info(row[:n], tags), config=row[n], traceback_tail=row[n + 1], environment=row[n + 2]
    )


def get_runs(engine: Engine, run_ids: Sequence[int]) -> tuple[list[RunDetail], list[int]]:
    """Several runs with their configs in one round trip, in the order given (repeats
    dropped), and the ids not found."""
    ids = list(dict.fromkeys(int(i) for i in run_ids))
    if not ids:
        return [], []
    with engine.connect() as conn:
        rows = {
            int(r[0]): r
            for r in conn.execute(
                select(*_LIST_COLUMNS, Run.config, Run.traceback_tail).where(Run.id.in_(ids))
            )
        }
        tags = _tags_of(conn, list(rows))
    n = len(_LIST_FIELDS)
    found = [
        RunDetail(**_run_info(rows[i][:n], tags.get(i, [])), config=rows[i][n], traceback_tail=rows[i][n + 1])
        for i in ids
        if i in rows
    ]
    return found, [i for i in ids if i not in rows]


def list_runs(
    engine: Engine,
    *,
    status: str | Sequence[str] | None = None,
    strategy: str | None = None,
    dataset: str | None = None,
    group: str | None = None,
    tags: Iterable[str] | None = None,
    text: str | None = None,
    sweep_id: int | None = None,
    owner: str | None = None,
    limit: int | None = 50,
    offset: int = 0,
) -> RunPage:
    """Runs matching every filter given, newest first, one page (`limit` None: all).
    `tags`: runs carrying all of them; `text`: case-insensitive substring of name, group
    or strategy, or the run id."""
    where: list[ColumnElement[bool]] = []
    if status is not None:
        where.append(Run.status.in_([status] if isinstance(status, str) else list(status)))
    if strategy is not None:
        where.append(Run.strategy == strategy)
    if dataset is not None:
        where.append(Run.dataset == dataset)
    if group is not None:
        where.append(Run.group == group)
    if sweep_id is not None:
        where.append(Run.sweep_id == sweep_id)
    if owner is not None:
        where.append(Run.owner == owner)
    for tag in tags or ():
        where.append(exists().where(RunTag.run_id == Run.id, RunTag.tag == tag))
    hashed = (text or "").strip()
    if hashed.startswith("#") and hashed[1:].strip().isdigit():
        # "#7" is how the pages show run 7 (issue 25): that run only
        where.append(Run.id == int(hashed[1:].strip()))
        text = None
    if text:
        needle = text.lower()
        match = [
            func.lower(Run.name).contains(needle, autoescape=True),
            func.lower(Run.group).contains(needle, autoescape=True),
            func.lower(Run.strategy).contains(needle, autoescape=True),
        ]
        if text.strip().isdigit():
            match.append(Run.id == int(text.strip()))
        where.append(or_(*match))
    cond = and_(True, *where)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(Run).where(cond)).scalar_one()
        query = select(*_LIST_COLUMNS).where(cond).order_by(Run.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit)
        rows = conn.execute(query).all()
        if limit is None or limit > 500:
            tags_by_run = _tags_of(conn, None, cond)
        else:
            tags_by_run = _tags_of(conn, [r[0] for r in rows])
    runs = [RunInfo(**_run_info(r, tags_by_run.get(r[0], []))) for r in rows]
    return RunPage(runs=runs, total=int(total), limit=limit, offset=offset)


def list_groups(engine: Engine) -> dict[str, int]:
    """Group names with their number of runs, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(Run.group, func.count()).group_by(Run.group).order_by(Run.group))
        return {g: int(n) for g, n in rows}


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


# --------------------------------------------------------------------------- configs


def config_diff(engine: Engine, run_ids: Sequence[int]) -> dict[str, dict[int, Any]]:
    """The config keys (dotted paths) that differ between the runs, with each run's value."""
    with engine.connect() as conn:
        rows: dict[int, dict[str, Any]] = dict(
            conn.execute(select(Run.id, Run.config).where(Run.id.in_(list(run_ids)))).all()
        )
    for rid in run_ids:
        if rid not in rows:
            raise RunNotFound(rid)
    return diff_configs({rid: rows[rid] for rid in run_ids})


def environment_diff(engine: Engine, run_ids: Sequence[int]) -> dict[str, dict[int, Any]]:
    """What differs between the runs' recorded environments (`runs.environment`: versions,
    commit, GPU, host, data sha256 by file path), as {dotted key: {run_id: value}}; runs
    that recorded none are left out."""
    with engine.connect() as conn:
        rows: dict[int, Any] = dict(
            conn.execute(select(Run.id, Run.environment).where(Run.id.in_(list(run_ids)))).all()
        )
    for rid in run_ids:
        if rid not in rows:
            raise RunNotFound(rid)
    envs: dict[int, dict[str, Any]] = {}
    for rid in run_ids:
        env = rows[rid]
        if not env:
            continue
        flat = dict(env)
        flat.pop("executable", None)
        data = flat.pop("data", None) or []
        flat["data"] = {str(d.get("path")): d.get("sha256") for d in data}
        envs[rid] = flat
    return diff_configs(envs) if len(envs) > 1 else {}


# --------------------------------------------------------------------------- series


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


# --------------------------------------------------------------------------- downsampling


@dataclass(frozen=True)
class BucketPlan:
    """How a step range is cut: buckets of `bucket_width` steps aligned at multiples of it
    (bucket b holds steps b*bucket_width .. (b+1)*bucket_width-1), read from rollups of
    `source_width` steps (1: the points themselves)."""

    source_width: int
    bucket_width: int
    first_bucket: int
    last_bucket: int


def plan_buckets(lo: int, hi: int, max_buckets: int) -> BucketPlan:
    """The bucket width (<= max_buckets buckets over steps lo..hi) and the coarsest rollup
    width it can be read from."""
    if max_buckets < 1:
        raise ValueError("max_buckets must be >= 1")
    span = hi - lo + 1
    if span <= max_buckets:
        needed = 1
    elif max_buckets == 1:
        needed = hi + 1
    else:
        needed = -(-span // (max_buckets - 1))  # ceil: aligned buckets overlap one more
    for width in (*sorted(ROLLUP_WIDTHS, reverse=True), 1):
        if width > needed:
            continue
        bucket = -(-needed // width) * width
        if width == 1 or bucket <= bucket_width_slack * needed:
            return BucketPlan(width, bucket, lo // bucket, hi // bucket)
    raise AssertionError("unreachable: width 1 always fits")


def _bucket_sql(plan: BucketPlan) -> Any:
    w, b = plan.source_width, plan.bucket_width
    if w == 1:
        return text(
            "SELECT a.series_id, a.bucket, a.first_step, a.last_step, a.vmin, a.vmax, a.vsum, "
            "a.n_values, a.n_points, p.value AS last_value "
            f"FROM (SELECT series_id, step / {b} AS bucket, min(step) AS first_step, max(step) AS last_step, "
            "min(value) AS vmin, max(value) AS vmax, sum(value) AS vsum, count(value) AS n_values, "
            "count(*) AS n_points FROM points "
            "WHERE series_id IN :sids AND step >= :lo AND step < :hi "
            f"GROUP BY series_id, step / {b}) AS a "
            "JOIN points AS p ON p.series_id = a.series_id AND p.step = a.last_step "
            "ORDER BY a.series_id, a.bucket"
        ).bindparams(bindparam("sids", expanding=True))
    ratio = b // w
    return text(
        "SELECT a.series_id, a.bucket, a.first_step, a.last_step, a.vmin, a.vmax, a.vsum, "
        "a.n_values, a.n_points, r.last_value "
        f"FROM (SELECT series_id, block / {ratio} AS bucket, min(first_step) AS first_step, "
        f"max(last_step) AS last_step, min(vmin) AS vmin, max(vmax) AS vmax, {NAN_SUM_SQL} AS vsum, "
        "sum(n_values) AS n_values, sum(n_points) AS n_points, max(block) AS last_block "
        f"FROM rollups WHERE width = {w} AND series_id IN :sids AND block >= :lo AND block < :hi "
        f"GROUP BY series_id, block / {ratio}) AS a "
        f"JOIN rollups AS r ON r.series_id = a.series_id AND r.width = {w} AND r.block = a.last_block "
        "ORDER BY a.series_id, a.bucket"
    ).bindparams(bindparam("sids", expanding=True))


def _bucket_rows(conn: Connection, sids: list[int], plan: BucketPlan) -> list[Any]:
    b, w = plan.bucket_width, plan.source_width
    lo_step, hi_step = plan.first_bucket * b, (plan.last_bucket + 1) * b
    params = {"sids": sids, "lo": lo_step // w, "hi": hi_step // w}
    return list(conn.execute(_bucket_sql(plan), params))


def _step_range(conn: Connection, sids: list[int]) -> tuple[int, int] | None:
    """First and last step over the series, from the coarsest rollups (a handful of rows)."""
    widest = max(ROLLUP_WIDTHS)
    row = conn.execute(
        select(func.min(Rollup.first_step), func.max(Rollup.last_step)).where(
            Rollup.series_id.in_(sids), Rollup.width == widest
        )
    ).first()
    if row is None or row[0] is None:
        return None
    return int(row[0]), int(row[1])


@dataclass(frozen=True)
class Downsampled:
    """A series cut into at most max_buckets buckets; one list entry per non-empty bucket.
    steps/last_steps: the first and last step present in the bucket; means over the
    non-NaN values; nan_counts: NaN points in the bucket (min/max/mean skip them)."""

    key: str
    bucket_width: int
    source_width: int
    steps: list[int]
    last_steps: list[int]
    mins: list[float]
    maxs: list[float]
    means: list[float]
    lasts: list[float]
    counts: list[int]
    nan_counts: list[int]


def _mean(vsum: Any, n_values: int) -> float:
    if vsum is None or n_values == 0:
        return math.nan
    return float(vsum) / n_values


def _plan_for(
    conn: Connection, sids: list[int], max_buckets: int, start_step: int | None, end_step: int | None
) -> BucketPlan | None:
    rng = _step_range(conn, sids)
    if rng is None:
        return None
    lo = rng[0] if start_step is None else max(rng[0], start_step)
    hi = rng[1] if end_step is None else min(rng[1], end_step)
    if hi < lo:
        return None
    return plan_buckets(lo, hi, max_buckets)


def downsampled_many(
    engine: Engine,
    run_id: int,
    keys: Iterable[str] | None = None,
    max_buckets: int = default_max_buckets,
    start_step: int | None = None,
    end_step: int | None = None,
) -> dict[str, Downsampled]:
    """`downsampled_series` for several keys (all when None), each planned on its own range."""
    out: dict[str, Downsampled] = {}
    with engine.connect() as conn:
        for key, sid in _series_ids(conn, run_id, keys).items():
            plan = _plan_for(conn, [sid], max_buckets, start_step, end_step)
            rows = [] if plan is None else _bucket_rows(conn, [sid], plan)
            out[key] = Downsampled(
                key=key,
                bucket_width=plan.bucket_width if plan else 1,
                source_width=plan.source_width if plan else 1,
                steps=[int(r.first_step) for r in rows],
                last_steps=[int(r.last_step) for r in rows],
                mins=[_f(r.vmin) for r in rows],
                maxs=[_f(r.vmax) for r in rows],
                means=[_mean(r.vsum, int(r.n_values)) for r in rows],
                lasts=[_f(r.last_value) for r in rows],
                counts=[int(r.n_points) for r in rows],
                nan_counts=[int(r.n_points) - int(r.n_values) for r in rows],
            )
    return out


def downsampled_series(
    engine: Engine,
    run_id: int,
    key: str,
    max_buckets: int = default_max_buckets,
    start_step: int | None = None,
    end_step: int | None = None,
) -> Downsampled:
    """At most `max_buckets` buckets with min, max, mean and last, computed in SQL from the
    rollups (spikes survive: min and max are exact). Buckets are whole: the first and last
    may reach a little outside [start_step, end_step]."""
    return downsampled_many(engine, run_id, [key], max_buckets, start_step, end_step)[key]


# --------------------------------------------------------------------------- groups


@dataclass(frozen=True)
class GroupAggregate:
    """Per bucket (of bucket_width steps, starting at `steps`), the mean and sample std
    over the runs of each run's mean in that bucket, and how many runs have a value there
    (std is NaN below 2)."""

    key: str
    run_ids: list[int]
    bucket_width: int
    steps: list[int]
    means: list[float]
    stds: list[float]
    counts: list[int]


def group_aggregate(
    engine: Engine,
    key: str,
    *,
    group: str | None = None,
    run_ids: Sequence[int] | None = None,
    max_buckets: int = default_max_buckets,
) -> GroupAggregate:
    """Mean, std and count across the runs of a group (or the given runs) for one key,
    per step, downsampled to at most `max_buckets` buckets shared by every run."""
    if (group is None) == (run_ids is None):
        raise ValueError("give either group or run_ids")
    with engine.connect() as conn:
        if run_ids is None:
            ids = [
                int(i)
                for i in conn.execute(select(Run.id).where(Run.group == group).order_by(Run.id)).scalars()
            ]
        else:
            ids = list(run_ids)
            found = set(conn.execute(select(Run.id).where(Run.id.in_(ids))).scalars())
            for rid in ids:
                if rid not in found:
                    raise RunNotFound(rid)
        sids = [
            int(s)
            for s in conn.execute(
                select(Series.id).where(Series.run_id.in_(ids), Series.key == key)
            ).scalars()
        ]
        plan = _plan_for(conn, sids, max_buckets, None, None) if sids else None
        rows = [] if plan is None else _bucket_rows(conn, sids, plan)
    per_bucket: dict[int, list[float]] = defaultdict(list)
    for r in rows:
        mean = _mean(r.vsum, int(r.n_values))
        if not math.isnan(mean):
            per_bucket[int(r.bucket)].append(mean)
        else:
            per_bucket.setdefault(int(r.bucket), [])
    width = plan.bucket_width if plan else 1
    buckets = sorted(per_bucket)
    means, stds, counts = [], [], []
    for b in buckets:
        vals = per_bucket[b]
        n = len(vals)
        mean = math.fsum(vals) / n if n else math.nan
        if n >= 2 and math.isfinite(mean):
            std = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / (n - 1))
        else:
            std = math.nan
        means.append(mean)
        stds.append(std)
        counts.append(n)
    return GroupAggregate(
        key=key,
        run_ids=ids,
        bucket_width=width,
        steps=[b * width for b in buckets],
        means=means,
        stds=stds,
        counts=counts,
    )


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class ReportSelection:
    """The runs a report covers (with their configs, oldest first) and what was asked
    for but is not in the store."""

    runs: list[RunDetail]
    unknown_groups: list[str]
    unknown_ids: list[int]


def runs_for_report(
    engine: Engine, groups: Sequence[str] = (), run_ids: Sequence[int] = ()
) -> ReportSelection:
    """Every run of the named groups and the given ids, each once, oldest first; unknown
    group names and ids are listed, not raised (the caller says what is wrong)."""
    groups, run_ids = list(dict.fromkeys(groups)), list(dict.fromkeys(int(i) for i in run_ids))
    conds: list[ColumnElement[bool]] = []
    if groups:
        conds.append(Run.group.in_(groups))
    if run_ids:
        conds.append(Run.id.in_(run_ids))
    if not conds:
        return ReportSelection([], [], [])
    with engine.connect() as conn:
        rows = conn.execute(
            select(*_LIST_COLUMNS, Run.config, Run.traceback_tail).where(or_(*conds)).order_by(Run.id)
        ).all()
        tags = _tags_of(conn, [r[0] for r in rows])
    n = len(_LIST_FIELDS)
    runs = [
        RunDetail(**_run_info(r[:n], tags.get(r[0], [])), config=r[n], traceback_tail=r[n + 1]) for r in rows
    ]
    found_groups = {r.group for r in runs}
    found_ids = {r.id for r in runs}
    return ReportSelection(
        runs=runs,
        unknown_groups=[g for g in groups if g not in found_groups],
        unknown_ids=[i for i in run_ids if i not in found_ids],
    )


report_curve_prefixes = ("imbalance/ratio/", "val/acc")


def group_curves(
    engine: Engine,
    groups: Mapping[str, Sequence[int]],
    prefixes: Sequence[str] = report_curve_prefixes,
    max_buckets: int = 300,
) -> dict[str, dict[str, GroupAggregate]]:
    """{label: {key: mean ± std over the label's runs}} for every metric key starting with
    one of `prefixes` that any of those runs has (e.g. `imbalance/ratio/<m>`, `val/acc`,
    `val/acc/<m>`), downsampled to at most `max_buckets` buckets."""
    out: dict[str, dict[str, GroupAggregate]] = {}
    for label, ids in groups.items():
        if not ids:
            continue
        with engine.connect() as conn:
            keys = sorted(set(conn.execute(select(Series.key).where(Series.run_id.in_(list(ids)))).scalars()))
        wanted = [k for k in keys if any(k.startswith(p) for p in prefixes)]
        out[label] = {
            k: group_aggregate(engine, k, run_ids=list(ids), max_buckets=max_buckets) for k in wanted
        }
    return out

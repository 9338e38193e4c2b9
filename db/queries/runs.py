"""Runs as listed and in detail: `list_runs` (the filters, one page), `get_run`/`get_runs`
(with the config), `list_groups`, and the row-to-dataclass helpers the other reads share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from db.errors import RunNotFound
from db.models import Run, RunTag


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
    total: int  # runs matching the filters, over all pages (at most count_limit: total_capped)
    limit: int | None
    offset: int
    total_capped: bool = False  # more than `total` runs match (the count stopped at count_limit)
    has_more: bool = False  # runs older than this page's last one match (there is a next page)


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
    before_id: int | None = None,
    count_limit: int | None = None,
) -> RunPage:
    """Runs matching every filter given, newest first, one page (`limit` None: all).
    `tags`: runs carrying all of them; `text`: case-insensitive substring of name, group
    or strategy, or the run id. `before_id`: keyset pagination, the page after the one that
    ended with that run (an index range on the primary key however deep the page, where
    `offset` reads and drops every row before it). `count_limit`: the total is counted up
    to that many rows and no further (`total_capped` then says "or more"), so a filter that
    matches a whole large store does not count all of it on every page."""
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
        if count_limit is None:
            total = conn.execute(select(func.count()).select_from(Run).where(cond)).scalar_one()
        else:
            bounded = select(Run.id).where(cond).limit(count_limit + 1).subquery()
            total = conn.execute(select(func.count()).select_from(bounded)).scalar_one()
        capped = count_limit is not None and total > count_limit
        total = min(total, count_limit) if count_limit is not None else total
        page_cond = cond if before_id is None else and_(cond, Run.id < before_id)
        query = select(*_LIST_COLUMNS).where(page_cond).order_by(Run.id.desc()).offset(offset)
        if limit is not None:
            query = query.limit(limit + 1)  # one more: is there a next page
        rows = conn.execute(query).all()
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        if limit is None or limit > 500:
            tags_by_run = _tags_of(conn, None, cond)
        else:
            tags_by_run = _tags_of(conn, [r[0] for r in rows])
    runs = [RunInfo(**_run_info(r, tags_by_run.get(r[0], []))) for r in rows]
    return RunPage(
        runs=runs, total=int(total), limit=limit, offset=offset, total_capped=capped, has_more=more
    )


def list_groups(engine: Engine) -> dict[str, int]:
    """Group names with their number of runs, by name."""
    with engine.connect() as conn:
        rows = conn.execute(select(Run.group, func.count()).group_by(Run.group).order_by(Run.group))
        return {g: int(n) for g, n in rows}

"""Reads across runs: a group's mean and std per bucket (`group_aggregate`, `group_curves`)
and the runs a report covers (`runs_for_report`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine, or_, select
from sqlalchemy.sql.elements import ColumnElement

from db.errors import RunNotFound
from db.models import Run, Series
from db.queries.downsample import _bucket_rows, _mean, _plan_for, default_max_buckets
from db.queries.runs import _LIST_COLUMNS, _LIST_FIELDS, RunDetail, _run_info, _tags_of


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

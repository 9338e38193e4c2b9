"""Downsampled reads: a step range cut into buckets (`plan_buckets`, pure) and computed in
SQL from the rollups kept by the writer (`db.ingest`), so the cost depends on the number of
buckets asked for, not on the length of the series."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select, text

from db.ingest import NAN_SUM_SQL, ROLLUP_WIDTHS
from db.models import Rollup
from db.queries.series import _f, _series_ids

# A rollup width is used when rounding the bucket width up to a multiple of it costs at
# most this share of extra width (so the bucket count stays close to the one asked for).
bucket_width_slack = 1.25
default_max_buckets = 2_000


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

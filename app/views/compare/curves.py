"""The Compare page's curves: mean ± std per group over its seeds, thin per-seed lines on
demand, runs left out drawn dotted when asked, smoothing, and the rows of the curves CSV.
Plain functions; no Streamlit here."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import db
from app.charts import Trace
from app.views.compare.grouping import colours
from bml_core.compare import grouping as cg

compare_max_buckets = 400
chart_width_px = 450  # two charts side by side at 1400 px, one per row at 800 px


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with TensorBoard's debiasing; NaN points stay NaN and do
    not reset the average. weight 0: unchanged."""
    if not 0.0 <= weight < 1.0:
        raise ValueError("smoothing weight must be in [0, 1)")
    if weight == 0.0:
        return list(values)
    out: list[float] = []
    last = 0.0
    count = 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(math.nan)
            continue
        last = last * weight + (1.0 - weight) * v
        count += 1
        out.append(last / (1.0 - weight**count))
    return out


def seeds_by_default(grouping: cg.Grouping, agg_param: str | None = None) -> bool:
    """Whether the page starts with the per-seed lines: `?agg=0` (per run) / `?agg=1` (per
    group) in the address decide; otherwise only when no group pools several seeds."""
    if agg_param in ("0", "1"):
        return agg_param == "0"
    return not any(g.n > 1 for g in grouping.groups)


@dataclass
class CurveSet:
    """The traces of one metric key, and the rows they were drawn from (for the CSV)."""

    key: str
    traces: list[Trace]
    rows: list[dict[str, Any]] = field(default_factory=list)


def seed_line_name(run: cg.GroupedRun, name: str) -> str:
    """`opm · seed 1 · #12` (+ `· retry of #9`, or the status of a run left out)."""
    parts = [name, f"seed {run.record.seed}", f"#{run.record.id}"]
    if run.retry_of is not None:
        parts.append(f"retry of #{run.retry_of}")
    if not run.included:
        parts.append(f"{run.record.status}, not pooled")
    return " · ".join(parts)


def curves(
    key: str,
    grouping: cg.Grouping,
    aggregates: Mapping[str, db.GroupAggregate],
    series: Mapping[int, Mapping[str, db.Downsampled]],
    *,
    names: Mapping[str, str],
    smoothing: float = 0.0,
    seeds: bool = False,
    excluded: bool = False,
) -> CurveSet:
    """One mean line with a ± std band per group (over its pooled runs), thin per-seed
    lines in the group's colour when `seeds`, and the runs not pooled as dotted lines when
    `excluded`. `rows` holds every series for the CSV: per group (mean, std, runs per
    bucket) and per run (bucket mean, min, max, last), each with its seed and group key."""
    out = CurveSet(key, [])
    colour = colours(grouping)
    for g in grouping.groups:
        name = names.get(g.label, g.label)
        agg = aggregates.get(g.label)
        if agg is not None and agg.steps:
            means = smooth(agg.means, smoothing)
            stds = [s if math.isfinite(s) else 0.0 for s in agg.stds]
            out.traces.append(
                Trace(
                    name=f"{name} (n={g.n})",
                    x=agg.steps,
                    y=means,
                    lower=[m - s for m, s in zip(means, stds, strict=True)],
                    upper=[m + s for m, s in zip(means, stds, strict=True)],
                    group=g.label,
                    colour=colour[g.label],
                    width=2.2,
                )
            )
            for i, step in enumerate(agg.steps):
                out.rows.append(
                    {
                        "series": "group",
                        "group key": g.label,
                        "group": name,
                        "run": "",
                        "seed": "",
                        "key": key,
                        "step": step,
                        "mean": agg.means[i],
                        "std": agg.stds[i],
                        "runs": agg.counts[i],
                    }
                )
        for gr in g.runs:
            ds = series.get(gr.record.id, {}).get(key)
            if ds is None or not ds.steps:
                continue
            draw = (gr.included and seeds) or (not gr.included and excluded)
            if draw:
                out.traces.append(
                    Trace(
                        name=seed_line_name(gr, name),
                        x=ds.steps,
                        y=smooth(ds.means, smoothing),
                        group=g.label,
                        colour=colour[g.label],
                        width=0.8 if gr.included else 1.0,
                        dash=None if gr.included else "dot",
                        showlegend=False,
                    )
                )
            if gr.included or excluded:
                for i, step in enumerate(ds.steps):
                    out.rows.append(
                        {
                            "series": "run",
                            "group key": g.label,
                            "group": name,
                            "run": gr.record.id,
                            "seed": gr.record.seed,
                            "status": gr.record.status,
                            "pooled": gr.included,
                            "key": key,
                            "step": step,
                            "mean": ds.means[i],
                            "min": ds.mins[i],
                            "max": ds.maxs[i],
                            "last": ds.lasts[i],
                        }
                    )
    return out

"""The Compare page's data: which runs a deep link names, their curves (downsampled per
run, or per group as mean ± std over seeds), smoothing, the summary table with the best
value of each column marked, the config keys that differ, and the CSV exports."""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine

import db
from app.charts import Trace
from app.labels import run_label

compare_max_buckets = 400
max_compared_runs = 50
DEFAULT_KEY_PATTERNS = ("val/acc", "imbalance/ratio/", "val/acc/", "train/loss")

# Summary columns: (column, path in the summary JSON, higher is better)
SUMMARY_COLUMNS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("val acc", ("val", "acc"), True),
    ("test acc", ("test", "acc"), True),
    ("test f1", ("test", "f1"), True),
    ("imbalance degree", ("test", "imbalance_degree"), False),
    ("time (s)", ("train", "seconds"), False),
)


def parse_run_ids(text: str | None) -> tuple[list[int], list[str]]:
    """`1,2,3` -> ([1, 2, 3], []); parts that are not ids come back as the second list."""
    ids: list[int] = []
    bad: list[str] = []
    for part in re.split(r"[,\s]+", text or ""):
        if not part:
            continue
        if part.isdigit():
            ids.append(int(part))
        else:
            bad.append(part)
    return list(dict.fromkeys(ids)), bad


def runs_of(
    engine: Engine, run_ids: Sequence[int] = (), group: str | None = None
) -> tuple[list[db.RunInfo], list[int]]:
    """The runs to compare (given ids in order, or a group's runs oldest first) and the ids not found."""
    if group:
        page = db.list_runs(engine, group=group, limit=max_compared_runs)
        return sorted(page.runs, key=lambda r: r.id), []
    runs: list[db.RunInfo] = []  # RunDetail is a RunInfo
    missing: list[int] = []
    for rid in run_ids[:max_compared_runs]:
        try:
            runs.append(db.get_run(engine, rid))
        except db.RunNotFound:
            missing.append(rid)
    return runs, missing


def common_keys(engine: Engine, runs: Sequence[db.RunInfo]) -> list[str]:
    """Metric keys any of the runs has, sorted."""
    keys: set[str] = set()
    for r in runs:
        keys.update(db.series_keys(engine, r.id))
    return sorted(keys)


def default_keys(available: Sequence[str]) -> list[str]:
    """`val/acc` and the discrepancy ratios when present, else the first keys."""
    chosen = [k for k in available if k == "val/acc" or k.startswith("imbalance/ratio/")]
    return chosen or list(available[:2])


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


def group_runs(runs: Sequence[db.RunInfo]) -> dict[str, list[int]]:
    """Runs by group (the seeds of one setting), in first-seen order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for r in runs:
        groups[r.group].append(r.id)
    return dict(groups)


def aggregate_by_default(groups: Mapping[str, Sequence[int]], agg_param: str | None = None) -> bool:
    """Whether the page starts with mean ± std per group: `?agg=1` / `?agg=0` in the
    address decide; otherwise yes when some group has several of the runs (seeds)."""
    if agg_param in ("0", "1"):
        return agg_param == "1"
    return any(len(ids) > 1 for ids in groups.values())


@dataclass
class CurveSet:
    """The traces of one metric key, and the rows they were drawn from (for the CSV)."""

    key: str
    traces: list[Trace]
    rows: list[dict[str, Any]]


def per_run_curves(
    series: Mapping[int, Mapping[str, db.Downsampled]],
    runs: Sequence[db.RunInfo],
    key: str,
    smoothing: float = 0.0,
) -> CurveSet:
    """One line per run (bucket means), shaded between the bucket min and max."""
    traces: list[Trace] = []
    rows: list[dict[str, Any]] = []
    for r in runs:
        ds = series.get(r.id, {}).get(key)
        if ds is None or not ds.steps:
            continue
        traces.append(Trace(name=run_label(r), x=ds.steps, y=smooth(ds.means, smoothing)))
        for i, step in enumerate(ds.steps):
            rows.append(
                {
                    "run_id": r.id,
                    "name": r.name,
                    "group": r.group,
                    "key": key,
                    "step": step,
                    "mean": ds.means[i],
                    "min": ds.mins[i],
                    "max": ds.maxs[i],
                    "last": ds.lasts[i],
                }
            )
    return CurveSet(key, traces, rows)


def group_curves(aggregates: Mapping[str, db.GroupAggregate], key: str, smoothing: float = 0.0) -> CurveSet:
    """One line per group: the mean over its runs, with a band of ± one std."""
    traces: list[Trace] = []
    rows: list[dict[str, Any]] = []
    for group, agg in aggregates.items():
        if not agg.steps:
            continue
        means = smooth(agg.means, smoothing)
        stds = [s if math.isfinite(s) else 0.0 for s in agg.stds]
        traces.append(
            Trace(
                name=f"{group} (n={max(agg.counts) if agg.counts else 0})",
                x=agg.steps,
                y=means,
                lower=[m - s for m, s in zip(means, stds, strict=True)],
                upper=[m + s for m, s in zip(means, stds, strict=True)],
                group=group,
            )
        )
        for i, step in enumerate(agg.steps):
            rows.append(
                {
                    "group": group,
                    "key": key,
                    "step": step,
                    "mean": agg.means[i],
                    "std": agg.stds[i],
                    "runs": agg.counts[i],
                }
            )
    return CurveSet(key, traces, rows)


def aggregate_groups(
    engine: Engine, key: str, groups: Mapping[str, Sequence[int]]
) -> dict[str, db.GroupAggregate]:
    """Mean ± std over each group's runs for one key (buckets shared by the group's runs)."""
    return {
        g: db.group_aggregate(engine, key, run_ids=list(ids), max_buckets=compare_max_buckets)
        for g, ids in groups.items()
    }


def _dig(node: Any, path: Sequence[str]) -> float | None:
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def summary_table(runs: Sequence[db.RunInfo]) -> tuple[pd.DataFrame, dict[str, bool]]:
    """One row per run: val and test accuracy fused and per modality, F1, imbalance
    degree, training time. Also {column: higher is better} for marking the best."""
    modalities: list[str] = []
    for r in runs:
        for split in ("val", "test"):
            per = ((r.summary or {}).get(split) or {}).get("acc_per_modality") or {}
            modalities.extend(m for m in per if m not in modalities)
    rows: list[dict[str, Any]] = []
    higher: dict[str, bool] = {}
    for r in runs:
        row: dict[str, Any] = {
            "run": r.id,
            "name": r.name,
            "group": r.group,
            "strategy": r.strategy,
            "status": r.status,
        }
        for column, path, better_high in SUMMARY_COLUMNS:
            row[column] = _dig(r.summary, path)
            higher[column] = better_high
            if column in ("val acc", "test acc"):
                split = path[0]
                for m in modalities:
                    name = f"{split} acc {m}"
                    row[name] = _dig(r.summary, (split, "acc_per_modality", m))
                    higher[name] = True
        rows.append(row)
    frame = pd.DataFrame(rows)
    return frame, higher


def best_rows(frame: pd.DataFrame, higher: Mapping[str, bool]) -> dict[str, list[int]]:
    """{column: row positions holding its best value} (ties all marked; empty columns skipped)."""
    out: dict[str, list[int]] = {}
    for column, better_high in higher.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if values.notna().sum() == 0:
            continue
        best = values.max() if better_high else values.min()
        out[column] = [i for i, v in enumerate(values) if pd.notna(v) and v == best]
    return out


def group_summary(frame: pd.DataFrame, higher: Mapping[str, bool]) -> pd.DataFrame:
    """Per group: mean ± std over its runs of each summary column (`n` runs)."""
    numeric = [c for c in higher if c in frame]
    rows = []
    for group, part in frame.groupby("group", sort=False):
        row: dict[str, Any] = {"group": group, "n": len(part)}
        for c in numeric:
            vals = pd.to_numeric(part[c], errors="coerce").dropna()
            if vals.empty:
                row[c] = ""
            elif len(vals) == 1:
                row[c] = f"{vals.iloc[0]:.4f}"
            else:
                row[c] = f"{vals.mean():.4f} ± {vals.std(ddof=1):.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def diff_table(engine: Engine, runs: Sequence[db.RunInfo]) -> pd.DataFrame:
    """Config keys (dotted paths) whose values differ between the runs; one column per run."""
    if len(runs) < 2:
        return pd.DataFrame()
    diff = db.config_diff(engine, [r.id for r in runs])
    rows = []
    for path, values in diff.items():
        row: dict[str, Any] = {"key": path}
        for r in runs:
            row[run_label(r)] = _show(values[r.id]) if r.id in values else "(absent)"
        rows.append(row)
    return pd.DataFrame(rows, columns=["key", *[run_label(r) for r in runs]])


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def to_csv(frame: pd.DataFrame | Sequence[Mapping[str, Any]]) -> bytes:
    """UTF-8 CSV bytes for a download button."""
    data = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
    buf = io.StringIO()
    data.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")

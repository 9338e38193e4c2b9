"""The Compare page's data: which runs a deep link names, how they are grouped (by default
every config path whose value differs between them, the seed aside, so a sweep splits by
strategy and swept parameters; `bml_core.compare.grouping`), the curves (mean ± std per
group over its seeds, thin per-seed lines on demand, runs left out drawn dotted when
asked), the results table (one row per group: n, test accuracy with its interval, per
modality, imbalance degree, time, and the difference to a baseline group with the verdict
of `bml_core.compare.stats`), the sentence naming the winner, the per-run table (seed,
group key, status, retries), smoothing, the config diff and the CSV exports.

Plain functions of plain data; no Streamlit here."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from sqlalchemy import Engine

import db
from app.charts import PALETTE, Trace
from app.labels import run_label
from bml_core.compare import grouping as cg
from bml_core.compare import stats as cs
from bml_core.compare.fmt import format_p
from bml_core.compare.results import PRIMARY, GroupResult, Results
from bml_core.compare.results import results as compare_results
from bml_core.csvsafe import safe_cell

compare_max_buckets = 400
chart_width_px = 450  # two charts side by side at 1400 px, one per row at 800 px
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
AUTO_KEY_HELP = "every config path whose value differs between the runs, the seed aside"


# --------------------------------------------------------------------------- which runs


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


def parse_groups(values: Sequence[str], known: Mapping[str, int]) -> tuple[list[str], list[str]]:
    """`?group=a&group=b` or `?group=a,b` -> (known groups in order, unknown names). A value
    that is itself a group name is taken whole (names may hold commas)."""
    wanted: list[str] = []
    for value in values:
        if not value:
            continue
        wanted.extend([value] if value in known else [p.strip() for p in value.split(",") if p.strip()])
    wanted = list(dict.fromkeys(wanted))
    return [g for g in wanted if g in known], [g for g in wanted if g not in known]


def runs_of(
    engine: Engine, run_ids: Sequence[int] = (), groups: Sequence[str] | str | None = None
) -> tuple[list[db.RunDetail], list[int]]:
    """The runs to compare with their configs (given ids in order, or the groups' runs
    oldest first; at most `max_compared_runs`) and the ids not found."""
    if groups:
        names = [groups] if isinstance(groups, str) else list(groups)
        ids: list[int] = []
        for g in names:
            page = db.list_runs(engine, group=g, limit=max_compared_runs)
            ids.extend(sorted(r.id for r in page.runs))
        return db.get_runs(engine, sorted(dict.fromkeys(ids))[:max_compared_runs])
    return db.get_runs(engine, list(run_ids)[:max_compared_runs])


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


# --------------------------------------------------------------------------- grouping


def key_options(runs: Sequence[db.RunDetail]) -> list[str]:
    """Config paths a user can group by: the differing ones first (strategies leading),
    then every other path of the runs' configs (strategy parameters by name)."""
    differing = cg.differing_paths([r.config for r in runs]) if runs else []
    every: set[str] = set()
    for r in runs:
        every.update(p for p in cg.config_paths(r.config) if not p.startswith(f"{cg.STRATEGIES}."))
    rest = sorted(p for p in every if p not in differing and p not in ("name", "tags"))
    if cg.STRATEGIES in rest:
        rest.remove(cg.STRATEGIES)
        rest.insert(0, cg.STRATEGIES)
    return differing + rest


def group(runs: Sequence[db.RunDetail], by: Sequence[str] | None = None) -> cg.Grouping:
    """Runs grouped by the config paths `by` (None or empty: what differs, seed aside).
    Only succeeded runs with a test accuracy are pooled; the others stay in their group,
    not pooled, with the reason; an older copy of a retried seed gives way to the retry."""
    return cg.group_runs(runs, by=list(by) if by else None)


def display_names(grouping: cg.Grouping, runs: Sequence[db.RunInfo] = ()) -> dict[str, str]:
    """{group label: the name shown}: the strategy alone when the key is `strategies`
    (`opm`), the run group's name when nothing differs (the seeds of one setting), else
    the label (`strategies=opm, optim.lr=0.01`)."""
    out: dict[str, str] = {}
    run_groups = list(dict.fromkeys(r.group for r in runs))
    for g in grouping.groups:
        if grouping.by == [cg.STRATEGIES]:
            out[g.label] = cg.show_value(g.key[cg.STRATEGIES])
        elif not grouping.by:
            out[g.label] = run_groups[0] if len(run_groups) == 1 else g.label
        else:
            out[g.label] = g.label
    return out


def colours(grouping: cg.Grouping) -> dict[str, str]:
    """One colour per group, by its position."""
    return {g.label: PALETTE[i % len(PALETTE)] for i, g in enumerate(grouping.groups)}


# --------------------------------------------------------------------------- curves


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


# --------------------------------------------------------------------------- results


def _dig(node: Any, path: Sequence[str]) -> float | None:
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def modalities_of(runs: Sequence[Any]) -> list[str]:
    """Modalities named in the runs' per-modality accuracies, in first-seen order."""
    out: list[str] = []
    for r in runs:
        summary = r.summary if hasattr(r, "summary") else r.get("summary")
        for split in ("val", "test"):
            per = ((summary or {}).get(split) or {}).get("acc_per_modality") or {}
            out.extend(m for m in per if m not in out)
    return out


def results(grouping: cg.Grouping, baseline: str | None = None) -> Results:
    """`bml_core.compare.results`: per group each summary metric over its pooled seeds,
    and the fused test accuracy against the baseline (default: joint training when the
    key separates strategies, else the first group), Holm-corrected, with the verdict."""
    pooled = [g.label for g in grouping.groups if g.n]
    return compare_results(grouping, baseline if baseline in pooled else None)


def _pm(d: cs.Describe | None, scale: float = 1.0, digits: int = 4) -> str:
    if d is None or d.n == 0:
        return "—"
    if d.n == 1 or not math.isfinite(d.std):
        return f"{d.mean * scale:.{digits}f}"
    return f"{d.mean * scale:.{digits}f} ± {d.std * scale:.{digits}f}"


def _interval(d: cs.Describe | None, digits: int = 4) -> str:
    if d is None or d.n == 0:
        return "—"
    if d.ci_method is None:
        return d.note or "—"
    return f"[{d.ci_low:.{digits}f}, {d.ci_high:.{digits}f}]"


def _p(p: float) -> str:
    return format_p(p, missing="—")


def verdict_text(row: GroupResult) -> str:
    if row.is_baseline:
        return "baseline"
    if row.n == 0:
        return "no finished run"
    return row.vs_baseline.verdict if row.vs_baseline else cs.NOT_TESTED


def _left_out(row: GroupResult) -> str:
    return "; ".join(f"#{e['id']} {e['reason']}" for e in row.excluded)


def results_table(res: Results, names: Mapping[str, str]) -> pd.DataFrame:
    """The results as the page shows them: one row per group, formatted (accuracies as
    fractions, the difference to the baseline in accuracy points)."""
    base = names.get(res.baseline, res.baseline) if res.baseline else "baseline"
    rows = []
    for r in res.rows:
        m = r.metrics
        row: dict[str, Any] = {"group": names.get(r.label, r.label), "n": r.n}
        t = r.vs_baseline
        row["test acc"] = _pm(m.get(PRIMARY))
        row[f"Δ vs {base} (points)"] = f"{100 * t.diff:+.2f}" if t and math.isfinite(t.diff) else "—"
        row["verdict"] = verdict_text(r)
        row["p (Holm)"] = _p(t.p_holm) if t else "—"
        row["95 % interval"] = _interval(m.get(PRIMARY))
        for mod in res.modalities:
            row[f"test acc {mod}"] = _pm(m.get(f"test.acc.{mod}"))
        row["imbalance degree"] = _pm(m.get("test.imbalance_degree"))
        row["time (s)"] = _pm(m.get("train.seconds"), digits=1)
        row["test"] = (t.test or t.note or "—") if t else "—"
        row["seeds"] = ", ".join(map(str, r.seeds))
        row["not pooled"] = _left_out(r)
        rows.append(row)
    return pd.DataFrame(rows)


def results_csv_rows(res: Results, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """The results with every number unrounded: the group key's paths as columns, then
    mean, std and interval of each metric, the test against the baseline and the verdict."""
    out = []
    for r in res.rows:
        row: dict[str, Any] = {"group": names.get(r.label, r.label), "group key": r.label}
        for path, value in r.key.items():
            row[path] = cg.show_value(value)
        row.update({"n": r.n, "seeds": " ".join(map(str, r.seeds)), "runs": " ".join(map(str, r.run_ids))})
        for metric in res.metrics:
            d = r.metrics.get(metric.id)
            if d is None:
                continue
            row.update({f"{metric.id} mean": d.mean, f"{metric.id} std": d.std})
            if metric.id == PRIMARY:
                row.update(
                    {f"{metric.id} ci low": d.ci_low, f"{metric.id} ci high": d.ci_high, "ci": d.ci_method}
                )
        t = r.vs_baseline
        lo, hi = cs.diff_interval(t, res.confidence) if t else (math.nan, math.nan)
        row.update(
            {
                "baseline": r.is_baseline,
                "diff vs baseline": t.diff if t else math.nan,
                "diff ci low": lo,
                "diff ci high": hi,
                "test": t.test if t else None,
                "p": t.p if t else math.nan,
                "p holm": t.p_holm if t else math.nan,
                "verdict": verdict_text(r),
                "not pooled": _left_out(r),
            }
        )
        out.append(row)
    return out


def winner_sentence(res: Results, names: Mapping[str, str]) -> str | None:
    """Which group wins, by how much and whether beyond seed noise, in one sentence
    (None with fewer than two pooled groups)."""
    base_row = next((r for r in res.rows if r.is_baseline), None)
    others = [r for r in res.rows if not r.is_baseline and r.n and r.vs_baseline is not None]
    if base_row is None or not others:
        return None
    base = names.get(base_row.label, base_row.label)

    def name(r: GroupResult) -> str:
        return names.get(r.label, r.label)

    def test(r: GroupResult) -> cs.TestResult:
        assert r.vs_baseline is not None
        return r.vs_baseline

    def margin(r: GroupResult) -> str:
        text = f"{100 * test(r).diff:+.1f} points"
        lo, hi = cs.diff_interval(test(r), res.confidence)
        if math.isfinite(lo) and math.isfinite(hi):
            text += f" (95 % CI {100 * lo:+.1f} to {100 * hi:+.1f})"
        return text

    def how(r: GroupResult) -> str:
        return f"{test(r).test}, Holm p = {_p(test(r).p_holm)}"

    def mean(r: GroupResult) -> float:
        d = r.metrics.get(PRIMARY)
        return d.mean if d is not None and math.isfinite(d.mean) else -math.inf

    better = [r for r in others if test(r).verdict == cs.BETTER]
    if better:
        top = max(better, key=lambda r: test(r).diff)
        return f"{name(top)} beats {base} by {margin(top)}, beyond seed noise ({how(top)})."
    tested = [r for r in others if test(r).test is not None]
    if not tested:
        top = max(others, key=mean)
        return (
            f"{name(top)} differs from {base} by {margin(top)}, not tested: "
            "a test needs at least two seeds in each group."
        )
    top = max(tested, key=mean)
    if all(test(r).verdict == cs.WORSE for r in tested):
        return (
            f"{base} wins: every other group is worse beyond seed noise "
            f"(the closest, {name(top)}, by {margin(top)}; {how(top)})."
        )
    return (
        f"Nothing beats {base} beyond seed noise: the best, {name(top)}, differs by "
        f"{margin(top)} ({how(top)})."
    )


# --------------------------------------------------------------------------- per run


def per_run_table(
    grouping: cg.Grouping, names: Mapping[str, str], show_excluded: bool = False
) -> tuple[pd.DataFrame, dict[str, bool]]:
    """One row per run (pooled ones; with `show_excluded` also those left out, marked):
    run, seed, group key, status (and why a run is not pooled, or that it is a retry),
    val and test accuracy fused and per modality, F1, imbalance degree, time. Also
    {column: higher is better} for marking the best."""
    shown = [r for r in grouping.runs if r.included or show_excluded]
    mods = modalities_of([r.record for r in shown])
    rows: list[dict[str, Any]] = []
    higher: dict[str, bool] = {}
    for gr in shown:
        rec = gr.record
        note = list(gr.flags)
        if not gr.included:
            note.insert(0, f"not pooled: {gr.reason}")
        row: dict[str, Any] = {
            "run": rec.id,
            "name": rec.name,
            "seed": rec.seed,
            "group": names.get(gr.label, gr.label),
            "status": rec.status if gr.included else f"✗ {rec.status}",
            "note": "; ".join(note),
        }
        for column, path, better_high in SUMMARY_COLUMNS:
            row[column] = _dig(rec.summary, path)
            higher[column] = better_high
            if column in ("val acc", "test acc"):
                split = path[0]
                for m in mods:
                    name = f"{split} acc {m}"
                    row[name] = _dig(rec.summary, (split, "acc_per_modality", m))
                    higher[name] = True
        row["run group"] = rec.group
        row["group key"] = gr.label
        rows.append(row)
    return pd.DataFrame(rows), higher


def summary_table(runs: Sequence[db.RunDetail]) -> tuple[pd.DataFrame, dict[str, bool]]:
    """The per-run table of the runs as grouped by default (every run shown)."""
    grouping = group(runs)
    return per_run_table(grouping, display_names(grouping, runs), show_excluded=True)


def left_out_rows(frame: pd.DataFrame) -> list[bool]:
    """Per row of `per_run_table`: whether the run is left out of the statistics (marked ✗)."""
    if frame.empty or "status" not in frame:
        return [False] * len(frame)
    return [str(s).startswith("✗") for s in frame["status"]]


def best_rows(
    frame: pd.DataFrame, higher: Mapping[str, bool], skip: Sequence[bool] = ()
) -> dict[str, list[int]]:
    """{column: row positions holding its best value} (ties all marked; empty columns and
    the rows flagged in `skip` left out)."""
    out: dict[str, list[int]] = {}
    for column, better_high in higher.items():
        if column not in frame:
            continue
        values = pd.to_numeric(frame[column], errors="coerce")
        if skip:
            values = values.where([not s for s in skip])
        if values.notna().sum() == 0:
            continue
        best = values.max() if better_high else values.min()
        out[column] = [i for i, v in enumerate(values) if pd.notna(v) and v == best]
    return out


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
    """UTF-8 CSV bytes for a download button; text cells and headers that a spreadsheet
    would evaluate (=, +, -, @, tab, CR first) get a leading ' (bml_core.csvsafe)."""
    data = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame))
    data = data.map(safe_cell).rename(columns=lambda c: safe_cell(str(c)))
    buf = io.StringIO()
    data.to_csv(buf, index=False)
    return buf.getvalue().encode("utf-8")

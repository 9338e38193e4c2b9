"""The Compare page's results: one row per group (n, test accuracy with its interval, per
modality, imbalance degree, time, the difference to a baseline group with the verdict of
`bml_core.compare.stats`), its CSV rows, and the sentence naming the winner. Plain
functions; no Streamlit here."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from bml_core.compare import grouping as cg
from bml_core.compare import stats as cs
from bml_core.compare.fmt import format_p, p_clause
from bml_core.compare.results import PRIMARY, GroupResult, Results
from bml_core.compare.results import results as compare_results


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
        return f"{test(r).test}, Holm {p_clause(test(r).p_holm)}"

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

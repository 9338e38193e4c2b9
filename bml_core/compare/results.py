"""The results table of a comparison: per group, each metric of the runs' summaries over
the pooled seeds (n, mean, std, interval), and the fused test accuracy against the
baseline group (paired or Welch t-test, Holm-corrected across groups, verdict).

Used by `bml report` and the dashboard's Compare and Report pages; plain data out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bml_core.compare import stats
from bml_core.compare.grouping import Grouping, RunGroup, RunRecord, default_baseline


@dataclass(frozen=True)
class Metric:
    """One column: `id` (also its JSON key), a title, where its value comes from, its
    unit ("fraction", "s", "ms", "") and whether higher is better."""

    id: str
    title: str
    unit: str
    higher_is_better: bool
    path: tuple[str, ...] = ()

    def value(self, record: RunRecord) -> float | None:
        if self.id == "train.step_ms":
            steps = dig(record.summary, ("train", "steps"))
            seconds = dig(record.summary, ("train", "seconds"))
            return seconds / steps * 1000.0 if steps and seconds is not None else None
        if self.id == "wall_s":
            return record.wall_s
        if self.id == ALERTS:
            alerts = record.summary.get("alerts") if isinstance(record.summary, Mapping) else None
            return float(len(alerts)) if isinstance(alerts, list) else None
        return dig(record.summary, self.path)


PRIMARY = "test.acc"


def dig(node: Any, path: Sequence[str]) -> float | None:
    """A finite number at `path` in nested mappings, else None."""
    for part in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(part)
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node) if math.isfinite(node) else None


def modalities_of(records: Sequence[RunRecord]) -> list[str]:
    """Modalities named in the runs' test `acc_per_modality`, in first-seen order."""
    out: list[str] = []
    for r in records:
        per = dig_map(r.summary, ("test", "acc_per_modality"))
        out.extend(m for m in per if m not in out)
    return out


def dig_map(node: Any, path: Sequence[str]) -> Mapping[str, Any]:
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


TEST_SELECTED = "test_selected_on_test.acc"
ALERTS = "alerts"  # imbalance alerts a run raised (summary `alerts`, issue 12)


def metrics_for(modalities: Sequence[str], test_selected: bool = False, alerts: bool = False) -> list[Metric]:
    """The report's columns: fused test accuracy, macro-F1, mAP, uni-modal accuracy per
    modality, imbalance degree, training time, step time and wall time; with
    `test_selected`, also the official protocol's number (best test accuracy over epochs,
    selected on test: optimistic, never used to pick a model); with `alerts`, the number of
    imbalance alerts per run (bml_core/alerts: fewer is better)."""
    out = [
        Metric("test.acc", "test accuracy", "fraction", True, ("test", "acc")),
        Metric("test.f1", "macro-F1", "fraction", True, ("test", "f1")),
        Metric("test.map", "mAP", "fraction", True, ("test", "map")),
    ]
    if test_selected:
        out.append(
            Metric(
                TEST_SELECTED,
                "best test acc over epochs (selected on test, as the official codes)",
                "fraction",
                True,
                ("test_selected_on_test", "acc"),
            )
        )
    out += [
        Metric(f"test.acc.{m}", f"{m} accuracy", "fraction", True, ("test", "acc_per_modality", m))
        for m in modalities
    ]
    out += [
        Metric("test.imbalance_degree", "imbalance degree", "", False, ("test", "imbalance_degree")),
        *([Metric(ALERTS, "alerts per run", "", False)] if alerts else []),
        Metric("train.seconds", "train time", "s", False, ("train", "seconds")),
        Metric("train.step_ms", "step time", "ms", False),
        Metric("wall_s", "wall time", "s", False),
    ]
    return out


@dataclass
class GroupResult:
    """One row: a group's pooled seeds, each metric described over them, and (for every
    group but the baseline) the fused test accuracy against the baseline."""

    label: str
    key: dict[str, Any]
    strategy: str
    n: int
    seeds: list[int]
    run_ids: list[int]
    metrics: dict[str, stats.Describe]
    per_run: dict[int, dict[str, float | None]]
    is_baseline: bool = False
    vs_baseline: stats.TestResult | None = None
    excluded: list[dict[str, Any]] = field(default_factory=list)

    @property
    def note(self) -> str | None:
        if self.n == 0:
            return "no finished run"
        if self.n == 1:
            return "n = 1: no interval (one seed)"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "key": self.key,
            "strategy": self.strategy,
            "n": self.n,
            "seeds": self.seeds,
            "run_ids": self.run_ids,
            "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
            "per_run": {str(k): v for k, v in self.per_run.items()},
            "is_baseline": self.is_baseline,
            "vs_baseline": self.vs_baseline.to_dict() if self.vs_baseline else None,
            "note": self.note,
            "excluded": self.excluded,
        }


@dataclass
class Results:
    """The table: rows in the grouping's order, the baseline's label and the columns."""

    rows: list[GroupResult]
    baseline: str | None
    metrics: list[Metric]
    modalities: list[str]
    alpha: float
    confidence: float

    def row(self, label: str) -> GroupResult:
        for r in self.rows:
            if r.label == label:
                return r
        raise KeyError(label)


def _row(group: RunGroup, metrics: Sequence[Metric], confidence: float) -> GroupResult:
    records = [r.record for r in group.included]
    per_run = {r.id: {m.id: m.value(r) for m in metrics} for r in records}
    described = {m.id: stats.describe([per_run[r.id][m.id] for r in records], confidence) for m in metrics}
    return GroupResult(
        label=group.label,
        key=group.key,
        strategy=group.strategy,
        n=group.n,
        seeds=group.seeds,
        run_ids=group.run_ids,
        metrics=described,
        per_run=per_run,
        excluded=[r.to_dict() for r in group.excluded],
    )


def results(
    grouping: Grouping,
    baseline: str | None = None,
    alpha: float = stats.significance_level,
    confidence: float = stats.confidence_level,
) -> Results:
    """Describe every group and test each against the baseline (default: joint training
    when the key separates strategies, else the first group) on fused test accuracy.
    KeyError naming the groups for an unknown baseline."""
    if baseline is not None:
        baseline = grouping.resolve(baseline) or baseline
    if baseline is not None and baseline not in [g.label for g in grouping.groups]:
        raise KeyError(
            f"baseline {baseline!r} is not a group; groups: {', '.join(g.label for g in grouping.groups)}"
        )
    base = baseline if baseline is not None else default_baseline(grouping)
    pooled = [r.record for g in grouping.groups for r in g.included]
    test_selected = any(dig(r.summary, ("test_selected_on_test", "acc")) is not None for r in pooled)
    alerts = any(isinstance(r.summary, dict) and isinstance(r.summary.get("alerts"), list) for r in pooled)
    metrics = metrics_for(modalities_of(pooled), test_selected, alerts)
    mods = modalities_of(pooled)
    rows = [_row(g, metrics, confidence) for g in grouping.groups]
    primary = next(m for m in metrics if m.id == PRIMARY)
    if base is not None:
        by_seed = {
            row.label: [
                (seed, row.per_run[rid][primary.id]) for seed, rid in zip(row.seeds, row.run_ids, strict=True)
            ]
            for row in rows
            if row.n
        }
        tests = stats.compare_to_baseline(by_seed, base, alpha) if base in by_seed else {}
        for row in rows:
            row.is_baseline = row.label == base
            row.vs_baseline = tests.get(row.label)
    return Results(rows, base, metrics, mods, alpha, confidence)

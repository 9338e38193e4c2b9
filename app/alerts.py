"""Imbalance alerts as the dashboard shows them (torch-free, no Streamlit): the alerts
among a run's events (newest first), one-line evidence, markers for the charts at the
alerts' steps, the "Try this" address, and the runs that need attention."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

import db

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
SEVERITY_COLOR = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
DETECTOR_LABEL = {
    "dominance": "dominance",
    "under_optimised": "under-optimised modality",
    "suppressed_gradients": "suppressed gradients",
    "saturation": "modulation saturation",
    "divergence": "divergence",
    "overfitting": "overfitting",
}
strip_shown = 5  # alerts shown in the strip; the rest in an expander
attention_scan = 200  # latest runs looked at for the Overview's "needs attention"


def alerts_of(events: Iterable[db.EventInfo]) -> list[db.EventInfo]:
    """The alerts among `events`, newest first."""
    return sorted((e for e in events if e.kind == "alert"), key=lambda e: e.id, reverse=True)


def severity(event: db.EventInfo) -> str:
    return str((event.data or {}).get("severity") or "warning")


def _num(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if math.isfinite(v) else str(v)
    return str(v)


def evidence_text(event: db.EventInfo, limit: int = 6) -> str:
    """The evidence's scalar numbers as `key value · ...` (lists and objects left out)."""
    ev = (event.data or {}).get("evidence") or {}
    parts = [f"{k} {_num(v)}" for k, v in ev.items() if isinstance(v, int | float | str) and v is not None]
    return " · ".join(parts[:limit])


def has_strategy_advice(event: db.EventInfo) -> bool:
    advice = (event.data or {}).get("advice") or {}
    return bool(advice.get("strategies") or advice.get("overrides"))


def try_this_query(run_id: int, alert_id: int) -> dict[str, str]:
    """Query parameters of `/launch?from=RUN_ID&advice=ALERT_ID`."""
    return {"from": str(run_id), "advice": str(alert_id)}


def add_markers(figure: dict[str, Any], alerts: Sequence[db.EventInfo]) -> dict[str, Any]:
    """A vertical dotted line at each alert's step on a chart (x = step), coloured by
    severity, with the detector as hover text. Returns the figure (changed in place)."""
    steps = [(e.step, e) for e in alerts if e.step is not None]
    if not steps:
        return figure
    layout = figure.setdefault("layout", {})
    shapes = list(layout.get("shapes") or [])
    for step, e in steps:
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": step,
                "x1": step,
                "y0": 0,
                "y1": 1,
                "line": {"color": SEVERITY_COLOR.get(severity(e), "#ff7f0e"), "width": 1, "dash": "dot"},
                "name": f"alert {e.id}",
            }
        )
    layout["shapes"] = shapes
    notes = list(layout.get("annotations") or [])
    for step, e in steps:
        notes.append(
            {
                "x": step,
                "y": 1.0,
                "xref": "x",
                "yref": "paper",
                "text": "▼",
                "showarrow": False,
                "yanchor": "bottom",
                "font": {"color": SEVERITY_COLOR.get(severity(e), "#ff7f0e"), "size": 11},
                "hovertext": e.message,
                "name": f"alert {e.id}",
            }
        )
    layout["annotations"] = notes
    return figure


@dataclass(frozen=True)
class Attention:
    """A run with alerts: how many by severity, and the newest one's message."""

    run: db.RunInfo
    counts: dict[str, int]
    latest: str

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def counts_text(counts: dict[str, int]) -> str:
    """`3 (1 critical, 2 warning)`; empty for none."""
    total = sum(counts.values())
    if not total:
        return ""
    parts = [f"{counts[s]} {s}" for s in ("critical", "warning", "info") if counts.get(s)]
    return f"{total} ({', '.join(parts)})"


def needing_attention(engine: Engine, limit: int = 10) -> list[Attention]:
    """Among the latest runs, those with critical or warning alerts, most severe first."""
    runs = db.list_runs(engine, limit=attention_scan).runs
    counts = db.alert_counts(engine, [r.id for r in runs])
    out: list[Attention] = []
    for r in runs:
        c = counts.get(r.id, {})
        if not (c.get("critical") or c.get("warning")):
            continue
        newest = db.run_events(engine, r.id, kind="alert")
        out.append(Attention(r, c, newest[-1].message if newest else ""))
    out.sort(key=lambda a: (-a.counts.get("critical", 0), -a.counts.get("warning", 0), -a.run.id))
    return out[:limit]

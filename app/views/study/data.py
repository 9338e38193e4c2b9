"""The Study page's data (no Streamlit): a study read from Optuna's tables in the store
(`db.studies.optuna_storage`), its trials as rows, the best trial, and the Plotly figures
(plain dicts for app.plotly_chart): the value per trial with the best-so-far line, each
trial's intermediate values per evaluation (pruned ones dashed, their last point marked) and
each searched parameter against the value."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

HISTORY_TITLE = "Value per trial"
INTERMEDIATE_TITLE = "Intermediate values per evaluation"
PARAM_TITLE = "Parameter vs value"
refresh_interval_s = 2.0
PRUNED_MARKER = "x"


@dataclass
class TrialRow:
    number: int
    state: str  # running | complete | pruned | fail | waiting
    params: dict[str, Any]
    value: float | None
    run_ids: list[int]
    intermediate: dict[int, float]


@dataclass
class StudyView:
    name: str
    direction: str  # maximize | minimize
    metric: str
    budget: int | None
    trials: list[TrialRow] = field(default_factory=list)

    @property
    def maximize(self) -> bool:
        return self.direction == "maximize"

    @property
    def best(self) -> TrialRow | None:
        done = [t for t in self.trials if t.state == "complete" and t.value is not None]
        if not done:
            return None
        pick = max if self.maximize else min
        return pick(done, key=lambda t: t.value if t.value is not None else -math.inf)

    @property
    def active(self) -> bool:
        """Trials still running, or the budget not spent yet (the driver is asking for more)."""
        finished = sum(t.state in ("complete", "pruned", "fail") for t in self.trials)
        running = any(t.state in ("running", "waiting") for t in self.trials)
        return running or (self.budget is not None and finished < self.budget)

    @property
    def param_names(self) -> list[str]:
        return sorted({k for t in self.trials for k in t.params})


def study_names(engine: Engine) -> list[str]:
    import optuna

    from db.studies import optuna_storage

    return sorted(s.study_name for s in optuna.get_all_study_summaries(optuna_storage(engine)))


def load_study(engine: Engine, name: str) -> StudyView | None:
    """The study `name` read now (None when there is none)."""
    import optuna

    from db.studies import optuna_storage

    try:
        study = optuna.load_study(study_name=name, storage=optuna_storage(engine))
    except KeyError:
        return None
    attrs = study.user_attrs
    view = StudyView(
        name=name,
        direction=study.direction.name.lower(),
        metric=str(attrs.get("metric", "value")),
        budget=int(attrs["trials"]) if attrs.get("trials") else None,
    )
    for t in study.get_trials(deepcopy=False):
        view.trials.append(
            TrialRow(
                number=t.number,
                state=t.state.name.lower(),
                params=dict(t.params),
                value=t.value,
                run_ids=[int(i) for i in t.user_attrs.get("run_ids", [])],
                intermediate={int(k): float(v) for k, v in sorted(t.intermediate_values.items())},
            )
        )
    return view


def table_rows(view: StudyView) -> list[dict[str, Any]]:
    """One row per trial for the page's table (the runs as /live links)."""
    return [
        {
            "trial": t.number,
            "state": t.state,
            **{k: t.params.get(k) for k in view.param_names},
            view.metric: t.value,
            "evaluations": len(t.intermediate),
            "run": f"/live?run={t.run_ids[0]}" if t.run_ids else None,
        }
        for t in view.trials
    ]


def best_so_far(values: list[float | None], maximize: bool) -> list[float | None]:
    out: list[float | None] = []
    best: float | None = None
    for v in values:
        if v is not None and (best is None or (v > best if maximize else v < best)):
            best = v
        out.append(best)
    return out


def history_figure(view: StudyView) -> dict[str, Any]:
    done = [t for t in view.trials if t.state == "complete" and t.value is not None]
    # Optuna gives a pruned trial its last intermediate value: drawn apart, never the best
    pruned = [t for t in view.trials if t.state == "pruned" and t.value is not None]
    xs = [t.number for t in done]
    ys = [t.value for t in done]
    data = [
        {"type": "scatter", "mode": "markers", "name": "trial", "x": xs, "y": ys, "marker": {"size": 8}},
        {
            "type": "scatter",
            "mode": "markers",
            "name": "pruned (last value)",
            "x": [t.number for t in pruned],
            "y": [t.value for t in pruned],
            "marker": {"size": 9, "symbol": PRUNED_MARKER, "color": "#9aa0a6"},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": "best so far",
            "x": xs,
            "y": best_so_far(ys, view.maximize),
            "line": {"shape": "hv"},
        },
    ]
    layout = {
        "title": {"text": HISTORY_TITLE},
        "xaxis": {"title": {"text": "trial"}},
        "yaxis": {"title": {"text": view.metric}},
        "height": 340,
        "uirevision": view.name,
    }
    return {"data": data, "layout": layout}


def intermediate_figure(view: StudyView) -> dict[str, Any]:
    data: list[dict[str, Any]] = []
    for t in view.trials:
        if not t.intermediate:
            continue
        steps, values = list(t.intermediate), list(t.intermediate.values())
        pruned = t.state == "pruned"
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": f"trial {t.number}" + (" (pruned)" if pruned else ""),
                "x": steps,
                "y": values,
                "line": {"dash": "dot" if pruned else "solid", "width": 1 if pruned else 2},
                # the pruned trial's last evaluation marked with a cross
                "marker": {
                    "symbol": [
                        PRUNED_MARKER if pruned and i == len(steps) - 1 else "circle"
                        for i in range(len(steps))
                    ],
                    "size": [11 if pruned and i == len(steps) - 1 else 5 for i in range(len(steps))],
                },
            }
        )
    layout = {
        "title": {"text": INTERMEDIATE_TITLE},
        "xaxis": {"title": {"text": "evaluation"}, "dtick": 1},
        "yaxis": {"title": {"text": view.metric}},
        "height": 380,
        "uirevision": view.name,
    }
    return {"data": data, "layout": layout}


def param_figure(view: StudyView, param: str) -> dict[str, Any]:
    done = [t for t in view.trials if t.state == "complete" and t.value is not None and param in t.params]
    values = [t.params[param] for t in done]
    log = (
        bool(values)
        and all(isinstance(v, (int, float)) and v > 0 for v in values)
        and (max(values) / min(values) >= 100)
    )
    data = [
        {
            "type": "scatter",
            "mode": "markers",
            "name": param,
            "x": values,
            "y": [t.value for t in done],
            "text": [f"trial {t.number}" for t in done],
            "marker": {"size": 9},
        }
    ]
    layout = {
        "title": {"text": f"{PARAM_TITLE}: {param}"},
        "xaxis": {"title": {"text": param}, **({"type": "log"} if log else {})},
        "yaxis": {"title": {"text": view.metric}},
        "height": 320,
        "uirevision": f"{view.name}:{param}",
    }
    return {"data": data, "layout": layout}

"""The Live page's data: a run's series held in the session as downsampled buckets (the
history) followed by the points that arrived since (the incremental polls), its events,
and the panels drawn from them (the common panels, and one per metric family of each
strategy spec: no strategy is named in app/). `refresh` asks the store only for points after the last
step it has, and re-reads the downsampled history when the raw tail grows past a bound,
so a refresh costs the same at step 100 and at step 1,000,000."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

import db
from app.charts import Trace, line_figure_dict
from bml_core.strategies.spec import MetricFamily, all_specs

refresh_interval_s = 1.0
history_max_buckets = 600
poll_max_points = 2_000  # per key and refresh; more means the chart fell behind: re-read the history
tail_compaction_points = 1_200  # raw points kept after the history before it is re-read
events_shown = 200


@dataclass(frozen=True)
class Panel:
    """One chart of the Live page: the series it draws, chosen by exact key or prefix."""

    name: str
    title: str
    y_title: str
    exact: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    hline: float | None = None

    def keys(self, available: Sequence[str]) -> list[str]:
        return [k for k in available if k in self.exact or any(k.startswith(p) for p in self.prefixes)]


SHARED_PANEL = "modulation"  # families with panel="modulation" are drawn together here


def _family_prefix(family: MetricFamily) -> str:
    return family.key + "/" if family.per_modality else family.key


def strategy_families() -> list[MetricFamily]:
    """Every step metric family of the discovered strategy specs (built-ins and plug-ins)."""
    seen: dict[str, MetricFamily] = {}
    for spec in all_specs():
        for family in spec.metrics:
            if family.kind == "step":
                seen.setdefault(family.key, family)
    return list(seen.values())


def modulation_panel(families: Sequence[MetricFamily]) -> Panel:
    """The shared panel: each strategy's per-modality modulation strength that asks for it."""
    joined = [f for f in families if f.panel == SHARED_PANEL]
    axes = [f.y_axis for f in joined if f.y_axis]
    return Panel(
        SHARED_PANEL,
        "Modulation per modality: " + ", ".join(f.title.split(" per modality")[0] for f in joined),
        ", ".join(dict.fromkeys(axes)),
        prefixes=tuple(_family_prefix(f) for f in joined),
    )


def family_panel(family: MetricFamily) -> Panel:
    """A strategy metric family's own panel, from its spec's hint."""
    if family.per_modality:
        return Panel(
            f"family-{family.key.replace('/', '-')}",
            family.title,
            family.y_axis,
            prefixes=(family.key + "/",),
            hline=family.reference,
        )
    return Panel(
        f"family-{family.key.replace('/', '-')}",
        family.title,
        family.y_axis,
        exact=(family.key,),
        hline=family.reference,
    )


_RATIO = Panel(
    "ratio",
    "Discrepancy ratio ρ per modality (> 1: dominant)",
    "ρ",
    prefixes=("imbalance/ratio/",),
    hline=1.0,
)
_COMMON = (
    Panel(
        "accuracy",
        "Uni-modal vs fused accuracy (train batches, val)",
        "accuracy",
        exact=("train/acc", "val/acc"),
        prefixes=("train/acc/", "val/acc/"),
    ),
    Panel(
        "loss",
        "Losses",
        "loss",
        exact=("train/loss", "val/loss"),
        prefixes=("train/loss/", "train/loss_term/"),
    ),
    Panel("grad", "Gradient norm per modality", "‖g‖", prefixes=("grad/norm/",)),
)


def common_panels() -> tuple[Panel, ...]:
    """The panels every run may have: ρ, the shared modulation panel, accuracy, loss, gradients."""
    return (_RATIO, modulation_panel(strategy_families()), *_COMMON)


def panels() -> list[Panel]:
    """The common panels, then one per strategy metric family that has its own panel (drawn
    only when the run logged the family's series)."""
    return [*common_panels(), *(family_panel(f) for f in strategy_families() if f.panel is None)]


PANELS = common_panels()  # as discovered at import; `panels()` re-reads the specs


@dataclass
class LiveSeries:
    """A series as the chart holds it: bucket means up to `history_last_step`, then raw points."""

    key: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    history_last_step: int = -1
    tail_points: int = 0

    @property
    def last_step(self) -> int:
        """The last step this series holds (a bucket is drawn at its first step but covers
        steps up to `history_last_step`)."""
        return self.steps[-1] if self.tail_points else self.history_last_step


@dataclass
class LiveState:
    """What the Live page holds for one run across refreshes (kept in session state)."""

    run_id: int
    series: dict[str, LiveSeries] = field(default_factory=dict)
    events: list[db.EventInfo] = field(default_factory=list)
    run: db.RunDetail | None = None
    refreshes: int = 0
    last_new_points: int = 0  # points the last refresh fetched incrementally
    last_history_reads: int = 0  # series whose history the last refresh re-read


def _load_history(engine: Engine, state: LiveState, keys: list[str]) -> None:
    if not keys:
        return
    for key, ds in db.downsampled_many(engine, state.run_id, keys, history_max_buckets).items():
        state.series[key] = LiveSeries(
            key=key,
            steps=list(ds.steps),
            values=list(ds.means),
            history_last_step=ds.last_steps[-1] if ds.last_steps else -1,
        )
    state.last_history_reads += len(keys)


def refresh(engine: Engine, state: LiveState) -> LiveState:
    """Bring the state up to date: the run row, new series, new points, new events."""
    state.run = db.get_run(engine, state.run_id)
    state.refreshes += 1
    state.last_new_points = 0
    state.last_history_reads = 0
    keys = db.series_keys(engine, state.run_id)
    fresh = [k for k in keys if k not in state.series]
    known = [k for k in keys if k in state.series]
    _load_history(engine, state, fresh)
    if known:
        after = {k: state.series[k].last_step for k in known}
        polled = db.series_since(engine, state.run_id, after, keys=known, limit=poll_max_points)
        reread: list[str] = []
        for key, data in polled.items():
            live = state.series[key]
            live.steps.extend(data.steps)
            live.values.extend(data.values)
            live.tail_points += len(data.steps)
            state.last_new_points += len(data.steps)
            if len(data.steps) >= poll_max_points or live.tail_points > tail_compaction_points:
                reread.append(key)
        _load_history(engine, state, reread)
    after_id = state.events[-1].id if state.events else 0
    state.events.extend(db.run_events(engine, state.run_id, after_id=after_id, limit=events_shown))
    state.events = state.events[-events_shown:]
    return state


def is_active(run: db.RunInfo | None) -> bool:
    """Whether the run can still change (the page keeps refreshing while it is)."""
    return run is not None and run.status not in db.TERMINAL_STATUSES


def refresh_every_s(run: db.RunInfo | None) -> float | None:
    """The fragment's refresh interval: every `refresh_interval_s` while the run is active, never after."""
    return refresh_interval_s if is_active(run) else None


def trace_label(panel: Panel, key: str) -> str:
    """The legend entry: the modality alone in a one-prefix panel (`audio`), else the key."""
    if len(panel.prefixes) == 1 and not panel.exact and key.startswith(panel.prefixes[0]):
        return key[len(panel.prefixes[0]) :]
    return key


def panel_figure(state: LiveState, panel: Panel) -> dict[str, Any] | None:
    """The panel's figure (plain Plotly data), or None when the run has none of its series."""
    keys = panel.keys(sorted(state.series))
    if not keys:
        return None
    traces = []
    for key in keys:
        s = state.series[key]
        traces.append(
            Trace(name=trace_label(panel, key), x=s.steps, y=s.values, markers=key.startswith("val/"))
        )
    return line_figure_dict(
        traces,
        title=panel.title,
        y_title=panel.y_title,
        uirevision=f"live-{state.run_id}-{panel.name}",
        hline=panel.hline,
    )


def latest_of(state: LiveState, prefix: str) -> dict[str, float]:
    """The newest value of each series whose key starts with `prefix`, by the rest of the key."""
    out: dict[str, float] = {}
    for key, s in sorted(state.series.items()):
        if key.startswith(prefix) and s.values:
            out[key[len(prefix) :]] = s.values[-1]
    return out

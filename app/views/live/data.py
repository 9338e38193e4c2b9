"""The Live page's data: a run's series held in the session as downsampled buckets (the
history) followed by the points that arrived since (the incremental polls), its events,
and the panels drawn from them (the common panels, and the panels of each strategy spec's
metric families: never two strategies on one chart; no strategy is named in app/). Per-step
series are drawn EMA-smoothed (the raw line faint behind), raw, or as per-epoch mean and
range; the header reads the dominant modality (and since which step) and ρ as a recent
mean; a finished run's result comes from its summary. `refresh` asks the store only for points after the last
step it has, and re-reads the downsampled history when the raw tail grows past a bound,
so a refresh costs the same at step 100 and at step 1,000,000."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

import db
from app.charts import Trace, line_figure_dict
from bml_core.strategies.spec import MetricFamily, all_specs


def _seconds_from_env(name: str, default: float, low: float, high: float) -> float:
    """A duration from the environment (`BML_LIVE_POLL_S`, `BML_LIVE_REFRESH_S`), clamped to
    [low, high]; the default when it is unset or not a number."""
    try:
        value = float(os.environ.get(name, "").strip() or default)
    except ValueError:
        return default
    return min(high, max(low, value)) if math.isfinite(value) else default


# While a run is active the page asks the store every `poll_interval_s` whether anything it
# draws has changed (`db.change_mark`: a few index lookups) and refreshes as soon as it has;
# with nothing new it refreshes anyway after `refresh_interval_s` (the ETA, the status).
poll_interval_s = _seconds_from_env("BML_LIVE_POLL_S", 0.1, 0.02, 5.0)
refresh_interval_s = _seconds_from_env("BML_LIVE_REFRESH_S", 1.0, 0.1, 60.0)
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


def _family_prefix(family: MetricFamily) -> str:
    return family.key + "/" if family.per_modality else family.key


def strategy_families_by_spec() -> list[tuple[str, MetricFamily]]:
    """(strategy name, family) for every step metric family of the discovered specs."""
    seen: dict[str, tuple[str, MetricFamily]] = {}
    for spec in all_specs():
        for family in spec.metrics:
            if family.kind == "step":
                seen.setdefault(family.key, (spec.name, family))
    return list(seen.values())


def strategy_families() -> list[MetricFamily]:
    """Every step metric family of the discovered strategy specs (built-ins and plug-ins)."""
    return [family for _, family in strategy_families_by_spec()]


def shared_panel(strategy: str, name: str, families: Sequence[MetricFamily]) -> Panel:
    """One panel for the families of ONE strategy that name the same `panel`."""
    axes = [f.y_axis for f in families if f.y_axis]
    refs = {f.reference for f in families}
    return Panel(
        f"{strategy}-{name}",
        "; ".join(f.title for f in families),
        ", ".join(dict.fromkeys(axes)),
        exact=tuple(f.key for f in families if not f.per_modality),
        prefixes=tuple(_family_prefix(f) for f in families if f.per_modality),
        hline=next(iter(refs)) if len(refs) == 1 else None,
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
    # plain ASCII: the page font has no double vertical bar (U+2016) and drew a stray glyph
    Panel("grad", "Gradient norm per modality", "gradient L2 norm", prefixes=("grad/norm/",)),
)


def common_panels() -> tuple[Panel, ...]:
    """The panels every run may have: ρ, accuracy, loss, gradients."""
    return (_RATIO, *_COMMON)


def panels() -> list[Panel]:
    """The common panels, then the strategies' panels: one per metric family, or one per
    (strategy, `panel` hint) for families of one strategy that share it (drawn only when
    the run logged the family's series)."""
    out = list(common_panels())
    shared: dict[tuple[str, str], list[MetricFamily]] = {}
    for strategy, family in strategy_families_by_spec():
        if family.panel is None:
            out.append(family_panel(family))
        else:
            if (strategy, family.panel) not in shared:
                out.append(Panel(f"{strategy}-{family.panel}", "", ""))  # placeholder, keeps the order
            shared.setdefault((strategy, family.panel), []).append(family)
    for (strategy, name), families in shared.items():
        index = next(i for i, p in enumerate(out) if p.name == f"{strategy}-{name}")
        out[index] = shared_panel(strategy, name, families)
    return out


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
    mark: tuple[Any, ...] | None = None  # `db.change_mark` as read at the start of the last refresh
    refreshed_at: float = 0.0  # time.monotonic() of the last refresh
    checks: int = 0  # `is_due` calls
    asked_at: float | None = None  # when the page's change check last asked for a refresh


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
    """Bring the state up to date: the run row, new series, new points, new events. The
    change mark is read first, so what is committed while the refresh reads is newer than it."""
    state.mark = db.change_mark(engine, state.run_id)
    state.refreshed_at = time.monotonic()
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


def is_due(engine: Engine, state: LiveState) -> bool:
    """Whether the page should refresh now: something it draws changed since the last refresh
    (`db.change_mark` moved: a few index lookups, no points read), or that refresh is
    `refresh_interval_s` old (the ETA, a heartbeat)."""
    state.checks += 1
    if state.mark is None or time.monotonic() - state.refreshed_at >= refresh_interval_s:
        return True
    return db.change_mark(engine, state.run_id) != state.mark


def is_active(run: db.RunInfo | None) -> bool:
    """Whether the run can still change (the page keeps refreshing while it is)."""
    return run is not None and run.status not in db.TERMINAL_STATUSES


def refresh_every_s(run: db.RunInfo | None) -> float | None:
    """The page's change check timer: every `poll_interval_s` while the run is active (each
    tick asks `is_due`, and the charts' fragment reruns only when it says so), never after."""
    return poll_interval_s if is_active(run) else None


def trace_label(panel: Panel, key: str) -> str:
    """The legend entry: the modality alone in a one-prefix panel (`audio`), else the key."""
    if len(panel.prefixes) == 1 and not panel.exact and key.startswith(panel.prefixes[0]):
        return key[len(panel.prefixes[0]) :]
    return key


# How per-step series are drawn (evaluation series, `val/...`, are always drawn as logged)
SMOOTH_EMA, SMOOTH_RAW, SMOOTH_EPOCH = "EMA-smoothed", "raw", "per-epoch mean and range"
SMOOTHING_MODES = (SMOOTH_EMA, SMOOTH_RAW, SMOOTH_EPOCH)
ema_weight_default = 0.9
raw_opacity = 0.25  # the raw line behind an EMA line
rho_window_points = 20  # the header's ρ: the mean of this many latest points
dominance_margin = 0.02  # a recent ρ within 2 % of 1 is "balanced", not dominant


@dataclass(frozen=True)
class View:
    """How the page draws per-step series: `mode` one of SMOOTHING_MODES; `weight` the EMA's
    weight on the past (0: raw, 0.99: very smooth); `steps_per_epoch` for the per-epoch view."""

    mode: str = SMOOTH_EMA
    weight: float = ema_weight_default
    steps_per_epoch: int | None = None


def ema(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with the start-up bias removed (as TensorBoard draws it):
    s_t = w s_(t-1) + (1 - w) x_t, shown as s_t / (1 - w^t). Non-finite values are skipped
    (drawn as gaps, the average carries on)."""
    out: list[float] = []
    acc, n = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(v):
            out.append(math.nan)
            continue
        n += 1
        acc = weight * acc + (1.0 - weight) * v
        out.append(acc / (1.0 - weight**n) if weight > 0 else v)
    return out


def per_epoch(
    steps: Sequence[int], values: Sequence[float], steps_per_epoch: int
) -> tuple[list[int], list[float], list[float], list[float]]:
    """(x, mean, min, max) per epoch (steps 1..spe are epoch 0); x is the epoch's last step seen."""
    buckets: dict[int, list[tuple[int, float]]] = {}
    for s, v in zip(steps, values, strict=True):
        if v is not None and math.isfinite(v):
            buckets.setdefault((max(1, s) - 1) // steps_per_epoch, []).append((s, v))
    xs, means, lows, highs = [], [], [], []
    for epoch in sorted(buckets):
        pts = buckets[epoch]
        vals = [v for _, v in pts]
        xs.append(max(s for s, _ in pts))
        means.append(sum(vals) / len(vals))
        lows.append(min(vals))
        highs.append(max(vals))
    return xs, means, lows, highs


def total_variation(values: Sequence[float | None]) -> float:
    """Sum of |y_t - y_(t-1)| over the finite values: how much a drawn line jumps."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(abs(b - a) for a, b in zip(finite, finite[1:], strict=False))


def steps_per_epoch(run: db.RunDetail | None) -> int | None:
    """Training steps per epoch, from the run's total steps and its configured epochs."""
    if run is None or not run.total_steps:
        return None
    epochs = int(((run.config or {}).get("train") or {}).get("epochs") or 0)
    return max(1, run.total_steps // epochs) if epochs > 0 else None


def is_step_series(key: str) -> bool:
    return not key.startswith(("val/", "test/"))


def panel_figure(state: LiveState, panel: Panel, view: View | None = None) -> dict[str, Any] | None:
    """The panel's figure (plain Plotly data), or None when the run has none of its series.
    Per-step series follow `view` (default: raw, as logged)."""
    keys = panel.keys(sorted(state.series))
    if not keys:
        return None
    view = view or View(mode=SMOOTH_RAW)
    traces: list[Trace] = []
    raw_behind: dict[int, Trace] = {}
    for key in keys:
        s = state.series[key]
        name = trace_label(panel, key)
        if not is_step_series(key) or view.mode == SMOOTH_RAW:
            traces.append(Trace(name=name, x=s.steps, y=s.values, markers=key.startswith("val/")))
        elif view.mode == SMOOTH_EPOCH and view.steps_per_epoch:
            xs, means, lows, highs = per_epoch(s.steps, s.values, view.steps_per_epoch)
            traces.append(
                Trace(name=f"{name} (epoch mean)", x=xs, y=means, lower=lows, upper=highs, markers=True)
            )
        else:
            # the raw line keeps the series' name (legend and readers see one "audio"), marked by meta.raw
            raw_behind[len(traces)] = Trace(name=name, x=s.steps, y=s.values)
            traces.append(Trace(name=name, x=s.steps, y=ema(s.values, view.weight)))
    fig = line_figure_dict(
        traces,
        title=panel.title,
        y_title=panel.y_title,
        uirevision=f"live-{state.run_id}-{panel.name}",
        hline=panel.hline,
    )
    if raw_behind:
        data: list[dict[str, Any]] = list(fig["data"])  # type: ignore[call-overload]
        lines = [d for d in data if not str(d.get("name", "")).endswith(" band")]
        faint = []
        for index, raw in raw_behind.items():
            line = lines[index]
            faint.append(
                {
                    "type": "scatter",
                    "x": list(raw.x),
                    "y": [None if not math.isfinite(v) else v for v in raw.y],
                    "name": raw.name,
                    "mode": "lines",
                    "line": {"color": line["line"]["color"], "width": 1},
                    "opacity": raw_opacity,
                    "showlegend": False,
                    "hoverinfo": "skip",
                    "legendgroup": line.get("legendgroup"),
                    "meta": {"raw": True},
                }
            )
        fig["data"] = faint + data  # drawn first: behind the smoothed lines
    return fig


def recent_mean(series: LiveSeries, points: int = rho_window_points) -> float | None:
    finite = [v for v in series.values[-points:] if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def recent_ratios(state: LiveState, points: int = rho_window_points) -> dict[str, float]:
    """ρ per modality as the mean of its latest `points` points (one step is noise)."""
    out: dict[str, float] = {}
    for key, s in sorted(state.series.items()):
        if key.startswith("imbalance/ratio/"):
            mean = recent_mean(s, points)
            if mean is not None:
                out[key[len("imbalance/ratio/") :]] = mean
    return out


@dataclass(frozen=True)
class Dominance:
    modality: str | None  # None: no modality's recent ρ is above 1
    since_step: int | None  # the first step of the stretch in which it has led (smoothed ρ)


def dominance(state: LiveState, weight: float = ema_weight_default) -> Dominance:
    """Which modality dominates (the highest recent ρ, if above 1 + `dominance_margin`) and
    since which step it has led on the EMA-smoothed ρ without interruption."""
    recent = recent_ratios(state)
    if not recent:
        return Dominance(None, None)
    leader = max(recent, key=lambda m: recent[m])
    if recent[leader] <= 1.0 + dominance_margin:
        return Dominance(None, None)
    smoothed = {}
    for m in recent:
        s = state.series[f"imbalance/ratio/{m}"]
        smoothed[m] = dict(zip(s.steps, ema(s.values, weight), strict=True))
    steps = sorted(set(smoothed[leader]))
    since: int | None = None
    for step in steps:
        values = {m: by_step.get(step) for m, by_step in smoothed.items()}
        finite = {m: v for m, v in values.items() if v is not None and math.isfinite(v)}
        leads = bool(finite) and max(finite, key=lambda m: finite[m]) == leader
        if leads and since is None:
            since = step
        elif not leads:
            since = None
    return Dominance(leader, since)


@dataclass(frozen=True)
class Result:
    """A finished run's result, from its summary."""

    test_acc: float | None
    test_acc_per_modality: dict[str, float]
    best_epoch: int | None
    imbalance_degree: float | None


def result_of(summary: dict[str, Any] | None) -> Result | None:
    """The result block's numbers, or None when the run has no test result."""
    test = (summary or {}).get("test")
    if not isinstance(test, dict):
        return None
    per = test.get("acc_per_modality") or {}
    best = (summary or {}).get("best_epoch")
    return Result(
        test_acc=test.get("acc"),
        test_acc_per_modality={str(m): float(v) for m, v in per.items() if v is not None},
        best_epoch=int(best) if best is not None else None,
        imbalance_degree=test.get("imbalance_degree"),
    )


def baseline_for(engine: Engine, run: db.RunDetail) -> db.RunInfo | None:
    """A finished joint-training run of the same group and dataset to compare with."""
    if run.strategy == "joint":
        return None
    page = db.list_runs(engine, group=run.group, strategy="joint", status="succeeded", limit=50)
    same = [r for r in page.runs if r.dataset == run.dataset and r.id != run.id]
    return same[0] if same else None


def fmt(value: float | None, digits: int = 4) -> str:
    """A number as the page shows it; an em dash when there is none."""
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def latest_of(state: LiveState, prefix: str) -> dict[str, float]:
    """The newest value of each series whose key starts with `prefix`, by the rest of the key."""
    out: dict[str, float] = {}
    for key, s in sorted(state.series.items()):
        if key.startswith(prefix) and s.values:
            out[key[len(prefix) :]] = s.values[-1]
    return out


def environment_rows(env: dict[str, Any] | None) -> list[tuple[str, str]]:
    """A run's recorded environment (bml_core.provenance) as (what, value) rows to show;
    empty when the run recorded none (it has not started, or ran before this was recorded)."""
    if not env:
        return []
    git = env.get("git") or {}
    packages = env.get("packages") or {}
    rows = [
        ("bml-studio", str(env.get("project_version") or "—")),
        (
            "code commit",
            f"{git['commit'][:12]}{' (uncommitted changes)' if git.get('dirty') else ''}"
            if git
            else "not a checkout",
        ),
        ("Python", str(env.get("python") or "—")),
        *((name, str(version or "—")) for name, version in sorted(packages.items())),
        ("CUDA / cuDNN", f"{env.get('cuda') or '—'} / {env.get('cudnn') or '—'}"),
        ("GPU", str(env.get("gpu") or "none (CPU)")),
        ("device", str(env.get("device") or "—")),
        ("platform", str(env.get("platform") or "—")),
        ("worker host", f"{env.get('host') or '—'} ({env.get('worker') or '—'})"),
    ]
    for item in env.get("data") or []:
        rows.append((f"data {item['path']}", f"sha256 {item['sha256'][:16]}… ({item['size']} bytes)"))
    return rows

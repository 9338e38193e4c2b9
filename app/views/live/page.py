"""Live (`/live?run=ID`): one run's imbalance as it trains. The header says which modality
dominates and since which step, with ρ as a recent mean; per-step series are drawn
EMA-smoothed (raw faint behind), raw, or as per-epoch mean and range; every strategy has
its own panels. While the run is active a fragment that draws nothing asks the store every
`poll_interval_s` (0.1 s) whether anything the page draws changed (`db.change_mark`, a few
index lookups) and reruns the charts' fragment as soon as it has, which fetches only the new
points (at the latest after `refresh_interval_s`, 1 s; both set by BML_LIVE_POLL_S /
BML_LIVE_REFRESH_S); it stops once the run has ended (the run picker's status is read
fresh); charts keep the user's zoom (`uirevision`). A finished run shows its result
(test accuracy fused and per modality, best epoch, imbalance degree) with links to Compare
its group and a joint baseline. Below: the resolved config, who launched it, the run it
reruns, and the environment it recorded (versions, commit, GPU, data sha256)."""

from __future__ import annotations

import contextlib
import time

import streamlit as st
import yaml
from sqlalchemy import Engine

import db
from app import store
from app.alerts import add_markers
from app.charts import png_config
from app.labels import run_choice_label
from app.plotly_chart import chart
from app.progress import eta_seconds, format_duration
from app.rerun import rerun_fragment
from app.text import md
from app.views.live import data as lv
from app.views.live.strip import poll_alerts, render_alert_strip
from app.widgets import page_path
from db.own_runs import reap_own_runs

st.title("Live")
engine = store.engine()
with contextlib.suppress(Exception):  # own-loop runs whose process died show failed here too
    reap_own_runs(engine)
url = db.database_url()
choices = store.run_choices(url)
param = st.query_params.get("run")
run_id: int | None = int(param) if param and param.isdigit() and len(param) <= 19 else None
if run_id is not None and run_id > 2**63 - 1:  # no run has it (and the store's BIGINT would overflow)
    run_id = None
missing = bool(param) and run_id is None  # the address names no run: show no run's data
if param and run_id is None:
    st.error(f"run={md(repr(param))} in the address is not a run id; pick a run below.")
if run_id is not None and run_id not in choices:
    try:
        run = db.get_run(engine, run_id)
        choices = {run_id: run_choice_label(run), **choices}
    except db.RunNotFound:
        st.error(f"There is no run {run_id}; pick one below.")
        run_id, missing = None, True
if not choices:
    st.info("No runs yet.")
    st.page_link(page_path("launch"), label="Launch one")
    st.stop()

states: dict[int, lv.LiveState] = st.session_state.setdefault("live_states", {})
current = st.session_state.get("live_pick", run_id)
if current in choices:  # the picked run's status read now, not from the picker's short cache
    try:
        choices[current] = run_choice_label(db.get_run(engine, current))
    except db.RunNotFound:
        choices.pop(current)
ids = list(choices)
picked = st.selectbox(
    "run",
    ids,
    index=ids.index(run_id) if run_id in ids else (None if missing else 0),
    format_func=lambda i: choices[i],
    key="live_pick",
    placeholder="pick a run",
)
if picked is None:  # e.g. /live?run=9 after run 9 was deleted: never another run's data (issue 25)
    st.stop()
assert picked is not None  # st.stop() ended the script above
shown_id: int = picked  # narrowed for the fragments below
if str(picked) != st.query_params.get("run"):
    st.query_params["run"] = str(picked)

state = states.setdefault(picked, lv.LiveState(run_id=picked))
lv.refresh(engine, state)
interval = lv.refresh_every_s(state.run)
first_pass = {"done": False, "watched": False}

view_row = st.container(horizontal=True, gap="large", vertical_alignment="bottom", key="live-view")
mode = view_row.segmented_control(
    "per-step series",
    list(lv.SMOOTHING_MODES),
    default=lv.SMOOTH_EMA,
    key="live_smoothing",
    help="EMA-smoothed: the exponential moving average, the raw line faint behind; per-epoch: "
    "each epoch's mean with its min-max range (for series that jump from step to step, "
    "like OGM's k or OPM's q). Validation series are drawn as evaluated.",
)
weight = lv.ema_weight_default
if mode == lv.SMOOTH_EMA:
    weight = view_row.slider(
        "EMA weight", 0.0, 0.99, lv.ema_weight_default, 0.01, key="live_ema_weight", width=220
    )
view = lv.View(
    mode=mode or lv.SMOOTH_RAW, weight=float(weight), steps_per_epoch=lv.steps_per_epoch(state.run)
)
if mode == lv.SMOOTH_EPOCH and view.steps_per_epoch is None:
    st.caption("Per-epoch view: the run has not said how many steps an epoch has yet; drawn raw.")


chart_width_px = 450


def render_live() -> None:
    """The refreshing part: header, charts and events of the picked run. The first pass
    of a full rerun uses the refresh made above; each rerun asked by `watch_live` fetches
    the new points."""
    state.asked_at = None
    if first_pass["done"]:
        lv.refresh(engine, state)
    first_pass["done"] = True
    run = state.run
    assert run is not None
    ratios = lv.recent_ratios(state)
    lead = lv.dominance(state, weight=view.weight if view.mode == lv.SMOOTH_EMA else lv.ema_weight_default)
    cancelling = " (cancelling)" if run.cancel_requested and run.status == "running" else ""
    # a wrapping row: each metric as wide as its text, the next one on a new line when the
    # window is narrow (never cut with "…")
    with st.container(key="live-header", horizontal=True, gap="medium"):
        st.metric(
            "status",
            run.status + cancelling,
            help=f"attempt {run.attempt} of {run.max_attempts}",
            width="content",
        )
        st.metric(
            "step", f"{run.step}" + (f" / {run.total_steps}" if run.total_steps else ""), width="content"
        )
        st.metric("ETA", format_duration(eta_seconds(run)), width="content")
        st.metric(
            "dominant",
            lead.modality or "balanced" if ratios else "—",
            delta=f"since step {lead.since_step}" if lead.since_step is not None else None,
            delta_color="off",
            delta_arrow="off",
            help=f"the modality with the highest recent ρ (above {1 + lv.dominance_margin:g}; else "
            "balanced), and since which step it has led on the smoothed ρ",
            width="content",
        )
        for modality, value in ratios.items():
            st.metric(
                f"ρ {md(modality)}",
                f"{value:.3f}",
                help=f"mean of the latest {lv.rho_window_points} points (> 1: dominant)",
                width="content",
            )
    st.progress(min(1.0, max(0.0, run.progress)), text=f"{run.progress * 100:.1f}%")
    # Every refresh sends the same blocks in the same order, each in a keyed slot that is
    # empty (and draws nothing) until it has something to show: an element that appeared
    # above the charts would shift their positions, and Streamlit, which places a new block
    # where an old one was, would mount the charts afresh and lose the user's zoom.
    with st.container(key="live-error-slot"):
        if run.error:
            st.error(md(run.error, limit=2000))
    result = lv.result_of(run.summary) if not lv.is_active(run) else None
    with st.container(key="live-result-slot"):
        if result is not None:
            _result(engine, run, result)
    with st.container(key="live-alert-slot"):
        alerts = render_alert_strip(
            shown_id, poll_alerts(engine, shown_id, st.session_state.setdefault("live_alerts", {}))
        )
    charts = st.container(horizontal=True, gap="medium", key="live-charts")  # two per row when wide
    drawn = 0
    for panel in lv.panels():
        fig = lv.panel_figure(state, panel, view)
        with charts, st.container(width=chart_width_px, key=f"live-panel-{panel.name}"):
            if fig is None:
                continue  # the slot stays empty
            add_markers(fig, alerts)  # a dotted line at each alert's step
            chart(
                fig, key=f"live-chart-{picked}-{panel.name}", config=png_config(f"run{picked}-{panel.name}")
            )
        drawn += 1
    if drawn == 0:
        st.info("No metrics yet: the charts appear with the first training step.")
    with st.expander(f"events ({len(state.events)})", expanded=bool(state.events) and not lv.is_active(run)):
        for ev in reversed(state.events):
            st.text(f"{ev.time:%H:%M:%S} {ev.level:<7} {ev.message}")
    if interval is not None and not lv.is_active(run):
        st.rerun()  # the run has ended: redraw the page once, without the timer


def _result(engine: Engine, run: db.RunDetail, result: lv.Result) -> None:
    """A finished run's result, with links to Compare its group and a joint baseline."""
    with st.container(border=True, key="live-result"):
        st.subheader("Result")
        with st.container(horizontal=True, gap="medium"):
            st.metric("test accuracy (fused)", lv.fmt(result.test_acc), width="content")
            for m, acc in result.test_acc_per_modality.items():
                st.metric(f"test accuracy {md(m)}", lv.fmt(acc), width="content")
            st.metric(
                "best epoch",
                "—" if result.best_epoch is None else str(result.best_epoch),
                width="content",
            )
            st.metric(
                "imbalance degree",
                lv.fmt(result.imbalance_degree),
                help="how far the modalities' test accuracies are apart (0: balanced)",
                width="content",
            )
        links = st.container(horizontal=True)
        links.page_link(
            page_path("compare"),
            label=f"Compare group {md(run.group)}",
            query_params={"group": run.group},
        )
        base = lv.baseline_for(engine, run)
        if base is not None:
            links.page_link(
                page_path("compare"),
                label=f"Compare with the joint baseline #{base.id}",
                query_params={"runs": f"{base.id},{run.id}"},
            )
        elif run.strategy != "joint":
            links.page_link(
                page_path("launch"),
                label="Launch a joint baseline (start from this run, strategies: none)",
                query_params={"from": str(run.id)},
            )


LIVE_FRAGMENT = "live-refresh"
st.fragment(render_live, key=LIVE_FRAGMENT)()

detail = db.get_run(engine, picked)
byline = f"launched by {md(detail.owner)}" if detail.owner else "launched before accounts existed"
if detail.rerun_of is not None:
    byline += f" · an exact rerun of run {detail.rerun_of}"
byline += f" · attempt {detail.attempt} of {detail.max_attempts}"
st.caption(byline)
with st.expander("resolved config", expanded=False):
    st.code(yaml.safe_dump(detail.config, sort_keys=False), language="yaml")
    st.page_link(
        page_path("launch"), label="Start a new run from this config", query_params={"from": str(picked)}
    )
env_rows = lv.environment_rows(detail.environment)
with st.expander("environment (what it ran on)", expanded=False):
    if env_rows:
        st.table({"what": [r[0] for r in env_rows], "value": [r[1] for r in env_rows]})
    else:
        st.text("Not recorded yet: the run process records it when it starts.")


def watch_live() -> None:
    """The change check, every `poll_interval_s` while the run is active: it draws nothing,
    and reruns the charts' fragment only when the store has something new for it (never in
    the full run, which has just refreshed: a fragment rerun asked then would cut it short)."""
    if not first_pass["watched"]:
        first_pass["watched"] = True
        return
    if state.asked_at is not None and time.monotonic() - state.asked_at < lv.refresh_interval_s:
        return  # asked already: the charts' rerun is queued (a check asking again would cut it short)
    if lv.is_due(engine, state):
        state.asked_at = time.monotonic()
        rerun_fragment(LIVE_FRAGMENT)


if interval is not None:  # last on the page
    st.fragment(watch_live, run_every=interval, key="live-watch")()

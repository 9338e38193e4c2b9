"""Live (`/live?run=ID`): one run's imbalance as it trains. A fragment refreshes every
`refresh_interval_s` while the run is active, fetching only the new points, and stops
once the run has ended; charts keep the user's zoom (`uirevision`). Below: who launched it,
the run it reruns, and the environment it recorded (versions, commit, GPU, data sha256)."""

from __future__ import annotations

import streamlit as st

import db
from app import store
from app.alerts import add_markers
from app.charts import png_config
from app.labels import run_choice_label
from app.text import md
from app.views.live import data as lv
from app.views.live.chart import live_chart
from app.views.live.strip import poll_alerts, render_alert_strip
from app.views.runs.data import eta_seconds, format_duration
from app.widgets import page_path

st.title("Live")
engine = store.engine()
url = db.database_url()
choices = store.run_choices(url)
param = st.query_params.get("run")
run_id: int | None = int(param) if param and param.isdigit() and len(param) <= 19 else None
if run_id is not None and run_id > 2**63 - 1:  # no run has it (and the store's BIGINT would overflow)
    run_id = None
if param and run_id is None:
    st.error(f"run={md(repr(param))} in the address is not a run id; pick a run below.")
if run_id is not None and run_id not in choices:
    try:
        run = db.get_run(engine, run_id)
        choices = {run_id: run_choice_label(run), **choices}
    except db.RunNotFound:
        st.error(f"There is no run {run_id}; pick one below.")
        run_id = None
if not choices:
    st.info("No runs yet.")
    st.page_link(page_path("launch"), label="Launch one")
    st.stop()

ids = list(choices)
picked = st.selectbox(
    "run",
    ids,
    index=ids.index(run_id) if run_id in ids else 0,
    format_func=lambda i: choices[i],
    key="live_pick",
)
if str(picked) != st.query_params.get("run"):
    st.query_params["run"] = str(picked)

states: dict[int, lv.LiveState] = st.session_state.setdefault("live_states", {})
state = states.setdefault(picked, lv.LiveState(run_id=picked))
lv.refresh(engine, state)
interval = lv.refresh_every_s(state.run)
first_pass = {"done": False}


chart_width_px = 450


def render_live() -> None:
    """The refreshing part: header, charts and events of the picked run. The first pass
    of a full rerun uses the refresh made above; each timed rerun fetches new points."""
    if first_pass["done"]:
        lv.refresh(engine, state)
    first_pass["done"] = True
    run = state.run
    assert run is not None
    ratios = lv.latest_of(state, "imbalance/ratio/")
    # wrapping rows sized to their content: no value is cut short at 800 px
    head = st.container(horizontal=True, gap="large")
    cancelling = " (cancelling)" if run.cancel_requested and run.status == "running" else ""
    head.metric("status", run.status + cancelling, width="content")
    head.metric("step", f"{run.step}" + (f" / {run.total_steps}" if run.total_steps else ""), width="content")
    head.metric("ETA", format_duration(eta_seconds(run)), width="content")
    head.metric("attempt", f"{run.attempt} / {run.max_attempts}", width="content")
    for modality, value in ratios.items():
        head.metric(f"ρ {modality}", f"{value:.3f}", width="content")
    st.progress(min(1.0, max(0.0, run.progress)), text=f"{run.progress * 100:.1f}%")
    if run.error:
        st.error(md(run.error, limit=2000))
    alerts = render_alert_strip(
        picked, poll_alerts(engine, picked, st.session_state.setdefault("live_alerts", {}))
    )
    charts = st.container(horizontal=True, gap="medium")  # two per row when wide, one when narrow
    drawn = 0
    for panel in lv.panels():
        fig = lv.panel_figure(state, panel)
        if fig is None:
            continue
        add_markers(fig, alerts)  # a dotted line at each alert's step
        with charts, st.container(width=chart_width_px):
            live_chart(
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


st.fragment(render_live, run_every=interval)()

detail = db.get_run(engine, picked)
byline = f"launched by {detail.owner}" if detail.owner else "launched before accounts existed"
if detail.rerun_of is not None:
    byline += f" · an exact rerun of run {detail.rerun_of}"
st.caption(byline)
env_rows = lv.environment_rows(detail.environment)
with st.expander("environment (what it ran on)", expanded=False):
    if env_rows:
        st.table({"what": [r[0] for r in env_rows], "value": [r[1] for r in env_rows]})
    else:
        st.text("Not recorded yet: the run process records it when it starts.")

"""Study (`/study?name=S`): a tuning study (`bml tune`, or Tune on /launch) read from Optuna's
tables in the store. The best trial with its parameters, "Launch this" (the Launch form
filled from the best trial's run, `/launch?from=RUN_ID&group=S-best`, as Live's "start a new
run from this config", in a group of its own) and its runs' group on Compare; the trials' table (state, parameters, value, a link
to each run's Live page); the value per trial with the best-so-far line, each trial's
intermediate values per evaluation (pruned ones dotted, the evaluation they stopped at
crossed) and each parameter against the value. A fragment refreshes every
`refresh_interval_s` while trials run or the budget is not spent, and stops once it is."""

from __future__ import annotations

import streamlit as st

from app import store
from app.plotly_chart import chart
from app.text import md
from app.views.study import data as sv
from app.widgets import page_path

st.title("Study")
engine = store.engine()
names = sv.study_names(engine)
param = st.query_params.get("name")
if param and param not in names:
    st.error(f"There is no study {md(repr(param))}; pick one below.")
if not names:
    st.info("No studies yet: start one with `bml tune CONFIG --space ...` or the Tune section of Launch.")
    st.page_link(page_path("launch"), label="Launch")
    st.stop()
picked = st.selectbox(
    "study",
    names,
    index=names.index(param) if param in names else 0,
    key="study_pick",
)
if picked != st.query_params.get("name"):
    st.query_params["name"] = picked
view0 = sv.load_study(engine, picked)
interval = sv.refresh_interval_s if view0 is not None and view0.active else None


def render_study() -> None:
    view = sv.load_study(engine, picked)
    if view is None:
        st.error(f"The study {md(repr(picked))} was deleted.")
        return
    if interval is not None and not view.active:
        st.rerun()  # the study has ended: a full run draws it once more, without the timer
    counts = {s: sum(t.state == s for t in view.trials) for s in ("complete", "pruned", "running", "fail")}
    budget = f" of {view.budget}" if view.budget else ""
    st.caption(
        f"{len(view.trials)}{budget} trial(s): {counts['complete']} complete, {counts['pruned']} pruned, "
        f"{counts['running']} running, {counts['fail']} failed · {md(view.direction)} {md(view.metric)}"
        + (" · refreshing" if view.active else "")
    )
    if view.active and not counts["running"]:
        st.caption(
            f"No trial is running yet. If the study's driver has stopped, continue it with "
            f"`bml tune --resume {view.name}`."
        )
    best = view.best
    with st.container(border=True, key="study-best"):
        if best is None:
            st.markdown("No finished trial yet.")
        else:
            st.markdown(
                f"**Best: trial {best.number}**, {md(view.metric)} = {best.value:.4f} · "
                + ", ".join(f"{md(k)} = {md(repr(v))}" for k, v in best.params.items())
            )
            links = st.container(horizontal=True, gap="large")
            if best.run_ids:
                links.page_link(
                    page_path("launch"),
                    label="Launch this",
                    icon=":material/rocket_launch:",
                    # its config in a group of its own: the study's group holds its trials only
                    query_params={"from": str(best.run_ids[0]), "group": f"{view.name}-best"},
                )
                links.page_link(
                    page_path("live"), label="its run", query_params={"run": str(best.run_ids[0])}
                )
            links.page_link(
                page_path("compare"), label="Compare the trials", query_params={"group": view.name}
            )
    st.dataframe(
        sv.table_rows(view),
        hide_index=True,
        width="stretch",
        key="study_trials",
        column_config={"run": st.column_config.LinkColumn("run", display_text="open", width="small")},
    )
    c1, c2 = st.columns(2)
    with c1:
        chart(sv.history_figure(view), key="study-history")
    with c2:
        chart(sv.intermediate_figure(view), key="study-intermediate")
    cols = st.columns(max(1, min(3, len(view.param_names))))
    for i, name in enumerate(view.param_names):
        with cols[i % len(cols)]:
            chart(sv.param_figure(view, name), key=f"study-param-{name}")


st.fragment(render_study, run_every=interval)()

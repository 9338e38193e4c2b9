"""Compare (`/compare?runs=ID,ID` or `/compare?group=NAME`): overlaid curves per run or
mean ± std per group over seeds, smoothing, the summary table with the best value of each
column marked, the config keys that differ, and CSV / PNG export."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from app import store
from app.charts import line_figure, png_config
from app.labels import run_choice_label
from app.views.compare import data as cv

st.title("Compare")
engine = store.engine()
url = db.database_url()
choices = store.run_choices(url)
groups = store.groups(url)

ids_param, bad = cv.parse_run_ids(st.query_params.get("runs"))
group_param = st.query_params.get("group")
if bad:
    st.error(f"runs= in the address has parts that are not run ids: {', '.join(bad)}")
if group_param and group_param not in groups:
    st.error(f"There is no group {group_param!r}.")
    group_param = None

mode = st.radio(
    "compare", ["runs", "a group"], horizontal=True, index=1 if group_param else 0, key="compare_mode"
)
if mode == "a group":
    group = st.selectbox(
        "group",
        list(groups),
        index=list(groups).index(group_param) if group_param in groups else None,
        format_func=lambda g: f"{g} ({groups[g]} run{'s' if groups[g] != 1 else ''})",
        key="compare_group",
        placeholder="pick a group",
    )
    if group and st.query_params.get("group") != group:
        st.query_params.clear()
        st.query_params["group"] = group
    runs, missing = cv.runs_of(engine, group=group) if group else ([], [])
else:
    for rid in ids_param:
        if rid not in choices:
            try:
                found = db.get_run(engine, rid)
                choices = {
                    **choices,
                    rid: run_choice_label(found),
                }
            except db.RunNotFound:
                st.error(f"There is no run {rid}.")
    picked = st.multiselect(
        "runs",
        list(choices),
        default=[r for r in ids_param if r in choices],
        format_func=lambda i: choices[i],
        key="compare_runs",
        max_selections=cv.max_compared_runs,
    )
    wanted = ",".join(map(str, picked))
    if picked and st.query_params.get("runs") != wanted:
        st.query_params.clear()
        st.query_params["runs"] = wanted
    runs, missing = cv.runs_of(engine, picked)

if not runs:
    st.info("Pick two or more runs, or a group (e.g. the seeds of one setting).")
    st.stop()

available = cv.common_keys(engine, runs)
c1, c2, c3 = st.columns([3, 1, 1])
keys = c1.multiselect("metrics", available, default=cv.default_keys(available), key="compare_keys")
smoothing = c2.slider("smoothing", 0.0, 0.99, 0.0, 0.01, key="compare_smoothing")
by_group = cv.group_runs(runs)
agg_param = st.query_params.get("agg")
aggregate = c3.toggle(
    "mean ± std over each group's runs",
    value=cv.aggregate_by_default(by_group, agg_param),
    key="compare_aggregate",
    help="one line per group (the seeds of one setting) with a band of ± one standard deviation",
)

series: dict[int, dict[str, db.Downsampled]] = {}
if not aggregate and keys:
    for r in runs:
        have = [k for k in keys if k in set(db.series_keys(engine, r.id))]
        if not have:
            continue
        if r.status in db.TERMINAL_STATUSES:
            series[r.id] = store.finished_downsampled(url, r.id, tuple(have), cv.compare_max_buckets)
        else:
            series[r.id] = db.downsampled_many(engine, r.id, have, cv.compare_max_buckets)

curve_rows: list[dict[str, object]] = []
cols = st.columns(2)
for i, key in enumerate(keys):
    if aggregate:
        curves = cv.group_curves(cv.aggregate_groups(engine, key, by_group), key, smoothing)
    else:
        curves = cv.per_run_curves(series, runs, key, smoothing)
    curve_rows.extend(curves.rows)
    fig = line_figure(
        curves.traces,
        title=key,
        y_title=key.split("/")[-1] if "/" in key else key,
        uirevision=f"compare-{key}",
        hline=1.0 if key.startswith("imbalance/ratio/") else None,
    )
    with cols[i % 2]:
        st.plotly_chart(fig, key=f"compare-chart-{key}", config=png_config(f"compare-{key}"))

st.subheader("Summary")
frame, higher = cv.summary_table(runs)
best = cv.best_rows(frame, higher)


def _mark_best(data: pd.DataFrame) -> pd.DataFrame:
    styles = pd.DataFrame("", index=data.index, columns=data.columns)
    for column, rows in best.items():
        for row in rows:
            styles.iloc[row, data.columns.get_loc(column)] = (
                "font-weight: bold; background-color: rgba(0,204,150,0.25)"
            )
    return styles


numeric = [c for c in higher if c in frame]
styled = frame.style.apply(_mark_best, axis=None).format({c: "{:.4f}" for c in numeric}, na_rep="—")
st.dataframe(styled, hide_index=True, width="stretch", key="compare_summary")
st.caption("Best per column in bold (highest accuracy and F1; lowest imbalance degree and time).")
if aggregate:
    st.dataframe(
        cv.group_summary(frame, higher), hide_index=True, width="stretch", key="compare_group_summary"
    )

d1, d2 = st.columns(2)
d1.download_button(
    "Download summary CSV",
    cv.to_csv(frame),
    file_name="bml-compare-summary.csv",
    mime="text/csv",
    key="compare_csv_summary",
)
d2.download_button(
    "Download curves CSV",
    cv.to_csv(curve_rows),
    file_name="bml-compare-curves.csv",
    mime="text/csv",
    key="compare_csv_curves",
)
st.caption("PNG: the camera button in each chart's toolbar saves it as an image.")

st.subheader("Config keys that differ")
diff = cv.diff_table(engine, runs)
if diff.empty:
    st.caption("The configs are identical." if len(runs) > 1 else "Pick a second run to see what differs.")
else:
    st.dataframe(diff, hide_index=True, width="stretch", key="compare_diff")

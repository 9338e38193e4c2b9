"""Compare (`/compare?runs=ID,ID`, `/compare?group=NAME` (several allowed), `&by=PATH,PATH`):
the runs grouped by what differs between them (the seed aside) or by a chosen key; which
group wins, by how much and whether beyond seed noise (one sentence, then one row per
group against a baseline); mean ± std curves per group with per-seed lines on demand; the
per-run table (seed, group key, status, retries); runs that failed, were cancelled or are
still running left out unless asked for; the config keys that differ; CSV / PNG export;
a link to the Report page of the same groups."""

from __future__ import annotations

import pandas as pd
import streamlit as st

import db
from app import store
from app.charts import line_figure_dict, png_config
from app.labels import run_choice_label
from app.plotly_chart import chart
from app.text import md, md_cells
from app.views.compare import data as cv
from app.widgets import group_picker, page_path

st.title("Compare")
engine = store.engine()
url = db.database_url()
choices = store.run_choices(url)
known_groups = store.groups(url)

ids_param, bad = cv.parse_run_ids(st.query_params.get("runs"))
groups_param, unknown = cv.parse_groups(st.query_params.get_all("group"), known_groups)
if bad:
    st.error(f"runs= in the address has parts that are not run ids: {md(', '.join(bad))}")
for name in unknown:
    st.error(f"There is no group {md(repr(name))}.")

mode = st.radio(
    "compare",
    ["runs", "groups"],
    horizontal=True,
    index=1 if groups_param else 0,
    key="compare_mode",
)
picked_groups: list[str] = []
if mode == "groups":
    picked_groups = group_picker(known_groups, groups_param, "compare_groups")
    if picked_groups and st.query_params.get_all("group") != [",".join(picked_groups)]:
        kept_by = st.query_params.get("by")
        st.query_params.clear()
        st.query_params["group"] = ",".join(picked_groups)
        if kept_by:
            st.query_params["by"] = kept_by
    runs, missing = cv.runs_of(engine, groups=picked_groups) if picked_groups else ([], [])
else:
    for rid in ids_param:
        if rid not in choices:
            try:
                found = db.get_run(engine, rid)
                choices = {**choices, rid: run_choice_label(found)}
            except db.RunNotFound:
                st.error(f"There is no run {rid}.")
    picked = st.multiselect(
        "runs",
        list(choices),
        default=[r for r in ids_param if r in choices],
        format_func=lambda i: choices[i].split(" · ")[0],  # `#12 name`: chips fit at 800 px
        key="compare_runs",
        max_selections=cv.max_compared_runs,
    )
    wanted = ",".join(map(str, picked))
    if picked and st.query_params.get("runs") != wanted:
        kept_by = st.query_params.get("by")
        st.query_params.clear()
        st.query_params["runs"] = wanted
        if kept_by:
            st.query_params["by"] = kept_by
    runs, missing = cv.runs_of(engine, picked)

if not runs:
    st.info("Pick two or more runs, or one or more groups (e.g. a sweep).")
    st.stop()

# ---------------------------------------------------------------- grouping
options = cv.key_options(runs)
by_param = [p for p in (st.query_params.get("by") or "").split(",") if p]
bad_by = [p for p in by_param if p not in options]
if bad_by:
    st.error(f"by= in the address names {md(', '.join(bad_by))}, not a config path of these runs.")
k1, k2 = st.columns(2)
by = k1.multiselect(
    "group by",
    options,
    default=[p for p in by_param if p in options],
    key="compare_key",
    placeholder="what differs (automatic)",
    help=f"Runs with the same values of these config paths are the seeds of one group. Empty: {cv.AUTO_KEY_HELP}.",
)
if ",".join(by) != (st.query_params.get("by") or "") and (by or "by" in st.query_params):
    if by:
        st.query_params["by"] = ",".join(by)
    else:
        del st.query_params["by"]
grouping = cv.group(runs, by)
names = cv.display_names(grouping, runs)
pooled = [g for g in grouping.groups if g.n]
default_base = cv.cg.default_baseline(grouping)
base_choices = [g.label for g in pooled]
baseline = k2.selectbox(
    "baseline",
    base_choices,
    index=base_choices.index(default_base) if default_base in base_choices else None,
    format_func=lambda g: names.get(g, g),
    key="compare_baseline",
    help="Every other group is tested against this one (joint training when present).",
)
key_text = ", ".join(grouping.by) if grouping.by else "nothing (the runs differ only in their seeds)"
left_out = grouping.excluded
st.caption(
    f"Grouped by **{md(key_text)}**{' (what differs between the runs, the seed aside)' if grouping.auto else ''}: "
    f"{len(runs)} runs, {len(grouping.groups)} group{'s' if len(grouping.groups) != 1 else ''}"
    + (
        f"; {len(left_out)} run{'s' if len(left_out) != 1 else ''} not pooled (failed, cancelled, "
        "still running, or replaced by a retry)."
        if left_out
        else "."
    )
)
with st.container(horizontal=True, gap="large"):
    seeds = st.toggle(
        "per-seed lines",
        value=cv.seeds_by_default(grouping, st.query_params.get("agg")),
        key="compare_seeds",
        help="thin lines, one per run, in its group's colour",
    )
    show_excluded = st.toggle(
        "show runs not pooled",
        value=not pooled,  # on when nothing has finished yet (e.g. runs still training)
        key="compare_excluded",
        help="failed, cancelled and still running runs, and older copies of a retried seed: "
        "drawn dotted and listed, never counted in n or the statistics",
    )

# ---------------------------------------------------------------- results
res = cv.results(grouping, baseline)
sentence = cv.winner_sentence(res, names)
if sentence:
    st.markdown(f"**{md(sentence, limit=2000)}**")
results = cv.results_table(res, names)
if not show_excluded:
    results = results.drop(columns=["not pooled"])
# A table whose cells wrap, every column in view (issue 25: a grid clipped it at "seeds").
st.table(md_cells(results), hide_index=True, width="stretch")
st.caption(
    "Test accuracy over the pooled seeds: mean ± std (sample), 95 % interval (t; bootstrap from 10 seeds). "
    "Δ and verdict: fused test accuracy against the baseline, paired t-test over matching seeds (else "
    "Welch), Holm-corrected across groups, significance level 0.05."
)
report_params = (
    {"group": ",".join(picked_groups)} if picked_groups else {"runs": ",".join(str(r.id) for r in runs)}
)
if by:
    report_params["by"] = ",".join(by)
st.page_link(
    page_path("report"),
    label="Report of these runs (HTML / JSON)",
    icon=":material/description:",
    query_params=report_params,
)

# ---------------------------------------------------------------- curves
available = cv.common_keys(engine, runs)
keys = st.multiselect("metrics", available, default=cv.default_keys(available), key="compare_keys")
smoothing = st.slider("smoothing", 0.0, 0.99, 0.0, 0.01, key="compare_smoothing", width=320)


def _series(
    wanted_runs: list[cv.cg.GroupedRun], wanted_keys: list[str]
) -> dict[int, dict[str, db.Downsampled]]:
    out: dict[int, dict[str, db.Downsampled]] = {}
    for gr in wanted_runs:
        rid = gr.record.id
        have = [k for k in wanted_keys if k in set(db.series_keys(engine, rid))]
        if not have:
            continue
        if gr.record.status in db.TERMINAL_STATUSES:
            out[rid] = store.finished_downsampled(url, rid, tuple(have), cv.compare_max_buckets)
        else:
            out[rid] = db.downsampled_many(engine, rid, have, cv.compare_max_buckets)
    return out


def _aggregates(key: str) -> dict[str, db.GroupAggregate]:
    return {
        g.label: store.finished_group_aggregate(url, key, tuple(g.run_ids), cv.compare_max_buckets)
        for g in pooled
    }


drawn = [gr for gr in grouping.runs if (gr.included and seeds) or (not gr.included and show_excluded)]
series = _series(drawn, keys)
charts = st.container(horizontal=True, gap="medium")  # two per row when wide, one when narrow
for key in keys:
    curve = cv.curves(
        key,
        grouping,
        _aggregates(key),
        series,
        names=names,
        smoothing=smoothing,
        seeds=seeds,
        excluded=show_excluded,
    )
    fig = line_figure_dict(
        curve.traces,
        title=key,
        y_title=key.split("/")[-1] if "/" in key else key,
        uirevision=f"compare-{key}",
        hline=1.0 if key.startswith("imbalance/ratio/") else None,
    )
    with charts, st.container(width=cv.chart_width_px):
        chart(fig, key=f"compare-chart-{key}", config=png_config(f"compare-{key}"))

# ---------------------------------------------------------------- per run
st.subheader("Runs")
frame, higher = cv.per_run_table(grouping, names, show_excluded)
left_out_rows = cv.left_out_rows(frame)
numeric = [c for c in higher if c in frame]
best = cv.best_rows(frame, higher, skip=left_out_rows)


def _mark_best(data: pd.DataFrame) -> pd.DataFrame:
    styles = pd.DataFrame("", index=data.index, columns=data.columns)
    for column, rows in best.items():
        for row in rows:
            styles.iloc[row, data.columns.get_loc(column)] = (
                "font-weight: bold; background-color: rgba(0,204,150,0.25)"
            )
    for row, left in enumerate(left_out_rows):
        if left:
            styles.iloc[row, :] = "color: #a33; font-style: italic"
    return styles


styled = frame.style.apply(_mark_best, axis=None).format({c: "{:.4f}" for c in numeric}, na_rep="—")
st.dataframe(styled, hide_index=True, width="stretch", key="compare_summary")
st.caption(
    "Best per column in bold (highest accuracy and F1; lowest imbalance degree and time)"
    + ("; ✗ marks a run left out of every statistic." if show_excluded else ".")
)

selected_keys = list(keys)
all_runs = [gr for gr in grouping.runs if gr.included or show_excluded]


def _curves_csv() -> bytes:
    rows: list[dict[str, object]] = []
    every = _series(all_runs, selected_keys)
    for key in selected_keys:
        rows.extend(
            cv.curves(key, grouping, _aggregates(key), every, names=names, excluded=show_excluded).rows
        )
    return cv.to_csv(rows)


downloads = st.container(horizontal=True)
downloads.download_button(
    "Download results CSV",
    cv.to_csv(cv.results_csv_rows(res, names)),
    file_name="bml-compare-results.csv",
    mime="text/csv",
    key="compare_csv_results",
    on_click="ignore",
)
downloads.download_button(
    "Download runs CSV",
    cv.to_csv(frame),
    file_name="bml-compare-runs.csv",
    mime="text/csv",
    key="compare_csv_summary",
    on_click="ignore",
)
downloads.download_button(
    "Download curves CSV",
    _curves_csv,
    file_name="bml-compare-curves.csv",
    mime="text/csv",
    key="compare_csv_curves",
    on_click="ignore",
)
st.caption("PNG: the camera button in each chart's toolbar saves it as an image.")

st.subheader("Config keys that differ")
diff = cv.diff_table(runs)
if diff.empty:
    st.caption("The configs are identical." if len(runs) > 1 else "Pick a second run to see what differs.")
else:
    st.dataframe(diff, hide_index=True, width="stretch", key="compare_diff")

"""Report (`/report?group=G` (several allowed: `?group=A,B`), or `?runs=ID,ID`; `&by=PATH`,
`&baseline=LABEL`): the comparison report `bml report` writes for the same runs (its
self-contained HTML shown in the page), with downloads of the HTML and the JSON."""

from __future__ import annotations

import streamlit as st

import db
from app import store
from app.address import parse_groups, parse_run_ids
from app.text import md, plain
from app.views.report import data as report_data
from app.widgets import group_picker, page_path

st.title("Report")
engine = store.engine()
url = db.database_url()
known_groups = store.groups(url)

groups_param, unknown = parse_groups(st.query_params.get_all("group"), known_groups)
ids_param, bad = parse_run_ids(st.query_params.get("runs"))
for name in unknown:
    st.error(f"There is no group {md(repr(name))}.")
if bad:
    st.error(f"runs= in the address has parts that are not run ids: {md(', '.join(bad))}")

picked = group_picker(known_groups, groups_param, "report_groups")
if picked and st.query_params.get_all("group") != [",".join(picked)]:
    st.query_params["group"] = ",".join(picked)
if not picked and not ids_param:
    st.info("Pick one or more groups (e.g. a sweep), or open this page from Compare.")
    st.stop()

by = report_data.split_list(st.query_params.get_all("by"))
baseline = st.query_params.get("baseline") or None
try:
    with st.spinner("Building the report…"):
        report = report_data.build(engine, picked, ids_param, by or None, baseline)
except (ValueError, KeyError) as exc:
    st.error(md(exc.args[0] if exc.args else exc, limit=2000))
    st.stop()

stem = report_data.file_stem(picked, ids_param)
with st.container(horizontal=True):
    st.download_button(
        "Download HTML",
        report.html,
        file_name=f"{stem}.html",
        mime="text/html",
        key="report_html",
        on_click="ignore",
    )
    st.download_button(
        "Download JSON",
        report.json,
        file_name=f"{stem}.json",
        mime="application/json",
        key="report_json",
        on_click="ignore",
    )
    compare_params = {"group": ",".join(picked)} if picked else {"runs": ",".join(map(str, ids_param))}
    if by:
        compare_params["by"] = ",".join(by)
    st.page_link(
        page_path("compare"), label="Open in Compare", icon=":material/compare:", query_params=compare_params
    )
st.caption(
    f"The same report as `bml report{''.join(f' --group {plain(g)}' for g in picked)}"
    f"{' --runs ' + ','.join(map(str, ids_param)) if ids_param else ''}"
    f"{''.join(f' --by {p}' for p in by)}`: one self-contained file, readable offline and printable."
)
# The report's own HTML (its values escaped by the renderer), sized to its content.
st.iframe(report.html, height="content")

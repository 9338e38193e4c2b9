"""The Streamlit entry point (`bml dashboard` runs `streamlit run app/main.py`): checks the
store's schema, then routes the addresses of CONTRACT.md ("Dashboard addresses") to the
page scripts `app/views/<page>/page.py` (one folder per page, holding its script, its data
logic and its charts; not `pages/`: Streamlit would also serve a `pages/` folder as separate
apps, and a deep link opened first would skip this script). With the login on, the
gate (`app/access.py`) runs before navigation, so no page runs without a valid session."""

from __future__ import annotations

import streamlit as st

from app import access, layout, store
from app.plotly_chart import preload_plotly
from app.text import md
from app.widgets import page_path

CHART_PAGES = ("live", "compare", "study")  # url paths whose charts need plotly.js

# "auto": the sidebar starts collapsed on narrow windows (under Streamlit's breakpoint)
st.set_page_config(page_title="BML Studio", page_icon="⚖️", layout="wide", initial_sidebar_state="auto")
layout.apply()  # metrics and button labels wrap instead of truncating

problem = store.store_problem(store.engine())
if problem is not None:
    kind, reason = problem
    if kind == "unreachable":
        st.error(f"BML Studio cannot reach its store: {md(reason)}")
        st.markdown(
            "Check that the database server is running and that `BML_DATABASE_URL` (or `BML_HOME` "
            "for the default SQLite file) points at it, then reload."
        )
    else:
        st.error(f"BML Studio cannot use its store: {md(reason)}")
        st.markdown(
            "Apply the migrations with `bml db upgrade` (same `BML_HOME` / `BML_DATABASE_URL`), then reload."
        )
    st.stop()

# login (BML_AUTH=local): no page runs, and no deep link opens, before it
actor = access.gate(store.engine())
access.sidebar_account(actor)

pages = [
    st.Page(page_path("overview"), title="Overview", icon=":material/home:", default=True),
    st.Page(page_path("launch"), title="Launch", icon=":material/rocket_launch:", url_path="launch"),
    st.Page(page_path("runs"), title="Runs", icon=":material/table_rows:", url_path="runs"),
    st.Page(page_path("live"), title="Live", icon=":material/monitoring:", url_path="live"),
    st.Page(page_path("compare"), title="Compare", icon=":material/compare:", url_path="compare"),
    st.Page(page_path("study"), title="Study", icon=":material/tune:", url_path="study"),
    st.Page(page_path("methods"), title="Methods", icon=":material/menu_book:", url_path="methods"),
    st.Page(page_path("report"), title="Report", icon=":material/description:", url_path="report"),
    st.Page(page_path("workers"), title="Workers", icon=":material/dns:", url_path="workers"),
]
page = st.navigation(pages)
if page.url_path in CHART_PAGES:
    with st.sidebar:
        preload_plotly()
page.run()

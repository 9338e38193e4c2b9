"""Overview (`/`): runs by status, the runs needing attention (imbalance alerts), the
latest runs, the groups, and where to go next."""

from __future__ import annotations

import streamlit as st

import db
from app import store
from app.alerts import counts_text, needing_attention
from app.text import md
from app.widgets import page_path

st.title("BML Studio")
st.caption(
    "Launch multimodal runs with OPM / OGM / OGM-GE, watch each modality's discrepancy ratio live, "
    "and compare strategies over seeds."
)
engine = store.engine()
counts = {s: db.list_runs(engine, status=s, limit=0).total for s in db.RUN_STATUSES}
cols = st.columns(len(counts))
for col, (status, n) in zip(cols, counts.items(), strict=True):
    col.metric(status, n)

l1, l2, l3, l4, l5 = st.columns(5)
l1.page_link(page_path("launch"), label="Launch runs", icon=":material/rocket_launch:")
l2.page_link(page_path("runs"), label="All runs", icon=":material/table_rows:")
l3.page_link(page_path("compare"), label="Compare", icon=":material/compare:")
l4.page_link(page_path("methods"), label="Methods", icon=":material/menu_book:")
l5.page_link(page_path("workers"), label="Workers", icon=":material/dns:")

attention = needing_attention(engine)
if attention:
    with st.container(key="overview-attention"):
        st.subheader("Runs needing attention")
        for item in attention:
            c1, c2 = st.columns([4, 1])
            c1.text(  # plain text: run names and alert messages are not Markdown
                f"#{item.run.id} {item.run.name} · {item.run.strategy} · {item.run.status} · "
                f"alerts {counts_text(item.counts)} — {item.latest}"
            )
            c2.page_link(page_path("live"), label="live", query_params={"run": str(item.run.id)})

latest = db.list_runs(engine, limit=10).runs
st.subheader("Latest runs")
if not latest:
    st.info("No runs yet: launch one.")
for r in latest:
    c1, c2 = st.columns([4, 1])
    c1.write(
        f"**#{r.id}** {md(r.name)} · {md(r.group)} · {md(r.strategy)} · {md(r.dataset)} · {r.status} · "
        f"{r.progress * 100:.0f}%"
    )
    c2.page_link(page_path("live"), label="live", query_params={"run": str(r.id)})

groups = store.groups(db.database_url())
if groups:
    st.subheader("Groups")
    for name, n in list(groups.items())[:20]:
        st.page_link(
            page_path("compare"),
            label=f"{md(name)} ({n} run{'s' if n != 1 else ''})",
            query_params={"group": name},
        )

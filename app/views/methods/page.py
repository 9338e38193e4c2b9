"""Methods (`/methods`): the catalogue of balancing strategies from their specs — what each
does, its parameters, its cost and its reference — each with a link to Launch with it
preselected (`/launch?strategy=NAME`)."""

from __future__ import annotations

import streamlit as st

from app import catalog
from app.text import md_cells
from app.views.methods import data as methods_data
from app.widgets import page_path

st.title("Methods")
st.caption(
    "The balancing strategies this installation offers (built-ins and plug-ins named in "
    "BML_PLUGINS or installed through the `bml.strategies` entry points). Strategies compose: "
    "the Launch form applies several in order."
)
for err in catalog.broken_plugins():
    st.warning(f"strategy plug-in not loaded: {err}", icon=":material/extension_off:")

entries = methods_data.methods()
# A table whose cells wrap (issue 25: a grid cut "what it does" mid-sentence at 800 px).
st.table(
    md_cells([{"method": e.name, "cost": e.cost, "what it does": e.description} for e in entries]),
    hide_index=True,
    width="stretch",
)
for e in entries:
    with st.container(border=True, key=f"method-{e.name}"):
        head, link = st.columns([4, 1])
        head.subheader(e.name)
        link.page_link(
            page_path("launch"),
            label=f"Launch {e.name}",
            icon=":material/rocket_launch:",
            query_params={"strategy": e.name},
        )
        st.markdown(e.description)
        st.markdown(f"**Cost:** `{e.cost}` — {e.cost_text}")
        if e.reference:
            st.markdown(f"**Reference:** {e.reference}")
        if e.source != "built-in":
            st.caption(f"plug-in from {e.source}")
        if e.parameters:
            st.dataframe(e.parameters, hide_index=True, width="stretch")
        if e.metrics:
            st.markdown("**Logs (Live panels):** " + "; ".join(e.metrics))
        if e.capabilities:
            st.caption("needs: " + ", ".join(e.capabilities))

st.header("Encoders, fusion heads and datasets", anchor="plugins")
st.caption(
    "The other plug-in kinds (`bml plugins` lists all four): built-ins and those installed through "
    "the `bml.encoders`, `bml.fusions` and `bml.datasets` entry points or named in BML_PLUGINS "
    "(docs/PLUGINS.md). The Launch form offers them with their parameters."
)
for kind, rows in methods_data.model_catalogue().items():
    with st.container(key=f"catalogue-{kind}"):
        st.markdown(f"#### {methods_data.KIND_TITLES[kind]}")  # subheaders are the strategies' own
        st.dataframe(rows, hide_index=True, width="stretch")

"""Workers: the queue's length and each worker with the run it is executing; refreshes
every `workers_refresh_s`."""

from __future__ import annotations

import streamlit as st

import db
from app import store
from app.text import md
from app.views.workers import data as wv
from app.widgets import page_path

workers_refresh_s = 2.0
LINK_COLUMNS = {"live": st.column_config.LinkColumn("live", display_text="open")}

st.title("Workers")
engine = store.engine()


@st.fragment(run_every=workers_refresh_s)
def render_workers() -> None:
    try:
        status = wv.queue_status(engine)
    except Exception as exc:  # noqa: BLE001 - broker or store trouble: say so and keep refreshing
        st.error(f"Cannot read the queue: {type(exc).__name__}: {md(exc)}")
        return
    c1, c2, c3 = st.columns(3)
    c1.metric("queued", status.queued)
    c2.metric("running", status.running)
    c3.metric("workers", len(status.workers))
    st.caption(f"broker: {md(status.broker)}")
    if status.error:
        st.warning(md(status.error))
    running = db.list_runs(engine, status="running", limit=None).runs
    names = {r.id: r.name for r in running}
    if status.workers:
        st.dataframe(
            wv.worker_rows(status, names), hide_index=True, width="stretch", column_config=LINK_COLUMNS
        )
        for w in status.workers:
            for rid in w.active_run_ids:
                st.page_link(
                    page_path("live"),
                    label=f"{md(w.name)} is running #{rid} {md(names.get(rid, ''))}".strip(),
                    query_params={"run": str(rid)},
                    icon=":material/monitoring:",
                )
    else:
        st.info("No worker answered. Start one with `bml worker` (or `bml up`).")
    queued = db.list_runs(engine, status=["queued", "requeued"], limit=20)
    if queued.runs:
        st.subheader("Waiting")
        st.dataframe(
            [
                {"id": r.id, "name": r.name, "status": r.status, "group": r.group, "strategy": r.strategy}
                for r in queued.runs
            ],
            hide_index=True,
            width="stretch",
        )


render_workers()

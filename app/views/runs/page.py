"""Runs: every run in a filtered, paginated table (by status, strategy, dataset, group,
owner, text), and cancel / retry (a clone) / delete (with confirmation) / "Rerun exactly"
(same resolved config and seed; what changed since is shown first) on the one picked. The
buttons the user's role does not allow are not shown (worker.client refuses anyway)."""

from __future__ import annotations

import streamlit as st

import db
from app import access, store
from app.views.runs import data as rv
from app.widgets import page_path
from worker import client

st.title("Runs")
message = st.session_state.pop("runs_message", None)
if message is not None:
    (st.success if message.ok else st.error)(message.message)
engine = store.engine()
actor = access.current_actor()
options = rv.filter_options(engine)

c1, c2, c3, c4, c6, c5 = st.columns([2, 1, 1, 1, 1, 2])
statuses = c1.multiselect("status", list(db.RUN_STATUSES), key="runs_status")
strategy = c2.selectbox("strategy", options["strategy"], index=None, key="runs_strategy", placeholder="any")
dataset = c3.selectbox("dataset", options["dataset"], index=None, key="runs_dataset", placeholder="any")
group = c4.selectbox("group", options["group"], index=None, key="runs_group", placeholder="any")
owner = c6.selectbox("owner", options["owner"], index=None, key="runs_owner", placeholder="anyone")
text = c5.text_input("search (name, group, strategy or id)", key="runs_text")
flt = rv.RunFilter(tuple(statuses), strategy, dataset, group, text, owner)
if st.session_state.get("runs_filter_seen") != flt:
    st.session_state["runs_filter_seen"] = flt
    st.session_state["runs_page"] = 1

first = rv.runs_page(engine, flt, 1, page_size=1)
pages = rv.page_count(first.total)
page_no = min(int(st.session_state.get("runs_page", 1)), pages)
st.session_state["runs_page"] = page_no
page = rv.runs_page(engine, flt, page_no)
rows = rv.table_rows(engine, page.runs)

st.caption(f"{page.total} run(s) match · page {page_no} of {pages}")
st.dataframe(
    rows,
    hide_index=True,
    width="stretch",
    key="runs_table",
    column_config={
        "progress": st.column_config.ProgressColumn(
            "progress", min_value=0.0, max_value=100.0, format="%.0f%%"
        ),
        "live": st.column_config.LinkColumn("live", display_text="open", width="small"),
        "id": st.column_config.NumberColumn("id", width="small"),
        "name": st.column_config.TextColumn("name", width="medium"),
    },
)
p1, p2, p3 = st.columns([1, 1, 6])
if p1.button("◀ previous", disabled=page_no <= 1, key="runs_prev"):
    st.session_state["runs_page"] = page_no - 1
    st.rerun()
if p2.button("next ▶", disabled=page_no >= pages, key="runs_next"):
    st.session_state["runs_page"] = page_no + 1
    st.rerun()

st.subheader("Act on a run")
by_id = {r.id: r for r in page.runs}
if not by_id:
    st.info("No run matches these filters.")
    st.stop()
picked = st.selectbox(
    "run",
    list(by_id),
    key="runs_pick",
    format_func=lambda rid: f"#{rid} {by_id[rid].name} ({by_id[rid].status})",
)
run = by_id[picked]
allowed = rv.allowed_actions(run)
permitted = rv.permitted_actions(actor, run)
a1, a2, a6, a3, a4, a5 = st.columns(6)
if permitted["cancel"] and a1.button("Cancel", disabled=not allowed["cancel"], key="runs_cancel"):
    st.session_state["runs_message"] = rv.run_action("cancel", run.id, engine, actor)
    st.rerun()
if permitted["retry"] and a2.button("Retry (clone)", disabled=not allowed["retry"], key="runs_retry"):
    st.session_state["runs_message"] = rv.run_action("retry", run.id, engine, actor)
    st.rerun()
if permitted["rerun"] and a6.button("Rerun exactly", key="runs_rerun"):
    check = client.rerun_check(run.id, engine=engine)
    if check.blocking:
        st.session_state["runs_confirm_rerun"] = (run.id, check.blocking, check.notes)
    else:
        st.session_state["runs_message"] = rv.run_action("rerun", run.id, engine, actor)
        st.rerun()
if permitted["delete"] and a3.button("Delete", disabled=not allowed["delete"], key="runs_delete"):
    st.session_state["runs_confirm_delete"] = run.id
a4.page_link(page_path("live"), label="Live", query_params={"run": str(run.id)})
a5.page_link(page_path("compare"), label=f"Compare group {run.group}", query_params={"group": run.group})
if not all(permitted[a] for a in ("cancel", "retry", "rerun", "delete")):
    st.caption(
        f"Signed in as {actor.name} ({actor.role}): "
        + (
            "viewers read only."
            if actor.role == "viewer"
            else "operators act on their own runs; deleting needs an admin."
        )
    )

pending = st.session_state.get("runs_confirm_rerun")
if pending and pending[0] == run.id:
    with st.container(border=True, key="runs-confirm-rerun"):
        st.warning(
            f"Run #{run.id} cannot be reproduced exactly as things are now:\n\n"
            + "\n".join(f"- {item}" for item in pending[1])
        )
        for note in pending[2]:
            st.caption(note)
        r1, r2, _ = st.columns([1, 1, 4])
        if r1.button("Rerun anyway", key="runs_rerun_confirm"):
            st.session_state.pop("runs_confirm_rerun", None)
            st.session_state["runs_message"] = rv.run_action("rerun", run.id, engine, actor)
            st.rerun()
        if r2.button("Don't", key="runs_rerun_keep"):
            st.session_state.pop("runs_confirm_rerun", None)
            st.rerun()

if st.session_state.get("runs_confirm_delete") == run.id:
    with st.container(border=True, key="runs-confirm"):
        st.warning(
            f"Delete run #{run.id} ({run.name}) with all its series and events? This cannot be undone."
        )
        d1, d2, _ = st.columns([1, 1, 4])
        if d1.button("Yes, delete", type="primary", key="runs_delete_confirm"):
            st.session_state.pop("runs_confirm_delete", None)
            st.session_state["runs_message"] = rv.run_action("delete", run.id, engine, actor)
            st.rerun()
        if d2.button("Keep it", key="runs_delete_keep"):
            st.session_state.pop("runs_confirm_delete", None)
            st.rerun()

"""Runs: every run in a filtered, paginated table (by status, strategy, dataset, group,
owner, text), and cancel / retry (a clone) / delete (with confirmation) / "Rerun exactly"
(same resolved config and seed; what changed since is shown first) on the one picked. The
buttons the user's role does not allow are not shown (services.actions refuses anyway)."""

from __future__ import annotations

import streamlit as st

import db
from app import access, store
from app.text import md
from app.views.runs import data as runs_data
from app.views.runs import page_columns as cols
from app.widgets import page_path
from services import actions as client

st.title("Runs")
message = st.session_state.pop("runs_message", None)
if message is not None:
    (st.success if message.ok else st.error)(md(message.message))  # quotes run names
    if message.ok:  # also a toast: the buttons sit below the table, the message above it (issue 25)
        st.toast(md(message.message), icon="✅")
engine = store.engine()
actor = access.current_actor()
options = runs_data.filter_options(engine)

# Rows that wrap (fixed widths): nothing is cut short at 800 px, one row at 1400 px.
with st.container(horizontal=True):
    statuses = st.multiselect("status", list(db.RUN_STATUSES), key="runs_status", width=240)
    strategy = st.selectbox(
        "strategy", options["strategy"], index=None, key="runs_strategy", placeholder="any", width=150
    )
    dataset = st.selectbox(
        "dataset", options["dataset"], index=None, key="runs_dataset", placeholder="any", width=170
    )
    group = st.selectbox(
        "group", options["group"], index=None, key="runs_group", placeholder="any", width=200
    )
    owner = st.selectbox(
        "owner", options["owner"], index=None, key="runs_owner", placeholder="anyone", width=150
    )
    text = st.text_input("search (name, group, strategy, id or #id)", key="runs_text", width=260)
flt = runs_data.RunFilter(tuple(statuses), strategy, dataset, group, text, owner)
if st.session_state.get("runs_filter_seen") != flt:
    st.session_state["runs_filter_seen"] = flt
    st.session_state["runs_cursors"] = [None]  # a new filter goes back to page 1

# keyset pages: runs_cursors[i] is the last id shown before page i + 1 (None: the newest)
cursors: list[int | None] = st.session_state.setdefault("runs_cursors", [None])
page = runs_data.runs_page(engine, flt, len(cursors), before_id=cursors[-1])
if not page.runs and len(cursors) > 1:  # the runs of this page were deleted: back to page 1
    cursors = st.session_state["runs_cursors"] = [None]
    page = runs_data.runs_page(engine, flt, 1)
page_no = len(cursors)
st.session_state["runs_page"] = page_no
pages = max(runs_data.page_count(page.total), page_no + (1 if page.has_more else 0))
rows = runs_data.table_rows(engine, page.runs)

plus = "+" if page.total_capped else ""
st.caption(f"{page.total}{plus} run(s) match · page {page_no} of {pages}{plus}")
widths = cols.WIDTHS  # every column in view at 1400 px, none clipped (issue 25)
st.dataframe(
    rows,
    hide_index=True,
    width="stretch",
    key="runs_table",
    column_order=cols.COLUMNS,
    column_config={
        "progress": st.column_config.ProgressColumn(
            "progress", min_value=0.0, max_value=100.0, format="%.0f%%", width=widths["progress"]
        ),
        "live": st.column_config.LinkColumn("live", display_text="open", width=widths["live"]),
        "id": st.column_config.NumberColumn("id", width=widths["id"]),
        **{
            c: st.column_config.Column(cols.LABELS.get(c, c), width=w)
            for c, w in widths.items()
            if c not in ("progress", "live", "id")
        },
    },
)
pager = st.container(horizontal=True)
if pager.button("◀ previous", disabled=page_no <= 1, key="runs_prev"):
    st.session_state["runs_cursors"] = cursors[:-1]
    st.rerun()
if pager.button("next ▶", disabled=not page.has_more, key="runs_next"):
    st.session_state["runs_cursors"] = [*cursors, page.runs[-1].id]
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
row = rows[rows["id"] == run.id].iloc[0]
st.caption(  # the columns the table leaves out, and the name whole
    f"#{run.id} {md(str(row['name']))} · dataset {md(run.dataset)} · owner {md(str(row['owner']))} · "
    f"seed {run.seed} · attempt {run.attempt} · created {row['created']}",
)
if (origin := runs_data.lineage(run)) is not None:
    st.container(key="runs-lineage").caption(f"Run #{run.id}: {origin}.")
allowed = runs_data.allowed_actions(run)
permitted = runs_data.permitted_actions(actor, run)
actions = st.container(horizontal=True, vertical_alignment="center")
if permitted["cancel"] and actions.button("Cancel", disabled=not allowed["cancel"], key="runs_cancel"):
    st.session_state["runs_message"] = runs_data.run_action("cancel", run.id, engine, actor)
    st.rerun()
if permitted["retry"] and actions.button("Retry (clone)", disabled=not allowed["retry"], key="runs_retry"):
    st.session_state["runs_message"] = runs_data.run_action("retry", run.id, engine, actor)
    st.rerun()
if permitted["rerun"] and allowed["rerun"] and actions.button("Rerun exactly", key="runs_rerun"):
    check = client.rerun_check(run.id, engine=engine)
    if check.blocking:
        st.session_state["runs_confirm_rerun"] = (run.id, check.blocking, check.notes)
    else:
        st.session_state["runs_message"] = runs_data.run_action("rerun", run.id, engine, actor)
        st.rerun()
if permitted["delete"] and actions.button("Delete", disabled=not allowed["delete"], key="runs_delete"):
    st.session_state["runs_confirm_delete"] = run.id
actions.page_link(page_path("live"), label="Live", query_params={"run": str(run.id)})
actions.page_link(
    page_path("compare"), label=f"Compare group {md(run.group)}", query_params={"group": run.group}
)
if not all(permitted[a] for a in ("cancel", "retry", "rerun", "delete")):
    st.caption(
        f"Signed in as {md(actor.name)} ({actor.role}): "
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
            + "\n".join(f"- {md(item)}" for item in pending[1])
        )
        for note in pending[2]:
            st.caption(md(note))
        choice = st.container(horizontal=True)
        if choice.button("Rerun anyway", key="runs_rerun_confirm"):
            st.session_state.pop("runs_confirm_rerun", None)
            st.session_state["runs_message"] = runs_data.run_action("rerun", run.id, engine, actor)
            st.rerun()
        if choice.button("Don't", key="runs_rerun_keep"):
            st.session_state.pop("runs_confirm_rerun", None)
            st.rerun()

if st.session_state.get("runs_confirm_delete") == run.id:
    with st.container(border=True, key="runs-confirm"):
        st.warning(
            f"Delete run #{run.id} ({md(run.name)}) with all its series and events? This cannot be undone."
        )
        confirm = st.container(horizontal=True)
        if confirm.button("Yes, delete", type="primary", key="runs_delete_confirm"):
            st.session_state.pop("runs_confirm_delete", None)
            st.session_state["runs_message"] = runs_data.run_action("delete", run.id, engine, actor)
            st.rerun()
        if confirm.button("Keep it", key="runs_delete_keep"):
            st.session_state.pop("runs_confirm_delete", None)
            st.rerun()

"""The Live page's alert strip: the run's imbalance alerts, newest first, each with its
evidence and a "Try this" link that opens Launch with the advice applied
(`/launch?from=RUN_ID&advice=ALERT_ID`)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st
from sqlalchemy import Engine

import db
from app import alerts as al
from app.widgets import page_path

_BOX = {"critical": st.error, "warning": st.warning, "info": st.info}


def _one(run_id: int, event: db.EventInfo) -> None:
    sev = al.severity(event)
    data = event.data or {}
    with st.container(key=f"live-alert-{event.id}"):
        c1, c2 = st.columns([6, 1])
        with c1:
            # detector names and steps are ours; the message and evidence quote data (modality
            # names), so they are shown as plain text, never as Markdown
            _BOX.get(sev, st.warning)(
                f"**{al.DETECTOR_LABEL.get(str(data.get('detector')), 'alert')}**"
                + (f" · step {event.step:,}" if event.step is not None else ""),
                icon=":material/notifications_active:",
            )
            st.text(event.message)
            evidence = al.evidence_text(event)
            if evidence:
                st.text(f"evidence: {evidence}")
        if al.has_strategy_advice(event):
            c2.page_link(
                page_path("launch"),
                label="Try this",
                icon=":material/science:",
                query_params=al.try_this_query(run_id, event.id),
            )


def poll_alerts(engine: Engine, run_id: int, held: dict[int, list[db.EventInfo]]) -> list[db.EventInfo]:
    """Every alert of the run, newest first: the ones `held` (session state) plus those
    stored since the last poll (by event id; every alert, however many other events)."""
    mine = held.setdefault(run_id, [])
    mine.extend(db.run_events(engine, run_id, after_id=mine[-1].id if mine else 0, kind="alert"))
    return al.alerts_of(mine)


def render_alert_strip(run_id: int, events: Sequence[db.EventInfo]) -> list[db.EventInfo]:
    """Draw the strip (nothing when the run has no alert); returns the alerts, newest first."""
    alerts = al.alerts_of(events)
    if not alerts:
        return alerts
    with st.container(key="live-alerts", border=True):
        st.markdown(f"**Alerts ({len(alerts)})**, newest first")
        for event in alerts[: al.strip_shown]:
            _one(run_id, event)
        if len(alerts) > al.strip_shown:
            with st.expander(f"{len(alerts) - al.strip_shown} older alert(s)"):
                for event in alerts[al.strip_shown :]:
                    _one(run_id, event)
    return alerts

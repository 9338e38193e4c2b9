"""Alerts on the dashboard: the Live alert strip (newest first, evidence, "Try this") and
markers on the charts at the alerts' steps; Overview's runs needing attention; the Runs
table's alerts column; `/launch?from=RUN_ID&advice=ALERT_ID` opens the form holding the
run's config with the advice applied, which validates and launches."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

import db
from app import alerts as al
from app.views.launch import advice as la
from tests.helpers.apptest import chart_specs, errors_of, frame_with, open_page
from tests.helpers.stored_runs import add_run


def _alert(step: int, detector: str = "dominance", severity: str = "warning", **over: Any) -> dict[str, Any]:
    return {
        "key": f"{detector}:visual:{step}",
        "detector": detector,
        "severity": severity,
        "modality": "visual",
        "step": step,
        "step_range": [step - 50, step],
        "evidence": {"dominant": "audio", "rho": 2.4, "window": 50},
        "advice": {
            "text": "try OPM",
            "strategies": [{"name": "opm", "q_base": 0.5}, {"name": "ogm_ge", "alpha": 0.8}],
        },
        "message": f"visual under-optimised since step {step - 50} (ρ_audio 2.40 over 50 steps): try OPM",
        **over,
    }


def _store(engine: Engine, run_id: int, *alerts: dict[str, Any]) -> list[db.EventInfo]:
    sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.05, record_status=False)
    for a in alerts:
        sink.on_alert(a)
    sink.close()
    return db.run_events(engine, run_id, kind="alert")


def test_live_strip_newest_first_with_evidence_try_this_and_chart_markers(engine: Engine) -> None:
    rid = add_run(engine, "joint", "g", [], steps=100, status="running")
    first, second = _store(engine, rid, _alert(40), _alert(90, "suppressed_gradients", "critical"))
    at = open_page("live", run=str(rid))
    assert not at.exception and not errors_of(at)[1:]  # the critical alert is drawn as st.error
    boxes = [e.value for e in at.error] + [w.value for w in at.warning]
    assert any("suppressed gradients" in b and "step 90" in b for b in boxes)
    assert any("dominance" in b and "step 40" in b for b in boxes)
    texts = [t.value for t in at.text]
    assert any(t.startswith("visual under-optimised since step 40") for t in texts)
    assert any("evidence: dominant audio · rho 2.4 · window 50" in t for t in texts)
    links = [el.proto for el in at.get("page_link") if el.proto.label == "Try this"]
    # newest first (document order), each opening Launch with its own advice
    assert [link.query_string for link in links] == [
        f"from={rid}&advice={second.id}",
        f"from={rid}&advice={first.id}",
    ]
    ratio = next(s for s in chart_specs(at) if s["layout"]["title"]["text"].startswith("Discrepancy ratio"))
    xs = sorted(s["x0"] for s in ratio["layout"]["shapes"] if str(s.get("name", "")).startswith("alert"))
    assert xs == [40, 90]


def test_alerts_of_orders_newest_first(engine: Engine) -> None:
    rid = add_run(engine, "r", "g", [], steps=10)
    stored = _store(engine, rid, _alert(10), _alert(20), _alert(30))
    events = db.run_events(engine, rid)
    assert [e.step for e in al.alerts_of(events)] == [30, 20, 10]
    assert al.counts_text({"warning": 2, "critical": 1}) == "3 (1 critical, 2 warning)"
    assert al.counts_text({}) == ""
    fig = al.add_markers({"data": [], "layout": {}}, stored)
    assert [a["x"] for a in fig["layout"]["annotations"]] == [10, 20, 30]


def test_overview_lists_runs_needing_attention_and_runs_has_an_alerts_column(engine: Engine) -> None:
    calm = add_run(engine, "calm", "g", ["opm"], steps=20)
    noisy = add_run(engine, "noisy", "g", [], steps=20)
    info_only = add_run(engine, "info-only", "g", ["ogm"], steps=20)
    _store(engine, noisy, _alert(10), _alert(15, "divergence", "critical"))
    _store(engine, info_only, _alert(12, "saturation", "info"))
    at = open_page()
    assert not at.exception
    texts = [t.value for t in at.text]
    attention = [t for t in texts if "alerts " in t]
    assert len(attention) == 1 and f"#{noisy}" in attention[0] and "2 (1 critical, 1 warning)" in attention[0]
    at = open_page("runs")
    frame = frame_with(at, "alerts")
    by_id = dict(zip(frame["id"], frame["alerts"], strict=True))
    assert (
        by_id[noisy] == "2 (1 critical, 1 warning)" and by_id[info_only] == "1 (1 info)" and by_id[calm] == ""
    )


def test_try_this_opens_the_form_with_the_advice_applied_and_it_launches(
    engine: Engine, sent: list[int]
) -> None:
    rid = add_run(engine, "joint-run", "g", [], steps=20)
    (alert,) = _store(engine, rid, _alert(20))
    at = open_page("launch", **{"from": str(rid), "advice": str(alert.id)})
    assert not at.exception and not errors_of(at)
    assert at.info and any(f"alert #{alert.id}" in t.value and "opm" in t.value for t in at.text)
    assert at.multiselect(key="f:strategies").value == ["opm"]
    assert at.number_input(key="f:strategy.opm.q_base").value == 0.5
    assert at.text_input(key="f:name").value == f"joint-run (advice #{alert.id})"
    # filled after ux's ?from= fill, through the page's filler: the advised values are the
    # form's baseline (nothing counts as edited), and the caption says where they came from
    assert at.session_state["launch_baseline"]["name"] == f"joint-run (advice #{alert.id})"
    assert any(f"run #{rid} with the advice of alert #{alert.id}" in c.value for c in at.caption)
    assert at.button(key="launch_button").proto.label == "Launch 1 run"
    at.button(key="launch_button").click().run()
    assert not errors_of(at)
    new = max(r.id for r in db.list_runs(engine).runs)
    cfg = db.get_run(engine, new).config
    assert [s["name"] for s in cfg["strategies"]] == ["opm"] and cfg["strategies"][0]["q_base"] == 0.5
    assert cfg["group"] == "g" and cfg["train"]["epochs"] == 5 and sent == [new]


def test_advice_link_errors_are_shown_not_raised(engine: Engine) -> None:
    a = add_run(engine, "a", "g", [], steps=5)
    b = add_run(engine, "b", "g", [], steps=5)
    (alert,) = _store(engine, a, _alert(5))
    with pytest.raises(la.AdviceError, match="belongs to run"):
        la.advised_config(engine, b, alert.id)
    with pytest.raises(la.AdviceError, match="no alert"):
        la.advised_config(engine, a, 99999)
    raw, note = la.advised_config(engine, a, alert.id, choice=1)
    assert [s["name"] for s in raw["strategies"]] == ["ogm_ge"] and "ogm_ge" in note
    at = open_page("launch", **{"from": str(b), "advice": str(alert.id)})
    assert not at.exception
    assert errors_of(at) and any("belongs to run" in t.value for t in at.text)


def test_strip_keeps_every_alert_however_many_other_events(engine: Engine) -> None:
    from app.views.live.strip import poll_alerts

    rid = add_run(engine, "long", "g", [], steps=10, status="running")
    (old,) = _store(engine, rid, _alert(5))
    sink = db.DbMetricSink(engine, rid, flush_interval_s=0.05, record_status=False)
    for i in range(250):  # more log events than the Live page keeps
        sink.on_event("info", f"event {i}")
    sink.on_alert(_alert(9))
    sink.close()
    held: dict[int, list[db.EventInfo]] = {}
    assert [e.step for e in poll_alerts(engine, rid, held)] == [9, 5]
    _store(engine, rid, _alert(10))
    assert [e.step for e in poll_alerts(engine, rid, held)] == [10, 9, 5] and held[rid][0].id == old.id
    at = open_page("live", run=str(rid))
    assert not at.exception
    assert len([el for el in at.get("page_link") if el.proto.label == "Try this"]) == 3

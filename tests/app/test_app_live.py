"""Live page: the deep link `?run=ID`, the panels a run's keys call for, incremental
refreshes (only new points are fetched; the history is read downsampled and re-read when
the raw tail grows), a bounded number of points for a long run, and the timer that stops
once the run has ended."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

import db
from app.views.live import data as lv
from tests.helpers.apptest import chart_specs, errors_of, open_page
from tests.helpers.stored_runs import add_run, series_for


def _titles(at) -> dict[str, dict]:
    return {s["layout"]["title"]["text"]: s for s in chart_specs(at)}


def test_deep_link_shows_the_run_with_its_panels_and_new_points_on_rerun(engine: Engine) -> None:
    other = add_run(engine, "other", "g", ["opm"], steps=50)
    rid = add_run(engine, "live-ogm", "g", ["ogm_ge"], steps=100, status="running")
    at = open_page("live", run=str(rid))
    assert not at.exception and not errors_of(at)
    assert at.selectbox(key="live_pick").value == rid
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["status"] == "running" and metrics["step"].startswith("100")
    assert "ρ audio" in metrics and "ρ visual" in metrics
    charts = _titles(at)
    ogm_k = next(p for p in lv.panels() if p.prefixes == ("ogm/coef/",))  # OGM's k: its own panel
    assert set(charts) == {p.title for p in lv.PANELS} | {ogm_k.title}
    ratio = charts[lv.PANELS[0].title]
    assert ratio["layout"]["uirevision"] == f"live-{rid}-ratio"
    audio = next(t for t in ratio["data"] if t["name"] == "audio")
    assert audio["x"] == list(range(1, 101))

    db.write_points(engine, rid, series_for(["ogm_ge"], range(101, 111), 0))
    at.run()
    audio = next(t for t in _titles(at)[lv.PANELS[0].title]["data"] if t["name"] == "audio")
    assert audio["x"] == list(range(1, 111))
    assert _titles(at)[lv.PANELS[0].title]["layout"]["uirevision"] == f"live-{rid}-ratio"  # zoom kept

    at.selectbox(key="live_pick").set_value(other).run()
    assert at.query_params["run"] == [str(other)] or at.query_params["run"] == str(other)
    opm_q = next(p for p in lv.panels() if p.prefixes == ("opm/drop_prob/",))  # OPM's q: its own panel
    modulation = _titles(at)[opm_q.title]
    assert {t["name"] for t in modulation["data"]} >= {"audio", "visual"}
    assert ogm_k.title not in _titles(at)


def test_refresh_fetches_only_new_points(engine: Engine) -> None:
    rid = add_run(engine, "r", "g", ["ogm_ge"], steps=100, status="running")
    keys = db.series_keys(engine, rid)
    state = lv.refresh(engine, lv.LiveState(run_id=rid))
    assert state.last_history_reads == len(keys) and state.last_new_points == 0
    lv.refresh(engine, state)
    assert state.last_history_reads == 0 and state.last_new_points == 0  # nothing new: nothing read
    new = series_for(["ogm_ge"], range(101, 106), 0)
    db.write_points(engine, rid, new)
    lv.refresh(engine, state)
    assert state.last_history_reads == 0
    assert state.last_new_points == sum(len(v) for v in new.values())
    ratio = state.series["imbalance/ratio/audio"]
    assert ratio.steps == list(range(1, 106))
    assert ratio.values[-5:] == pytest.approx([v for _, v in new["imbalance/ratio/audio"]])


def test_long_run_is_read_downsampled_and_the_tail_is_compacted(engine: Engine) -> None:
    rid = add_run(engine, "long", "g", ["ogm_ge"], steps=0, status="running")
    key = "imbalance/ratio/audio"
    db.write_points(engine, rid, {key: [(s, 1.0 + (s % 100) / 100) for s in range(1, 50_001)]})
    state = lv.refresh(engine, lv.LiveState(run_id=rid))
    live = state.series[key]
    assert len(live.steps) <= lv.history_max_buckets and live.history_last_step == 50_000
    db.write_points(
        engine, rid, {key: [(s, 2.0) for s in range(50_001, 50_001 + lv.tail_compaction_points // 2)]}
    )
    lv.refresh(engine, state)
    assert state.last_history_reads == 0 and state.series[key].tail_points == lv.tail_compaction_points // 2
    db.write_points(engine, rid, {key: [(s, 2.0) for s in range(51_000, 51_000 + lv.tail_compaction_points)]})
    lv.refresh(engine, state)
    assert state.last_history_reads == 1  # the tail grew past the bound: history re-read
    live = state.series[key]
    assert len(live.steps) <= lv.history_max_buckets and live.tail_points == 0
    assert live.history_last_step == 51_000 + lv.tail_compaction_points - 1


def test_refresh_stops_when_the_run_ends(engine: Engine) -> None:
    rid = add_run(engine, "r", "g", ["opm"], steps=20, status="running")
    state = lv.refresh(engine, lv.LiveState(run_id=rid))
    assert lv.refresh_every_s(state.run) == lv.poll_interval_s
    assert 0.02 <= lv.poll_interval_s <= 0.2 and 1.0 <= lv.refresh_interval_s <= 2.0
    db.add_event(engine, rid, "warning", "checkpoint written")
    db.finish_run(engine, rid, "cancelled")
    lv.refresh(engine, state)
    assert state.run is not None and state.run.status == "cancelled"
    assert lv.refresh_every_s(state.run) is None
    assert [e.message for e in state.events] == ["checkpoint written"]
    at = open_page("live", run=str(rid))
    assert {m.label: m.value for m in at.metric}["status"] == "cancelled"


def test_a_refresh_is_due_when_something_drawn_changed_and_only_then(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`is_due` says yes after a point, a new series, an event or a change of the run row,
    and after `refresh_interval_s` with nothing new; no otherwise."""
    monkeypatch.setattr(lv, "refresh_interval_s", 3600.0)
    rid = add_run(engine, "r", "g", ["ogm_ge"], steps=20, status="running")
    state = lv.refresh(engine, lv.LiveState(run_id=rid))
    assert not lv.is_due(engine, state) and not lv.is_due(engine, state)
    for change in (
        lambda: db.write_points(engine, rid, {"imbalance/ratio/audio": [(21, 1.5)]}),
        lambda: db.write_points(engine, rid, {"brand/new": [(3, 1.0)]}),
        lambda: db.add_event(engine, rid, "warning", "alert"),
        lambda: db.heartbeat(engine, rid, progress=0.9, step=21),
        lambda: db.finish_run(engine, rid, "succeeded"),
    ):
        change()
        assert lv.is_due(engine, state)
        lv.refresh(engine, state)
        assert not lv.is_due(engine, state)
    assert state.series["imbalance/ratio/audio"].last_step == 21 and "brand/new" in state.series
    assert state.run is not None and state.run.status == "succeeded"
    monkeypatch.setattr(lv, "refresh_interval_s", 0.05)
    time.sleep(0.06)
    assert lv.is_due(engine, state)  # nothing new, but the last refresh is old


def test_the_live_intervals_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    read = lv._seconds_from_env
    monkeypatch.setenv("BML_LIVE_POLL_S", "0.25")
    assert read("BML_LIVE_POLL_S", 0.1, 0.02, 5.0) == 0.25
    for bad, expected in (("x", 0.1), ("nan", 0.1), ("0", 0.02), ("99", 5.0), ("", 0.1)):
        monkeypatch.setenv("BML_LIVE_POLL_S", bad)
        assert read("BML_LIVE_POLL_S", 0.1, 0.02, 5.0) == expected


def test_unknown_or_bad_run_in_the_link_is_reported(engine: Engine) -> None:
    add_run(engine, "r", "g", steps=10)
    assert any("no run 42" in e for e in errors_of(open_page("live", run="42")))
    assert any("not a run id" in e for e in errors_of(open_page("live", run="abc")))


def test_a_deleted_run_in_the_link_shows_only_the_message_and_a_picker(engine: Engine) -> None:
    gone = add_run(engine, "gone", "g", steps=10)
    other = add_run(engine, "other", "g", steps=10)
    db.delete_run(engine, gone)
    at = open_page("live", run=str(gone))
    assert any(f"no run {gone}" in e for e in errors_of(at))
    assert at.selectbox(key="live_pick").value is None  # a way to pick a run, none picked
    assert not at.metric and not chart_specs(at)  # no other run's data
    at.selectbox(key="live_pick").set_value(other).run()
    assert {m.label: m.value for m in at.metric}["status"] == "succeeded"

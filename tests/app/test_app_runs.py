"""Runs page: the table's columns, filters (status, strategy, dataset, group, text),
pagination, ETA and best validation accuracy, and cancel / retry / delete (with
confirmation) through services.actions with the broker send recorded instead of made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

import db
from app import progress
from app.views.runs import data as runs_data
from tests.helpers.apptest import frame_with, open_page
from tests.helpers.stored_runs import add_run, summary_for


@pytest.fixture
def many_runs(engine: Engine) -> dict[str, list[int]]:
    ids: dict[str, list[int]] = {"ogm": [], "opm": [], "queued": [], "running": []}
    for i in range(14):
        ids["ogm"].append(add_run(engine, f"ogm-{i}", "sweep-a", ["ogm_ge"], seed=i, steps=30))
    for i in range(10):
        ids["opm"].append(add_run(engine, f"opm-{i}", "sweep-b", ["opm"], seed=i, steps=30))
    ids["queued"].append(add_run(engine, "waiting", "later", ["opm"], status="queued"))
    ids["running"].append(add_run(engine, "busy", "later", ["ogm_ge"], steps=60, status="running"))
    return ids


def test_table_paginates_and_filters(engine: Engine, many_runs: dict[str, list[int]]) -> None:
    at = open_page("runs")
    table = frame_with(at, "ETA")
    assert len(table) == runs_data.page_size_runs
    assert list(table["id"]) == sorted((i for v in many_runs.values() for i in v), reverse=True)[:25]
    assert {"status", "progress", "ETA", "strategy", "dataset", "group", "best val acc", "live"} <= set(
        table.columns
    )
    assert "26 run(s) match · page 1 of 2" in [c.value for c in at.caption]
    at.button(key="runs_next").click().run()
    assert list(frame_with(at, "ETA")["id"]) == [many_runs["ogm"][0]]

    at.multiselect(key="runs_status").set_value(["queued", "running"]).run()
    table = frame_with(at, "ETA")
    assert sorted(table["id"]) == sorted(many_runs["queued"] + many_runs["running"])
    assert at.session_state["runs_page"] == 1  # a new filter goes back to page 1
    at.multiselect(key="runs_status").set_value([]).run()
    at.selectbox(key="runs_strategy").set_value("opm").run()
    assert len(frame_with(at, "ETA")) == 11
    at.selectbox(key="runs_group").set_value("sweep-b").run()
    assert len(frame_with(at, "ETA")) == 10
    at.text_input(key="runs_text").set_value("OPM-7").run()
    table = frame_with(at, "ETA")
    assert list(table["name"]) == ["opm-7"] and table.iloc[0]["live"] == f"/live?run={many_runs['opm'][7]}"
    # ids show as "#N": searching "#N" (and "N") finds that run (issue 25)
    at.text_input(key="runs_text").set_value(f"#{many_runs['opm'][7]}").run()
    assert list(frame_with(at, "ETA")["id"]) == [many_runs["opm"][7]]
    at.text_input(key="runs_text").set_value(str(many_runs["opm"][7])).run()
    assert many_runs["opm"][7] in list(frame_with(at, "ETA")["id"])
    at.text_input(key="runs_text").set_value("nothing-like-this").run()
    assert len(frame_with(at, "ETA")) == 0
    assert "No run matches these filters." in [i.value for i in at.info]


def test_pages_are_read_by_keyset_and_a_capped_count_says_so(
    engine: Engine, many_runs: dict[str, list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """next / previous walk keyset pages (a run added meanwhile does not shift page 2); a
    count over the cap shows as "N+" (issue 22)."""
    every = sorted((i for v in many_runs.values() for i in v), reverse=True)
    at = open_page("runs")
    at.button(key="runs_next").click().run()
    assert list(frame_with(at, "ETA")["id"]) == every[25:]
    assert at.session_state["runs_cursors"] == [None, every[24]]
    add_run(engine, "newer", "later", ["opm"], status="queued")
    at.run()
    assert list(frame_with(at, "ETA")["id"]) == every[25:]  # page 2 stays put
    assert "27 run(s) match · page 2 of 2" in [c.value for c in at.caption]
    at.button(key="runs_prev").click().run()
    table = frame_with(at, "ETA")
    assert list(table["id"])[1:] == every[:24] and len(table) == 25
    monkeypatch.setattr(runs_data, "count_cap", 20)
    at.run()
    assert "20+ run(s) match · page 1 of 2+" in [c.value for c in at.caption]


def test_best_val_accuracy_and_eta(engine: Engine) -> None:
    done = add_run(engine, "done", "g", summary=summary_for(0.77, 0.7, {}, 0.1, 3.0))
    live = add_run(engine, "live", "g", steps=60, status="running")
    queued = add_run(engine, "q", "g", status="queued")
    runs = {r.id: r for r in db.list_runs(engine).runs}
    assert runs_data.best_val_accuracy(engine, runs[done]) == pytest.approx(0.77)
    val = db.series_since(engine, live, keys=["val/acc"])["val/acc"].values
    assert runs_data.best_val_accuracy(engine, runs[live]) == pytest.approx(max(val))
    assert runs_data.best_val_accuracy(engine, runs[queued]) is None
    running = runs[live]
    assert running.started_at is not None
    later = running.started_at + timedelta(seconds=40)  # progress 0.4 after 40 s: 60 s left
    assert progress.eta_seconds(running, later) == pytest.approx(60.0)
    assert progress.eta_seconds(runs[done], datetime.now(UTC)) is None
    assert progress.format_duration(60.0) == "1m 00s" and progress.format_duration(3725) == "1h 02m"
    assert progress.format_duration(None) == "—"


def test_allowed_actions_follow_the_status(engine: Engine, many_runs: dict[str, list[int]]) -> None:
    runs = {r.id: r for r in db.list_runs(engine, limit=None).runs}
    assert runs_data.allowed_actions(runs[many_runs["queued"][0]]) == {
        "cancel": True,
        "retry": False,
        "rerun": True,
        "delete": True,
    }
    assert runs_data.allowed_actions(runs[many_runs["running"][0]]) == {
        "cancel": True,
        "retry": False,
        "rerun": True,
        "delete": False,
    }
    assert runs_data.allowed_actions(runs[many_runs["ogm"][0]]) == {
        "cancel": False,
        "retry": True,
        "rerun": True,
        "delete": True,
    }


def test_cancel_retry_and_delete_with_confirmation(engine: Engine, sent: list[int]) -> None:
    queued = add_run(engine, "waiting", "g", status="queued")
    running = add_run(engine, "busy", "g", steps=20, status="running")
    done = add_run(engine, "done", "g", steps=20)
    at = open_page("runs")

    at.selectbox(key="runs_pick").set_value(queued).run()
    at.button(key="runs_cancel").click().run()
    assert db.get_run(engine, queued).status == "cancelled"
    assert f"Run {queued} cancelled." in [s.value for s in at.success]

    at.selectbox(key="runs_pick").set_value(running).run()
    assert at.button(key="runs_delete").disabled and at.button(key="runs_retry").disabled
    at.button(key="runs_cancel").click().run()
    run = db.get_run(engine, running)
    assert run.status == "running" and run.cancel_requested  # its supervisor stops it
    assert any("asked to stop" in s.value for s in at.success)
    assert "cancelling" in list(frame_with(at, "ETA")["status"])

    at.selectbox(key="runs_pick").set_value(done).run()
    at.button(key="runs_retry").click().run()
    clone = max(r.id for r in db.list_runs(engine, limit=None).runs)
    # a toast names both runs where the user is (issue 25)
    assert any(f"Run {done} cloned as run {clone}" in t.value for t in at.toast)
    assert sent == [clone] and db.get_run(engine, clone).status == "queued"
    # the clone's config is the original's; only its name says what it is (issue 14)
    original = db.get_run(engine, done).config
    assert db.get_run(engine, clone).config == {**original, "name": f"{original['name']} (retry of #{done})"}
    # and the store records what it is: runs.retry_of, shown on the page (issue 22)
    assert db.get_run(engine, clone).retry_of == done and db.get_run(engine, done).retry_of is None
    at.run()
    table = frame_with(at, "ETA").set_index("id")
    assert table.loc[clone, "retry of"] == f"#{done}" and table.loc[done, "retry of"] == "—"
    at.selectbox(key="runs_pick").set_value(clone).run()
    assert f"Run #{clone}: retry of #{done}." in [c.value for c in at.caption]

    at.selectbox(key="runs_pick").set_value(done).run()
    at.button(key="runs_delete").click().run()
    assert db.get_run(engine, done)  # not yet: a confirmation first
    at.button(key="runs_delete_keep").click().run()
    assert db.get_run(engine, done)
    at.button(key="runs_delete").click().run()
    at.button(key="runs_delete_confirm").click().run()
    with pytest.raises(db.RunNotFound):
        db.get_run(engine, done)
    assert f"Run {done} and all its data deleted." in [s.value for s in at.success]
    assert f"Run {done} and all its data deleted." in [t.value for t in at.toast]

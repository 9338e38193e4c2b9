"""The sink's pure planner (`db.sink.plan`): a hand-built batch in, the rows one commit
writes out; no store, no thread."""

from __future__ import annotations

from datetime import UTC, datetime

from db.sink.plan import (
    AlertItem,
    Batch,
    EndItem,
    EvalItem,
    EventItem,
    SinkState,
    StepItem,
    plan_keys,
    plan_writes,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_plan_keys_splits_new_known_and_refused_keys() -> None:
    batch = Batch(
        steps=[StepItem(1, {"loss": 1.0, "": 2.0, "seen": 3.0})], evals=[EvalItem(1, {"val/acc": 0.5})]
    )
    plan = plan_keys(batch, {"seen": 4}, {"old bad"}, now=NOW, outage=None, dropped=3, dropped_events=1)
    assert plan.step_keys == {"loss", "", "seen"} and plan.eval_keys == {"val/acc"}
    assert sorted(plan.new_keys) == ["loss", "val/acc"]
    assert list(plan.refused_now) == [""] and "empty" in plan.refused_now[""]
    assert plan.skip == {"old bad", ""}
    assert (plan.now, plan.outage, plan.dropped, plan.dropped_events) == (NOW, None, 3, 1)


def test_plan_writes_gives_every_row_of_the_commit() -> None:
    batch = Batch(
        steps=[StepItem(10, {"loss": 1.0, "": 9.0}), StepItem(20, {"loss": "x"})],  # type: ignore[dict-item]
        evals=[EvalItem(15, {"val/acc": 0.5})],
        events=[EventItem(0.0, "info", "hello")],
        alerts=[AlertItem(0.0, {"key": "k1", "severity": "critical", "message": "imbalance", "step": 10})],
        start={"total_steps": 40, "device": "cpu"},
        end=EndItem("succeeded", {"val/acc": 0.5}),
    )
    plan = plan_keys(batch, {}, set(), now=NOW, outage=None, dropped=2, dropped_events=0)
    state = SinkState(7, 100, outage_s=1.5, last_db_error="OperationalError: gone")
    writes = plan_writes(batch, plan, {"loss": 1, "val/acc": 2}, state)
    assert writes.points == [(1, 10, 1.0), (2, 15, 0.5)]
    assert writes.skipped == 2 and writes.lost == 4  # the refused key, "x"; plus 2 dropped earlier
    assert writes.spans == {1: (10, 20), 2: (15, 15)}
    assert writes.total_steps == 40
    epoch = datetime.fromtimestamp(0.0, UTC)
    assert [(e["level"], e["message"][:24]) for e in writes.events] == [
        ("info", "hello"),
        ("error", "metric key refused: it i"),
        ("error", "value 'x' of 'loss' at s"),
        ("error", "2 metric points and 0 ev"),
        ("warning", "the store was unreachabl"),
        ("info", "training started on cpu:"),
    ]
    assert writes.events[0]["time"] == epoch and all(e["run_id"] == 7 for e in writes.events)
    assert "1.5s (OperationalError: gone)" in writes.events[4]["message"]
    [alert] = writes.alerts
    assert (alert["alert_key"], alert["level"], alert["kind"], alert["step"]) == ("k1", "error", "alert", 10)
    assert writes.run_values == {
        "heartbeat_at": NOW,
        "total_steps": 40,
        "step": 20,
        "progress": 1.0,
        "status": "succeeded",
        "finished_at": NOW,
        "summary": {"val/acc": 0.5},
    }


def test_a_heartbeat_batch_writes_only_the_heartbeat() -> None:
    batch = Batch()
    plan = plan_keys(batch, {}, set(), now=NOW, outage=None, dropped=0, dropped_events=0)
    writes = plan_writes(batch, plan, {}, SinkState(1, 100, total_steps=8))
    assert (writes.points, writes.spans, writes.events, writes.alerts, writes.lost) == ([], {}, [], [], 0)
    assert writes.run_values == {"heartbeat_at": NOW} and writes.total_steps == 8

"""The run lifecycle the worker drives: create, claim (atomic), heartbeat, cancel,
finish, requeue of stale runs, delete; unknown ids give a clear error."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, update

import db
from bml_core.config import ConfigError
from db.models import Event, Point, Rollup, Run, RunTag, Series, utcnow

CONFIG = {"name": "ogm-a", "group": "g1", "seed": 3, "strategies": [{"name": "ogm_ge", "alpha": 0.5}]}


def test_create_run_is_queued_with_fields_from_the_config(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG, tags=["paper", "cvpr"])
    run = db.get_run(engine, run_id)
    assert (run.status, run.name, run.group, run.seed, run.attempt) == ("queued", "ogm-a", "g1", 3, 0)
    assert run.strategy == "ogm_ge" and run.dataset == "synthetic"
    assert run.tags == ["cvpr", "paper"]
    assert run.config["strategies"][0]["alpha"] == 0.5
    assert run.config["optim"]["name"] == "sgd"  # the full, validated config is stored
    assert run.summary is None and run.progress == 0.0 and run.max_attempts == 3
    assert run.created_at.tzinfo is not None


def test_create_run_refuses_an_invalid_config_and_stores_nothing(engine: Engine) -> None:
    with pytest.raises(ConfigError) as exc:
        db.create_run(engine, {"name": "x", "train": {"epochs": 0}, "bogus": 1})
    paths = dict(exc.value.errors)
    assert "bogus" in paths and "train.epochs" in paths
    assert db.list_runs(engine).total == 0


def test_claim_is_atomic_under_concurrent_workers(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG)
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def claim(i: int) -> None:
        barrier.wait()
        results.append(db.claim_run(engine, run_id, f"worker-{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 5 + [True]
    run = db.get_run(engine, run_id)
    assert run.status == "running" and run.attempt == 1 and run.worker is not None
    assert run.started_at is not None and run.heartbeat_at is not None


def test_heartbeat_progress_cancel_and_finish(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG)
    assert db.claim_run(engine, run_id, "w")
    assert db.heartbeat(engine, run_id, progress=0.25, step=10) is False
    run = db.get_run(engine, run_id)
    assert run.progress == 0.25 and run.step == 10
    assert db.request_cancel(engine, run_id) == "running"
    assert db.cancel_requested(engine, run_id) is True
    assert db.heartbeat(engine, run_id) is True  # the supervisor learns it should stop
    db.finish_run(engine, run_id, "cancelled", error="stopped by the user", traceback_tail="x" * 20_000)
    run = db.get_run(engine, run_id)
    assert run.status == "cancelled" and run.finished_at is not None
    assert run.error == "stopped by the user"
    assert run.traceback_tail is not None and len(run.traceback_tail) == db.runs.max_traceback_chars


def test_finish_keeps_the_summary_and_stores_non_finite_values(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG)
    db.claim_run(engine, run_id, "w")
    summary = {"best_epoch": 2, "test": {"acc": 0.9, "map": float("nan"), "f1": float("inf")}}
    db.finish_run(engine, run_id, "succeeded", summary=summary)
    db.finish_run(engine, run_id, "succeeded")  # a second report without a summary keeps it
    run = db.get_run(engine, run_id)
    assert run.status == "succeeded" and run.progress == 1.0
    assert run.summary == {"best_epoch": 2, "test": {"acc": 0.9, "map": "nan", "f1": "inf"}}
    with pytest.raises(ValueError, match="not a final status"):
        db.finish_run(engine, run_id, "running")


def test_cancel_of_a_queued_run_is_immediate_and_it_cannot_be_claimed(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG)
    assert db.request_cancel(engine, run_id) == "cancelled"
    assert db.claim_run(engine, run_id, "w") is False
    assert db.get_run(engine, run_id).status == "cancelled"


def _age_heartbeat(engine: Engine, run_id: int, seconds: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def test_requeue_stale_requeues_until_attempts_run_out(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG, max_attempts=2)
    alive = db.create_run(engine, CONFIG)
    assert db.claim_run(engine, run_id, "w1") and db.claim_run(engine, alive, "w2")
    _age_heartbeat(engine, run_id, 120)
    assert db.requeue_stale(engine, heartbeat_timeout_s=3600) == []
    assert db.requeue_stale(engine, heartbeat_timeout_s=60) == [run_id]
    assert db.get_run(engine, alive).status == "running"
    run = db.get_run(engine, run_id)
    assert run.status == "requeued" and run.worker is None
    assert db.claim_run(engine, run_id, "w3")
    assert db.get_run(engine, run_id).attempt == 2
    _age_heartbeat(engine, run_id, 120)
    assert db.requeue_stale(engine, heartbeat_timeout_s=60) == []
    run = db.get_run(engine, run_id)
    assert run.status == "failed"
    assert run.error is not None and "no heartbeat" in run.error and "no attempts left" in run.error
    assert any("no heartbeat" in e.message for e in db.run_events(engine, run_id))


def test_requeue_stale_cancels_a_stale_run_whose_cancel_was_requested(engine: Engine) -> None:
    run_id = db.create_run(engine, CONFIG)
    db.claim_run(engine, run_id, "w")
    db.request_cancel(engine, run_id)
    _age_heartbeat(engine, run_id, 120)
    assert db.requeue_stale(engine, heartbeat_timeout_s=60) == []
    assert db.get_run(engine, run_id).status == "cancelled"


def _count(engine: Engine, model: type, run_id: int) -> int:
    with engine.connect() as conn:
        if model in (Point, Rollup):
            sids = select(Series.id).where(Series.run_id == run_id).scalar_subquery()
            return conn.execute(
                select(func.count()).select_from(model).where(model.series_id.in_(sids))
            ).scalar_one()  # type: ignore[attr-defined]
        col = Run.id if model is Run else model.run_id  # type: ignore[attr-defined]
        return conn.execute(select(func.count()).select_from(model).where(col == run_id)).scalar_one()


def test_delete_run_removes_all_its_data_and_nothing_else(engine: Engine) -> None:
    keep = db.create_run(engine, CONFIG, tags=["a"])
    gone = db.create_run(engine, CONFIG, tags=["a", "b"])
    for rid in (keep, gone):
        db.write_points(engine, rid, {"train/loss": [(s, 1.0 / s) for s in range(1, 300)]})
        db.add_event(engine, rid, "info", "hello")
    db.claim_run(engine, gone, "w")
    with pytest.raises(db.InvalidRunState, match="running"):
        db.delete_run(engine, gone)
    db.delete_run(engine, gone, force=True)
    for model in (Run, RunTag, Series, Point, Rollup, Event):
        assert _count(engine, model, gone) == 0, model
        assert _count(engine, model, keep) > 0, model
    with pytest.raises(db.RunNotFound):
        db.get_run(engine, gone)


def test_unknown_run_id_is_a_clear_error_everywhere(engine: Engine) -> None:
    calls = [
        lambda: db.get_run(engine, 999),
        lambda: db.claim_run(engine, 999, "w"),
        lambda: db.heartbeat(engine, 999),
        lambda: db.finish_run(engine, 999, "failed"),
        lambda: db.request_cancel(engine, 999),
        lambda: db.cancel_requested(engine, 999),
        lambda: db.delete_run(engine, 999),
        lambda: db.add_event(engine, 999, "info", "x"),
        lambda: db.series_keys(engine, 999),
        lambda: db.series_since(engine, 999),
        lambda: db.downsampled_series(engine, 999, "train/loss"),
        lambda: db.latest_values(engine, 999),
        lambda: db.run_events(engine, 999),
        lambda: db.config_diff(engine, [999]),
        lambda: db.group_aggregate(engine, "train/loss", run_ids=[999]),
        lambda: db.write_points(engine, 999, {"a": [(1, 1.0)]}),
        lambda: db.DbMetricSink(engine, 999),
    ]
    for call in calls:
        with pytest.raises(db.RunNotFound, match="no run with id 999"):
            call()

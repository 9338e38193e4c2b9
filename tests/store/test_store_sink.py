"""DbMetricSink: a real training run streamed into the store, resumed runs (idempotent),
NaN/inf and refused keys, one writer streaming 4 runs under 2 polling readers, and a
PostgreSQL outage mid-run (through a proxy the test stops): nothing is lost, and what
the memory bound forces the sink to drop is counted on the run."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import db
from db.models import Point, Series

SMALL_RUN = {
    "name": "sink-e2e",
    "group": "sink",
    "dataset": {"name": "synthetic", "params": {"num_samples": 400}},
    "strategies": [{"name": "ogm_ge"}],
    "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "threads": 1},
}


def _point_count(engine: Engine, run_id: int) -> int:
    with engine.connect() as conn:
        sids = select(Series.id).where(Series.run_id == run_id).scalar_subquery()
        return int(
            conn.execute(
                select(func.count()).select_from(Point).where(Point.series_id.in_(sids))
            ).scalar_one()
        )


def test_a_training_run_streams_into_the_store(engine: Engine) -> None:
    from bml_core.config import load_config
    from bml_core.sinks import MemorySink
    from bml_core.trainer import train

    cfg = load_config(SMALL_RUN)
    run_id = db.create_run(engine, cfg)
    assert db.claim_run(engine, run_id, "test")
    memory = MemorySink()
    summary = train(cfg, sinks=[db.DbMetricSink(engine, run_id), memory])

    run = db.get_run(engine, run_id)
    assert run.status == "succeeded" and run.progress == 1.0
    assert run.total_steps == memory.info["total_steps"] == run.step
    assert run.summary is not None and run.summary["best_epoch"] == summary["best_epoch"]
    assert run.heartbeat_at is not None and run.dropped_points == 0
    keys = db.series_keys(engine, run_id)
    assert {"train/loss", "imbalance/ratio/audio", "ogm/coef/audio", "val/acc", "lr"} <= set(keys)
    expected = sum(len(m) for _, _, m in memory.steps) + sum(len(m) for _, _, m in memory.evals)
    assert _point_count(engine, run_id) == expected
    loss = db.series_since(engine, run_id, keys=["train/loss"])["train/loss"]
    assert loss.steps == [s for s, _, _ in memory.steps]
    assert loss.values == [m["train/loss"] for _, _, m in memory.steps]
    val = db.series_since(engine, run_id, keys=["val/acc"])["val/acc"]
    assert val.values == [m["val/acc"] for _, _, m in memory.evals]
    messages = [e.message for e in db.run_events(engine, run_id)]
    assert any(m.startswith("training started on cpu") for m in messages)


def test_an_evaluation_is_committed_at_once_not_at_the_next_flush(engine: Engine) -> None:
    """A study's pruner and Live wait for evaluations: they are committed within moments,
    with the steps queued before them, even when the flush interval is long."""
    run_id = db.create_run(engine, {"name": "eval-now"})
    assert db.claim_run(engine, run_id, "test")
    sink = db.DbMetricSink(engine, run_id, flush_interval_s=30.0)
    try:
        sink.on_step(0, 0, {"train/loss": 1.0})
        time.sleep(0.3)
        assert _point_count(engine, run_id) == 0  # steps wait for the flush interval
        sink.on_eval(1, 0, {"val/acc": 0.5})
        deadline = time.monotonic() + 5.0
        while _point_count(engine, run_id) < 2:
            assert time.monotonic() < deadline, "the evaluation waited for the 30 s flush"
            time.sleep(0.02)
        assert db.series_since(engine, run_id, keys=["val/acc"])["val/acc"].values == [0.5]
    finally:
        sink.close()


def test_a_resumed_run_sending_steps_again_stores_each_step_once(engine: Engine) -> None:
    run_id = db.create_run(engine, {"name": "resume"})
    first = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)
    first.on_start({"total_steps": 300, "start_step": 0})
    for step in range(1, 151):
        first.on_step(step, 0, {"train/loss": 1.0 / step, "lr": 0.1})
    first.on_end("cancelled", None)
    first.close()
    assert db.get_run(engine, run_id).status == "cancelled"
    second = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)  # resumed from step 99
    second.on_start({"total_steps": 300, "start_step": 99, "resumed": True})
    for step in range(100, 301):
        second.on_step(step, 1, {"train/loss": 2.0 / step, "lr": 0.1})
    second.on_end("succeeded", {"best_epoch": 1})
    second.close()

    loss = db.series_since(engine, run_id, keys=["train/loss"])["train/loss"]
    assert loss.steps == list(range(1, 301))
    assert loss.values == [(1.0 if s < 100 else 2.0) / s for s in range(1, 301)]
    assert _point_count(engine, run_id) == 600
    whole = db.downsampled_series(engine, run_id, "train/loss", max_buckets=1)
    assert whole.counts == [300] and whole.means[0] == pytest.approx(sum(loss.values) / 300)
    run = db.get_run(engine, run_id)
    assert run.status == "succeeded" and run.summary == {"best_epoch": 1} and run.dropped_points == 0


def test_sink_keeps_nan_and_inf_and_refuses_bad_keys_with_a_message(engine: Engine) -> None:
    run_id = db.create_run(engine, {"name": "bad-input"})
    sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)
    long_key = "k/" + "x" * 300
    for step in range(1, 11):
        sink.on_step(step, 0, {"a": float("nan") if step == 3 else float(step), "b": math.inf, long_key: 1.0})
    sink.on_eval(10, 0, {"val/acc": -math.inf, "val/bad": "high"})  # type: ignore[dict-item]
    sink.on_event("error", "boom")
    sink.on_end("failed", None)
    sink.close()

    got = db.series_since(engine, run_id)
    assert math.isnan(got["a"].values[2]) and got["a"].values[3] == 4.0
    assert got["b"].values == [math.inf] * 10
    assert got["val/acc"].values == [-math.inf]
    assert long_key not in got and got["val/bad"].steps == []
    run = db.get_run(engine, run_id)
    assert run.status == "failed" and run.error == "boom"
    assert run.dropped_points == 11 == sink.dropped_points  # 10 points of the long key + 1 non-number
    messages = [e.message for e in db.run_events(engine, run_id)]
    assert any("302 characters long, the limit is 200" in m for m in messages)
    assert any("'high' of 'val/bad' at step 10 is not a number" in m for m in messages)


def test_points_the_database_refuses_are_counted_not_retried_forever(engine: Engine) -> None:
    run_id = db.create_run(engine, {"name": "deleted-under-the-sink"})
    sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.05)
    with pytest.raises(ValueError, match="steps are integers from 0"):
        sink.on_step(-1, 0, {"a": 1.0})
    sink.on_step(1, 0, {"a": 1.0})
    assert sink.flush(10)
    db.delete_run(engine, run_id)
    for step in range(2, 12):
        sink.on_step(step, 0, {"new/key": 1.0, "other": 2.0})  # a new series now violates its foreign key
    t0 = time.monotonic()
    sink.close()
    assert time.monotonic() - t0 < 10
    assert sink.dropped_points == 20 and sink.written_points == 1 and sink.retries == 0


def test_points_become_visible_while_the_run_goes_on(engine: Engine) -> None:
    run_id = db.create_run(engine, {"name": "live"})
    sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.1)
    try:
        sink.on_start({"total_steps": 10})
        for step in range(1, 6):
            sink.on_step(step, 0, {"train/loss": float(step)})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and db.get_run(engine, run_id).step < 5:
            time.sleep(0.05)
        assert db.series_since(engine, run_id)["train/loss"].steps == [1, 2, 3, 4, 5]
        assert db.get_run(engine, run_id).progress == 0.5
    finally:
        sink.close()


def test_one_writer_streaming_four_runs_under_two_polling_readers(engine: Engine) -> None:
    steps, keys = 1500, [f"k{i}" for i in range(8)]
    run_ids = [db.create_run(engine, {"name": f"c{i}", "group": "conc"}) for i in range(4)]
    sinks = [db.DbMetricSink(engine, rid, flush_interval_s=0.1) for rid in run_ids]
    errors: list[BaseException] = []
    done = threading.Event()
    seen: list[dict[tuple[int, str], list[int]]] = [{}, {}]

    def reader(i: int) -> None:
        last: dict[int, dict[str, int]] = {rid: {} for rid in run_ids}
        try:
            while True:
                finished = done.is_set()
                for rid in run_ids:
                    if not db.series_keys(engine, rid):
                        continue
                    for key, data in db.series_since(engine, rid, after_step=last[rid]).items():
                        seen[i].setdefault((rid, key), []).extend(data.steps)
                        if data.steps:
                            last[rid][key] = data.steps[-1]
                    db.downsampled_series(engine, rid, "k0", max_buckets=50)
                db.list_runs(engine, group="conc")
                if finished:
                    return
                time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    readers = [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for t in readers:
        t.start()
    try:
        for step in range(1, steps + 1):
            for n, sink in enumerate(sinks):
                sink.on_step(step, 0, {k: step * 10.0 + n for k in keys})
            if step % 50 == 0:
                time.sleep(0.05)
        for sink in sinks:
            sink.on_end("succeeded", None)
            sink.close()
    finally:
        done.set()
        for t in readers:
            t.join(60)
    assert errors == []
    for n, rid in enumerate(run_ids):
        assert _point_count(engine, rid) == steps * len(keys)
        data = db.series_since(engine, rid)
        for key in keys:
            assert data[key].steps == list(range(1, steps + 1))
            assert data[key].values == [s * 10.0 + n for s in range(1, steps + 1)]
            for i in range(2):  # each reader saw every step exactly once, in order
                assert seen[i][(rid, key)] == list(range(1, steps + 1))


@pytest.mark.postgres
def test_postgres_outage_mid_run_loses_no_point(pg_proxy: Any, pg_databases: Any) -> None:
    proxy, name = pg_proxy
    direct = db.make_engine(pg_databases.url(name))
    through_proxy = db.make_engine(pg_databases.url(name, proxy.port))
    try:
        run_id = db.create_run(direct, {"name": "outage"})
        sink = db.DbMetricSink(through_proxy, run_id, flush_interval_s=0.1, retry_max_s=0.3)
        sink.on_start({"total_steps": 3000})
        t0 = time.monotonic()
        stopped_at = restarted_at = None
        step = 0
        while step < 3000:
            step += 1
            sink.on_step(step, 0, {"train/loss": 1.0 / step, "train/acc": step / 3000})
            elapsed = time.monotonic() - t0
            if stopped_at is None and elapsed > 1.0:
                proxy.stop()
                stopped_at = step
            if stopped_at is not None and restarted_at is None and elapsed > 4.0:
                assert sink.pending_points > 0  # held while the database was away
                proxy.start()
                restarted_at = step
            time.sleep(0.0015)
        assert restarted_at is not None
        sink.on_end("succeeded", None)
        sink.close()

        assert sink.retries > 0 and sink.dropped_points == 0 and sink.lost_points == 0
        run = db.get_run(direct, run_id)
        assert run.status == "succeeded" and run.dropped_points == 0
        loss = db.series_since(direct, run_id, keys=["train/loss"])["train/loss"]
        assert loss.steps == list(range(1, 3001))
        assert _point_count(direct, run_id) == 6000
        assert any("unreachable" in e.message for e in db.run_events(direct, run_id))
    finally:
        through_proxy.dispose()
        direct.dispose()


@pytest.mark.postgres
def test_memory_bound_while_the_database_is_away_drops_and_counts(pg_proxy: Any, pg_databases: Any) -> None:
    proxy, name = pg_proxy
    direct = db.make_engine(pg_databases.url(name))
    through_proxy = db.make_engine(pg_databases.url(name, proxy.port))
    bound = 1_000
    try:
        run_id = db.create_run(direct, {"name": "bounded"})
        sink = db.DbMetricSink(
            through_proxy, run_id, flush_interval_s=0.05, retry_max_s=0.2, max_pending_points=bound
        )
        for step in range(1, 101):
            sink.on_step(step, 0, {"a": 1.0, "b": 2.0})
        assert sink.flush(10)
        proxy.stop()
        for step in range(101, 2101):  # 4,000 points while away: most cannot be held
            sink.on_step(step, 0, {"a": 1.0, "b": 2.0})
            assert sink.pending_points <= bound
        time.sleep(0.5)
        proxy.start()
        sink.on_end("succeeded", None)
        sink.close()

        stored = _point_count(direct, run_id)
        assert sink.max_pending_seen <= bound
        assert sink.dropped_points > 0 and stored + sink.dropped_points == 2100 * 2
        run = db.get_run(direct, run_id)
        assert run.dropped_points == sink.dropped_points and run.status == "succeeded"
        assert any("were dropped" in e.message for e in db.run_events(direct, run_id))
    finally:
        through_proxy.dispose()
        direct.dispose()


def test_spans_cover_each_series_first_to_last_step_and_skip_refused_keys() -> None:
    """The planner's rollup spans (db.sink.plan.rollup_spans, no store needed): step and eval keys get
    the steps of their own items; a refused key gets none."""
    from db.sink.plan import Batch, EvalItem, Plan, StepItem, rollup_spans

    batch = Batch(
        steps=[StepItem(3, {"a": 1.0, "bad key": 2.0}), StepItem(7, {"a": 1.5})],
        evals=[EvalItem(5, {"val/acc": 0.5})],
    )
    plan = Plan(
        step_keys={"a", "bad key"},
        eval_keys={"val/acc"},
        new_keys=["a", "val/acc"],
        refused_now={"bad key": "refused"},
        skip={"bad key"},
        now=db.models.utcnow(),
        outage=None,
        dropped=0,
        dropped_events=0,
    )
    assert rollup_spans(batch, plan, {"a": 11, "val/acc": 12}) == {11: (3, 7), 12: (5, 5)}

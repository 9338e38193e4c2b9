"""The off-thread scoring (bml_core/tracking/offthread.py) stores what the straightforward
in-call computation gives, bit for bit: the batched StepScorer.compute_many against
compute() step by step, and a run's stored points against compute() on the weights as they
were when each step was logged (the optimiser changes the head in place afterwards)."""

from __future__ import annotations

import itertools

import pytest
import torch
from sqlalchemy import Engine

import bml_core
import db
from bml_core.tracking import StepScorer, TrackingInputError
from db.errors import SeriesNotFound
from tests.tracking.loops import TinyAV, batches

MODS = ["audio", "visual"]


@pytest.mark.parametrize(
    ("m_count", "batch", "classes"), list(itertools.product([2, 3], [1, 7, 64], [2, 10]))
)
def test_compute_many_equals_compute_bitwise(m_count: int, batch: int, classes: int) -> None:
    mods = [f"m{i}" for i in range(m_count)]
    scorer = StepScorer(mods, classes)
    g = torch.Generator().manual_seed(batch * classes + m_count)
    steps = []
    for s in range(5):
        u = {m: torch.randn(batch, classes, generator=g) * 3 for m in mods}
        logits = sum(u.values())
        y = torch.randint(0, classes, (batch,), generator=g)
        loss = None if s % 2 else torch.rand((), generator=g)
        steps.append((logits, u, y, loss))
    many = scorer.compute_many(steps)
    for step, got in zip(steps, many, strict=True):
        assert got == scorer.compute(*step)  # == on floats: the same bits


def test_compute_many_puts_a_nan_steps_error_in_its_place() -> None:
    scorer = StepScorer(MODS, 3)
    u = {m: torch.randn(4, 3) for m in MODS}
    bad = {"audio": u["audio"].clone(), "visual": u["visual"]}
    bad["audio"][0, 0] = float("nan")
    y = torch.tensor([0, 1, 2, 0])
    out = scorer.compute_many(
        [(u["audio"] + u["visual"], u, y, None), (u["audio"] + u["visual"], bad, y, None)]
    )
    assert out[0] == scorer.compute(u["audio"] + u["visual"], u, y)
    assert isinstance(out[1], TrackingInputError) and "unimodal_logits['audio'] holds NaN" in str(out[1])


def test_stored_points_equal_the_in_call_computation(engine: Engine) -> None:
    torch.manual_seed(0)
    model = TinyAV()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    reference = StepScorer(MODS, 3)
    expected, returned = [], []
    with bml_core.init(name="offthread", modalities=MODS, num_classes=3, store=engine) as run:
        for xa, xv, y in batches(40):
            logits, feats = model(xa, xv)
            loss = torch.nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            expected.append(reference.compute(logits, reference.decompose(model.head, feats), y, loss))
            returned.append(run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss))
            opt.step()  # changes the head in place before the scorer thread gets to the step
        assert run.flush(30)
    data = db.series_since(engine, run.id, keys=list(expected[0]))
    for key in expected[0]:
        stored = dict(zip(data[key].steps, data[key].values, strict=True))
        assert [stored[s] for s in range(1, 41)] == [e[key] for e in expected], key
        assert [r[key] for r in returned] == [e[key] for e in expected], key


def test_a_tensor_changed_in_place_before_scoring_is_not_recorded(engine: Engine) -> None:
    u = {m: torch.randn(4, 3) for m in MODS}
    y = torch.tensor([0, 1, 2, 0])
    with bml_core.init(name="inplace", modalities=MODS, num_classes=3, store=engine) as run:
        run._scoring.drain()
        logits = u["audio"] + u["visual"]
        with run._scoring._cv:  # hold the scorer thread off while the loop overwrites the logits
            got = run.log_step(logits=logits, unimodal_logits=u, y=y)
            logits.mul_(2.0)
        with pytest.raises(TrackingInputError, match=r"logits was changed in place after log_step\(step=1\)"):
            got.result(10)
    events = [e.message for e in db.run_events(engine, run.id)]
    assert any("step 1 not recorded" in m and "changed in place" in m for m in events)
    with pytest.raises(SeriesNotFound):
        db.series_since(engine, run.id, keys=["train/acc"])


def test_runs_page_cancel_stops_an_own_loop_run_and_rerun_is_refused(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    from app.views.runs import data as runs_data
    from services import actions as client

    monkeypatch.setenv("BML_OWN_LOOP_POLL_S", "0.1")
    u = {m: torch.randn(4, 3) for m in MODS}
    y = torch.tensor([0, 1, 2, 0])
    with bml_core.init(name="to-cancel", modalities=MODS, num_classes=3, store=engine) as run:
        info = db.get_run(engine, run.id)
        assert runs_data.allowed_actions(info)["cancel"] and not runs_data.allowed_actions(info)["rerun"]
        assert not run.should_stop
        assert runs_data.run_action("cancel", run.id, engine).ok
        deadline = time.monotonic() + 10
        steps = 0
        while not run.should_stop and time.monotonic() < deadline:
            run.log_step(logits=u["audio"] + u["visual"], unimodal_logits=u, y=y)
            steps += 1
            time.sleep(0.01)
        assert run.should_stop
    assert db.get_run(engine, run.id).status == "cancelled"
    with pytest.raises(ValueError, match="own-loop run .* no config a worker can rerun"):
        client.rerun(run.id, engine=engine)
    with pytest.raises(ValueError, match="own-loop run .* no config a worker can retry"):
        client.retry(run.id, engine=engine)


def test_the_workers_reaper_fails_a_dead_own_loop_run(engine: Engine) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from db.models import Run, utcnow
    from db.own_runs import create_own_run
    from worker.settings import SupervisorSettings
    from worker.tasks import Reaper

    run_id = create_own_run(engine, name="dead", group="own", config={})
    with engine.begin() as conn:  # its process died 31 s ago (BML_OWN_LOOP_STALE_AFTER_S: 30)
        conn.execute(
            update(Run).where(Run.id == run_id).values(heartbeat_at=utcnow() - timedelta(seconds=31))
        )
    settings = SupervisorSettings(
        heartbeat_interval_s=5, stale_after_s=600, cancel_grace_s=5, reaper_interval_s=10
    )
    Reaper(engine, settings, "w").sweep(0.0)
    info = db.get_run(engine, run_id)
    assert info.status == "failed" and "stopped sending heartbeats" in (info.error or "")

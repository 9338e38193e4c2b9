"""What the training thread no longer does in `log_step` / `log` / `log_eval`: NaN / inf is
found on the scorer thread and raised by the next call (once), the sink writes and alert
detectors of `log` and `log_eval` run on the scorer thread in queue order, and the scorer
wakes every `wake_every` steps, not per step."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from sqlalchemy import Engine

import bml_core
import db
from bml_core.tracking import TrackingInputError
from tests.tracking.loops import TinyAV, batches

MODS = ["audio", "visual"]


def test_nan_features_are_raised_by_the_next_call_once_naming_field_and_step(engine: Engine) -> None:
    model = TinyAV()
    xa, xv, y = batches(1)[0]
    logits, feats = model(xa, xv)
    run = bml_core.init(name="nan-later", modalities=MODS, num_classes=3, store=engine)
    run.log_step(logits=logits, features=feats, head=model.head, y=y)
    bad = {"audio": feats["audio"].detach().clone(), "visual": feats["visual"]}
    bad["audio"][3, 0] = float("inf")
    got = run.log_step(logits=logits, features=bad, head=model.head, y=y)  # no raise in the call
    with pytest.raises(TrackingInputError, match=r"^features\['audio'\] holds NaN or inf at step 2"):
        got.result(30)  # reading the step raises it ...
    run.log_step(logits=logits, features=feats, head=model.head, y=y)  # ... and the next call does not
    bad_logits = logits.detach().clone()
    bad_logits[0, 0] = float("nan")
    run.log_step(logits=bad_logits, features=feats, head=model.head, y=y)
    with pytest.raises(TrackingInputError, match=r"^logits holds NaN or inf at step 4"):
        run.finish()  # found after the last call: the run ends failed, then it is raised
    info = db.get_run(engine, run.id)
    assert info.status == "failed" and "logits holds NaN or inf at step 4" in (info.error or "")
    data = db.series_since(engine, run.id, keys=["train/acc"])
    assert data["train/acc"].steps == [1, 3]


def test_log_and_log_eval_write_and_alert_on_the_scorer_thread_in_order(engine: Engine) -> None:
    u = {m: torch.randn(4, 3) for m in MODS}
    y = torch.tensor([0, 1, 2, 0])
    seen: list[tuple[str, str, int]] = []
    with bml_core.init(name="order", modalities=MODS, num_classes=3, store=engine) as run:
        on_step, on_eval = run.alerts.on_step, run.alerts.on_eval

        def step_spy(step: int, epoch: int, metrics: dict[str, float]) -> list:
            seen.append(("step", threading.current_thread().name, step))
            return on_step(step, epoch, metrics)

        def eval_spy(step: int, epoch: int, metrics: dict[str, float]) -> list:
            seen.append(("eval", threading.current_thread().name, step))
            return on_eval(step, epoch, metrics)

        run.alerts.on_step, run.alerts.on_eval = step_spy, eval_spy  # type: ignore[method-assign]
        lr = torch.tensor(0.5)
        for _ in range(3):
            run.log_step(logits=u["audio"] + u["visual"], unimodal_logits=u, y=y)
            run.log({"lr": lr, "wd": 1e-4})
            lr.mul_(0.1)  # changed in place after log(): the value logged is kept
        run.log_eval("val", acc=0.5, acc_per_modality={"audio": 0.5, "visual": 0.4})
        assert run.flush(30)
    assert all(name.startswith("bml-own-loop-scorer") for _, name, _ in seen), seen
    assert [(kind, step) for kind, _, step in seen] == [
        ("step", 1),
        ("step", 1),
        ("step", 2),
        ("step", 2),
        ("step", 3),
        ("step", 3),
        ("eval", 3),
    ]
    lr_points = db.series_since(engine, run.id, keys=["lr"])["lr"]
    assert lr_points.steps == [1, 2, 3]
    assert lr_points.values == pytest.approx([0.5, 0.05, 0.005])


def test_the_scorer_wakes_every_wake_every_steps_not_per_step(engine: Engine) -> None:
    u = {m: torch.randn(4, 3) for m in MODS}
    y = torch.tensor([0, 1, 2, 0])
    opts = {"wake_every": 8, "max_wait_s": 30.0}
    with bml_core.init(name="wake", modalities=MODS, num_classes=3, store=engine, scorer_options=opts) as run:
        time.sleep(0.2)  # the first poll of the cancel flag is done
        woke = run._scoring.wakes
        for _ in range(7):
            run.log_step(logits=u["audio"] + u["visual"], unimodal_logits=u, y=y)
        time.sleep(0.3)
        assert run._scoring.pending == 7 and run._scoring.wakes == woke  # nothing scored yet
        run.log_step(logits=u["audio"] + u["visual"], unimodal_logits=u, y=y)
        deadline = time.monotonic() + 10
        while run._scoring.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        assert run._scoring.pending == 0 and run._scoring.wakes == woke + 1  # all 8 in one wake
    assert db.series_since(engine, run.id, keys=["train/acc"])["train/acc"].steps == list(range(1, 9))


def test_bad_scorer_options_are_refused_before_the_run_is_created(engine: Engine) -> None:
    before = db.list_runs(engine).total
    with pytest.raises(TrackingInputError, match=r"scorer_options has unknown keys \['wake'\]"):
        bml_core.init(name="x", modalities=MODS, num_classes=3, store=engine, scorer_options={"wake": 1})
    with pytest.raises(TrackingInputError, match=r"scorer_options\['wake_every'\] must be an integer >= 1"):
        bml_core.init(
            name="x", modalities=MODS, num_classes=3, store=engine, scorer_options={"wake_every": 0}
        )
    with pytest.raises(
        TrackingInputError, match=r"scorer_options\['max_wait_s'\] must be a number of seconds > 0"
    ):
        bml_core.init(
            name="x", modalities=MODS, num_classes=3, store=engine, scorer_options={"max_wait_s": 0}
        )
    assert db.list_runs(engine).total == before

"""bml_core.init / Run from a plain PyTorch loop with a model defined here (SQLite and
PostgreSQL): the native keys per step with hand-computed values, the summary, the own-loop
mark, failed / cancelled ends, and bad input refused with the field named."""

from __future__ import annotations

import math

import pytest
import torch
from sqlalchemy import Engine

import bml_core
import db
from bml_core.tracking import TrackingInputError
from tests.tracking.loops import TinyAV, batches

MODS = ["audio", "visual"]


def _points(engine: Engine, run_id: int, key: str) -> dict[int, float]:
    data = db.series_since(engine, run_id, keys=[key])
    return dict(zip(data[key].steps, data[key].values, strict=True)) if key in data else {}


def _train(run: bml_core.Run, n: int, use_features: bool = True) -> list[dict[str, float]]:
    torch.manual_seed(0)
    model = TinyAV()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    logged = []
    for xa, xv, y in batches(n):
        logits, feats = model(xa, xv)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        if use_features:
            logged.append(run.log_step(logits=logits, features=feats, head=model.head, y=y, loss=loss))
        else:
            w, b = model.head.weight, model.head.bias
            u = {"audio": feats["audio"] @ w[:, :8].T + b / 2, "visual": feats["visual"] @ w[:, 8:].T + b / 2}
            logged.append(run.log_step(logits=logits, unimodal_logits=u, y=y, loss=loss))
        opt.step()
    return logged


def test_plain_loop_streams_native_keys_and_summary(engine: Engine) -> None:
    with bml_core.init(
        name="mine", group="own", config={"lr": 0.1, "seed": 3}, modalities=MODS, num_classes=3, store=engine
    ) as run:
        logged = _train(run, 12)
        run.log_eval("val", acc=0.625, acc_per_modality={"audio": 0.5, "visual": 0.375}, f1=0.6)
        run.log_eval("test", acc=0.5, acc_per_modality={"audio": 0.45, "visual": 0.3})
    info = db.get_run(engine, run.id)
    assert info.status == "succeeded" and "own-loop" in info.tags and info.worker.startswith("own-loop@")
    assert info.strategy == "joint" and info.seed == 3 and info.step == 12
    for m in MODS:
        for key in (f"imbalance/ratio/{m}", f"train/acc/{m}", f"imbalance/score/{m}", f"train/loss/{m}"):
            pts = _points(engine, run.id, key)
            assert sorted(pts) == list(range(1, 13)), key
            assert [pts[s] for s in range(1, 13)] == pytest.approx([r[key] for r in logged], rel=1e-6)
    assert sorted(_points(engine, run.id, "train/acc")) == list(range(1, 13))
    assert _points(engine, run.id, "val/acc/visual") == {12: 0.375}
    summary = info.summary
    assert summary["val"] == {"acc": 0.625, "f1": 0.6, "acc_per_modality": {"audio": 0.5, "visual": 0.375}}
    assert summary["test"]["acc"] == 0.5 and summary["best_epoch"] == 0
    assert summary["train"]["steps"] == 12 and summary["run"]["status"] == "succeeded"
    assert db.get_run(engine, run.id).config["source"] == "own_loop"


def test_step_values_equal_a_hand_computation(engine: Engine) -> None:
    """The official per-sample loop, written out: s_m = sum_i softmax(u_m,i)[y_i], rho_a =
    s_a / s_v (M = 2), uni-modal accuracy from argmax, u_m = W_m h_m + b / 2."""
    torch.manual_seed(1)
    model = TinyAV()
    xa, xv, y = batches(1, batch=10, seed=5)[0]
    logits, feats = model(xa, xv)
    with bml_core.init(name="hand", modalities=MODS, num_classes=3, store=engine) as run:
        got = run.log_step(logits=logits, features=feats, head=model.head, y=y)
    w, b = model.head.weight.detach().double(), model.head.bias.detach().double()
    s, acc = {}, {}
    for m, cols in (("audio", slice(0, 8)), ("visual", slice(8, 16))):
        u = feats[m].detach().double() @ w[:, cols].T + b / 2
        s[m] = sum(math.exp(u[i, y[i]]) / sum(math.exp(v) for v in u[i]) for i in range(10))
        acc[m] = sum(int(u[i].argmax()) == int(y[i]) for i in range(10)) / 10
    assert got["imbalance/ratio/audio"] == pytest.approx(s["audio"] / s["visual"], rel=1e-5)
    assert got["imbalance/ratio/visual"] == pytest.approx(s["visual"] / s["audio"], rel=1e-5)
    assert got["imbalance/score/audio"] == pytest.approx(s["audio"] / 10, rel=1e-5)
    assert got["train/acc/audio"] == pytest.approx(acc["audio"]) and got["train/acc/visual"] == pytest.approx(
        acc["visual"]
    )
    fused = sum(int(logits[i].argmax()) == int(y[i]) for i in range(10)) / 10
    assert got["train/acc"] == pytest.approx(fused)
    assert _points(engine, run.id, "imbalance/ratio/audio")[1] == pytest.approx(
        s["audio"] / s["visual"], rel=1e-5
    )


def test_features_and_unimodal_logits_give_the_same_numbers(engine: Engine) -> None:
    with bml_core.init(name="f", modalities=MODS, num_classes=3, store=engine) as a:
        via_features = _train(a, 3, use_features=True)
    with bml_core.init(name="u", modalities=MODS, num_classes=3, store=engine) as b:
        via_logits = _train(b, 3, use_features=False)
    for x, z in zip(via_features, via_logits, strict=True):
        for key in x:
            if key != "time/step_ms":
                assert x[key] == pytest.approx(z[key], rel=1e-5, abs=1e-7), key


def test_exception_fails_and_ctrl_c_cancels(engine: Engine) -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        bml_core.init(name="bad", modalities=MODS, num_classes=3, store=engine) as run,
    ):
        _train(run, 2)
        raise RuntimeError("boom")
    info = db.get_run(engine, run.id)
    assert info.status == "failed" and "RuntimeError: boom" in (info.error or "")
    assert len(_points(engine, run.id, "train/acc")) == 2  # what was logged before is kept
    with (
        pytest.raises(KeyboardInterrupt),
        bml_core.init(name="ctrl-c", modalities=MODS, num_classes=3, store=engine) as run2,
    ):
        _train(run2, 1)
        raise KeyboardInterrupt
    assert db.get_run(engine, run2.id).status == "cancelled"


def test_bad_input_names_the_field_and_keeps_what_is_stored(engine: Engine) -> None:
    model = TinyAV()
    xa, xv, y = batches(1)[0]
    logits, feats = model(xa, xv)
    run = bml_core.init(name="bad-input", modalities=MODS, num_classes=3, store=engine)
    run.log_step(logits=logits, features=feats, head=model.head, y=y)
    with pytest.raises(TrackingInputError, match=r"features keys \['audio'\].*missing: \['visual'\]"):
        run.log_step(logits=logits, features={"audio": feats["audio"]}, head=model.head, y=y)
    with pytest.raises(TrackingInputError, match=r"unimodal_logits keys.*not declared: \['text'\]"):
        run.log_step(logits=logits, unimodal_logits={"audio": logits, "visual": logits, "text": logits}, y=y)
    bad = logits.detach().clone()
    bad[0, 1] = float("nan")
    # NaN / inf in a tensor is found on the scorer thread (no host sync in the call): that step
    # (2, then 3) is not recorded, and the next call raises the error before it records anything
    run.log_step(logits=bad, unimodal_logits={"audio": logits, "visual": logits}, y=y)
    assert run.flush(30)
    with pytest.raises(TrackingInputError, match=r"^logits holds NaN or inf at step 2: this step was not"):
        run.log({"lr": 0.1})
    run.log_step(logits=logits, unimodal_logits={"audio": logits, "visual": bad}, y=y)
    assert run.flush(30)
    with pytest.raises(TrackingInputError, match=r"^unimodal_logits\['visual'\] holds NaN or inf at step 3"):
        run.log_step(logits=logits, unimodal_logits={"audio": logits, "visual": logits}, y=y)
    with pytest.raises(TrackingInputError, match=r"^loss holds NaN"):  # a float: refused in the call
        run.log_step(logits=logits, unimodal_logits={"audio": logits, "visual": logits}, y=y, loss=math.inf)
    with pytest.raises(TrackingInputError, match=r"logits has shape \[16, 3\]; expected \[batch=8"):
        run.log_step(logits=logits, unimodal_logits={"audio": logits, "visual": logits}, y=y[:8])
    with pytest.raises(TrackingInputError, match="needs head="):
        run.log_step(logits=logits, features=feats, y=y)
    with pytest.raises(TrackingInputError, match=r"metrics\['lr'\] = 'fast' is not a number"):
        run.log({"lr": "fast"})
    run.log_step(logits=logits, unimodal_logits={"audio": logits, "visual": logits}, y=y)
    run.finish()
    assert sorted(_points(engine, run.id, "imbalance/ratio/audio")) == [1, 4]  # bad steps not stored
    assert "lr" not in db.series_keys(engine, run.id)  # the call that raised recorded nothing
    events = [e.message for e in db.run_events(engine, run.id)]
    assert sum("not recorded" in m and "NaN or inf at step" in m for m in events) == 2
    with pytest.raises(TrackingInputError, match="modalities must list at least two"):
        bml_core.init(name="x", modalities=["audio"], num_classes=3, store=engine)
    with pytest.raises(TrackingInputError, match="num_classes must be an integer"):
        bml_core.init(name="x", modalities=MODS, num_classes=1, store=engine)


def test_log_keeps_out_of_order_steps(engine: Engine) -> None:
    """W&B drops a step lower than the last one silently; here it is stored."""
    with bml_core.init(name="steps", modalities=MODS, num_classes=3, store=engine) as run:
        run.log({"custom/x": 1.0}, step=10)
        run.log({"custom/x": 2.0}, step=4)
        run.log({"custom/x": torch.tensor(3.0)})  # the current step: 10, overwritten
        run.event("info", "hello from my loop")
    assert _points(engine, run.id, "custom/x") == {4: 2.0, 10: 3.0}
    assert any(e.message == "hello from my loop" for e in db.run_events(engine, run.id))


def test_runs_page_marks_own_loop_runs(engine: Engine) -> None:
    from app.views.runs import data as runs_data

    with bml_core.init(name="marked", modalities=MODS, num_classes=3, store=engine):
        pass
    rows = runs_data.table_rows(engine, runs_data.runs_page(engine, runs_data.RunFilter(), 1).runs)
    assert list(rows["name"]) == ["marked [own loop]"]


def test_progress_from_total_steps(engine: Engine) -> None:
    with bml_core.init(name="p", modalities=MODS, num_classes=3, store=engine, total_steps=8) as run:
        _train(run, 2)
        run.sink.flush(10)
        info = db.get_run(engine, run.id)
        assert info.total_steps == 8 and info.progress == pytest.approx(0.25)


def test_an_unreachable_store_is_refused_at_init_with_the_fix() -> None:
    with pytest.raises(
        db.StoreUnreachable, match=r"(?s)bml_core.init: the store .* is unreachable.*BML_DATABASE_URL"
    ):
        bml_core.init(
            name="x",
            modalities=MODS,
            num_classes=3,
            store="postgresql+psycopg://postgres@127.0.0.1:1/nowhere",
        )


def test_runs_page_offers_cancel_but_no_retry_or_rerun_for_own_loop_runs(engine: Engine) -> None:
    from app.views.runs import data as runs_data

    run = bml_core.init(name="mine", modalities=MODS, num_classes=3, store=engine)
    assert runs_data.allowed_actions(db.get_run(engine, run.id)) == {
        "cancel": True,
        "retry": False,
        "rerun": False,
        "delete": False,
    }
    run.finish()
    assert runs_data.allowed_actions(db.get_run(engine, run.id)) == {
        "cancel": False,
        "retry": False,
        "rerun": False,
        "delete": True,
    }

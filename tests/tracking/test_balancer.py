"""bml_core.Balancer in a plain PyTorch loop with a model defined here: OGM-GE's coefficients
equal a native Trainer run's on the same weights, batches and seed; the store holds the native
keys; bad input is refused with the field named and nothing stored is lost."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from sqlalchemy import Engine
from torch import nn

import bml_core
import db
from bml_core.balancer import BalancerError
from bml_core.config import load_config
from bml_core.sinks import MetricSink
from bml_core.trainer import Trainer

torch.set_num_threads(1)


class Capture(MetricSink):
    def __init__(self) -> None:
        self.steps: list[dict[str, float]] = []

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.steps.append(dict(metrics))


class OwnAV(nn.Module):
    """The user's model: encoders by modality and a linear head over their concatenation."""

    def __init__(self, encoders: dict[str, nn.Module], head: nn.Linear):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.head = head


def native_trainer(
    strategies: list[dict[str, object]], sink: MetricSink, epochs: int = 1, **optim: object
) -> tuple[Trainer, dict[str, Any]]:
    """A native Trainer on the synthetic dataset (seed 3) and copies of its initial encoders
    and head (the weights an own-loop replay starts from)."""
    raw: dict[str, Any] = {
        "name": "native",
        "seed": 3,
        "dataset": {"name": "synthetic", "params": {"num_samples": 200}},
        "train": {"epochs": epochs, "batch_size": 32, "device": "cpu"},
        "strategies": strategies,
    }
    if optim:
        raw["optim"] = optim
    trainer = Trainer(load_config(raw), sinks=[sink], run_dir=None)
    init = {
        "encoders": {m: copy.deepcopy(trainer.model.encoders[m]) for m in trainer.modalities},
        "head": copy.deepcopy(trainer.model.fusion.fc),
    }
    return trainer, init


def _native(strategies: list[dict[str, object]]) -> tuple[Trainer, Capture, dict[str, object], list]:
    cap = Capture()
    trainer, init = native_trainer(strategies, cap)
    seen: list = []
    original = trainer.train_step

    def recording(x, y, epoch):  # type: ignore[no-untyped-def]
        seen.append(({m: t.clone() for m, t in x.items()}, y.clone()))
        return original(x, y, epoch)

    trainer.train_step = recording  # type: ignore[method-assign]
    trainer.fit()
    return trainer, cap, init, seen


def _replay(
    trainer: Trainer, init: dict[str, object], seen: list, strategies: list[str], **kw: object
) -> list:
    """The native run's batches through a Balancer on the same initial weights and SGD; the
    metrics of each step."""
    model = OwnAV(init["encoders"], init["head"])  # type: ignore[arg-type]
    o = trainer.cfg.optim
    opt = torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    balancer = bml_core.Balancer(model, strategies, seed=trainer.cfg.seed, **kw)
    got = []
    for x, y in seen:
        out = balancer.forward(x, y)
        loss = F.cross_entropy(out.logits, y)
        opt.zero_grad()
        got.append(balancer.backward(loss, out, y))
        opt.step()
    return got


def _points(engine: Engine, run_id: int, key: str) -> dict[int, float]:
    data = db.series_since(engine, run_id, keys=[key])
    return dict(zip(data[key].steps, data[key].values, strict=True)) if key in data else {}


def test_opm_with_ogm_ge_equals_the_native_run() -> None:
    """OPM's drop probabilities and masks and OGM-GE's coefficients, step by step, equal a native
    Trainer run with both strategies (same weights, batches, seed)."""
    trainer, cap, init, seen = _native([{"name": "opm"}, {"name": "ogm_ge"}])
    got = _replay(trainer, init, seen, ["opm", "ogm_ge"])
    keys = [k for k in cap.steps[0] if k.startswith(("opm/", "ogm/coef/"))]
    assert any(k.startswith("opm/drop_prob/") for k in keys)
    for mine, native in zip(got, cap.steps, strict=True):
        for key in keys:
            assert mine[key] == pytest.approx(native[key], abs=1e-6), key


def test_ogm_ge_coefficients_equal_the_native_run(engine: Engine) -> None:
    trainer, cap, init, seen = _native([{"name": "ogm_ge"}])
    mods = trainer.modalities
    with bml_core.init(
        name="own-ogm-ge", modalities=mods, num_classes=trainer.num_classes, store=engine
    ) as run:
        got = _replay(trainer, init, seen, ["ogm_ge"], run=run)
        run_id = run.id
    assert len(got) == len(cap.steps) > 2
    for mine, native in zip(got, cap.steps, strict=True):
        for m in mods:
            for key in (f"ogm/coef/{m}", f"imbalance/ratio/{m}", f"train/acc/{m}"):
                assert mine[key] == pytest.approx(native[key], abs=1e-6), key
    assert any(native[f"ogm/coef/{m}"] < 1 for native in cap.steps for m in mods)  # it modulated
    for m in mods:
        stored = _points(engine, run_id, f"ogm/coef/{m}")
        assert len(stored) == len(seen)
        assert list(stored.values()) == pytest.approx([g[f"ogm/coef/{m}"] for g in got], abs=1e-6)
        assert len(_points(engine, run_id, f"imbalance/ratio/{m}")) == len(seen)
        assert len(_points(engine, run_id, f"train/acc/{m}")) == len(seen)


def test_opm_with_ogm_ge_streams_drop_probabilities(engine: Engine) -> None:
    torch.manual_seed(0)
    model = OwnAV({"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)}, nn.Linear(12, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with bml_core.init(name="own-opm", modalities=["a", "b"], num_classes=2, store=engine) as run:
        balancer = bml_core.Balancer(model, ["opm", "ogm_ge"], run=run)
        for _ in range(3):
            y = torch.randint(0, 2, (8,))
            x = {"a": torch.randn(8, 4) + y[:, None], "b": torch.randn(8, 3)}
            out = balancer.forward(x, y)
            opt.zero_grad()
            metrics = balancer.backward(F.cross_entropy(out.logits, y), out, y)
            opt.step()
    for key in ("opm/drop_prob/a", "opm/drop_prob/b", "ogm/coef/a", "train/loss", "train/acc"):
        assert key in metrics


def test_bad_model_input_and_strategy_are_refused_with_the_field(engine: Engine) -> None:
    class NoEncoders(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = nn.Linear(4, 2)

    with pytest.raises(BalancerError, match="model.encoders"):
        bml_core.Balancer(NoEncoders(), ["ogm_ge"])
    model = OwnAV({"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)}, nn.Linear(12, 2))
    with pytest.raises(BalancerError, match=r"strategies\[0\] = 'mla'.*whole training step"):
        bml_core.Balancer(model, ["mla"])
    with pytest.raises(BalancerError, match="not a known strategy"):
        bml_core.Balancer(model, ["nope"])
    with bml_core.init(name="own-bad", modalities=["a", "b"], num_classes=2, store=engine) as run:
        balancer = bml_core.Balancer(model, ["ogm"], run=run)
        y = torch.tensor([0, 1, 0, 1])
        x = {"a": torch.randn(4, 4), "b": torch.randn(4, 3)}
        out = balancer.forward(x, y)
        balancer.backward(F.cross_entropy(out.logits, y), out, y)
        with pytest.raises(BalancerError, match="x keys"):
            balancer.forward({"a": x["a"], "c": x["b"]}, y)
        out = balancer.forward(x, y)
        with pytest.raises(BalancerError, match="loss is nan"):
            balancer.backward(torch.tensor(float("nan")), out, y)
        out.logits = out.logits.detach() * float("inf")
        with pytest.raises(BalancerError, match="out.logits"):
            balancer.backward(F.cross_entropy(out.logits, y), out, y)
        run_id = run.id
    assert len(_points(engine, run_id, "ogm/coef/a")) == 1  # the good step is kept
    with (
        bml_core.init(name="own-mods", modalities=["a", "c"], num_classes=2, store=engine) as run2,
        pytest.raises(BalancerError, match="differ from the run's modalities"),
    ):
        bml_core.Balancer(model, ["ogm"], run=run2)


def test_uni_aux_adds_the_unimodal_terms_to_the_users_loss() -> None:
    """Gradients through the Balancer with uni_aux equal those of CE(z) + sum_m CE(u_m), with u_m
    = W_m h_m + b/2 computed by hand on a copy of the model."""
    torch.manual_seed(1)
    model = OwnAV({"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)}, nn.Linear(12, 2))
    ref = copy.deepcopy(model)
    y = torch.tensor([0, 1, 1, 0, 1])
    x = {"a": torch.randn(5, 4), "b": torch.randn(5, 3)}
    balancer = bml_core.Balancer(model, ["uni_aux"])
    out = balancer.forward(x, y)
    metrics = balancer.backward(F.cross_entropy(out.logits, y), out, y)
    ha, hb = ref.encoders["a"](x["a"]), ref.encoders["b"](x["b"])
    w, b = ref.head.weight, ref.head.bias
    z = ref.head(torch.cat([ha, hb], 1))
    ua, ub = ha @ w[:, :6].T + b / 2, hb @ w[:, 6:].T + b / 2
    total = F.cross_entropy(z, y) + F.cross_entropy(ua, y) + F.cross_entropy(ub, y)
    total.backward()
    for (name, p), q in zip(model.named_parameters(), ref.parameters(), strict=True):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name
    assert metrics["uni_aux/loss/a"] == pytest.approx(float(F.cross_entropy(ua, y)), rel=1e-5)


def test_keep_marks_samples_opm_dropped_entirely() -> None:
    torch.manual_seed(0)
    model = OwnAV({"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)}, nn.Linear(12, 2))
    balancer = bml_core.Balancer(model, ["opm"])
    y = torch.tensor([0, 1, 0, 1])
    x = {"a": torch.randn(4, 4), "b": torch.randn(4, 3)}
    balancer.strategies[0].forced_q = torch.tensor([1.0, 1.0])  # type: ignore[attr-defined]
    out = balancer.forward(x, y)
    assert out.keep is not None and not bool(out.keep.any())  # both modalities dropped: none left
    balancer.strategies[0].forced_q = torch.tensor([0.0, 0.0])  # type: ignore[attr-defined]
    out = balancer.forward(x, y)
    assert out.keep is None or bool(out.keep.all())

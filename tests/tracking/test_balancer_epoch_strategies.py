"""bml_core.Balancer with the epoch-level strategies (mmcosine, pmr, mslr, mses, infreg) in a plain
PyTorch loop, model defined here: a native Trainer run is recorded (its training batches, the
batches its strategies drew from the training split, its val split), then replayed through a
Balancer on the same initial weights, optimizer groups, batches and seed, with the loop's own
optimizer and loaders and the epoch calls. Per step the strategies' metrics and the total loss
equal the native run's over several epochs (<= 1e-6), mslr's and mses' lr multipliers and mses'
stop included; a strategy whose need is not passed is refused at construction, the argument named."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from sqlalchemy import Engine
from torch import nn

import bml_core
import db
from bml_core.balancer import BalancerError
from bml_core.sinks import MetricSink
from bml_core.trainer import Trainer
from tests.tracking.test_balancer import native_trainer

torch.set_num_threads(1)


class Capture(MetricSink):
    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, float]]] = []
        self.evals: list[tuple[int, dict[str, float]]] = []

    def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.steps.append((epoch, dict(metrics)))

    def on_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        self.evals.append((epoch, dict(metrics)))


class OwnAV(nn.Module):
    """The user's model: encoders by modality and a linear head over their concatenation."""

    def __init__(self, encoders: dict[str, nn.Module], head: nn.Linear):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.head = head


class EpochBatches:
    """A 'loader' yielding, in epoch e, the batches the native run's strategies drew from the
    training split in epoch e (its len() is the native steps per epoch)."""

    def __init__(self, per_epoch: dict[int, list[Any]], steps: int):
        self.per_epoch, self.steps, self.epoch = per_epoch, steps, 0

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[Any]:
        return iter(self.per_epoch.get(self.epoch, []))


def _clone(
    batch: tuple[dict[str, torch.Tensor], torch.Tensor],
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    x, y = batch
    return {m: t.clone() for m, t in x.items()}, y.clone()


def _native(strategies: list[dict[str, object]], epochs: int, lr: float = 0.05) -> dict[str, Any]:
    cap = Capture()
    trainer, init = native_trainer(strategies, cap, epochs=epochs, lr=lr)
    val = [_clone(b) for b in trainer.iter_batches("val")]
    seen: list[tuple[int, Any]] = []
    drawn: dict[int, list[Any]] = {}
    step, draw = trainer.train_step, trainer.iter_batches

    def recording_step(x, y, epoch):  # type: ignore[no-untyped-def]
        seen.append((epoch, _clone((x, y))))
        return step(x, y, epoch)

    def recording_draw(split, fraction=1.0, seed=None):  # type: ignore[no-untyped-def]
        for batch in draw(split, fraction, seed):
            if split == "train":
                drawn.setdefault(trainer.epoch, []).append(_clone(batch))
            yield batch

    trainer.train_step = recording_step  # type: ignore[method-assign]
    trainer.iter_batches = recording_draw  # type: ignore[method-assign]
    trainer.fit()
    return {"trainer": trainer, "cap": cap, "init": init, "seen": seen, "drawn": drawn, "val": val}


def _replay(nat: dict[str, Any], strategies: list[Any], **kw: Any) -> dict[str, Any]:
    """The native run's batches through a Balancer in an own loop with epoch calls."""
    trainer: Trainer = nat["trainer"]
    init = nat["init"]
    model = OwnAV(copy.deepcopy(init["encoders"]), copy.deepcopy(init["head"]))
    o = trainer.cfg.optim
    opt = torch.optim.SGD(
        bml_core.Balancer.param_groups(model), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
    )
    train = EpochBatches(nat["drawn"], trainer.steps_per_epoch)
    loaders = {"train": train, "val": nat["val"]}
    balancer = bml_core.Balancer(
        model, strategies, seed=trainer.cfg.seed, optimizer=opt, loaders=loaders, **kw
    )
    steps: list[dict[str, float]] = []
    stops: list[bool] = []
    smoothed: dict[str, list[float]] = {}
    epochs = sorted({e for e, _ in nat["seen"]})
    for epoch in epochs:
        train.epoch = epoch
        balancer.epoch_start()
        for e, (x, y) in nat["seen"]:
            if e != epoch:
                continue
            model.train()
            out = balancer.forward(x, y)
            loss = F.cross_entropy(out.logits, y)
            total = float(bml_core.Balancer.total_loss(loss, out).detach())
            opt.zero_grad()
            metrics = balancer.backward(loss, out, y)
            opt.step()
            steps.append({**metrics, "train/loss": total})
        stops.append(balancer.epoch_end())
        for k, v in balancer.epoch_metrics.items():
            if k.startswith("mses/smoothed_loss/"):
                smoothed.setdefault(k.rsplit("/", 1)[1], []).append(v)
    return {"steps": steps, "stops": stops, "balancer": balancer, "model": model, "smoothed": smoothed}


def _compare(nat: dict[str, Any], got: dict[str, Any], prefix: str) -> list[str]:
    native = [m for _, m in nat["cap"].steps]
    assert len(got["steps"]) == len(native) > 0
    keys = [k for k in native[0] if k.startswith(prefix)] + ["train/loss"]
    assert len(keys) > 1, native[0].keys()
    for i, (mine, theirs) in enumerate(zip(got["steps"], native, strict=True)):
        for key in keys:
            # the total loss reaches ~10 under mmcosine's scale: float32 rounding is relative there
            assert mine[key] == pytest.approx(theirs[key], abs=1e-6, rel=1e-6), (i, key)
    return keys


def _per_epoch(nat: dict[str, Any], key: str) -> list[float]:
    last: dict[int, float] = {}
    for epoch, m in nat["cap"].steps:
        last[epoch] = m[key]
    return [last[e] for e in sorted(last)]


def test_mmcosine_equals_the_native_run() -> None:
    nat = _native([{"name": "mmcosine"}], epochs=2)
    got = _replay(nat, ["mmcosine"])
    assert "mmcosine/cos/audio" in _compare(nat, got, "mmcosine/")
    # evaluation scores the plain linear head (eval_logits: linear), as the native val/acc
    native_val = nat["cap"].evals[-1][1]
    assert got["balancer"].epoch_metrics["val/acc"] == pytest.approx(native_val["val/acc"], abs=1e-6)


def test_mmcosine_cosine_evaluation_equals_the_native_val_accuracy() -> None:
    nat = _native([{"name": "mmcosine", "eval_logits": "cosine"}], epochs=2)
    params = nat["trainer"].cfg.strategies[0]
    got = _replay(nat, [params])
    _compare(nat, got, "mmcosine/")
    assert got["balancer"].epoch_metrics["val/acc"] == pytest.approx(
        nat["cap"].evals[-1][1]["val/acc"], abs=1e-6
    )
    for m in nat["trainer"].modalities:
        key = f"val/acc/{m}"
        assert got["balancer"].epoch_metrics[key] == pytest.approx(nat["cap"].evals[-1][1][key], abs=1e-6)


def test_pmr_equals_the_native_run_over_three_epochs() -> None:
    strategies = [{"name": "pmr", "momentum": 0.5, "proto_fraction": 0.5}]
    nat = _native(strategies, epochs=3)
    assert sorted(nat["drawn"]) == [0, 1, 2]  # prototypes drawn at every epoch start
    got = _replay(nat, nat["trainer"].cfg.strategies)
    _compare(nat, got, "pmr/")
    weights = [m for _, m in nat["cap"].steps]
    assert any(w[f"pmr/weight/{m}"] > 0 for w in weights for m in nat["trainer"].modalities)


def test_mslr_multipliers_equal_the_native_run() -> None:
    strategies = [{"name": "mslr", "window": 1}]
    nat = _native(strategies, epochs=4)
    got = _replay(nat, nat["trainer"].cfg.strategies)
    keys = _compare(nat, got, "mslr/")
    assert any(k.startswith("mslr/lr_mult/") for k in keys)
    mods = nat["trainer"].modalities
    mults = [_per_epoch(nat, f"mslr/lr_mult/{m}") for m in mods]
    assert any(abs(v - 1.0) > 1e-4 for series in mults for v in series[1:])  # it moved the rates
    opt = got["balancer"].runtime.optimizer
    assert all(g["lr"] == nat["trainer"].cfg.optim.lr for g in opt.param_groups)  # base rates kept
    for _, theirs in nat["cap"].evals:  # the ratio series each epoch end
        assert f"mslr/ratio/{mods[0]}" in theirs


@pytest.mark.parametrize("form", ["ours", "official"])
def test_mses_multipliers_and_stop_equal_the_native_run(form: str) -> None:
    """official reloads the whole model and the optimizer state at a freeze (the loop's own
    optimizer here); both forms freeze each encoder in turn and end the run."""
    strategies = [{"name": "mses", "patience": 1, "form": form}]
    nat = _native(strategies, epochs=8, lr=0.5)
    trainer: Trainer = nat["trainer"]
    got = _replay(nat, trainer.cfg.strategies)
    _compare(nat, got, "mses/")
    mods = trainer.modalities
    frozen = [_per_epoch(nat, f"mses/lr_mult/{m}") for m in mods]
    assert any(v == 0.0 for series in frozen for v in series)  # a modality was frozen
    assert trainer.stopped_by is not None  # every encoder frozen: the native run stopped
    assert got["stops"] == [False] * trainer.stopped_by["epoch"] + [True]
    assert got["balancer"].should_stop
    for m in mods:  # the per-epoch smoothed val losses (from loaders['val']) equal the native ones
        theirs = [e[f"mses/smoothed_loss/{m}"] for _, e in nat["cap"].evals]
        assert got["smoothed"][m] == pytest.approx(theirs, abs=1e-6)


def test_infreg_equals_the_native_run_over_three_epochs() -> None:
    nat = _native([{"name": "infreg", "window": 1}], epochs=3)
    got = _replay(nat, nat["trainer"].cfg.strategies)
    keys = _compare(nat, got, "infreg/")
    assert "infreg/trace" in keys
    traces = _per_epoch(nat, "infreg/trace")
    assert traces[0] == 0.0 and traces[-1] > 0.0  # the epoch-end trace reached the next epoch


def _model() -> OwnAV:
    torch.manual_seed(0)
    return OwnAV({"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)}, nn.Linear(12, 2))


def test_each_missing_need_is_refused_at_construction() -> None:
    model = _model()
    opt = torch.optim.SGD(bml_core.Balancer.param_groups(model), lr=0.1)
    batches = [({"a": torch.randn(4, 4), "b": torch.randn(4, 3)}, torch.tensor([0, 1, 0, 1]))]
    with pytest.raises(BalancerError, match=r"'mslr' needs optimizer: pass Balancer\(\.\.\., optimizer="):
        bml_core.Balancer(model, ["mslr"])
    with pytest.raises(BalancerError, match=r"'mses' needs optimizer"):
        bml_core.Balancer(model, ["mses"], loaders={"val": batches})
    with pytest.raises(BalancerError, match=r"'mses' needs loaders\['val'\]"):
        bml_core.Balancer(model, ["mses"], optimizer=opt)
    with pytest.raises(BalancerError, match=r"'pmr' needs loaders\['train'\]"):
        bml_core.Balancer(model, ["pmr"], loaders={"val": batches})
    with pytest.raises(BalancerError, match=r"'pmr' needs len\(loaders\['train'\]\)"):
        bml_core.Balancer(model, ["pmr"], loaders={"train": iter(batches)})
    single = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(BalancerError, match=r"model.encoders\['a'\].*Balancer.param_groups\(model\)"):
        bml_core.Balancer(model, ["mslr"], optimizer=single)
    bml_core.Balancer(model, ["ogm_ge", "infreg"], optimizer=single)  # no lr multipliers: any groups do

    class DictHead(nn.Module):
        def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
            return feats["a"][:, :2] + feats["b"][:, :2]

    class OwnHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoders = nn.ModuleDict({"a": nn.Linear(4, 6), "b": nn.Linear(3, 6)})
            self.head = DictHead()

        def unimodal_logits(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {m: h[:, :2] for m, h in feats.items()}

    with pytest.raises(BalancerError, match=r"'mmcosine' needs model.head to be an nn.Linear"):
        bml_core.Balancer(OwnHead(), ["mmcosine"], num_classes=2)
    for name in ("agm", "gblending", "mla", "mmpareto", "reconboost", "relearn"):
        with pytest.raises(BalancerError, match=rf"'{name}' cannot run in an own loop"):
            bml_core.Balancer(model, [name], optimizer=opt, loaders={"train": batches, "val": batches})


def test_epoch_calls_are_required_and_mslr_needs_val_accuracies() -> None:
    model = _model()
    opt = torch.optim.SGD(bml_core.Balancer.param_groups(model), lr=0.1)
    y = torch.tensor([0, 1, 0, 1])
    x = {"a": torch.randn(4, 4), "b": torch.randn(4, 3)}
    balancer = bml_core.Balancer(model, ["infreg"])
    with pytest.raises(BalancerError, match=r"infreg act at epoch boundaries: call balancer.epoch_start\(\)"):
        balancer.forward(x, y)
    with pytest.raises(BalancerError, match="epoch_end\\(\\) without epoch_start"):
        balancer.epoch_end()
    balancer.epoch_start()
    with pytest.raises(BalancerError, match="epoch_start\\(\\) twice"):
        balancer.epoch_start()
    mslr = bml_core.Balancer(model, ["mslr"], optimizer=opt)
    mslr.epoch_start()
    out = mslr.forward(x, y)
    mslr.backward(F.cross_entropy(out.logits, y), out, y)
    opt.step()
    with pytest.raises(BalancerError, match=r"lacks \['val/acc/a', 'val/acc/b'\].*loaders=\{'val'"):
        mslr.epoch_end()
    assert mslr.epoch_end({"val/acc/a": 0.5, "val/acc/b": 0.25}) is False


def test_lr_multiplier_acts_for_one_step_only() -> None:
    """A multiplier scales the group's rate inside optimizer.step() and the base rate is back
    afterwards (the user's scheduler keeps owning it); mses' frozen encoder does not move."""
    model = _model()
    opt = torch.optim.SGD(bml_core.Balancer.param_groups(model), lr=0.1)
    balancer = bml_core.Balancer(model, ["joint"], optimizer=opt)
    balancer.runtime.set_lr_mult("a", 0.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    y = torch.tensor([0, 1, 0, 1])
    out = balancer.forward({"a": torch.randn(4, 4), "b": torch.randn(4, 3)}, y)
    balancer.backward(F.cross_entropy(out.logits, y), out, y)
    opt.step()
    after = model.state_dict()
    assert torch.equal(before["encoders.a.weight"], after["encoders.a.weight"])
    assert not torch.equal(before["encoders.b.weight"], after["encoders.b.weight"])
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.1, 0.1]


def test_epoch_end_logs_the_evaluation_and_the_epoch_series_to_the_run(engine: Engine) -> None:
    model = _model()
    opt = torch.optim.SGD(bml_core.Balancer.param_groups(model), lr=0.1)
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(3):
        y = torch.randint(0, 2, (8,), generator=g)
        batches.append(
            ({"a": torch.randn(8, 4, generator=g) + y[:, None], "b": torch.randn(8, 3, generator=g)}, y)
        )
    with bml_core.init(name="own-mses", modalities=["a", "b"], num_classes=2, store=engine) as run:
        balancer = bml_core.Balancer(model, ["mses"], run=run, optimizer=opt, loaders={"val": batches})
        for _ in range(2):
            balancer.epoch_start()
            for x, y in batches:
                out = balancer.forward(x, y)
                opt.zero_grad()
                balancer.backward(F.cross_entropy(out.logits, y), out, y)
                opt.step()
            balancer.epoch_end()
        run_id = run.id
    evaluated = balancer.evaluate("val")
    keys = set(db.series_keys(engine, run_id))
    assert {"val/acc", "val/acc/a", "val/loss", "mses/smoothed_loss/a", "mses/lr_mult/b"} <= keys
    acc = db.series_since(engine, run_id, keys=["val/acc"])["val/acc"]
    assert acc.steps == [3, 6] and acc.values[-1] == pytest.approx(evaluated["val/acc"])


def test_a_part_the_runtime_does_not_lend_is_a_named_error_and_an_attribute_error() -> None:
    """A strategy reaching for a trainer part the own loop lacks gets a BalancerError naming
    it; getattr with a default and hasattr still work (the error is an AttributeError too)."""
    balancer = bml_core.Balancer(_model(), ["infreg"])
    assert balancer.needs_epoch_calls and not bml_core.Balancer(_model(), ["ogm_ge"]).needs_epoch_calls
    with pytest.raises(BalancerError, match="does not lend 'clone_model'"):
        _ = balancer.runtime.clone_model
    assert getattr(balancer.runtime, "clone_model", None) is None
    assert not hasattr(balancer.runtime, "__deepcopy__")

"""The strategy plug-in interface (issue 9, STRATEGIES.md section 1): discovery of built-in
and BML_PLUGINS specs, a broken plug-in, config rules and composition, the order of the
twelve events, loss terms, should_stop, strategy state in checkpoints, and what the context
lends (parameter groups, masked forward, aux heads)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from bml_core.config import ConfigError, load_config, validate_config
from bml_core.sinks import MemorySink
from bml_core.strategies import all_specs, discover, get_spec, plugin_errors
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import stop_at_check

ROOT = Path(__file__).resolve().parents[1]

PLUGIN = '''
"""A test plug-in: records the order of the events and exercises the context."""
from typing import Literal
from pydantic import Field
from bml_core.config import StrategyParams
from bml_core.strategies.spec import MetricFamily, StrategySpec


class RecorderParams(StrategyParams):
    name: Literal["recorder"] = "recorder"
    stop_after_epoch: int = Field(-1, description="should_stop after this epoch (-1: never)")
    extra_loss: float = Field(0.0, ge=0.0, description="weight of an extra loss term")


class SteppingParams(StrategyParams):
    name: Literal["stepping"] = "stepping"


class SteppingTooParams(StrategyParams):
    name: Literal["stepping_too"] = "stepping_too"


class SnapshotParams(RecorderParams):
    name: Literal["snapshot"] = "snapshot"


def _concat_only(cfg, params):
    return None if cfg.model.fusion == "concat" else "needs model.fusion: concat"


SPECS = [
    StrategySpec(
        name="recorder",
        description="records events",
        params=RecorderParams,
        impl="{impl_module}:Recorder",
        metrics=(MetricFamily("recorder/calls", "calls", per_modality=False),),
        rules=(_concat_only,),
        cost="cheap",
    ),
    StrategySpec(
        name="stepping", description="s", params=SteppingParams, impl="{impl_module}:Stepper",
        capabilities=frozenset({{"overrides_step"}}),
    ),
    StrategySpec(
        name="stepping_too", description="s", params=SteppingTooParams, impl="{impl_module}:Recorder",
        capabilities=frozenset({{"overrides_step"}}),
    ),
    StrategySpec(
        name="snapshot", description="s", params=SnapshotParams, impl="{impl_module}:Recorder",
        capabilities=frozenset({{"needs_init_snapshot", "needs_val"}}),
    ),
]
'''

IMPL = """
import torch
from bml_core.strategies.base import Strategy

EVENTS = []


class Recorder(Strategy):
    def on_fit_start(self, ctx):
        EVENTS.append("on_fit_start")
        self.state.setdefault("calls", 0)

    def on_epoch_start(self, ctx):
        EVENTS.append("on_epoch_start")

    def before_forward(self, ctx, batch):
        EVENTS.append("before_forward")
        return batch

    def on_features(self, ctx, h):
        EVENTS.append("on_features")
        return h

    def on_logits(self, ctx, h, z, training):
        EVENTS.append("on_logits" if training else "on_logits_eval")
        return z

    def compute_loss(self, ctx, h, z, u, y):
        EVENTS.append("compute_loss")
        self.state["calls"] = self.state.get("calls", 0) + 1
        ctx.log_host(["recorder/calls"], [float(self.state["calls"])])
        if self.params.extra_loss == 0:
            return {}
        uni = sum(torch.nn.functional.cross_entropy(u[m], y) for m in ctx.modalities)
        return {"uni": self.params.extra_loss * uni}

    def backward(self, ctx, losses):
        EVENTS.append("backward")
        return False

    def on_gradients(self, ctx):
        EVENTS.append("on_gradients")

    def before_optimizer_step(self, ctx):
        EVENTS.append("before_optimizer_step")

    def on_epoch_end(self, ctx, val_metrics):
        EVENTS.append("on_epoch_end")
        self.state["last_val_acc"] = val_metrics["val/acc"] if val_metrics else None

    def should_stop(self, ctx):
        EVENTS.append("should_stop")
        return ctx.epoch == self.params.stop_after_epoch


class Stepper(Strategy):
    # a whole step of its own: two half-batch updates (overrides_step)

    def training_step(self, ctx, batch):
        x, y = batch
        half = y.shape[0] // 2
        losses = []
        for part in (slice(0, half), slice(half, None)):
            _, z = ctx.forward({m: t[part] for m, t in x.items()})
            loss = torch.nn.functional.cross_entropy(z, y[part])
            ctx.optimizer.zero_grad()
            ctx.backward(loss)
            ctx.optimizer_step()
            losses.append(loss.detach())
        ctx.log(["stepper/loss_first", "stepper/loss_second"], torch.stack(losses))
        return {"train/loss": float(sum(losses) / 2)}
"""


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A plug-in package on sys.path, named in BML_PLUGINS (a fresh name per test)."""
    name = f"bml_test_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}_impl.py").write_text(IMPL)
    (tmp_path / f"{name}.py").write_text(PLUGIN.format(impl_module=f"{name}_impl"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BML_PLUGINS", name)
    discover(refresh=True)
    yield name
    monkeypatch.delenv("BML_PLUGINS")
    discover(refresh=True)


def _impl(name: str) -> Any:
    import importlib

    return importlib.import_module(f"{name}_impl")


def test_builtins_are_discovered_with_their_specs() -> None:
    names = [s.name for s in all_specs()]
    # joint first, then the other built-ins by name (issue 9 adds more methods than these)
    assert names[0] == "joint" and {"ogm", "ogm_ge", "opm"} <= set(names)
    ogm = get_spec("ogm")
    assert ogm is not None and ogm.source == "built-in" and ogm.cost == "cheap"
    assert [m.key for m in ogm.metrics] == ["ogm/coef"]
    assert ogm.metrics[0].series(["audio", "visual"]) == ["ogm/coef/audio", "ogm/coef/visual"]
    params = {p["name"]: p for p in ogm.parameters()}
    assert params["alpha"]["default"] == 0.8 and params["alpha"]["bounds"] == {"ge": 0.0}
    assert params["k_form"]["choices"] == ["official", "smooth"]


def test_specs_and_config_never_import_torch() -> None:
    code = (
        "import sys\n"
        "from bml_core.config import validate_config, advisories\n"
        "from bml_core.strategies import all_specs\n"
        "specs = all_specs()\n"
        "cfg = validate_config({'strategies': ['opm', 'ogm_ge'], 'optim': {'name': 'adam'}})\n"
        "assert advisories(cfg)\n"
        "print(len(specs), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(len(all_specs())), "False"]


def test_plugin_loads_and_trains_through_every_event(plugin: str) -> None:
    assert (
        get_spec("recorder") is not None and get_spec("recorder").source == f"BML_PLUGINS module {plugin!r}"
    )  # type: ignore[union-attr]
    events = _impl(plugin).EVENTS
    events.clear()
    sink = MemorySink()
    cfg = load_config(small(strategies=["recorder"], train={"epochs": 2}))
    trainer = Trainer(cfg, sinks=[sink])
    trainer.fit()
    step = [
        "before_forward",
        "on_features",
        "on_logits",
        "compute_loss",
        "backward",
        "on_gradients",
        "before_optimizer_step",
    ]
    n = trainer.steps_per_epoch
    assert events[:2] == ["on_fit_start", "on_epoch_start"]
    assert events[2 : 2 + len(step)] == step
    first_epoch_end = events.index("on_epoch_end")
    assert events[2:first_epoch_end] == [e for e in step * n] + ["on_logits_eval"] * (
        first_epoch_end - 2 - len(step) * n
    )
    assert events[first_epoch_end : first_epoch_end + 3] == ["on_epoch_end", "should_stop", "on_epoch_start"]
    assert events.count("should_stop") == 1  # not asked after the last epoch
    assert [m["recorder/calls"] for _, _, m in sink.steps] == list(range(1, 2 * n + 1))
    assert "train/loss_term/ce" not in sink.steps[0][2]  # the fused CE alone is train/loss


def test_loss_terms_are_summed_and_each_logged(plugin: str) -> None:
    sink = MemorySink()
    cfg = load_config(small(strategies=[{"name": "recorder", "extra_loss": 0.5}], train={"epochs": 1}))
    Trainer(cfg, sinks=[sink]).fit()
    for _, _, m in sink.steps:
        assert m["train/loss"] == pytest.approx(m["train/loss_term/ce"] + m["train/loss_term/uni"], rel=1e-6)
        assert m["train/loss_term/uni"] > 0


def test_should_stop_ends_the_run_cleanly_and_resume_does_not_continue(plugin: str, tmp_path: Path) -> None:
    sink = MemorySink()
    cfg = load_config(small(strategies=[{"name": "recorder", "stop_after_epoch": 0}], train={"epochs": 4}))
    trainer = Trainer(cfg, sinks=[sink], run_dir=tmp_path / "run")
    summary = trainer.fit()
    assert sink.status == "succeeded" and summary["run"]["status"] == "succeeded"
    assert summary["train"]["steps"] == trainer.steps_per_epoch  # one epoch, not four
    assert summary["train"]["stopped_by"] == {
        "strategy": "recorder",
        "epoch": 0,
        "step": trainer.steps_per_epoch,
    }
    assert "test" in summary and any("stopped the run" in msg for _, msg in sink.events)
    state = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert state["progress"]["stopped_by"]["strategy"] == "recorder"
    assert state["strategies"][0]["state"]["calls"] == trainer.steps_per_epoch  # strategy state saved
    again = Trainer(cfg, run_dir=tmp_path / "run").fit()
    assert again["train"]["steps"] == trainer.steps_per_epoch


def test_strategy_state_survives_a_mid_epoch_resume(plugin: str, tmp_path: Path) -> None:
    cfg = load_config(small(strategies=["recorder"], train={"epochs": 2}))
    first = Trainer(cfg, run_dir=tmp_path / "r", stop_requested=stop_at_check(4))
    assert first.fit()["run"]["status"] == "cancelled"
    second = Trainer(cfg, run_dir=tmp_path / "r")
    second.fit()
    assert second.strategies[0].state["calls"] == 2 * second.steps_per_epoch


def test_broken_plugin_is_named_and_builtins_still_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bml_broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BML_PLUGINS", "bml_broken_plugin, bml_missing_plugin")
    try:
        specs = discover(refresh=True)
        assert {"joint", "ogm", "ogm_ge", "opm"} <= set(specs)
        errors = {e.source: e.message for e in plugin_errors()}
        assert "RuntimeError: boom at import" in errors["BML_PLUGINS module 'bml_broken_plugin'"]
        assert "No module named" in errors["BML_PLUGINS module 'bml_missing_plugin'"]
        with pytest.raises(ConfigError) as exc:
            validate_config({"strategies": ["halve_dominant"]})
        msg = exc.value.as_dict()["strategies.0"]
        assert "unknown strategy 'halve_dominant'" in msg and "bml_broken_plugin" in msg
        assert validate_config({"strategies": ["opm"]}).strategies[0].name == "opm"
    finally:
        monkeypatch.delenv("BML_PLUGINS")
        discover(refresh=True)
    assert plugin_errors() == []


def test_a_strategy_can_replace_the_training_step(plugin: str) -> None:
    sink = MemorySink()
    trainer = Trainer(load_config(small(strategies=["stepping"], train={"epochs": 1})), sinks=[sink])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.fit()
    assert summary["train"]["steps"] == trainer.steps_per_epoch == len(sink.steps)
    first = sink.steps[0][2]
    assert first["train/loss"] == pytest.approx(
        (first["stepper/loss_first"] + first["stepper/loss_second"]) / 2
    )
    assert "imbalance/ratio/audio" not in first  # the default step (and its probe) did not run
    assert not torch.equal(before["fusion.fc.weight"], trainer.model.state_dict()["fusion.fc.weight"])


def test_rules_and_two_step_overrides_are_config_errors(plugin: str) -> None:
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": ["opm", "recorder"], "model": {"fusion": "film"}})
    assert exc.value.as_dict() == {"strategies.1": "needs model.fusion: concat"}
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": ["stepping", "opm", "stepping_too"]})
    errs = exc.value.as_dict()
    assert list(errs) == ["strategies.2"]
    assert (
        "stepping (strategies.0) and stepping_too (strategies.2) both replace the training step"
        in errs["strategies.2"]
    )


def test_bml_train_refuses_two_step_overrides_with_exit_2(
    plugin: str, bml_exe: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(sys.modules[plugin].__file__).parent))  # type: ignore[arg-type]
    out = tmp_path / "out"
    r = subprocess.run(
        [bml_exe, "train", "--set", "strategies=[stepping, stepping_too]", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "strategies.1" in r.stderr and "both replace the training step" in r.stderr
    assert not out.exists()


def test_lr_multiplier_zero_freezes_one_encoder_and_state_reset(plugin: str) -> None:
    cfg = load_config(small(strategies=["recorder"], train={"epochs": 1}))
    trainer = Trainer(cfg)
    trainer.set_lr_mult("visual", 0.0)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    trainer.train_step(x, y, 0)
    after = trainer.model.state_dict()
    for k in before:
        if k.startswith("encoders.visual") and "running" not in k and "num_batches" not in k:
            assert torch.equal(before[k], after[k]), k
        if k.startswith(("encoders.audio", "fusion")) and k.endswith("weight"):
            assert not torch.equal(before[k], after[k]), k
    assert trainer.param_group("visual")["lr"] == cfg.optim.lr  # the base rate is untouched
    assert trainer.optimizer.state  # SGD momentum buffers exist
    trainer.reset_optimizer_state("audio")
    audio = {id(p) for p in trainer.param_group("audio")["params"]}
    assert not any(id(p) in audio for p in trainer.optimizer.state)
    assert any(
        id(p) in {id(q) for q in trainer.param_group("head")["params"]} for p in trainer.optimizer.state
    )
    assert [g["name"] for g in trainer.optimizer.param_groups] == ["audio", "visual", "head"]


def test_forward_with_modalities_absent() -> None:
    trainer = Trainer(load_config(small(train={"epochs": 1})))
    trainer.model.eval()
    x, _ = trainer.bundle.val.get_batch(torch.arange(8))  # type: ignore[attr-defined]
    with torch.no_grad():
        h_in, z_in = trainer.forward(x, present={"audio"}, zero="input")
        h_f, z_f = trainer.forward(x, present={"audio"}, zero="features")
        full = trainer.model.encode(x)
        zeros_in = trainer.model.encoders["visual"](torch.zeros_like(x["visual"]))
    assert torch.equal(h_in["audio"], full["audio"]) and torch.equal(h_in["visual"], zeros_in)
    assert torch.equal(h_f["visual"], torch.zeros_like(full["visual"]))
    assert torch.equal(z_f, trainer.model.fusion({"audio": full["audio"], "visual": h_f["visual"]}))
    assert not torch.equal(z_in, z_f)  # a zero input does not give zero features (biases)


def test_aux_heads_only_on_request() -> None:
    plain = Trainer(load_config(small(train={"epochs": 1})))
    assert plain.model.aux_heads is None
    assert not any(k.startswith("aux_heads") for k in plain.model.state_dict())
    aux = Trainer(load_config(small(model={"heads": "aux", "feature_dim": 16}, train={"epochs": 1})))
    assert aux.model.aux_heads is not None
    h = {"audio": torch.randn(3, 16), "visual": torch.randn(3, 16)}
    u = aux.unimodal_logits(h)
    head = aux.model.aux_heads["audio"]
    assert torch.equal(u["audio"], head(h["audio"]))
    assert torch.equal(aux.unimodal_logits(h, "split")["audio"], aux.model.fusion.unimodal_logits(h)["audio"])
    assert aux.param_group("head")["params"][-1] is aux.model.aux_heads["visual"].bias


def test_bml_strategies_lists_the_plugin_json(
    plugin: str, bml_exe: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(sys.modules[plugin].__file__).parent))  # type: ignore[arg-type]
    r = subprocess.run([bml_exe, "strategies", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    data = {s["name"]: s for s in json.loads(r.stdout)["strategies"]}
    rec = data["recorder"]
    assert rec["source"] == f"BML_PLUGINS module {plugin!r}" and rec["cost"] == "cheap"
    assert rec["metrics"][0]["key"] == "recorder/calls"
    extra = {p["name"]: p for p in rec["parameters"]}["extra_loss"]
    assert extra == {
        "name": "extra_loss",
        "type": "float",
        "default": 0.0,
        "required": False,
        "bounds": {"ge": 0.0},
        "choices": None,
        "authors": None,  # no authors' value marked (bml_core.schema.authors)
        "description": "weight of an extra loss term",
    }


def test_entry_point_group_loads_a_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution's `bml.strategies` entry point (a dist-info on sys.path)."""
    dist = tmp_path / "bml_example_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bml-example-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bml.strategies]\nhalve = halve_dominant\n")
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "plugins"))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("BML_PLUGINS", raising=False)
    try:
        discover(refresh=True)
        spec = get_spec("halve_dominant")
        assert spec is not None and spec.source == "entry point 'halve' (halve_dominant)"
        assert plugin_errors() == []
    finally:
        monkeypatch.undo()
        discover(refresh=True)
    assert get_spec("halve_dominant") is None


def test_init_snapshot_only_on_request(plugin: str) -> None:
    trainer = Trainer(load_config(small(strategies=["snapshot"], train={"epochs": 1})))
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    ctx = trainer.context(0)
    assert set(ctx.init_snapshot) == set(initial)
    assert all(torch.equal(ctx.init_snapshot[k], initial[k]) for k in initial)
    assert not torch.equal(
        ctx.init_snapshot["fusion.fc.weight"], trainer.model.state_dict()["fusion.fc.weight"]
    )
    assert Trainer(load_config(small(train={"epochs": 1}))).init_snapshot is None  # only on request


def test_lr_multipliers_survive_a_resume(tmp_path: Path) -> None:
    cfg = load_config(small(train={"epochs": 2}))
    first = Trainer(cfg, run_dir=tmp_path / "r", stop_requested=lambda: True)
    first.set_lr_mult("visual", 0.0)
    assert first.fit()["run"]["status"] == "cancelled"  # stopped after one step, checkpointed
    second = Trainer(cfg, run_dir=tmp_path / "r")
    assert second.try_resume() and second.lr_mults == {"visual": 0.0}
    before = {k: v.clone() for k, v in second.model.state_dict().items()}
    x, y = second.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    second.train_step(x, y, 0)
    after = second.model.state_dict()
    assert torch.equal(before["encoders.visual.net.1.weight"], after["encoders.visual.net.1.weight"])
    assert not torch.equal(before["encoders.audio.net.1.weight"], after["encoders.audio.net.1.weight"])

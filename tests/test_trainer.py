"""The training loop: metric keys, the OPM all-dropped guard, evaluation, resume, AMP."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from bml_core.config import load_config
from bml_core.sinks import MemorySink
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import stop_at_check


def test_every_step_streams_the_contract_keys() -> None:
    sink = MemorySink()
    cfg = load_config(small(strategies=["opm", "ogm_ge"]))
    summary = Trainer(cfg, sinks=[sink]).fit()
    assert sink.closed and sink.status == "succeeded"
    assert sink.info["total_steps"] == len(sink.steps) == summary["train"]["steps"]
    keys = set(sink.steps[0][2])
    for m in ("audio", "visual"):
        for k in (
            "train/loss/",
            "train/acc/",
            "imbalance/score/",
            "imbalance/ratio/",
            "ogm/coef/",
            "opm/drop_prob/",
        ):
            assert k + m in keys
        assert f"opm/dropped/{m}" in keys and f"grad/norm/{m}" in keys
    assert {"train/loss", "train/acc", "lr", "time/step_ms"} <= keys
    steps = [s for s, _, _ in sink.steps]
    assert steps == list(range(1, len(steps) + 1))
    assert len(sink.evals) == 2
    ev = sink.evals[-1][2]
    for k in (
        "val/acc",
        "val/acc/audio",
        "val/acc/visual",
        "val/f1",
        "val/map",
        "val/loss",
        "val/imbalance_degree",
    ):
        assert k in ev and math.isfinite(ev[k])
    # summary JSON per CONTRACT.md
    assert summary["run"]["status"] == "succeeded" and summary["run"]["strategies"] == ["opm", "ogm_ge"]
    for split in ("val", "test"):
        assert 0 <= summary[split]["acc"] <= 1
        assert set(summary[split]["acc_per_modality"]) == {"audio", "visual"}
        assert {"f1", "map"} <= set(summary[split])
    assert "imbalance_degree" in summary["test"]
    assert summary["best_epoch"] in (0, 1) and summary["selection"] == "val"
    assert summary["train"]["samples_per_second"] > 0


def test_probe_runs_for_joint_training_too() -> None:
    sink = MemorySink()
    Trainer(load_config(small()), sinks=[sink]).fit()
    ratios = [m["imbalance/ratio/audio"] for _, _, m in sink.steps]
    assert all(math.isfinite(r) for r in ratios)
    assert "ogm/coef/audio" not in sink.steps[0][2]


def test_all_dropped_guard_skips_and_counts_the_step() -> None:
    cfg = load_config(small(strategies=[{"name": "opm", "p_exe": 1.0}], train={"epochs": 1}))
    trainer = Trainer(cfg)
    opm = trainer.strategies[0]
    opm.forced_q = torch.tensor([1.0, 1.0])  # type: ignore[attr-defined]
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    sink = MemorySink()
    trainer.sink.sinks.append(sink)
    summary = trainer.fit()
    assert summary["train"]["steps"] == 0
    assert summary["train"]["skipped_steps"] == trainer.steps_per_epoch
    assert sink.steps == []
    assert any("skipped" in msg for _, msg in sink.events)
    after = trainer.model.state_dict()
    changed = [
        k for k in before if not k.endswith("num_batches_tracked") and not torch.equal(before[k], after[k])
    ]
    assert changed == []  # no optimiser step ran


@pytest.mark.parametrize("host_math", [True, False])
def test_partial_drop_removes_only_fully_dropped_samples(host_math: bool) -> None:
    """The loss is the mean cross-entropy over the samples that kept at least one modality."""
    import torch.nn.functional as F

    cfg = load_config(
        small(strategies=[{"name": "opm", "p_exe": 1.0, "rescale": "none"}], train={"epochs": 1})
    )
    trainer = Trainer(cfg)
    opm = trainer.strategies[0]
    opm.host_math = host_math
    opm.forced_q = torch.tensor([0.5, 0.5])  # type: ignore[attr-defined]
    captured: dict = {}
    original = opm.transform_features

    def spy(feats: dict, ctx: object) -> tuple:
        out, alive = original(feats, ctx)  # type: ignore[arg-type]
        with torch.no_grad():
            ce = F.cross_entropy(trainer.model.fusion(out), ctx.y, reduction="none")  # type: ignore[attr-defined]
        captured.update(alive=alive, expected=ce[alive].mean().item(), all=ce.mean().item())
        return out, alive

    opm.transform_features = spy  # type: ignore[method-assign]
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    alive = captured["alive"]
    assert alive is not None and 0 < int(alive.sum()) < 32
    assert metrics["train/loss"] == pytest.approx(captured["expected"], rel=1e-5)
    assert metrics["train/loss"] != pytest.approx(captured["all"], rel=1e-5)
    assert 0 < metrics["opm/dropped/audio"] < 1 and 0 < metrics["opm/dropped/visual"] < 1


def test_evaluation_never_drops() -> None:
    cfg = load_config(small(strategies=[{"name": "opm", "p_exe": 1.0}], train={"epochs": 1}))
    trainer = Trainer(cfg)
    trainer.strategies[0].forced_q = torch.tensor([1.0, 0.0])  # type: ignore[attr-defined]
    result = trainer.evaluate(trainer.bundle.val)
    trainer.model.eval()
    ds = trainer.bundle.val
    with torch.no_grad():
        logits = trainer.model(ds.x)  # type: ignore[attr-defined]
    expected = (logits.argmax(1) == ds.y).float().mean().item()  # type: ignore[attr-defined]
    assert result.acc == pytest.approx(expected)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


@pytest.mark.parametrize("where", ["mid-epoch", "epoch-boundary"])
def test_stopped_then_resumed_equals_uninterrupted(tmp_path: Path, where: str) -> None:
    raw = small(
        strategies=[{"name": "opm", "p_exe": 0.8}, {"name": "ogm_ge", "alpha": 0.5}],
        model={"encoders": {"audio": {"hidden_dim": 32, "dropout": 0.2}, "visual": {"name": "mlp"}}},
        train={"epochs": 3, "batch_size": 20},
        optim={"lr": 0.05, "scheduler": {"name": "step", "step_size": 1, "gamma": 0.5}},
    )
    cfg = load_config(raw)
    full = Trainer(cfg, run_dir=tmp_path / "full")
    stop_after = 5 if where == "mid-epoch" else full.steps_per_epoch
    full_summary = full.fit()
    reference = _weights(full)

    first = Trainer(cfg, run_dir=tmp_path / "resumed", stop_requested=stop_at_check(stop_after))
    status = first.fit()["run"]["status"]
    assert status == "cancelled"
    assert first.global_step == stop_after
    second = Trainer(cfg, run_dir=tmp_path / "resumed")
    summary = second.fit()
    resumed = _weights(second)
    # both evaluate the val-selected checkpoint at the end; compare the final (last.pt) weights
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=False)["model"]
    last_resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=False)["model"]
    assert set(last_full) == set(last_resumed)
    for k in last_full:
        assert torch.equal(last_full[k], last_resumed[k]), k
    for k in reference:
        assert torch.equal(reference[k], resumed[k]), k
    assert summary["test"] == full_summary["test"]
    assert summary["train"]["steps"] == full_summary["train"]["steps"]


@pytest.mark.parametrize("fusion", ["concat", "sum", "film", "gated"])
def test_three_modalities_every_fusion(fusion: str) -> None:
    raw = small(strategies=["opm", "ogm_ge"], train={"epochs": 1})
    raw["dataset"]["params"]["modalities"].append({"name": "text", "strength": 0.3, "shape": [4]})
    raw["model"]["fusion"] = fusion
    sink = MemorySink()
    summary = Trainer(load_config(raw), sinks=[sink]).fit()
    assert set(summary["test"]["acc_per_modality"]) == {"audio", "visual", "text"}
    assert "imbalance/ratio/text" in sink.steps[-1][2]
    assert set(summary["test"]["shapley"]) == {"audio", "visual", "text"}


def test_image_inputs_with_cnn_and_frames() -> None:
    raw = small(strategies=["ogm_ge"], train={"epochs": 1, "batch_size": 16})
    raw["dataset"]["params"]["modalities"] = [
        {"name": "audio", "strength": 1.5, "shape": [12, 10]},  # [F, T] spectrogram-like
        {"name": "visual", "strength": 0.8, "shape": [2, 3, 8, 8]},  # [T, C, H, W] frames
    ]
    raw["dataset"]["params"]["num_samples"] = 120
    raw["model"]["encoders"] = {
        "audio": {"name": "cnn", "channels": 4},
        "visual": {"name": "cnn", "channels": 4},
    }
    raw["strategies"] = [{"name": "ogm_ge", "params": "conv_only"}]
    summary = Trainer(load_config(raw)).fit()
    assert summary["train"]["steps"] > 0


def test_amp_bf16_on_cpu_trains() -> None:
    sink = MemorySink()
    summary = Trainer(
        load_config(small(strategies=["ogm_ge"], train={"amp": "bf16", "epochs": 1})), sinks=[sink]
    ).fit()
    assert summary["run"]["status"] == "succeeded"
    assert all(math.isfinite(m["train/loss"]) for _, _, m in sink.steps)


def test_resnet18_encoders_forward_backward() -> None:
    from bml_core.config import EncoderConfig
    from bml_core.models.encoders import build_encoder

    audio = build_encoder((1, 64, 48), EncoderConfig(name="resnet18"), 128)
    visual = build_encoder((2, 3, 32, 32), EncoderConfig(name="resnet18"), 128)
    assert audio.out_dim == visual.out_dim == 512
    out = audio(torch.randn(2, 1, 64, 48)) + visual(torch.randn(2, 2, 3, 32, 32))
    assert out.shape == (2, 512)
    out.sum().backward()


def test_amp_fp16_with_grad_scaler_trains() -> None:
    cfg = load_config(small(strategies=["ogm_ge"], train={"amp": "fp16", "epochs": 1, "device": "cpu"}))
    trainer = Trainer(cfg)
    assert trainer.scaler is not None  # OGM-GE sees unscaled gradients (unscale_ before after_backward)
    assert trainer.fit()["run"]["status"] == "succeeded"


def test_prefetched_noise_is_the_same_sequence_and_checkpoints_exactly() -> None:
    from bml_core.strategies.noise import GaussianNoiseSource

    shapes = [torch.Size([7, 5]), torch.Size([3])]
    inline = GaussianNoiseSource(
        shapes, torch.Generator().manual_seed(9), torch.device("cpu"), prefetch=False
    )
    ahead = GaussianNoiseSource(shapes, torch.Generator().manual_seed(9), torch.device("cpu"), prefetch=True)
    for _ in range(3):
        a, b = inline.next(), ahead.next()
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    saved = ahead.state()  # the state before the draw already prefetched
    expected = [t.clone() for t in inline.next()]
    resumed = GaussianNoiseSource(shapes, torch.Generator(), torch.device("cpu"), prefetch=True)
    resumed.load_state(saved)
    assert all(torch.equal(x, y) for x, y in zip(resumed.next(), expected, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(ahead.next(), expected, strict=True))
    for s in (inline, ahead, resumed):
        s.close()


def test_sinks_are_flushed_before_every_checkpoint(tmp_path: Path) -> None:
    """A checkpoint never runs ahead of the recorded metrics (a crash would lose steps)."""
    from bml_core.sinks import MetricSink

    class Recorder(MetricSink):
        def __init__(self) -> None:
            self.steps = 0
            self.flushed_at: list[int] = []

        def on_step(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
            self.steps = step

        def flush(self) -> bool:
            self.flushed_at.append(self.steps)
            assert not (tmp_path / "run" / "last.pt").exists() or self.steps > 0
            return True

    rec = Recorder()
    trainer = Trainer(load_config(small(train={"epochs": 3})), sinks=[rec], run_dir=tmp_path / "run")
    original = trainer._save

    def save(name: str, obj: object) -> None:
        if name == "last.pt":
            assert rec.flushed_at and rec.flushed_at[-1] == trainer.global_step
        original(name, obj)

    trainer._save = save  # type: ignore[method-assign]
    trainer.fit()
    assert rec.flushed_at == [trainer.steps_per_epoch * e for e in (1, 2, 3)]


def test_linear_probe_in_the_summary() -> None:
    summary = Trainer(load_config(small(train={"epochs": 1, "linear_probe": True}))).fit()
    probe = summary["test"]["linear_probe_acc_per_modality"]
    assert set(probe) == {"audio", "visual"} and all(0 <= v <= 1 for v in probe.values())
    assert probe["audio"] > 0.5  # the strong modality's frozen features separate the classes

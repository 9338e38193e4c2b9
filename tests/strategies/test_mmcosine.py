"""mmcosine (STRATEGIES.md section 2.3): the formulas against hand-computed numbers."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from bml_core.config import ConfigError, load_config, validate_config
from bml_core.models.fusion import ConcatFusion
from bml_core.sinks import MemorySink
from bml_core.strategies.mmcosine.impl import cosine_logits, mmcosine_logits
from bml_core.strategies.spec import get_spec
from bml_core.trainer import Trainer
from tests.helpers.configs import small
from tests.helpers.resume import assert_resume_bitwise


def test_cosine_logits_are_scaled_cosines_with_normalised_rows() -> None:
    # h = [3, 4] (norm 5); class rows [1, 0], [0, 2], [-1, -1] normalise to [1, 0], [0, 1], -[1, 1]/sqrt 2
    # cos = [3/5, 4/5, -7/(5 sqrt 2)]; s = 10 -> [6, 8, -7 sqrt 2]
    h = torch.tensor([[3.0, 4.0]])
    w = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]])
    assert cosine_logits(h, w, 10.0).tolist()[0] == pytest.approx([6.0, 8.0, -7 * math.sqrt(2)])
    # invariant to the scale of the feature and of each class row (only directions count)
    w2 = w * torch.tensor([[5.0], [0.1], [3.0]])
    assert torch.allclose(cosine_logits(7 * h, w2, 10.0), cosine_logits(h, w, 10.0))


def test_fused_logits_sum_the_per_modality_cosines_without_bias() -> None:
    # concat head weight [C = 2, d_a + d_v = 2 + 1]: W_a = [[1, 0], [0, 2]], W_v = [[2], [-3]]
    # sample 0: h_a = [3, 4], h_v = [-2]
    #   u_a = 10 * [3/5, 4/5] = [6, 8]; u_v = 10 * [cos(-2, 2), cos(-2, -3)] = 10 * [-1, 1] = [-10, 10]
    #   z = [-4, 18]
    # sample 1: h_a = [0, -1], h_v = [0.5]
    #   u_a = 10 * [0, -1] = [0, -10]; u_v = 10 * [1, -1] = [10, -10]; z = [10, -20]
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 2.0, -3.0]])
    offsets = {"a": (0, 2), "v": (2, 3)}
    feats = {"a": torch.tensor([[3.0, 4.0], [0.0, -1.0]]), "v": torch.tensor([[-2.0], [0.5]])}
    z, u = mmcosine_logits(feats, weight, offsets, 10.0)
    torch.testing.assert_close(u["a"], torch.tensor([[6.0, 8.0], [0.0, -10.0]]))
    torch.testing.assert_close(u["v"], torch.tensor([[-10.0, 10.0], [10.0, -10.0]]))
    torch.testing.assert_close(z, torch.tensor([[-4.0, 18.0], [10.0, -20.0]]))
    # every logit is bounded by the scale: |u_m[k]| <= s, |z[k]| <= M s
    assert float(z.abs().max()) <= 2 * 10.0 + 1e-6


def test_gradients_reach_features_and_weight_blocks() -> None:
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.0, 2.0, -3.0]], requires_grad=True)
    feats = {
        "a": torch.tensor([[3.0, 4.0]], requires_grad=True),
        "v": torch.tensor([[-2.0]], requires_grad=True),
    }
    z, _ = mmcosine_logits(feats, weight, {"a": (0, 2), "v": (2, 3)}, 10.0)
    torch.nn.functional.cross_entropy(z, torch.tensor([0])).backward()
    assert weight.grad is not None and feats["a"].grad is not None
    # d cos(h, w)/dh is orthogonal to h: the feature gradient has no radial part
    assert float((feats["a"].grad * feats["a"].detach()).sum()) == pytest.approx(0.0, abs=1e-5)
    # a 1-d block has no direction to change: its (normalised) gradient vanishes
    assert feats["v"].grad is not None and float(feats["v"].grad.abs().max()) == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- the strategy in the trainer


def _by_hand(trainer: Trainer, h: dict[str, torch.Tensor], scale: float) -> torch.Tensor:
    """z[i, k] = sum_m s * <h_m,i / |h_m,i|, W_m[k] / |W_m[k]|>, written out without the module."""
    fusion = trainer.model.fusion
    assert isinstance(fusion, ConcatFusion)
    w = fusion.fc.weight.detach()
    z = torch.zeros(next(iter(h.values())).shape[0], w.shape[0])
    for m, (s, e) in fusion.offsets.items():
        hn = h[m] / h[m].norm(dim=1, keepdim=True)
        wn = w[:, s:e] / w[:, s:e].norm(dim=1, keepdim=True)
        z += scale * hn @ wn.t()
    return z


def test_training_and_evaluation_use_the_cosine_head() -> None:
    # eval_logits: cosine, our earlier reading (issue 21: the authors score the linear logits)
    trainer = Trainer(
        load_config(small(strategies=[{"name": "mmcosine", "scale": 5.0, "eval_logits": "cosine"}]))
    )
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    with torch.no_grad():
        h = trainer.model.encode(x)
        z = _by_hand(trainer, h, 5.0)
        u = {m: _by_hand_one(trainer, h, m) for m in ("audio", "visual")}  # before the step moves W
    bias = trainer.model.fusion.fc.bias.detach().clone()  # type: ignore[union-attr]
    metrics = trainer.train_step(x, y, 0)
    assert metrics is not None
    # the step's loss is CE of the cosine logits; its logged accuracy is theirs
    assert metrics["train/loss"] == pytest.approx(float(F.cross_entropy(z, y)), rel=1e-5)
    assert metrics["train/acc"] == pytest.approx(float((z.argmax(1) == y).float().mean()))
    # per modality: mean cos with the true class, and the cosine head's uni-modal accuracy
    for m in ("audio", "visual"):
        assert metrics[f"mmcosine/cos/{m}"] == pytest.approx(
            float(u[m].gather(1, y[:, None]).mean()), rel=1e-5
        )
        assert metrics[f"mmcosine/acc/{m}"] == pytest.approx(float((u[m].argmax(1) == y).float().mean()))
    # no bias: it gets no gradient and never moves
    assert trainer.model.fusion.fc.bias.grad is None  # type: ignore[union-attr]
    assert torch.equal(trainer.model.fusion.fc.bias, bias)  # type: ignore[union-attr]
    # evaluation: the cosine head too
    result = trainer.evaluate(trainer.bundle.val, "val")
    feats, yv = trainer.encode_split(trainer.bundle.val, "val")
    expected = float((_by_hand(trainer, feats, 5.0).argmax(1) == yv).float().mean())
    assert result.acc == pytest.approx(expected)


def test_evaluation_scores_the_plain_linear_logits_by_default() -> None:
    """The authors' main_CD.py (GeWu-Lab/MMCosine_ICASSP23@00ba0a9) L181, L196: the fused
    prediction is softmax(out), out the model's plain concat head W h + b."""
    trainer = Trainer(load_config(small(strategies=[{"name": "mmcosine", "scale": 5.0}])))
    x, y = trainer.bundle.train.get_batch(torch.arange(32))  # type: ignore[attr-defined]
    assert trainer.train_step(x, y, 0) is not None
    result = trainer.evaluate(trainer.bundle.val, "val")
    feats, yv = trainer.encode_split(trainer.bundle.val, "val")
    with torch.no_grad():
        linear = trainer.model.fusion(feats)
    assert result.acc == pytest.approx(float((linear.argmax(1) == yv).float().mean()))
    assert not torch.equal(linear.argmax(1), _by_hand(trainer, feats, 5.0).argmax(1))


def _by_hand_one(trainer: Trainer, h: dict[str, torch.Tensor], m: str) -> torch.Tensor:
    """cos(h_m, W_m[k]) of one modality (scale 1)."""
    fusion = trainer.model.fusion
    assert isinstance(fusion, ConcatFusion)
    s, e = fusion.offsets[m]
    w = fusion.fc.weight.detach()[:, s:e]
    return (h[m] / h[m].norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).t()


def test_spec_defaults_and_film_is_a_config_error() -> None:
    spec = get_spec("mmcosine")
    assert spec is not None and spec.cost == "cheap"
    assert [f.key for f in spec.metrics] == ["mmcosine/cos", "mmcosine/acc"]
    assert load_config(small(strategies=["mmcosine"])).strategies[0].scale == 10.0  # type: ignore[attr-defined]
    for fusion in ("film", "sum", "gated"):
        with pytest.raises(ConfigError) as exc:
            validate_config({"strategies": ["mmcosine"], "model": {"fusion": fusion}})
        errs = exc.value.as_dict()
        assert list(errs) == ["model.fusion"] and "mmcosine needs fusion: concat" in errs["model.fusion"]
    with pytest.raises(ConfigError) as exc:
        validate_config({"strategies": [{"name": "mmcosine", "scale": 0}]})
    assert "strategies.0.scale" in exc.value.as_dict()


def test_bml_train_with_film_exits_2_naming_the_field_and_writes_nothing(
    bml_exe: str, tmp_path: Path, _isolated_home: Path
) -> None:
    out = tmp_path / "summary.json"
    r = subprocess.run(
        [
            bml_exe,
            "train",
            "--set",
            "strategies=[mmcosine]",
            "--set",
            "model.fusion=film",
            "--set",
            "train.epochs=1",
            "--no-progress",
            "--summary-json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "model.fusion" in r.stderr and "mmcosine needs fusion: concat" in r.stderr
    assert not out.exists()
    assert not (_isolated_home / "runs").exists()


def test_composes_with_opm() -> None:
    sink = MemorySink()
    Trainer(load_config(small(strategies=["opm", "mmcosine"])), sinks=[sink]).fit()
    keys = set(sink.steps[-1][2])
    assert {"opm/drop_prob/audio", "mmcosine/cos/audio", "mmcosine/acc/visual"} <= keys
    assert all(math.isfinite(v) for _, _, mets in sink.steps for v in mets.values())


def test_stopped_then_resumed_equals_uninterrupted(tmp_path: Path) -> None:
    raw = small(
        strategies=[{"name": "mmcosine", "scale": 8.0}], train={"epochs": 3, "batch_size": 20, "threads": 1}
    )
    assert_resume_bitwise(raw, tmp_path, stop_after=13 + 4)  # 13 steps an epoch: mid epoch 1


def test_live_draws_its_panels_from_the_spec() -> None:
    from app.views.live.data import panels

    by_prefix = {prefix: panel for panel in panels() for prefix in panel.prefixes}
    assert by_prefix["mmcosine/cos/"].title == "MMCosine: cosine with the true class per modality"
    assert by_prefix["mmcosine/acc/"].y_title == "accuracy"

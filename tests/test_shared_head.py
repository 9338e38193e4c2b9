"""`model.head: shared`: every modality's feature (projected to feature_dim when its encoder is
wider) goes through one Linear head; u_m = head(h_m), fused z = sum_m u_m by default; the
config refuses it with a non-concat fusion, and strategies that need it name the field."""

from __future__ import annotations

import pytest
import torch

from bml_core.config import ConfigError, ModelConfig, load_config
from bml_core.models import Projected, SharedHead, build_model
from bml_core.trainer import Trainer
from tests.helpers.configs import small


def test_one_linear_applied_to_every_modality() -> None:
    torch.manual_seed(0)
    head = SharedHead({"a": 3, "v": 3}, 2)
    with torch.no_grad():
        head.fc.weight.copy_(torch.tensor([[1.0, 0.0, 2.0], [0.0, -1.0, 1.0]]))
        head.fc.bias.copy_(torch.tensor([0.5, -0.5]))
    feats = {"a": torch.tensor([[1.0, 2.0, 3.0]]), "v": torch.tensor([[0.0, 1.0, 0.0]])}
    u = head.unimodal_logits(feats)
    # a: [1 + 6 + 0.5, -2 + 3 - 0.5] = [7.5, 0.5]; v: [0 + 0.5, -1 - 0.5] = [0.5, -1.5]
    assert torch.allclose(u["a"], torch.tensor([[7.5, 0.5]]))
    assert torch.allclose(u["v"], torch.tensor([[0.5, -1.5]]))
    assert torch.allclose(head(feats), torch.tensor([[8.0, -1.0]]))
    assert sum(p.numel() for p in head.parameters()) == 3 * 2 + 2  # one head, not one per modality


def test_wider_encoders_are_projected_to_feature_dim() -> None:
    cfg = ModelConfig(head="shared", feature_dim=8, encoders={"image": {"name": "resnet18"}})  # type: ignore[arg-type]
    model = build_model(cfg, {"image": (3, 16, 16), "vec": (5,)}, num_classes=3)
    assert isinstance(model.encoders["image"], Projected)  # ResNet-18 gives 512
    assert not isinstance(model.encoders["vec"], Projected)  # the MLP gives feature_dim already
    assert model.feature_dims() == {"image": 8, "vec": 8}
    assert isinstance(model.fusion, SharedHead)
    # the projection belongs to the modality's encoder (its optimizer group, freezing, re-init)
    proj = model.encoders["image"].proj.weight  # type: ignore[union-attr]
    assert any(p is proj for p in model.encoder_parameters("image"))
    model.eval()
    z = model({"image": torch.randn(2, 3, 16, 16), "vec": torch.randn(2, 5)})
    assert z.shape == (2, 3)


def test_joint_training_with_a_shared_head_reports_head_of_each_feature() -> None:
    raw = small(train={"epochs": 1, "batch_size": 32, "threads": 1})
    raw["model"] = {**raw["model"], "head": "shared"}
    trainer = Trainer(load_config(raw))
    summary = trainer.fit()
    assert set(summary["test"]["acc_per_modality"]) == {"audio", "visual"}
    feats, y = trainer.encode_split(trainer.bundle.test, "test")
    expected = (trainer.model.fusion.fc(feats["visual"]).argmax(1) == y).float().mean().item()  # type: ignore[operator]
    assert summary["test"]["acc_per_modality"]["visual"] == pytest.approx(expected)


def test_shared_head_with_another_fusion_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"model": {"head": "shared", "fusion": "sum"}})
    assert "model" in err.value.as_dict() and "fusion: concat" in str(err.value)


@pytest.mark.parametrize("name", ["mla", "reconboost"])
def test_strategies_needing_the_shared_head_name_the_field(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"strategies": [name]})
    assert "model.head" in err.value.as_dict()
    assert "model.head: shared" in err.value.as_dict()["model.head"]
    load_config({"strategies": [name], "model": {"head": "shared"}})  # fine with it


@pytest.mark.parametrize("name", ["mla", "reconboost"])
def test_cli_exits_2_naming_model_head(name: str, bml_exe: str, tmp_path, _isolated_home) -> None:  # type: ignore[no-untyped-def]
    from tests.test_cli_train import FAST, run_bml

    out = tmp_path / "summary.json"
    r = run_bml(bml_exe, "train", *FAST, "--set", f"strategies=[{name}]", "--summary-json", str(out))
    assert r.returncode == 2, r.stderr
    assert "model.head" in r.stderr and "shared" in r.stderr
    assert not out.exists()

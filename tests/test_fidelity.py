"""Fidelity to the official codes (issue 11 item 5): mAP with a class that has no positives,
the Shapley imbalance degree with the input of absent modalities zeroed, the official weight
initialisation, and the test-selected number of the official protocol."""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.metrics import average_precision_score

from bml_core.config import PRESETS, EncoderConfig, ModelConfig, load_config
from bml_core.data import TensorDataset
from bml_core.metrics import accuracy, mean_average_precision
from bml_core.models import build_model
from bml_core.trainer import Trainer

SMALL = {
    "dataset": {
        "params": {
            "num_samples": 300,
            "modalities": [
                {"name": "audio", "strength": 1.5, "shape": [12]},
                {"name": "visual", "strength": 0.6, "shape": [6]},
            ],
        }
    },
    "model": {"feature_dim": 8, "encoders": {"audio": {"hidden_dim": 16}, "visual": {"hidden_dim": 16}}},
    "optim": {"lr": 0.05, "scheduler": {"name": "none"}},
    "train": {"epochs": 2, "batch_size": 32, "threads": 1},
}


def small(**train: object) -> dict:
    raw = copy.deepcopy(SMALL)
    raw["train"].update(train)
    return raw


# --------------------------------------------------------------------------- mAP


def test_map_with_an_absent_class_equals_sklearn_and_the_official_code() -> None:
    g = torch.Generator().manual_seed(3)
    y = torch.tensor([0, 1, 3, 0, 1, 3, 3, 0, 1, 1])  # class 2 (of 4) has no positive
    probs = torch.randn(10, 4, generator=g).softmax(1)
    one_hot = np.eye(4)[y.numpy()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about the column without positives
        per_class = average_precision_score(one_hot, probs.numpy(), average=None)
        official = average_precision_score(one_hot, probs.numpy())  # T-PAMI code: macro default
    assert per_class[2] == 0.0  # the installed sklearn's value for a class with no positives
    assert official == pytest.approx(per_class.mean(), abs=1e-12)
    assert mean_average_precision(probs, y) == pytest.approx(official, abs=1e-9)
    assert mean_average_precision(probs, y, "zero") == pytest.approx(official, abs=1e-9)
    # the former behaviour stays available: the mean over the classes with positives
    skip = mean_average_precision(probs, y, "skip")
    assert skip == pytest.approx(np.mean(per_class[[0, 1, 3]]), abs=1e-9)
    assert skip == pytest.approx(official * 4 / 3, abs=1e-9)
    assert math.isnan(mean_average_precision(probs[:0], y[:0]))
    with pytest.raises(ValueError):
        mean_average_precision(probs, y, "drop")  # type: ignore[arg-type]


def test_trainer_map_follows_the_config_option() -> None:
    for absent in ("zero", "skip"):
        trainer = Trainer(load_config(small(epochs=1, map_absent=absent)))
        val = trainer.bundle.val
        assert isinstance(val, TensorDataset)
        keep = val.y != 0  # class 0 absent from this split
        ds = val.subset(torch.nonzero(keep).squeeze(1))
        result = trainer.evaluate(ds, "val")
        trainer.model.eval()
        with torch.no_grad():
            probs = trainer.model(ds.x).softmax(1)
        one_hot = np.eye(probs.shape[1])[ds.y.numpy()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            per_class = average_precision_score(one_hot, probs.numpy(), average=None)
        present = np.unique(ds.y.numpy())
        assert 0 not in present
        expected = per_class.mean() if absent == "zero" else per_class[present].mean()
        assert result.map == pytest.approx(expected, abs=1e-6)


# --------------------------------------------------------------------------- Shapley degree


def _hand_degree(trainer: Trainer, ds: TensorDataset, absent: str) -> tuple[dict[str, float], float]:
    """v(S) by hand: run the model with the other modality's input (or feature) set to zero;
    for two modalities phi_a = 1/2 [v(a) - v(0)] + 1/2 [v(av) - v(v)], degree = |phi_a - phi_v|."""
    model = trainer.model.eval()

    def v(keep: set[str]) -> float:
        with torch.no_grad():
            if absent == "input":
                x = {m: (t if m in keep else torch.zeros_like(t)) for m, t in ds.x.items()}
                logits = model(x)
            else:
                feats = model.encode(ds.x)
                logits = model.fusion(
                    {m: (h if m in keep else torch.zeros_like(h)) for m, h in feats.items()}
                )
        return accuracy(logits, ds.y)

    phi_a = 0.5 * (v({"audio"}) - v(set())) + 0.5 * (v({"audio", "visual"}) - v({"visual"}))
    phi_v = 0.5 * (v({"visual"}) - v(set())) + 0.5 * (v({"audio", "visual"}) - v({"audio"}))
    return {"audio": phi_a, "visual": phi_v}, abs(phi_a - phi_v)


@pytest.mark.parametrize("absent", ["input", "feature"])
def test_shapley_degree_matches_a_hand_computation(absent: str) -> None:
    trainer = Trainer(load_config(small(epochs=2, shapley_absent=absent)))
    trainer.fit()
    ds = trainer.bundle.test
    assert isinstance(ds, TensorDataset)
    result = trainer.evaluate(ds, "test")
    phi, degree = _hand_degree(trainer, ds, absent)
    assert result.shapley == pytest.approx(phi, abs=1e-9)
    assert result.imbalance_degree == pytest.approx(degree, abs=1e-9)
    assert sum(phi.values()) != 0.0  # a trained model: the modalities contribute


def test_input_zeroing_is_not_feature_zeroing() -> None:
    """The encoder of a zero input gives a non-zero feature (biases): the two forms differ."""
    trainer = Trainer(load_config(small(epochs=1)))
    ds = trainer.bundle.val
    feats, _ = trainer.encode_split(ds, "val")
    absent = trainer._absent_features(ds, feats)
    for m, h in absent.items():
        assert h.shape == feats[m].shape
        assert h.abs().sum() > 0
        with torch.no_grad():
            direct = trainer.model.encoders[m](torch.zeros(3, *trainer.bundle.input_shapes[m]))
        assert torch.allclose(h[:3], direct, atol=1e-6)


# --------------------------------------------------------------------------- official init


def _first_linear(init: str) -> torch.nn.Linear:
    torch.manual_seed(0)
    cfg = ModelConfig(
        feature_dim=64, encoders={"a": EncoderConfig(hidden_dim=256), "b": EncoderConfig()}, init=init
    )  # type: ignore[arg-type]
    model = build_model(cfg, {"a": (300,), "b": (10,)}, num_classes=5)
    layer = model.encoders["a"].net[1]  # type: ignore[index]
    assert isinstance(layer, torch.nn.Linear) and layer.weight.shape == (256, 300)
    return layer


def test_official_init_is_xavier_normal_with_zero_bias() -> None:
    layer = _first_linear("official")
    w = layer.weight.detach().double().flatten().numpy()
    expected_std = math.sqrt(2.0 / (300 + 256))
    assert w.std() == pytest.approx(expected_std, rel=0.02)
    assert abs(w.mean()) < 4 * expected_std / math.sqrt(w.size)
    assert stats.kstest(w, "norm", args=(0.0, expected_std)).pvalue > 1e-3
    assert torch.count_nonzero(layer.bias) == 0
    # every Linear of the model (encoders and fusion head) got the same treatment
    torch.manual_seed(0)
    model = build_model(ModelConfig(init="official"), {"a": (20,), "b": (4, 8, 8)}, 3)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) >= 3 and all(torch.count_nonzero(m.bias) == 0 for m in linears)


def test_torch_init_stays_the_default_and_fails_the_xavier_test() -> None:
    assert ModelConfig().init == "torch"
    layer = _first_linear("torch")
    w = layer.weight.detach().double().flatten().numpy()
    assert stats.kstest(w, "norm", args=(0.0, math.sqrt(2.0 / 556))).pvalue < 1e-6
    assert torch.count_nonzero(layer.bias) > 0


def test_paper_presets_use_the_official_init() -> None:
    papers = [n for n in PRESETS if n.startswith(("cvpr2022", "tpami2024"))]  # the two official codes
    assert len(papers) == 4
    for name in papers:
        assert load_config(preset=name).model.init == "official", name
    assert load_config({"model": {"init": "torch"}}, preset="tpami2024-opm").model.init == "torch"


# --------------------------------------------------------------------------- test-selected number


def test_summary_records_the_best_test_accuracy_apart_from_selection() -> None:
    trainer = Trainer(load_config(small(epochs=4)))
    test = trainer.bundle.test
    assert isinstance(test, TensorDataset)
    per_epoch: list[float] = []
    while trainer.epoch < trainer.cfg.train.epochs:
        trainer._run_epoch()
        trainer.model.eval()
        with torch.no_grad():
            per_epoch.append(accuracy(trainer.model(test.x), test.y))
    summary = trainer._finish("succeeded")
    ts = summary["test_selected_on_test"]
    best = max(per_epoch)
    assert ts["acc"] == pytest.approx(best, abs=1e-9)
    assert ts["epoch"] == per_epoch.index(best)
    assert "selected on test" in ts["note"] and "never used for model selection" in ts["note"]
    # model selection stays on validation
    val_accs = [h["val"]["acc"] for h in trainer.history]
    assert summary["best_epoch"] == val_accs.index(max(val_accs)) and summary["selection"] == "val"
    # the CONTRACT.md keys are all still there
    assert {"run", "best_epoch", "val", "test", "train"} <= set(summary)
    assert trainer.state_dict()["progress"]["best_test"]["epoch"] == ts["epoch"]


def test_test_selected_can_be_switched_off() -> None:
    trainer = Trainer(load_config(small(epochs=1, test_selected=False)))
    calls: list[int] = []
    original = trainer._test_accuracy
    trainer._test_accuracy = lambda: calls.append(1) or original()  # type: ignore[method-assign]
    summary = trainer.fit()
    assert summary["test_selected_on_test"] is None and calls == []

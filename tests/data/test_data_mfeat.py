"""The bundled real demo data (UCI Multiple Features) and the imbalance it shows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bml_core.config import DatasetConfig, load_config
from bml_core.data import build_dataset
from bml_core.data.base import DatasetError
from bml_core.data.mfeat import MFEAT_FILE, MFEAT_VIEWS, load_mfeat_arrays
from bml_core.trainer import Trainer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mfeat-imbalance.yaml"
VIEW_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}


def test_bundled_file_is_small_and_complete() -> None:
    assert MFEAT_FILE.stat().st_size < 3_000_000
    views, y = load_mfeat_arrays()
    assert {v: a.shape for v, a in views.items()} == {v: (2000, d) for v, d in VIEW_DIMS.items()}
    assert np.bincount(y).tolist() == [200] * 10
    assert all(np.isfinite(a).all() for a in views.values())
    assert set(np.unique(views["pix"])) <= set(range(7))  # pixel averages 0..6 as in the UCI file


def test_default_bundle_is_two_standardised_views() -> None:
    b = build_dataset(DatasetConfig(name="mfeat"))
    assert b.input_shapes == {"pix": (240,), "zer": (47,)}
    assert b.num_classes == 10 and b.class_names == [str(d) for d in range(10)]
    assert (len(b.train), len(b.val), len(b.test)) == (1400, 300, 300)
    for m in b.modalities:
        x = b.train.x[m]  # type: ignore[attr-defined]
        torch.testing.assert_close(x.mean(0), torch.zeros(x.shape[1]), atol=1e-4, rtol=0)
    # val/test use the train statistics, so they are not exactly centred themselves
    assert float(b.test.x["zer"].mean(0).abs().max()) > 1e-3  # type: ignore[attr-defined]
    assert sorted(np.bincount(b.test.labels().numpy()).tolist()) == [30] * 10


def test_views_are_configurable_and_checked() -> None:
    b = build_dataset(DatasetConfig(name="mfeat", params={"views": ["fac", "fou", "mor"]}))
    assert b.input_shapes == {"fac": (216,), "fou": (76,), "mor": (6,)}
    with pytest.raises(DatasetError, match="unknown view") as err:
        build_dataset(DatasetConfig(name="mfeat", params={"views": ["pix", "colour"]}))
    assert err.value.field == "dataset.params.views"
    with pytest.raises(DatasetError, match="at least two"):
        build_dataset(DatasetConfig(name="mfeat", params={"views": ["pix"]}))
    assert set(MFEAT_VIEWS) == set(VIEW_DIMS)


def test_balancing_raises_the_weak_views_accuracy_on_real_data(single_thread: None) -> None:
    """Seed 0, 10 epochs of the example config: joint training leaves `zer` under-trained;
    OGM-GE and OPM both raise its uni-modal test accuracy (full 3-seed table: docs/benchmarks.md)."""
    weak: dict[str, float] = {}
    for name, strategies in (("joint", []), ("ogm_ge", [{"name": "ogm_ge", "alpha": 0.8}]), ("opm", ["opm"])):
        cfg = load_config(EXAMPLE, ["train.epochs=10", "seed=0"])
        raw = cfg.to_dict()
        raw["strategies"] = strategies
        summary = Trainer(load_config(raw)).fit()
        assert summary["test"]["acc"] > 0.9
        weak[name] = summary["test"]["acc_per_modality"]["zer"]
    assert weak["ogm_ge"] > weak["joint"]
    assert weak["opm"] > weak["joint"] + 0.2

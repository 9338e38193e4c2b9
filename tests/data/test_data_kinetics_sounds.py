"""Kinetics-Sounds loader on a generated fixture in the T-PAMI layout (HDF5 frames, spectrograms, split JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from bml_core.config import DatasetConfig
from bml_core.data import build_dataset
from bml_core.data.base import DatasetError
from bml_core.data.media import IMAGENET_MEAN, IMAGENET_STD
from bml_core.data.tiny_layouts import (
    KS_FIXTURE_CLASSES,
    KS_FIXTURE_SPECTROGRAM,
    frame_level,
    write_kinetics_sounds,
)

SIZE = 24


def build(root: Path, **params: object):
    cfg = DatasetConfig(name="kinetics_sounds", path=str(root), params={"image_size": SIZE, **params})
    return build_dataset(cfg)


def picked_frames(visual: torch.Tensor) -> list[int]:
    red = visual[:, 0].mean(dim=(1, 2)).numpy() * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    return [int(round((r * 255 - frame_level(0)) / (frame_level(1) - frame_level(0)))) for r in red]


def test_shapes_labels_and_subsets(ks_root: Path) -> None:
    b = build(ks_root)
    assert b.input_shapes == {"audio": (1, *KS_FIXTURE_SPECTROGRAM), "visual": (3, 3, SIZE, SIZE)}
    assert b.class_names == KS_FIXTURE_CLASSES and b.num_classes == 3
    db = json.loads((ks_root / "KS.json").read_text())["database"]
    for ds, subset in ((b.train, "training"), (b.val, "validation"), (b.test, "testing")):
        names = [c.name for c in ds.records]  # type: ignore[attr-defined]
        assert sorted(names) == sorted(k for k, v in db.items() if v["subset"] == subset)
        assert ds.labels().tolist() == [KS_FIXTURE_CLASSES.index(db[n]["label"]) for n in names]
    x, y = b.test[0]
    assert tuple(x["audio"].shape) == (1, *KS_FIXTURE_SPECTROGRAM)
    expected = np.load(ks_root / "audio" / f"{b.test.records[0].name}.npy")  # type: ignore[attr-defined]
    np.testing.assert_array_equal(x["audio"][0].numpy(), expected)


def test_without_a_testing_subset_validation_is_the_test_set(tmp_path: Path) -> None:
    root = write_kinetics_sounds(tmp_path / "ks", clips_per_class=3, val_per_class=1, test_per_class=0)
    b = build_dataset(
        DatasetConfig(name="kinetics_sounds", path=str(root), val_fraction=0.34, params={"image_size": SIZE})
    )
    db = json.loads((root / "KS.json").read_text())["database"]
    assert sorted(c.name for c in b.test.records) == sorted(
        k for k, v in db.items() if v["subset"] == "validation"
    )  # type: ignore[attr-defined]
    train_and_val = {c.name for c in b.train.records} | {c.name for c in b.val.records}  # type: ignore[attr-defined]
    assert train_and_val == {k for k, v in db.items() if v["subset"] == "training"}
    assert "split_note" in b.info


def test_frames_first_middle_last_in_eval_and_by_default_in_training(ks_root: Path) -> None:
    b = build(ks_root)
    assert picked_frames(b.test[0][0]["visual"]) == [0, 3, 7]  # 8 frames: 0, (8-1)//2, 7
    x1, x2 = b.test[1][0], b.test[1][0]
    assert torch.equal(x1["visual"], x2["visual"])
    b.train.training = True
    for epoch in range(3):
        b.train.set_epoch(epoch, 0)
        assert picked_frames(b.train[0][0]["visual"]) == [0, 3, 7]


def test_random_training_frames_option(ks_root: Path) -> None:
    b = build(ks_root, train_frames="random")
    b.train.training = True
    picks = set()
    for epoch in range(8):
        b.train.set_epoch(epoch, 0)
        p = picked_frames(b.train[0][0]["visual"])
        assert 0 <= p[0] < 2 <= p[1] < 5 <= p[2] < 8  # one frame per third of the 8 frames
        picks.add(tuple(p))
    assert len(picks) > 1
    assert picked_frames(b.test[0][0]["visual"]) == [0, 3, 7]


def test_pickled_audio_is_refused_unless_trusted(tmp_path: Path) -> None:
    root = write_kinetics_sounds(tmp_path / "ks", pickle_audio=True)
    with pytest.raises(DatasetError, match=r"\.pkl is a pickle file.*--trust-pickle"):
        build(root)
    b = build(root, trust_pickle=[str(root / "audio")])
    assert tuple(b.test[0][0]["audio"].shape) == (1, *KS_FIXTURE_SPECTROGRAM)


def test_bad_inputs_name_the_file(ks_root: Path) -> None:
    split = ks_root / "KS.json"
    data = json.loads(split.read_text())
    first = next(iter(data["database"]))
    data["database"][first]["label"] = "juggling_chainsaws"
    split.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="KS.json: clip .* has label 'juggling_chainsaws'"):
        build(ks_root)
    data["database"][first]["label"] = KS_FIXTURE_CLASSES[0]
    split.write_text(json.dumps(data))
    video = ks_root / "video" / f"{first}.hdf5"
    video.write_bytes(b"not an hdf5 file at all")
    with pytest.raises(DatasetError, match=f"{first}.hdf5: not a readable HDF5 file"):
        build(ks_root)
    with h5py.File(video, "w") as f:
        f.create_dataset("frames", data=np.zeros(3))
    with pytest.raises(DatasetError, match="no non-empty dataset 'video'"):
        build(ks_root)
    video.unlink()
    with pytest.raises(DatasetError, match=f"{first}.hdf5 is missing"):
        build(ks_root)


def test_spectrograms_of_other_lengths_need_audio_frames(ks_root: Path) -> None:
    odd = sorted((ks_root / "audio").glob("*.npy"))[-1]
    np.save(odd, np.zeros((KS_FIXTURE_SPECTROGRAM[0], 55), np.float32))
    b = build(ks_root, verify=False)
    with pytest.raises(DatasetError, match="audio_frames"):
        for ds in (b.train, b.val, b.test):
            for i in range(len(ds)):
                ds[i]
    fitted = build(ks_root, audio_frames=50)
    assert fitted.input_shapes["audio"] == (1, KS_FIXTURE_SPECTROGRAM[0], 50)
    for ds in (fitted.train, fitted.val, fitted.test):
        for i in range(len(ds)):
            assert tuple(ds[i][0]["audio"].shape) == (1, KS_FIXTURE_SPECTROGRAM[0], 50)


def test_training_crop_is_shared_by_the_frames_of_a_clip(ks_root: Path) -> None:
    b = build(ks_root)
    b.train.training = True
    green = []
    for epoch in range(4):
        b.train.set_epoch(epoch, 0)
        visual = b.train[0][0]["visual"]
        ramp = visual[:, 1]  # the green ramp is the same image content in every frame
        assert torch.allclose(ramp[0], ramp[1], atol=0.05) and torch.allclose(ramp[0], ramp[2], atol=0.05)
        green.append(ramp[0])
    assert any(not torch.allclose(green[0], g, atol=0.05) for g in green[1:])

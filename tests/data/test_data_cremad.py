"""CREMA-D loader on a generated fixture in the OGM-GE layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from bml_core.config import DatasetConfig
from bml_core.data import build_dataset
from bml_core.data.base import DatasetError
from bml_core.data.cremad import CREMAD_CLASSES
from bml_core.data.media import IMAGENET_MEAN, IMAGENET_STD
from bml_core.data.tiny_layouts import frame_level

SIZE = 24


def build(root: Path, **params: object):
    cfg = DatasetConfig(
        name="cremad", path=str(root), val_fraction=0.34, params={"image_size": SIZE, **params}
    )
    return build_dataset(cfg)


def picked_frames(visual: torch.Tensor) -> list[int]:
    """Which fixture frame each decoded frame is (its red level identifies it)."""
    red = visual[:, 0].mean(dim=(1, 2)).numpy() * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    return [int(round((r * 255 - frame_level(0)) / (frame_level(1) - frame_level(0)))) for r in red]


def csv_rows(path: Path) -> list[tuple[str, str]]:
    return [tuple(line.split(",")) for line in path.read_text().split()]  # type: ignore[misc]


def test_shapes_labels_and_class_names(cremad_root: Path) -> None:
    b = build(cremad_root, frames=2)
    assert b.input_shapes == {"audio": (1, 257, 188), "visual": (2, 3, SIZE, SIZE)}
    assert b.num_classes == 6 and b.class_names == ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    x, y = b.test[0]
    assert tuple(x["audio"].shape) == (1, 257, 188) and x["audio"].dtype == torch.float32
    assert tuple(x["visual"].shape) == (2, 3, SIZE, SIZE)
    # labels follow the fixed official mapping NEU 0 HAP 1 SAD 2 FEA 3 DIS 4 ANG 5
    expected = [CREMAD_CLASSES.index(code) for _, code in csv_rows(cremad_root / "test.csv")]
    assert b.test.labels().tolist() == expected
    assert {CREMAD_CLASSES[i]: i for i in range(6)} == {
        "NEU": 0,
        "HAP": 1,
        "SAD": 2,
        "FEA": 3,
        "DIS": 4,
        "ANG": 5,
    }
    names = [clip.name for clip in b.test.records]  # type: ignore[attr-defined]
    assert all(CREMAD_CLASSES[label] in name for name, label in zip(names, expected, strict=True))


def test_validation_is_carved_from_train_never_from_test(cremad_root: Path) -> None:
    b = build(cremad_root)
    train = {c.name for c in b.train.records}  # type: ignore[attr-defined]
    val = {c.name for c in b.val.records}  # type: ignore[attr-defined]
    test = {c.name for c in b.test.records}  # type: ignore[attr-defined]
    assert train | val == {name for name, _ in csv_rows(cremad_root / "train.csv")}
    assert test == {name for name, _ in csv_rows(cremad_root / "test.csv")}
    assert not (train & val) and not (val & test) and not (train & test)
    assert sorted(b.val.labels().tolist()) == list(range(6))  # stratified: one of each class
    again = build(cremad_root)
    assert [c.name for c in again.val.records] == [c.name for c in b.val.records]  # type: ignore[attr-defined]
    other_seed = build(cremad_root, split_seed=5)
    assert [c.name for c in other_seed.val.records] != [c.name for c in b.val.records]  # type: ignore[attr-defined]


def test_evaluation_is_deterministic_and_takes_the_middle_frame(cremad_root: Path) -> None:
    b = build(cremad_root)
    b.test.training = False
    x1, _ = b.test[2]
    x2, _ = b.test[2]
    assert torch.equal(x1["visual"], x2["visual"]) and torch.equal(x1["audio"], x2["audio"])
    assert picked_frames(x1["visual"]) == [1]  # 4 frames, 1 segment: its middle (index 1)
    assert picked_frames(build(cremad_root, frames=2).test[0][0]["visual"]) == [0, 2]


def test_training_frames_are_random_reproducible_and_worker_independent(cremad_root: Path) -> None:
    b = build(cremad_root, frames=2)
    train = b.train
    train.training = True
    picks = set()
    for epoch in range(8):
        train.set_epoch(epoch, seed=3)
        x, _ = train[0]
        first, second = picked_frames(x["visual"])
        assert first in (0, 1) and second in (2, 3)  # one frame per half of the clip
        picks.add((first, second))
    assert len(picks) > 1, "the random training frame must actually be used"
    train.set_epoch(4, seed=3)
    a, b2 = train[1][0], train[1][0]
    assert torch.equal(a["visual"], b2["visual"])
    batches = {}
    for workers in (0, 2):
        loader = DataLoader(train, batch_sampler=[[0, 1, 2], [3, 4]], num_workers=workers)
        batches[workers] = [x["visual"] for x, _ in loader]
    assert all(torch.equal(p, q) for p, q in zip(batches[0], batches[2], strict=True))


def test_augmentation_changes_pixels_in_training_only(cremad_root: Path) -> None:
    b = build(cremad_root)
    b.train.training = True
    green = []
    for epoch in range(6):
        b.train.set_epoch(epoch, 0)
        green.append(b.train[0][0]["visual"][0, 1])
    assert any(not torch.allclose(green[0], g) for g in green[1:])
    plain = build(cremad_root, augment=False)
    plain.train.training = True
    plain.train.set_epoch(0, 0)
    ramp = plain.train[0][0]["visual"][0, 1].mean(0)
    assert ramp[-1] > ramp[0]  # no flip without augmentation


def test_unknown_label_and_empty_split_and_missing_file(cremad_root: Path) -> None:
    csv = cremad_root / "train.csv"
    original = csv.read_text()
    csv.write_text(original + "1099_IEO_XXX_XX,BOR\n")
    with pytest.raises(DatasetError, match=r"train.csv:\d+: unknown emotion label 'BOR'"):
        build(cremad_root)
    csv.write_text("")
    with pytest.raises(DatasetError, match="train.csv: the clip list is empty"):
        build(cremad_root)
    csv.write_text(original)
    wav = next((cremad_root / "AudioWAV").glob("*.wav"))
    wav.unlink()
    with pytest.raises(DatasetError, match=f"{wav.name} is missing"):
        build(cremad_root)
    skipped = build(cremad_root, skip_missing=True)
    assert skipped.info["skipped_missing"] == 1


def test_corrupt_frame_is_named_at_build_time(cremad_root: Path) -> None:
    frame = sorted((cremad_root / "Image-01-FPS").glob("*/*.jpg"))[5]
    frame.write_bytes(b"\xff\xd8 this is not a jpeg")
    with pytest.raises(DatasetError, match=frame.name):
        build(cremad_root)
    unchecked = build(cremad_root, verify=False)  # headers unchecked: the error comes on read
    with pytest.raises(DatasetError, match=frame.name):
        for ds in (unchecked.train, unchecked.val, unchecked.test):
            ds.training = False
            for i in range(len(ds)):
                ds[i]
    assert np.isfinite(unchecked.test[0][0]["audio"].numpy()).all()

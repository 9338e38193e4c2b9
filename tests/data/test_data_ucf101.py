"""UCF-101 loader (RGB + optical flow frame folders) on a generated fixture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bml_core.config import DatasetConfig
from bml_core.data import build_dataset
from bml_core.data.base import DatasetError
from bml_core.data.media import IMAGENET_MEAN, IMAGENET_STD
from bml_core.data.tiny_layouts import UCF_FIXTURE_CLASSES, frame_level

SIZE = 16


def build(root: Path, **params: object):
    cfg = DatasetConfig(
        name="ucf101", path=str(root), val_fraction=0.34, params={"image_size": SIZE, **params}
    )
    return build_dataset(cfg)


def level_index(level_01: float) -> int:
    return int(round((level_01 * 255 - frame_level(0)) / (frame_level(1) - frame_level(0))))


def test_shapes_labels_splits(ucf_root: Path) -> None:
    b = build(ucf_root)
    assert b.input_shapes == {"rgb": (3, 3, SIZE, SIZE), "flow": (3, 2, SIZE, SIZE)}
    assert b.class_names == UCF_FIXTURE_CLASSES
    for ds in (b.train, b.val, b.test):
        for video, label in zip(ds.records, ds.labels().tolist(), strict=True):  # type: ignore[attr-defined]
            assert video.name.startswith(f"v_{UCF_FIXTURE_CLASSES[label]}_")
    test_names = {v.name for v in b.test.records}  # type: ignore[attr-defined]
    listed = {
        line.split()[0].split("/")[1][:-4] for line in (ucf_root / "testlist01.txt").read_text().splitlines()
    }
    assert test_names == listed
    assert not test_names & {v.name for v in b.train.records + b.val.records}  # type: ignore[attr-defined]


def test_eval_middle_frames_and_flow_range(ucf_root: Path) -> None:
    b = build(ucf_root)
    x, _ = b.test[0]
    red = x["rgb"][:, 0].mean(dim=(1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    assert [level_index(float(r)) for r in red] == [0, 2, 4]  # 6 frames, 3 segments: middles
    flow = x["flow"]
    assert float(flow.min()) >= 0.0 and float(flow.max()) <= 1.0
    assert [level_index(float(v)) for v in flow[:, 1].mean(dim=(1, 2))] == [0, 1, 3]  # 5 flow frames
    assert torch.equal(b.test[0][0]["flow"], flow)


def test_training_flip_mirrors_horizontal_flow(ucf_root: Path) -> None:
    b = build(ucf_root)
    b.train.training = True
    kinds = set()
    for epoch in range(10):
        b.train.set_epoch(epoch, 0)
        x, _ = b.train[0]
        u, v = x["flow"][0, 0].mean(), x["flow"][0, 1].mean()
        k = level_index(float(v))
        if abs(float(u) - frame_level(k) / 255) < 0.02:
            kinds.add("plain")
        else:
            assert abs(float(u) - (1 - frame_level(k) / 255)) < 0.02, "a flipped u must be mirrored"
            kinds.add("flipped")
    assert kinds == {"plain", "flipped"}


def test_bad_lists_name_the_file_and_line(ucf_root: Path) -> None:
    train = ucf_root / "trainlist01.txt"
    good = train.read_text()
    train.write_text(good + "Juggling/v_Juggling_g01_c01.avi 4\n")
    with pytest.raises(DatasetError, match=r"trainlist01.txt:\d+: unknown class 'Juggling'"):
        build(ucf_root)
    first = good.splitlines()[0].split()[0]
    train.write_text(f"{first} 3\n")
    with pytest.raises(DatasetError, match="label '3' disagrees"):
        build(ucf_root)
    train.write_text("")
    with pytest.raises(DatasetError, match="trainlist01.txt: the video list is empty"):
        build(ucf_root)


def test_flow_u_and_v_must_pair(ucf_root: Path) -> None:
    folder = sorted((ucf_root / "flow" / "v").iterdir())[0]
    sorted(folder.iterdir())[-1].unlink()
    with pytest.raises(DatasetError, match="u and v must pair up"):
        build(ucf_root)


def test_training_frames_are_random_per_segment(ucf_root: Path) -> None:
    b = build(ucf_root, augment=False)
    b.train.training = True
    picks = set()
    for epoch in range(8):
        b.train.set_epoch(epoch, 1)
        rgb = b.train[0][0]["rgb"]
        red = rgb[:, 0].mean(dim=(1, 2)) * IMAGENET_STD[0] + IMAGENET_MEAN[0]
        p = tuple(level_index(float(r)) for r in red)
        assert 0 <= p[0] < 2 <= p[1] < 4 <= p[2] < 6  # one frame from each third of 6
        picks.add(p)
    assert len(picks) > 1
    b.train.set_epoch(3, 1)
    assert torch.equal(b.train[0][0]["rgb"], b.train[0][0]["rgb"])

"""`ucf101`: UCF-101 as two modalities, RGB frames and optical flow (101 actions), in the
frame-folder layout that BalanceBenchmark (GeWu-Lab/BalanceBenchmark) reads:

    ROOT/classInd.txt                    `1 ApplyEyeMakeup` ... (the official UCF-101 files)
    ROOT/trainlist01.txt                 `ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1`
    ROOT/testlist01.txt                  `ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi`
    ROOT/rgb/<video>/*.jpg               RGB frames (any names; name order is time order)
    ROOT/flow/u/<video>/*.jpg            horizontal flow as greyscale JPEGs (TV-L1, 128 = no motion)
    ROOT/flow/v/<video>/*.jpg            vertical flow, same names as u

Folders are parameters (`rgb_dir`, `flow_u_dir`, `flow_v_dir`; BalanceBenchmark uses
`ucf101-frames-1fps/video-set`, `u` and `v`); `split` picks trainlist0N/testlist0N.
Label ids: line order of classInd.txt (id = number - 1). The class of a video is the folder
part of its list entry; a train label number that disagrees with classInd.txt is an error.

rgb: [frames, 3, size, size], ImageNet-normalised; flow: [frames, 2, size, size] (u, v in
[0, 1]). Each stream is cut into `frames` segments: a random frame per segment in training,
the middle one in evaluation (as BalanceBenchmark); frames are resized to size x size and,
in training, flipped horizontally together (a flipped flow field also has u mirrored:
u -> 1 - u, which BalanceBenchmark omits). Validation comes from train."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bml_core.config import DatasetConfig
from bml_core.data.base import DatasetBundle, DatasetError, register_dataset
from bml_core.data.filedata import (
    FileDataset,
    bundle_from_splits,
    dataset_root,
    parse_params,
    require_file,
    short_cell,
)
from bml_core.data.media import FrameTransform, check_image_header, list_frames, open_image, segment_indices
from bml_core.dataspecs import UCF101Params

LAYOUT = "classInd.txt, trainlist01.txt, testlist01.txt, rgb/<video>/*.jpg, flow/u/<video>/*.jpg, flow/v/<video>/*.jpg"


@dataclass(frozen=True)
class UCFVideo:
    name: str
    rgb: tuple[Path, ...]
    flow_u: tuple[Path, ...]
    flow_v: tuple[Path, ...]


def read_class_index(path: Path) -> list[str]:
    require_file(path, "class index", f"the UCF-101 layout needs {LAYOUT}")
    classes: list[str] = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[0].isdigit() or int(parts[0]) != len(classes) + 1:
            raise DatasetError(
                f"{path}:{line_no}: expected `{len(classes) + 1} ClassName` (a number and a name)",
                field="dataset.params.class_index",
                path=str(path),
            )
        classes.append(parts[1])
    if not classes:
        raise DatasetError(f"{path}: no classes listed", field="dataset.params.class_index", path=str(path))
    return classes


def read_video_list(path: Path, class_ids: dict[str, int]) -> list[tuple[str, int, int]]:
    """(video name, label id, line number) per line of a train/test list."""
    require_file(path, "video list", f"the UCF-101 layout needs {LAYOUT} (or set dataset.params.split)")
    rows = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        entry = parts[0].replace("\\", "/")
        if "/" not in entry:
            raise DatasetError(
                f"{path}:{line_no}: expected `Class/v_Class_gXX_cYY.avi [label]` (no `/` in the first cell)",
                field="dataset.path",
                path=str(path),
            )
        class_name, file_name = entry.split("/", 1)
        if class_name not in class_ids:
            raise DatasetError(
                f"{path}:{line_no}: unknown class {short_cell(class_name)} (not in the class index)",
                field="label",
                path=str(path),
            )
        label = class_ids[class_name]
        if len(parts) > 1 and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
            raise DatasetError(
                f"{path}:{line_no}: label {short_cell(parts[1])} disagrees with the class index ({class_name} is "
                f"{label + 1})",
                field="label",
                path=str(path),
            )
        rows.append((Path(file_name).stem, label, line_no))
    if not rows:
        raise DatasetError(f"{path}: the video list is empty", field="dataset.path", path=str(path))
    return rows


class UCF101Dataset(FileDataset):
    def __init__(self, videos: list[UCFVideo], labels: list[int], params: UCF101Params, where: str):
        size, t = params.image_size, params.frames
        super().__init__(videos, labels, {"rgb": (t, 3, size, size), "flow": (t, 2, size, size)}, where)
        self.frames = t
        self.rgb_transform = FrameTransform(size=size, train_crop="resize", hflip=params.augment)
        self.flow_transform = FrameTransform(
            size=size, train_crop="resize", hflip=params.augment, mean=None, std=None
        )

    def load(self, record: Any, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        video: UCFVideo = record
        flip = self.rgb_transform.draw_flip(rng)
        rgb = [
            self.rgb_transform(open_image(video.rgb[i], "RGB", str(video.rgb[i])), rng, flip)
            for i in segment_indices(len(video.rgb), self.frames, rng)
        ]
        flow = []
        for i in segment_indices(len(video.flow_u), self.frames, rng):
            u = self.flow_transform(open_image(video.flow_u[i], "L", str(video.flow_u[i])), rng, flip)
            v = self.flow_transform(open_image(video.flow_v[i], "L", str(video.flow_v[i])), rng, flip)
            flow.append(torch.cat([1.0 - u if flip else u, v]))
        return {"rgb": torch.stack(rgb), "flow": torch.stack(flow)}

    def verify(self, record: Any) -> None:
        video: UCFVideo = record
        for frame in (*video.rgb, *video.flow_u, *video.flow_v):
            check_image_header(frame)


def index_ucf101(
    root: Path, params: UCF101Params
) -> tuple[dict[str, FileDataset], dict[str, Any], list[str]]:
    classes = read_class_index(root / params.class_index)
    class_ids = {c: i for i, c in enumerate(classes)}
    folders = {
        "dataset.params.rgb_dir": root / params.rgb_dir,
        "dataset.params.flow_u_dir": root / params.flow_u_dir,
        "dataset.params.flow_v_dir": root / params.flow_v_dir,
    }
    for what, folder in folders.items():
        if not folder.is_dir():
            raise DatasetError(
                f"{folder} is missing; the UCF-101 layout is {LAYOUT} (or set {what})",
                field=what,
                path=str(folder),
            )
    rgb_dir, u_dir, v_dir = folders.values()
    splits: dict[str, FileDataset] = {}
    skipped = 0
    for split, list_name in (
        ("train", f"trainlist0{params.split}.txt"),
        ("test", f"testlist0{params.split}.txt"),
    ):
        list_path = root / list_name
        videos, labels = [], []
        for name, label, line_no in read_video_list(list_path, class_ids):
            dirs = [rgb_dir / name, u_dir / name, v_dir / name]
            missing = next((d for d in dirs if not d.is_dir()), None)
            if missing is not None:
                if params.skip_missing:
                    skipped += 1
                    continue
                raise DatasetError(
                    f"{missing} is missing (video {name}, {list_path}:{line_no}); extract its frames, "
                    "remove the line, or set dataset.params.skip_missing=true",
                    field="dataset.path",
                    path=str(missing),
                )
            rgb, flow_u, flow_v = (tuple(list_frames(d)) for d in dirs)
            if len(flow_u) != len(flow_v):
                raise DatasetError(
                    f"{u_dir / name} has {len(flow_u)} frames but {v_dir / name} has {len(flow_v)}; "
                    "u and v must pair up",
                    field="flow",
                    path=str(v_dir / name),
                )
            videos.append(UCFVideo(name, rgb, flow_u, flow_v))
            labels.append(label)
        splits[split] = UCF101Dataset(videos, labels, params, str(list_path))
        if params.verify:
            splits[split].verify_all()
    return splits, ({"skipped_missing": skipped} if skipped else {}), classes


@register_dataset(
    "ucf101", "UCF-101 RGB + optical-flow frame folders, 101 actions (BalanceBenchmark layout)."
)
def build_ucf101(cfg: DatasetConfig) -> DatasetBundle:
    """UCF-101 RGB + optical-flow frame folders, 101 actions (BalanceBenchmark layout)."""
    params = parse_params(UCF101Params, cfg)
    root = dataset_root(cfg, LAYOUT)
    splits, info, classes = index_ucf101(root, params)
    return bundle_from_splits("ucf101", splits, cfg, params.split_seed, classes, {"path": str(root), **info})

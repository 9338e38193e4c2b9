"""`kinetics_sounds`: Kinetics-Sounds (31 classes, audio spectrogram + 3 frames) in the layout
of the T-PAMI 2024 code (GeWu-Lab/BML_TPAMI2024, code/dataset/KS.py):

    ROOT/KS.json               {"labels": [31 class names], "database": {"<video id>":
                                {"subset": "training"|"validation"|"testing", "label": "<name>"}}}
    ROOT/video/<id>.hdf5       dataset `video`: one encoded JPEG per frame (variable-length uint8)
    ROOT/audio/<id>.npy        the clip's spectrogram, a 2-D array [F, T]
                               (.pkl as in the official code is read only when trusted, see below)

Label ids follow the order of `labels` in the JSON. Subsets: `training` -> train,
`validation` -> val, `testing` -> test; when the JSON has no `testing` entries, `validation`
is the test set (Kinetics' test labels are not public) and val is carved from train.

audio: [1, F, T] (`audio_frames` crops/zero-pads T when files differ). visual: [3, 3, size,
size]: the first, middle and last frame as in the official loader (which, reading
`video_data[i - 1]`, shifted every frame by one; here frame i is frame i), or one random
frame per third of the clip in training with `train_frames: random`. Training frames get
RandomResizedCrop(size, scale 0.25-1, ratio 3/4-4/3) + flip, the same crop and flip for the
three frames of a clip; evaluation frames a resize of the short side + centre crop;
ImageNet-normalised (the official transforms, size 112).

Pickle: the official audio files are pickles, and unpickling runs code. They are refused
unless `trust_pickle` (CLI: --trust-pickle) names the file or a folder above it; even then
only numpy arrays are rebuilt."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bml_core.config import DatasetConfig
from bml_core.data.base import DatasetBundle, DatasetError, register_dataset
from bml_core.data.filedata import FileDataset, bundle_from_splits, dataset_root, parse_params, require_file
from bml_core.data.media import (
    FrameTransform,
    check_array_file,
    check_hdf5_video,
    first_middle_last,
    fit_time_axis,
    load_array_file,
    open_image,
    read_hdf5_jpeg_frames,
    segment_indices,
)
from bml_core.dataspecs import KineticsSoundsParams

LAYOUT = "KS.json, video/<id>.hdf5, audio/<id>.npy"
AUDIO_SUFFIXES = (".npy", ".pkl", ".pickle")
KS_FRAMES = 3


@dataclass(frozen=True)
class KSClip:
    name: str
    video: Path
    audio: Path


def read_spectrogram(path: Path, trusted: list[Path]) -> np.ndarray:
    """A clip's spectrogram as a 2-D array [F, T] (a leading axis of 1 is dropped)."""
    spec = load_array_file(path, trusted, "audio")
    if spec.ndim == 3 and spec.shape[0] == 1:
        spec = spec[0]
    if spec.ndim != 2:
        raise DatasetError(
            f"{path}: expected a 2-D spectrogram [F, T], got shape {list(spec.shape)}",
            field="audio",
            path=str(path),
        )
    return spec


class KineticsSoundsDataset(FileDataset):
    def __init__(
        self,
        clips: list[KSClip],
        labels: list[int],
        params: KineticsSoundsParams,
        audio_shape: tuple[int, ...],
        trusted: list[Path],
        where: str,
    ):
        size = params.image_size
        super().__init__(clips, labels, {"audio": audio_shape, "visual": (KS_FRAMES, 3, size, size)}, where)
        self.random_frames = params.train_frames == "random"
        self.audio_frames = params.audio_frames
        self.trusted = trusted
        self.transform = FrameTransform(
            size=size,
            train_crop="random_resized" if params.augment else "resize",
            crop_scale=(0.25, 1.0),
            hflip=params.augment,
            eval_resize="short_side_center_crop",
        )

    def load_audio(self, path: Path) -> torch.Tensor:
        spec = read_spectrogram(path, self.trusted)
        spec = fit_time_axis(spec, self.audio_frames)
        out = torch.from_numpy(np.ascontiguousarray(spec, dtype=np.float32)).unsqueeze(0)
        if tuple(out.shape) != self.input_shapes["audio"]:
            raise DatasetError(
                f"{path}: spectrogram shape {list(out.shape[1:])} differs from the first clip's "
                f"{list(self.input_shapes['audio'][1:])}; set dataset.params.audio_frames to crop/pad time",
                field="dataset.params.audio_frames",
                path=str(path),
            )
        return out

    def load(self, record: Any, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        clip: KSClip = record
        frame_rng = rng if self.random_frames else None

        def pick(n: int) -> list[int]:
            return segment_indices(n, KS_FRAMES, frame_rng) if frame_rng is not None else first_middle_last(n)

        encoded = read_hdf5_jpeg_frames(clip.video, pick)
        flip = self.transform.draw_flip(rng)
        # one crop for the whole clip, as the official randomize_parameters() once per clip
        crop_seed = int(rng.integers(2**63)) if rng is not None else None

        def crop_rng() -> np.random.Generator | None:
            return np.random.default_rng(crop_seed) if crop_seed is not None else None

        visual = torch.stack(
            [self.transform(open_image(b, "RGB", str(clip.video)), crop_rng(), flip) for b in encoded]
        )
        return {"audio": self.load_audio(clip.audio), "visual": visual}

    def verify(self, record: Any) -> None:
        clip: KSClip = record
        check_hdf5_video(clip.video)
        check_array_file(clip.audio, self.trusted, "audio")


def find_audio(audio_dir: Path, name: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        p = audio_dir / f"{name}{suffix}"
        if p.is_file():
            return p
    return None


def read_split_json(path: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(class names, [(video id, subset, label name)]) from the official split JSON."""
    require_file(
        path, "split JSON", f"the Kinetics-Sounds layout needs {LAYOUT} (or set dataset.params.split_file)"
    )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(
            f"{path}: not valid JSON ({exc})", field="dataset.params.split_file", path=str(path)
        ) from None
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("labels"), list)
        or not isinstance(data.get("database"), dict)
    ):
        raise DatasetError(
            f'{path}: expected {{"labels": [...], "database": {{id: {{"subset", "label"}}}}}}',
            field="dataset.params.split_file",
            path=str(path),
        )
    classes = [str(c) for c in data["labels"]]
    entries = []
    for vid, entry in data["database"].items():
        if not isinstance(entry, dict) or "subset" not in entry or "label" not in entry:
            raise DatasetError(
                f'{path}: entry {vid!r} needs "subset" and "label"',
                field="dataset.params.split_file",
                path=str(path),
            )
        entries.append((str(vid), str(entry["subset"]), str(entry["label"])))
    return classes, entries


def index_kinetics_sounds(
    root: Path, params: KineticsSoundsParams
) -> tuple[dict[str, FileDataset], dict[str, Any], list[str]]:
    split_path = root / params.split_file
    classes, entries = read_split_json(split_path)
    class_ids = {c: i for i, c in enumerate(classes)}
    video_dir, audio_dir = root / params.video_dir, root / params.audio_dir
    for folder, what in ((video_dir, "dataset.params.video_dir"), (audio_dir, "dataset.params.audio_dir")):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder} is missing; the Kinetics-Sounds layout is {LAYOUT} (or set {what})",
                field=what,
                path=str(folder),
            )
    subsets = {"train": params.train_subset, "val": params.val_subset, "test": params.test_subset}
    info: dict[str, Any] = {}
    if not any(s == params.test_subset for _, s, _ in entries):
        subsets = {"train": params.train_subset, "test": params.val_subset}
        info["split_note"] = f"no {params.test_subset!r} subset: {params.val_subset!r} is the test set"
    trusted = [Path(t).expanduser() for t in params.trust_pickle]
    per_split: dict[str, tuple[list[KSClip], list[int]]] = {k: ([], []) for k in subsets}
    subset_to_split = {v: k for k, v in subsets.items()}
    skipped = 0
    for vid, subset, label in entries:
        split = subset_to_split.get(subset)
        if split is None:
            continue
        if label not in class_ids:
            raise DatasetError(
                f"{split_path}: clip {vid} has label {label!r}, which is not in `labels`",
                field="label",
                path=str(split_path),
            )
        video = video_dir / f"{vid}.hdf5"
        audio = find_audio(audio_dir, vid)
        if not video.is_file() or audio is None:
            if params.skip_missing:
                skipped += 1
                continue
            missing = video if not video.is_file() else audio_dir / f"{vid}.npy"
            raise DatasetError(
                f"{missing} is missing (clip {vid} of {split_path}); add it, remove the entry, "
                "or set dataset.params.skip_missing=true",
                field="dataset.path",
                path=str(missing),
            )
        per_split[split][0].append(KSClip(vid, video, audio))
        per_split[split][1].append(class_ids[label])
    if skipped:
        info["skipped_missing"] = skipped
    first = next((clips[0] for clips, _ in per_split.values() if clips), None)
    if first is None:
        raise DatasetError(
            f"{split_path}: no clip of the train or test subsets", field="dataset", path=str(split_path)
        )
    first_spec = read_spectrogram(first.audio, trusted)
    audio_shape = (1, *fit_time_axis(first_spec, params.audio_frames).shape)
    splits: dict[str, FileDataset] = {}
    for split, (clips, labels) in per_split.items():
        splits[split] = KineticsSoundsDataset(clips, labels, params, audio_shape, trusted, str(split_path))
        if params.verify:
            splits[split].verify_all()
    for required in ("train", "test"):
        if len(splits[required]) == 0:
            raise DatasetError(
                f"{split_path}: the {required} split ({subsets[required]!r}) is empty",
                field="dataset",
                path=str(split_path),
            )
    return splits, info, classes


@register_dataset(
    "kinetics_sounds", "Kinetics-Sounds audio spectrograms + HDF5 frames, 31 classes (T-PAMI layout)."
)
def build_kinetics_sounds(cfg: DatasetConfig) -> DatasetBundle:
    """Kinetics-Sounds audio spectrograms + HDF5 frames, 31 classes (T-PAMI layout)."""
    params = parse_params(KineticsSoundsParams, cfg)
    root = dataset_root(cfg, LAYOUT)
    splits, info, classes = index_kinetics_sounds(root, params)
    return bundle_from_splits(
        "kinetics_sounds", splits, cfg, params.split_seed, classes, {"path": str(root), **info}
    )

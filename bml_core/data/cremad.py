"""`cremad`: CREMA-D (audio + one or more face frames; 6 emotions) read from the layout of
the OGM-GE preprocessing (GeWu-Lab/OGM-GE_CVPR2022):

    ROOT/train.csv, ROOT/test.csv       rows `clip,EMOTION`, no header (e.g. 1001_DFA_ANG_XX,ANG)
    ROOT/AudioWAV/<clip>.wav            the original CREMA-D audio (16 kHz mono)
    ROOT/Image-01-FPS/<clip>/*.jpg      frames extracted at 1 frame per second

Label ids are fixed as in the official loader: NEU 0 (neutral), HAP 1 (happy), SAD 2 (sad),
FEA 3 (fear), DIS 4 (disgust), ANG 5 (anger).

audio: [1, 257, 188] log-magnitude spectrogram (3 s at 22.05 kHz, the clip repeated to fill
3 s, STFT n_fft 512, hop 353). visual: [frames, 3, size, size]; the clip's frames are cut
into `frames` segments and one frame per segment is used: a random one in training (the
official loader drew a random index and then ignored it), the middle one in evaluation.
Training frames get RandomResizedCrop + horizontal flip, evaluation frames a plain resize,
both ImageNet-normalised, as in the official loader. Validation comes from train."""

from __future__ import annotations

import csv
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
from bml_core.data.media import (
    SPECTROGRAM_BINS,
    SPECTROGRAM_FRAMES,
    FrameTransform,
    check_image_header,
    check_wav_header,
    cremad_audio,
    list_frames,
    open_image,
    segment_indices,
)
from bml_core.dataspecs import CremadParams

CREMAD_CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
CREMAD_LABEL_IDS = {code: i for i, code in enumerate(CREMAD_CLASSES)}
LAYOUT = "train.csv, test.csv, AudioWAV/<clip>.wav, Image-01-FPS/<clip>/*.jpg"


@dataclass(frozen=True)
class CremadClip:
    name: str
    wav: Path
    frames: tuple[Path, ...]


def read_clip_list(path: Path) -> list[tuple[str, int, int]]:
    """(clip, label id, line number) per row of a `clip,EMOTION` list."""
    require_file(path, "clip list", f"the CREMA-D layout needs {LAYOUT}")
    rows: list[tuple[str, int, int]] = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            cells = [c.strip() for c in row]
            if not any(cells):
                continue
            if len(cells) < 2 or not cells[0]:
                raise DatasetError(
                    f"{path}:{line_no}: expected `clip,EMOTION` (two comma-separated cells), got "
                    f"{len(cells)} cell(s)",  # never the line itself: error messages show no file content
                    field="dataset.path",
                    path=str(path),
                )
            label = cells[1].upper()
            if label not in CREMAD_LABEL_IDS:
                raise DatasetError(
                    f"{path}:{line_no}: unknown emotion label {short_cell(cells[1])}; "
                    f"expected one of {' '.join(CREMAD_CLASSES)}",
                    field="label",
                    path=str(path),
                )
            rows.append((cells[0], CREMAD_LABEL_IDS[label], line_no))
    if not rows:
        raise DatasetError(
            f"{path}: the clip list is empty; add `clip,EMOTION` rows", field="dataset.path", path=str(path)
        )
    return rows


class CremadDataset(FileDataset):
    def __init__(self, clips: list[CremadClip], labels: list[int], params: CremadParams, where: str):
        size = params.image_size
        super().__init__(
            clips,
            labels,
            {"audio": (1, SPECTROGRAM_BINS, SPECTROGRAM_FRAMES), "visual": (params.frames, 3, size, size)},
            where,
        )
        self.frames = params.frames
        self.transform = FrameTransform(
            size=size, train_crop="random_resized" if params.augment else "resize", hflip=params.augment
        )

    def load(self, record: Any, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        clip: CremadClip = record
        audio = cremad_audio(clip.wav)
        picked = segment_indices(len(clip.frames), self.frames, rng)
        flip = self.transform.draw_flip(rng)
        visual = torch.stack(
            [
                self.transform(open_image(clip.frames[i], "RGB", str(clip.frames[i])), rng, flip)
                for i in picked
            ]
        )
        return {"audio": audio, "visual": visual}

    def verify(self, record: Any) -> None:
        clip: CremadClip = record
        check_wav_header(clip.wav)
        for frame in clip.frames:
            check_image_header(frame)


def index_cremad(root: Path, params: CremadParams) -> tuple[dict[str, FileDataset], dict[str, Any]]:
    """train and test splits of a CREMA-D root (no validation split in this layout)."""
    audio_dir, frames_dir = root / params.audio_dir, root / params.frames_dir
    for folder, what in ((audio_dir, "dataset.params.audio_dir"), (frames_dir, "dataset.params.frames_dir")):
        if not folder.is_dir():
            raise DatasetError(
                f"{folder} is missing; the CREMA-D layout is {LAYOUT} (or set {what})",
                field=what,
                path=str(folder),
            )
    splits: dict[str, FileDataset] = {}
    skipped: list[str] = []
    for split, list_name in (("train", params.train_list), ("test", params.test_list)):
        list_path = root / list_name
        clips, labels = [], []
        for name, label, line_no in read_clip_list(list_path):
            wav = audio_dir / f"{name}.wav"
            folder = frames_dir / name
            if not wav.is_file() or not folder.is_dir():
                if params.skip_missing:
                    skipped.append(name)
                    continue
                missing = wav if not wav.is_file() else folder
                raise DatasetError(
                    f"{missing} is missing (clip {name}, {list_path}:{line_no}); add it, remove the row, "
                    "or set dataset.params.skip_missing=true",
                    field="dataset.path",
                    path=str(missing),
                )
            clips.append(CremadClip(name, wav, tuple(list_frames(folder))))
            labels.append(label)
        splits[split] = CremadDataset(clips, labels, params, str(list_path))
        if params.verify:
            splits[split].verify_all()
    return splits, {"skipped_missing": len(skipped)} if skipped else {}


@register_dataset("cremad", "CREMA-D audio + face frames, 6 emotions (OGM-GE layout under dataset.path).")
def build_cremad(cfg: DatasetConfig) -> DatasetBundle:
    """CREMA-D audio + face frames, 6 emotions (OGM-GE layout under dataset.path)."""
    params = parse_params(CremadParams, cfg)
    root = dataset_root(cfg, LAYOUT)
    splits, info = index_cremad(root, params)
    return bundle_from_splits(
        "cremad", splits, cfg, params.split_seed, list(CREMAD_CLASSES), {"path": str(root), **info}
    )

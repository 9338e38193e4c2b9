"""Tiny synthetic raw datasets written in the exact on-disk layouts of CREMA-D, Kinetics-Sounds
and UCF-101 (real WAV, JPEG and HDF5 files), for the tests, the loader benchmarks and for
trying `bml data prepare` without the real data.

Frame k of every clip has a flat red channel at `frame_level(k)`, so a test can tell from a
decoded frame which one was picked (crops and flips do not change it), and a left-to-right
green ramp, so crops and flips do show. Audio is a sine whose pitch depends on the
class."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np

from bml_core.data.cremad import CREMAD_CLASSES

FIXTURE_SAMPLE_RATE_HZ = 16000  # CREMA-D's own rate; the loader resamples to 22.05 kHz
FIXTURE_IMAGE_WIDTH_PX = 40
FIXTURE_IMAGE_HEIGHT_PX = 30


def frame_level(k: int) -> int:
    """Red value (0-255) of frame k."""
    return 30 + 25 * k


FrameSize = tuple[int, int]  # (width, height) in pixels
FIXTURE_FRAME_SIZE: FrameSize = (FIXTURE_IMAGE_WIDTH_PX, FIXTURE_IMAGE_HEIGHT_PX)


def _jpeg_bytes(level: int, mode: str = "RGB", seed: int = 0, size: FrameSize = FIXTURE_FRAME_SIZE) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    width, height = size
    if mode == "L":
        arr = np.full((height, width), level, np.uint8)
    else:
        arr = np.zeros((height, width, 3), np.uint8)
        arr[..., 0] = level
        arr[..., 1] = np.linspace(0, 255, width)[None, :]  # left-right ramp: flips show
        arr[..., 2] = rng.integers(0, 256)
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _write_wav(path: Path, label: int, seconds: float) -> None:
    import soundfile

    t = np.arange(int(seconds * FIXTURE_SAMPLE_RATE_HZ)) / FIXTURE_SAMPLE_RATE_HZ
    wave = 0.4 * np.sin(2 * np.pi * (200 + 150 * label) * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), wave.astype(np.float32), FIXTURE_SAMPLE_RATE_HZ, subtype="PCM_16")


def write_cremad(
    root: Path,
    clips_per_class: int = 4,
    test_per_class: int = 1,
    frames_per_clip: int = 4,
    frame_size: FrameSize = FIXTURE_FRAME_SIZE,
) -> Path:
    """ROOT/train.csv, test.csv, AudioWAV/<clip>.wav, Image-01-FPS/<clip>/frame_0000k.jpg."""
    root.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[str]] = {"train": [], "test": []}
    n = 0
    for label, code in enumerate(CREMAD_CLASSES):
        for j in range(clips_per_class + test_per_class):
            clip = f"{1001 + n}_IEO_{code}_XX"
            n += 1
            _write_wav(root / "AudioWAV" / f"{clip}.wav", label, seconds=1.0 + 0.5 * (j % 3))
            folder = root / "Image-01-FPS" / clip
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(frames_per_clip):
                (folder / f"frame_{k + 1:05d}.jpg").write_bytes(
                    _jpeg_bytes(frame_level(k), seed=n, size=frame_size)
                )
            rows["train" if j < clips_per_class else "test"].append(f"{clip},{code}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


KS_FIXTURE_CLASSES = ["playing_drums", "playing_piano", "singing"]
KS_FIXTURE_SPECTROGRAM = (32, 40)  # [F, T]


def write_kinetics_sounds(
    root: Path,
    clips_per_class: int = 3,
    val_per_class: int = 1,
    test_per_class: int = 1,
    frames_per_video: int = 8,
    pickle_audio: bool = False,
    frame_size: FrameSize = FIXTURE_FRAME_SIZE,
) -> Path:
    """ROOT/KS.json, video/<id>.hdf5 (dataset `video`, vlen uint8 JPEGs), audio/<id>.npy|.pkl."""
    import h5py

    (root / "video").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    database: dict[str, dict[str, str]] = {}
    n = 0
    rng = np.random.default_rng(0)
    for label, name in enumerate(KS_FIXTURE_CLASSES):
        subsets = (
            ["training"] * clips_per_class + ["validation"] * val_per_class + ["testing"] * test_per_class
        )
        for subset in subsets:
            vid = f"vid{n:04d}_{label}_000010_000020"
            n += 1
            database[vid] = {"subset": subset, "label": name}
            with h5py.File(root / "video" / f"{vid}.hdf5", "w") as f:
                data = f.create_dataset(
                    "video", (frames_per_video,), dtype=h5py.vlen_dtype(np.dtype("uint8"))
                )
                for k in range(frames_per_video):
                    data[k] = np.frombuffer(
                        _jpeg_bytes(frame_level(k), seed=n, size=frame_size), dtype=np.uint8
                    )
            spec = (rng.standard_normal(KS_FIXTURE_SPECTROGRAM) + label).astype(np.float32)
            if pickle_audio:
                with (root / "audio" / f"{vid}.pkl").open("wb") as fh:
                    pickle.dump(spec, fh)
            else:
                np.save(root / "audio" / f"{vid}.npy", spec)
    (root / "KS.json").write_text(json.dumps({"labels": KS_FIXTURE_CLASSES, "database": database}))
    return root


UCF_FIXTURE_CLASSES = ["ApplyEyeMakeup", "Basketball", "YoYo"]


def write_ucf101(
    root: Path,
    videos_per_class: int = 4,
    test_per_class: int = 1,
    frames_per_video: int = 6,
    frame_size: FrameSize = FIXTURE_FRAME_SIZE,
) -> Path:
    """ROOT/classInd.txt, trainlist01.txt, testlist01.txt, rgb/, flow/u/, flow/v/."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_FIXTURE_CLASSES)))
    train, test = [], []
    n = 0
    for label, cls in enumerate(UCF_FIXTURE_CLASSES):
        for j in range(videos_per_class + test_per_class):
            name = f"v_{cls}_g{j + 1:02d}_c01"
            n += 1
            for sub, mode in (("rgb", "RGB"), ("flow/u", "L"), ("flow/v", "L")):
                folder = root / sub / name
                folder.mkdir(parents=True, exist_ok=True)
                count = frames_per_video if sub == "rgb" else frames_per_video - 1
                for k in range(count):
                    (folder / f"frame{k + 1:06d}.jpg").write_bytes(
                        _jpeg_bytes(frame_level(k), mode, seed=n, size=frame_size)
                    )
            if j < videos_per_class:
                train.append(f"{cls}/{name}.avi {label + 1}")
            else:
                test.append(f"{cls}/{name}.avi")
    (root / "trainlist01.txt").write_text("\n".join(train) + "\n")
    (root / "testlist01.txt").write_text("\n".join(test) + "\n")
    return root

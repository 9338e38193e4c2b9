"""Decoding of raw media for the audio-visual loaders: WAV audio to the papers' log
spectrogram, JPEG frames (files or bytes inside HDF5) to normalised tensors, per-clip frame
sampling, and spectrogram arrays from .npy (or, only when trusted, .pkl) files.

Every read error becomes a DatasetError that names the file. No torchaudio/torchvision:
soundfile, scipy, Pillow and h5py do the work."""

from __future__ import annotations

import io
import math
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bml_core.data.base import DatasetError

# Audio as in OGM-GE (CVPR 2022) and the T-PAMI 2024 code for CREMA-D.
AUDIO_SAMPLE_RATE_HZ = 22050
AUDIO_CLIP_SECONDS = 3
STFT_N_FFT = 512
STFT_HOP_SAMPLES = 353
LOG_MAGNITUDE_EPS = 1e-7
# librosa.stft centres frames by padding n_fft/2 on both sides; librosa < 0.10 (the 2022
# official environment) padded by reflection, librosa >= 0.10 with zeros. Only the first and
# last frame depend on it.
STFT_PAD_MODE = "reflect"
SPECTROGRAM_BINS = STFT_N_FFT // 2 + 1  # 257
SPECTROGRAM_FRAMES = AUDIO_SAMPLE_RATE_HZ * AUDIO_CLIP_SECONDS // STFT_HOP_SAMPLES + 1  # 188 (centred STFT)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


# --------------------------------------------------------------------------- audio


def read_wav_mono(path: Path) -> tuple[np.ndarray, int]:
    """Samples as float32 in [-1, 1], channels averaged, and the file's sample rate."""
    import soundfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError) as exc:  # LibsndfileError is a RuntimeError
        raise DatasetError(
            f"{path}: cannot read WAV audio ({exc}); re-extract the file or remove its row",
            field="audio",
            path=str(path),
        ) from None
    if samples.shape[0] == 0:
        raise DatasetError(
            f"{path}: the WAV file holds no samples; re-extract it or remove its row",
            field="audio",
            path=str(path),
        )
    return samples.mean(axis=1), int(rate)


def resample(samples: np.ndarray, rate_hz: int, target_hz: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact for rational ratios such as 16 kHz -> 22.05 kHz."""
    if rate_hz == target_hz:
        return samples
    from scipy.signal import resample_poly

    g = math.gcd(rate_hz, target_hz)
    return resample_poly(samples, target_hz // g, rate_hz // g).astype(np.float32)


def tile_to_length(samples: np.ndarray, length: int) -> np.ndarray:
    """Repeat the clip until it fills `length` samples, then cut (short clips loop)."""
    reps = -(-length // samples.shape[0])
    return np.tile(samples, reps)[:length]


def log_spectrogram(samples: np.ndarray) -> torch.Tensor:
    """|STFT| (n_fft 512, hop 353, periodic Hann, centred, reflect padding) -> log(|.| + 1e-7),
    as librosa.stft + np.log in the official loaders. Returns [1, 257, T] float32."""
    wave = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    spec = torch.stft(
        wave,
        n_fft=STFT_N_FFT,
        hop_length=STFT_HOP_SAMPLES,
        window=torch.hann_window(STFT_N_FFT),
        center=True,
        pad_mode=STFT_PAD_MODE,
        return_complex=True,
    )
    return torch.log(spec.abs() + LOG_MAGNITUDE_EPS).unsqueeze(0)


def cremad_audio(path: Path) -> torch.Tensor:
    """A WAV clip the way the papers feed CREMA-D: 22.05 kHz mono, tiled to 3 s, clipped to
    [-1, 1], log-magnitude STFT -> [1, 257, 188]."""
    samples, rate = read_wav_mono(path)
    samples = resample(samples, rate, AUDIO_SAMPLE_RATE_HZ)
    samples = tile_to_length(samples, AUDIO_SAMPLE_RATE_HZ * AUDIO_CLIP_SECONDS)
    return log_spectrogram(np.clip(samples, -1.0, 1.0))


def check_wav_header(path: Path) -> None:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError, ValueError) as exc:
        raise DatasetError(
            f"{path}: not a readable WAV file ({exc}); re-extract it or remove its row",
            field="audio",
            path=str(path),
        ) from None
    if info.frames == 0:
        raise DatasetError(f"{path}: the WAV file holds no samples", field="audio", path=str(path))


# --------------------------------------------------------------------------- spectrogram arrays


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Even a trusted pickle may only rebuild numpy arrays: any other global is refused."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are read")
        return super().find_class(module, name)


def is_trusted(path: Path, trusted: list[Path]) -> bool:
    """True when `path` is one of the trusted files or lies under a trusted directory."""
    resolved = path.resolve()
    for t in trusted:
        tr = t.resolve()
        if resolved == tr or tr in resolved.parents:
            return True
    return False


def load_array_file(path: Path, trusted_pickles: list[Path], field: str) -> np.ndarray:
    """A spectrogram stored as .npy (safe) or .pkl (unpickling runs code: refused unless the
    file or a directory above it was named in `trust_pickle`)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(
                f"{path}: not a readable .npy array ({exc})", field=field, path=str(path)
            ) from None
    elif suffix in (".pkl", ".pickle"):
        if not is_trusted(path, trusted_pickles):
            raise DatasetError(
                f"{path} is a pickle file, and unpickling can run arbitrary code. If you trust it, "
                f"name it (or its folder) with --trust-pickle {path.parent} "
                f"(dataset.params.trust_pickle), or convert it to .npy",
                field="dataset.params.trust_pickle",
                path=str(path),
            )
        try:
            with path.open("rb") as fh:
                arr = _NumpyOnlyUnpickler(fh).load()
        except (pickle.UnpicklingError, EOFError, OSError, ValueError, AttributeError, ImportError) as exc:
            raise DatasetError(
                f"{path}: not a readable pickled numpy array ({exc})", field=field, path=str(path)
            ) from None
    else:
        raise DatasetError(
            f"{path}: unsupported spectrogram file type {suffix!r}; use .npy", field=field, path=str(path)
        )
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in ("f", "i", "u"):
        raise DatasetError(f"{path}: expected a numeric array", field=field, path=str(path))
    return arr


def check_array_file(path: Path, trusted_pickles: list[Path], field: str) -> None:
    """Cheap check: a .npy header parses (nothing else is read); a .pkl is trusted."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise DatasetError(
                f"{path}: not a readable .npy array ({exc})", field=field, path=str(path)
            ) from None
    elif suffix in (".pkl", ".pickle") and not is_trusted(path, trusted_pickles):
        load_array_file(path, trusted_pickles, field)  # raises the "pickle is not trusted" error


def fit_time_axis(spec: np.ndarray, frames: int | None) -> np.ndarray:
    """Crop or zero-pad the last axis to `frames` (None keeps it)."""
    if frames is None or spec.shape[-1] == frames:
        return spec
    if spec.shape[-1] > frames:
        return spec[..., :frames]
    pad = [(0, 0)] * (spec.ndim - 1) + [(0, frames - spec.shape[-1])]
    return np.pad(spec, pad)


# --------------------------------------------------------------------------- frames


def natural_key(path: Path) -> list[Any]:
    """frame_2.jpg before frame_10.jpg: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_frames(folder: Path) -> list[Path]:
    """Image files of one clip folder in time order (natural name order: frame_2 < frame_10)."""
    if not folder.is_dir():
        raise DatasetError(
            f"{folder}: frame folder is missing; extract the clip's frames there or remove its row",
            field="visual",
            path=str(folder),
        )
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise DatasetError(
            f"{folder}: the frame folder holds no .jpg/.png files", field="visual", path=str(folder)
        )
    return files


def segment_indices(n_frames: int, count: int, rng: np.random.Generator | None) -> list[int]:
    """`count` frame indices out of `n_frames`: the clip is cut into `count` equal segments;
    training (rng given) draws one frame at random inside each segment, evaluation takes
    each segment's middle frame. With fewer frames than `count`, frames repeat."""
    bounds = np.linspace(0, n_frames, count + 1)
    out = []
    for i in range(count):
        lo = int(math.floor(bounds[i]))
        hi = max(lo + 1, int(math.floor(bounds[i + 1])))
        hi = min(hi, n_frames)
        lo = min(lo, hi - 1)
        out.append(int(rng.integers(lo, hi)) if rng is not None else (lo + hi - 1) // 2)
    return out


def first_middle_last(n_frames: int, count: int = 3) -> list[int]:
    """Evenly spread indices including both ends, rounded down: [0, (n-1)//2, n-1] for 3
    frames, as the T-PAMI Kinetics-Sounds loader."""
    if count == 1:
        return [(n_frames - 1) // 2]
    return [i * (n_frames - 1) // (count - 1) for i in range(count)]


def open_image(source: Path | bytes | np.ndarray | np.void, mode: str, where: str) -> Any:
    """Decode an image file or encoded bytes to a PIL image in `mode` ("RGB" or "L")."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(source, Path):
            with Image.open(source) as img:
                return img.convert(mode)
        raw = bytes(source) if isinstance(source, bytes | bytearray) else np.asarray(source).tobytes()
        with Image.open(io.BytesIO(raw)) as img:
            return img.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(
            f"{where}: cannot decode image ({exc}); re-extract the frames", field="visual", path=where
        ) from None


def check_image_header(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.size  # noqa: B018 - parses the header
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(
            f"{path}: not a readable image ({exc}); re-extract the frames", field="visual", path=str(path)
        ) from None


@dataclass(frozen=True)
class FrameTransform:
    """Spatial pipeline of one frame, as the official loaders do it with torchvision.

    training: `train_crop` "random_resized" (torchvision RandomResizedCrop with `crop_scale`,
    `crop_ratio`) or "resize" (plain resize to size x size), then a horizontal flip with
    probability 0.5 when `hflip`; evaluation: `eval_resize` "square" (resize to size x size)
    or "short_side_center_crop" (short side to size, centre crop). Then [0, 1] scaling and
    per-channel normalisation (`mean`/`std`, or none)."""

    size: int
    train_crop: str = "random_resized"
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip: bool = True
    eval_resize: str = "square"
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD

    def crop_box(self, width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """torchvision's RandomResizedCrop.get_params with a numpy generator."""
        area = width * height
        log_ratio = (math.log(self.crop_ratio[0]), math.log(self.crop_ratio[1]))
        for _ in range(10):
            target = area * rng.uniform(*self.crop_scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return left, top, left + w, top + h
        in_ratio = width / height
        if in_ratio < self.crop_ratio[0]:
            w, h = width, int(round(width / self.crop_ratio[0]))
        elif in_ratio > self.crop_ratio[1]:
            h, w = height, int(round(height * self.crop_ratio[1]))
        else:
            w, h = width, height
        top, left = (height - h) // 2, (width - w) // 2
        return left, top, left + w, top + h

    def __call__(self, img: Any, rng: np.random.Generator | None, flip: bool = False) -> torch.Tensor:
        """PIL image -> [C, size, size] float32. `rng` None means evaluation (deterministic);
        `flip` is drawn by the caller so that all frames of a clip flip together."""
        from PIL import Image

        s = self.size
        if rng is not None and self.train_crop == "random_resized":
            box = self.crop_box(img.width, img.height, rng)
            img = img.resize((s, s), Image.Resampling.BILINEAR, box=box)
        elif rng is None and self.eval_resize == "short_side_center_crop":
            scale = s / min(img.width, img.height)
            w, h = max(s, int(round(img.width * scale))), max(s, int(round(img.height * scale)))
            img = img.resize((w, h), Image.Resampling.BILINEAR)
            left, top = int(round((w - s) / 2.0)), int(round((h - s) / 2.0))
            img = img.crop((left, top, left + s, top + s))
        else:
            img = img.resize((s, s), Image.Resampling.BILINEAR)
        if flip:
            img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        arr = np.asarray(img, dtype=np.float32) / 255.0
        if arr.ndim == 2:
            arr = arr[:, :, None]
        t = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
        if self.mean is not None and self.std is not None:
            mean = torch.tensor(self.mean, dtype=torch.float32)[:, None, None]
            std = torch.tensor(self.std, dtype=torch.float32)[:, None, None]
            t = (t - mean) / std
        return t

    def draw_flip(self, rng: np.random.Generator | None) -> bool:
        return bool(rng is not None and self.hflip and rng.random() < 0.5)


# --------------------------------------------------------------------------- HDF5 videos


def read_hdf5_jpeg_frames(path: Path, pick: Callable[[int], list[int]], key: str = "video") -> list[Any]:
    """Encoded JPEG frames of one video HDF5 file (3D-ResNets / T-PAMI layout: dataset
    `video` with one variable-length uint8 array per frame). `pick(n_frames)` chooses which
    frames are read, so only those leave the disk."""
    import h5py

    if not path.is_file():
        raise DatasetError(
            f"{path}: video HDF5 file is missing; add it or remove the clip from the split file",
            field="visual",
            path=str(path),
        )
    try:
        with h5py.File(path, "r") as f:
            if key not in f:
                raise DatasetError(
                    f"{path}: no dataset {key!r} inside (found {sorted(f.keys())}); expected one "
                    f"encoded JPEG per frame in `{key}`",
                    field="visual",
                    path=str(path),
                )
            data = f[key]
            n = len(data)
            if n == 0:
                raise DatasetError(f"{path}: the video holds no frames", field="visual", path=str(path))
            return [data[i] for i in pick(n)]
    except OSError as exc:
        raise DatasetError(
            f"{path}: not a readable HDF5 file ({exc})", field="visual", path=str(path)
        ) from None


def check_hdf5_video(path: Path, key: str = "video") -> None:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if key not in f or len(f[key]) == 0:
                raise DatasetError(
                    f"{path}: no non-empty dataset {key!r} inside; expected one encoded JPEG per frame",
                    field="visual",
                    path=str(path),
                )
    except OSError as exc:
        raise DatasetError(
            f"{path}: not a readable HDF5 file ({exc})", field="visual", path=str(path)
        ) from None

"""`features`: the generic per-modality features format of CONTRACT.md, one .npz or HDF5
file with `x_<modality>` arrays, integer labels `y`, optional `split` and `classes`."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bml_core.data.base import DatasetBundle, DatasetError, register_dataset, split_tensor_dataset
from bml_core.data.sequences import check_lengths, with_mask
from bml_core.schema import MAX_CLASSES, DatasetConfig

SPLIT_NAMES = {"train": 0, "val": 1, "valid": 1, "validation": 1, "test": 2}


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
            raise DatasetError(
                f"{path}: not a readable .npz file ({exc})", field="dataset.path", path=str(path)
            ) from None
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                out: dict[str, np.ndarray] = {}
                for k in f:
                    arr = f[k][()]
                    if arr.dtype.kind in ("O", "S"):
                        arr = np.array([a.decode() if isinstance(a, bytes) else a for a in arr.ravel()])
                    out[k] = arr
                return out
        except OSError as exc:
            raise DatasetError(
                f"{path}: not a readable HDF5 file ({exc})", field="dataset.path", path=str(path)
            ) from None
    raise DatasetError(
        f"{path}: unsupported extension {suffix!r}; use .npz or .h5", field="dataset.path", path=str(path)
    )


def _parse_split(split: np.ndarray, path: Path) -> np.ndarray:
    if split.dtype.kind in ("U", "S", "O"):
        names = [s.decode() if isinstance(s, bytes) else str(s) for s in split]
        bad = sorted({s for s in names if s.lower() not in SPLIT_NAMES})
        if bad:
            raise DatasetError(
                f"{path}: split has unknown values {bad[:5]}; use train/val/test or 0/1/2",
                field="split",
                path=str(path),
            )
        return np.array([SPLIT_NAMES[s.lower()] for s in names])
    s = split.astype(np.int64)
    if s.size and (s.min() < 0 or s.max() > 2):
        raise DatasetError(
            f"{path}: split values must be 0 (train), 1 (val) or 2 (test)", field="split", path=str(path)
        )
    return s


def load_features(path: str | Path) -> dict[str, Any]:
    """Read and check a features file. Returns x (modality -> array), y, split, classes."""
    p = Path(path)
    if not p.is_file():
        raise DatasetError(
            f"features file {p} does not exist; set dataset.path to an existing .npz or .h5 file",
            field="dataset.path",
            path=str(p),
        )
    arrays = _read_arrays(p)
    if "y" not in arrays:
        raise DatasetError(f"{p}: missing the label array `y`", field="y", path=str(p))
    xs = {k[2:]: v for k, v in arrays.items() if k.startswith("x_") and len(k) > 2}
    if len(xs) < 2:
        raise DatasetError(
            f"{p}: needs at least two modality arrays named x_<modality>; found {sorted(arrays)}",
            field="x_<modality>",
            path=str(p),
        )
    y = np.asarray(arrays["y"])
    if y.ndim != 1:
        raise DatasetError(f"{p}: `y` must be 1-D, got shape {y.shape}", field="y", path=str(p))
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise DatasetError(f"{p}: `y` must hold integer class ids", field="y", path=str(p))
    elif y.dtype.kind not in ("i", "u"):
        raise DatasetError(
            f"{p}: `y` must hold integer class ids, got dtype {y.dtype}", field="y", path=str(p)
        )
    y = y.astype(np.int64)
    n = len(y)
    if n == 0:
        raise DatasetError(f"{p}: no samples", field="y", path=str(p))
    for m, a in xs.items():
        if a.shape[0] != n:
            raise DatasetError(
                f"{p}: x_{m} has {a.shape[0]} samples but y has {n}; every modality needs one row per label",
                field=f"x_{m}",
                path=str(p),
            )
        if a.dtype.kind not in ("f", "i", "u", "b"):
            raise DatasetError(
                f"{p}: x_{m} must be numeric, got dtype {a.dtype}", field=f"x_{m}", path=str(p)
            )
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            value = a[where]
            raise DatasetError(
                f"{p}: x_{m} holds a non-finite value ({value}) at index {list(where)} (sample "
                f"{where[0]}); NaN and inf are refused: fix or drop those samples",
                field=f"x_{m}",
                path=str(p),
            )
    classes = arrays.get("classes")
    class_names = (
        [c.decode() if isinstance(c, bytes) else str(c) for c in classes] if classes is not None else None
    )
    if y.min() < 0:
        raise DatasetError(
            f"{p}: labels must be >= 0; found {int(y.min())} at index {int(np.argmin(y))}",
            field="y",
            path=str(p),
        )
    if class_names is not None and len(class_names) > MAX_CLASSES:
        raise DatasetError(
            f"{p}: `classes` has {len(class_names):,} names; at most {MAX_CLASSES:,} classes",
            field="classes",
            path=str(p),
        )
    if class_names is None and int(y.max()) >= MAX_CLASSES:
        raise DatasetError(
            f"{p}: label {int(y.max())} at index {int(np.argmax(y))} implies {int(y.max()) + 1:,} classes "
            f"(at most {MAX_CLASSES:,}); renumber the labels 0..C-1 or add a `classes` array",
            field="y",
            path=str(p),
        )
    num_classes = len(class_names) if class_names else int(y.max()) + 1
    if y.min() < 0 or y.max() >= num_classes:
        raise DatasetError(
            f"{p}: labels must lie in 0..{num_classes - 1}; found {int(y.min())}..{int(y.max())}",
            field="y",
            path=str(p),
        )
    lengths: dict[str, np.ndarray] = {}
    for key in sorted(k for k in arrays if k.startswith("len_")):
        m = key[4:]
        if m not in xs:
            raise DatasetError(
                f"{p}: {key} names no modality (no x_{m}); lengths go with a sequence array x_{m} [N, T, D]",
                field=key,
                path=str(p),
            )
        lengths[m] = check_lengths(xs[m], arrays[key], m, str(p))
    split = arrays.get("split")
    if split is not None:
        if len(split) != n:
            raise DatasetError(
                f"{p}: split has {len(split)} entries but y has {n}", field="split", path=str(p)
            )
        split = _parse_split(np.asarray(split), p)
    return {
        "x": xs,
        "y": y,
        "split": split,
        "classes": class_names or [str(i) for i in range(num_classes)],
        "lengths": lengths,
    }


def save_features(
    path: str | Path,
    x: dict[str, np.ndarray],
    y: np.ndarray,
    split: np.ndarray | None = None,
    classes: list[str] | None = None,
    lengths: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write the features format atomically (a temporary file renamed on success)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {f"x_{m}": a for m, a in x.items()}
    arrays["y"] = np.asarray(y, dtype=np.int64)
    if split is not None:
        arrays["split"] = np.asarray(split)
    if classes is not None:
        arrays["classes"] = np.asarray(classes, dtype=str)
    for m, lens in (lengths or {}).items():
        arrays[f"len_{m}"] = np.asarray(lens)  # checked when read
    tmp = p.with_name(p.name + ".partial")
    if p.suffix.lower() in (".h5", ".hdf5"):
        import h5py

        with h5py.File(tmp, "w") as f:
            for k, a in arrays.items():
                if a.dtype.kind == "U":
                    f.create_dataset(k, data=a.astype(object), dtype=h5py.string_dtype())
                else:
                    f.create_dataset(k, data=a)
    else:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
    tmp.replace(p)
    return p


@register_dataset("features", "Your own per-modality arrays in one .npz or .h5 file (CONTRACT.md).")
def build_features(cfg: DatasetConfig) -> DatasetBundle:
    """Your own per-modality arrays in one .npz or .h5 file (CONTRACT.md)."""
    if not cfg.path:
        raise DatasetError(
            "the features dataset needs dataset.path (a .npz or .h5 file)", field="dataset.path"
        )
    data = load_features(cfg.path)
    lengths = data["lengths"]
    x = {
        m: torch.from_numpy(
            with_mask(a, lengths[m]) if m in lengths else np.ascontiguousarray(a, dtype=np.float32)
        )
        for m, a in data["x"].items()
    }
    y = torch.from_numpy(data["y"])
    seed = int(cfg.params.get("split_seed", 0))
    train, val, test = split_tensor_dataset(x, y, data["split"], cfg, seed, str(cfg.path))
    return DatasetBundle(
        name="features",
        train=train,
        val=val,
        test=test,
        input_shapes={m: tuple(a.shape[1:]) for m, a in x.items()},
        num_classes=len(data["classes"]),
        class_names=list(data["classes"]),
        info={"path": str(cfg.path), **({"sequences": sorted(lengths)} if lengths else {})},
    )

"""`bml data prepare`: encode a raw dataset (CREMA-D, Kinetics-Sounds, UCF-101) once into the
features format of CONTRACT.md, so that training reads one file instead of decoding media.

Every clip is decoded with the evaluation transform (fixed frames, no augmentation). Rows
keep their split (train 0, val 1, test 2); without a val split in the layout, training
carves it from train with `dataset.val_fraction` and the same seed as direct loading.

Writing is atomic: rows go to `<DST>.partial`, which is renamed to DST only when every row
is in. An HDF5 destination is written row by row (memory stays flat) and an interrupted run
resumes from its `.partial` file when rerun with the same settings; a finished DST with
the same settings is reused as is (the cache), and a different one needs `force`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from bml_core.config import DatasetConfig
from bml_core.data.base import DatasetError
from bml_core.data.cremad import CREMAD_CLASSES, CremadParams, index_cremad
from bml_core.data.filedata import SPLIT_CODES, FileDataset, dataset_root, parse_params
from bml_core.data.kinetics_sounds import KineticsSoundsParams, index_kinetics_sounds
from bml_core.data.ucf101 import UCF101Params, index_ucf101

PREPARE_FORMAT_VERSION = 1
META_ATTR = "bml_prepare"  # HDF5 file attribute / .npz array holding the settings as JSON
DONE_KEY = "_rows_done"  # per-row completion flags while a .h5 is being written
PREPARE_DTYPES = ("float32", "float16")

ProgressFn = Callable[[int, int], None]


@dataclass
class PreparedSource:
    name: str
    splits: dict[str, FileDataset]
    classes: list[str]
    params: BaseModel


def index_source(name: str, src: str | Path, params: dict[str, Any]) -> PreparedSource:
    """Index a raw dataset folder (every file checked for existence; headers too unless
    params say verify=false). `name`: cremad, kinetics-sounds / kinetics_sounds, ucf101."""
    key = name.replace("-", "_")
    cfg = DatasetConfig(name=key, path=str(src), params=params)
    if key == "cremad":
        cp = parse_params(CremadParams, cfg)
        splits, _ = index_cremad(dataset_root(cfg, "see bml_core/data/cremad.py"), cp)
        return PreparedSource(key, splits, list(CREMAD_CLASSES), cp)
    if key == "kinetics_sounds":
        kp = parse_params(KineticsSoundsParams, cfg)
        splits, _, classes = index_kinetics_sounds(
            dataset_root(cfg, "see bml_core/data/kinetics_sounds.py"), kp
        )
        return PreparedSource(key, splits, classes, kp)
    if key == "ucf101":
        up = parse_params(UCF101Params, cfg)
        splits, _, classes = index_ucf101(dataset_root(cfg, "see bml_core/data/ucf101.py"), up)
        return PreparedSource(key, splits, classes, up)
    raise DatasetError(f"cannot prepare {name!r}; choose cremad, kinetics-sounds or ucf101", field="dataset")


@dataclass
class PrepareResult:
    path: Path
    rows: int
    reused: bool
    seconds: float
    resumed_rows: int = 0


def _meta(source: PreparedSource, src: Path, dtype: str) -> dict[str, Any]:
    return {
        "format": PREPARE_FORMAT_VERSION,
        "dataset": source.name,
        "source": str(src.resolve()),
        "params": source.params.model_dump(mode="json", exclude={"verify", "trust_pickle"}),
        "dtype": dtype,
        "rows": {split: len(ds) for split, ds in source.splits.items()},
    }


def read_meta(path: Path) -> dict[str, Any] | None:
    """The settings a prepared (or partial) file was written with; None if it has none."""
    try:
        if path.suffix.lower() == ".npz" or path.name.endswith(".npz.partial"):
            with np.load(path, allow_pickle=False) as z:
                return json.loads(str(z[META_ATTR])) if META_ATTR in z.files else None
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get(META_ATTR)
            return json.loads(raw) if raw is not None else None
    except (OSError, ValueError, KeyError):
        return None


def _rows(source: PreparedSource) -> list[tuple[FileDataset, int, int]]:
    """(dataset, index in it, split code) for every row, in split order."""
    out = []
    for split in ("train", "val", "test"):
        ds = source.splits.get(split)
        if ds is None:
            continue
        ds.training = False
        out += [(ds, i, SPLIT_CODES[split]) for i in range(len(ds))]
    return out


def prepare_features(
    name: str,
    src: str | Path,
    dst: str | Path,
    params: dict[str, Any] | None = None,
    dtype: str = "float32",
    force: bool = False,
    progress: ProgressFn | None = None,
) -> PrepareResult:
    """Encode `src` (raw layout of `name`) into the features file `dst` (.h5 or .npz)."""
    t0 = time.perf_counter()
    src_path, dst_path = Path(src), Path(dst)
    if dst_path.suffix.lower() not in (".h5", ".hdf5", ".npz"):
        raise DatasetError(f"{dst_path}: the destination must end in .h5 (recommended) or .npz", field="DST")
    if dtype not in PREPARE_DTYPES:
        raise DatasetError(f"dtype must be one of {', '.join(PREPARE_DTYPES)}", field="dtype")
    source = index_source(name, src_path, dict(params or {}))
    meta = _meta(source, src_path, dtype)
    rows = _rows(source)
    if dst_path.exists():
        if not force and read_meta(dst_path) == meta:
            if progress:
                progress(len(rows), len(rows))
            return PrepareResult(dst_path, len(rows), True, time.perf_counter() - t0)
        if not force:
            raise DatasetError(
                f"{dst_path} already exists and was not prepared from {src_path} with these settings; "
                "pass --force to overwrite it or choose another DST",
                field="DST",
                path=str(dst_path),
            )
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    partial = dst_path.with_name(dst_path.name + ".partial")
    table = _Table(
        rows,
        source.splits["train"].input_shapes,
        np.array([int(ds.y[i]) for ds, i, _ in rows], dtype=np.int64),
        np.array([code for _, _, code in rows], dtype=np.int8),
        source.classes,
        meta,
        dtype,
    )
    write = _write_npz if dst_path.suffix.lower() == ".npz" else _write_h5
    resumed = write(partial, table, progress)
    partial.replace(dst_path)
    return PrepareResult(dst_path, len(rows), False, time.perf_counter() - t0, resumed)


@dataclass(frozen=True)
class _Table:
    """What a prepared file holds: one row per (dataset, index, split code), the per-modality
    input shapes, labels, split codes, class names, the meta record and the feature dtype."""

    rows: list[tuple[FileDataset, int, int]]
    shapes: dict[str, tuple[int, ...]]
    labels: np.ndarray
    split_codes: np.ndarray
    classes: list[str]
    meta: dict[str, Any]
    dtype: str


def _encode(ds: FileDataset, index: int) -> dict[str, np.ndarray]:
    x, _ = ds[index]
    return {m: t.numpy() for m, t in x.items()}


def _write_npz(partial: Path, table: _Table, progress: ProgressFn | None) -> int:
    rows, shapes, dtype = table.rows, table.shapes, table.dtype
    arrays = {f"x_{m}": np.empty((len(rows), *s), dtype=dtype) for m, s in shapes.items()}
    for n, (ds, i, _) in enumerate(rows):
        for m, a in _encode(ds, i).items():
            arrays[f"x_{m}"][n] = a
        if progress:
            progress(n + 1, len(rows))
    arrays.update(
        y=table.labels.astype(np.int64),
        split=table.split_codes,
        classes=np.asarray(table.classes, dtype=str),
        **{META_ATTR: np.asarray(json.dumps(table.meta, sort_keys=True))},
    )
    with partial.open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    return 0


def _write_h5(partial: Path, table: _Table, progress: ProgressFn | None) -> int:
    """Row by row into `partial`; rows already flagged done in a partial file written with
    the same settings are kept (resume). Returns how many rows were resumed."""
    import h5py

    rows, shapes, dtype = table.rows, table.shapes, table.dtype
    meta_json = json.dumps(table.meta, sort_keys=True)
    resume = partial.exists() and read_meta(partial) == json.loads(meta_json)
    if partial.exists() and not resume:
        partial.unlink()
    try:
        f = h5py.File(partial, "a" if resume else "w")
    except OSError:  # an unreadable partial file: start over
        partial.unlink(missing_ok=True)
        resume, f = False, h5py.File(partial, "w")
    with f:
        if not resume:
            f.attrs[META_ATTR] = meta_json
            for m, s in shapes.items():
                f.create_dataset(f"x_{m}", shape=(len(rows), *s), dtype=dtype, chunks=(1, *s))
            f.create_dataset("y", data=table.labels.astype(np.int64))
            f.create_dataset("split", data=table.split_codes)
            f.create_dataset(
                "classes", data=np.asarray(table.classes, dtype=object), dtype=h5py.string_dtype()
            )
            f.create_dataset(DONE_KEY, shape=(len(rows),), dtype=bool, fillvalue=False)
        done = f[DONE_KEY][()]
        resumed = int(done.sum())
        for n, (ds, i, _) in enumerate(rows):
            if not done[n]:
                for m, a in _encode(ds, i).items():
                    f[f"x_{m}"][n] = a
                f[DONE_KEY][n] = True
            if progress:
                progress(n + 1, len(rows))
        del f[DONE_KEY]
    return resumed

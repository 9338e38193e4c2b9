"""Datasets as the trainer sees them: a bundle of train/val/test splits whose items are
(dict of per-modality tensors, label), plus the registry that maps config names to builders."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from bml_core.config import DatasetConfig
from bml_core.dataspecs import get_dataset_spec
from bml_core.errors import DatasetError
from bml_core.plugins import get_dataset


class MultimodalDataset(Dataset):
    """Items are (dict modality -> tensor, label). `set_epoch` feeds training randomness."""

    modalities: list[str]
    training: bool = False

    def __init__(self) -> None:
        self.epoch = 0
        self.seed = 0

    def set_epoch(self, epoch: int, seed: int) -> None:
        self.epoch, self.seed = epoch, seed

    def sample_rng(self, index: int) -> np.random.Generator:
        """Per-sample randomness that depends only on (seed, epoch, index): reproducible with
        any number of DataLoader workers and across a resume."""
        return np.random.default_rng([self.seed, self.epoch, index])

    def labels(self) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return int(self.labels().shape[0])


class TensorDataset(MultimodalDataset):
    """Everything in memory: the trainer slices whole batches (no per-sample Python)."""

    def __init__(self, x: dict[str, torch.Tensor], y: torch.Tensor):
        super().__init__()
        n = int(y.shape[0])
        for m, t in x.items():
            if t.shape[0] != n:
                raise DatasetError(f"modality {m!r} has {t.shape[0]} samples but there are {n} labels")
        self.x = x
        self.y = y.long()
        self.modalities = list(x)

    def labels(self) -> torch.Tensor:
        return self.y

    def __getitem__(self, i: int) -> tuple[dict[str, torch.Tensor], int]:
        return {m: t[i] for m, t in self.x.items()}, int(self.y[i])

    def get_batch(self, idx: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        return {m: t.index_select(0, idx) for m, t in self.x.items()}, self.y.index_select(0, idx)

    def subset(self, idx: torch.Tensor) -> TensorDataset:
        return TensorDataset({m: t[idx] for m, t in self.x.items()}, self.y[idx])


@dataclass
class DatasetBundle:
    name: str
    train: MultimodalDataset
    val: MultimodalDataset
    test: MultimodalDataset
    input_shapes: dict[str, tuple[int, ...]]
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def modalities(self) -> list[str]:
        return list(self.input_shapes)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "modalities": {m: list(s) for m, s in self.input_shapes.items()},
            "num_classes": self.num_classes,
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            **self.info,
        }


DatasetBuilder = Callable[[DatasetConfig], DatasetBundle]
DATASETS: dict[str, DatasetBuilder] = {}
DATASET_NOTES: dict[str, str] = {}


def register_dataset(name: str, note: str = "") -> Callable[[DatasetBuilder], DatasetBuilder]:
    def deco(fn: DatasetBuilder) -> DatasetBuilder:
        DATASETS[name] = fn
        spec = get_dataset_spec(name)
        DATASET_NOTES[name] = note or (
            spec.description if spec else (fn.__doc__ or "").strip().splitlines()[0]
        )
        return fn

    return deco


def build_dataset(cfg: DatasetConfig) -> DatasetBundle:
    """The dataset's splits: its builder registered here, else its spec's lazily imported
    implementation (a plug-in dataset); a missing one is an error naming the dataset."""
    if cfg.name in DATASETS:
        return DATASETS[cfg.name](cfg)
    spec = get_dataset(cfg.name)
    if spec is None or not spec.impl:
        raise DatasetError(
            f"unknown dataset {cfg.name!r}; known: {', '.join(sorted(DATASETS))}; if it is a plug-in, "
            "install the package that provides it on this machine (and on the workers), or name its "
            "module in BML_PLUGINS",
            field="dataset.name",
        )
    try:
        builder = spec.load_impl()
    except ImportError as exc:
        raise DatasetError(str(exc), field="dataset.name") from None
    return builder(cfg)


def stratified_split(
    y: np.ndarray, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded stratified train/val/test indices: every class split in the same proportions."""
    rng = np.random.default_rng(seed)
    train, val, test = [], [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n = len(idx)
        n_test = int(round(n * test_fraction))
        n_val = int(round(n * val_fraction))
        if n - n_test - n_val < 1 and n > 0:
            n_val = max(0, n - n_test - 1)
        test.append(idx[:n_test])
        val.append(idx[n_test : n_test + n_val])
        train.append(idx[n_test + n_val :])
    out = tuple(np.sort(np.concatenate(parts)) if parts else np.zeros(0, int) for parts in (train, val, test))
    return out[0], out[1], out[2]


def split_tensor_dataset(
    x: dict[str, torch.Tensor],
    y: torch.Tensor,
    split: Sequence[int] | np.ndarray | None,
    cfg: DatasetConfig,
    seed: int,
    source: str,
) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Split in-memory arrays by an explicit split column (0/1/2) or a seeded stratified split."""
    full = TensorDataset(x, y)
    if split is None:
        tr, va, te = stratified_split(y.numpy(), cfg.val_fraction, cfg.test_fraction, seed)
    else:
        s = np.asarray(split)
        tr, va, te = (np.flatnonzero(s == k) for k in (0, 1, 2))
        if len(va) == 0 and cfg.val_fraction > 0:
            # carve validation from train, never from test
            sub_tr, sub_va, _ = stratified_split(y.numpy()[tr], cfg.val_fraction, 0.0, seed)
            tr, va = tr[sub_tr], tr[sub_va]
    for name, idx in (("train", tr), ("val", va), ("test", te)):
        if len(idx) == 0:
            raise DatasetError(f"{source}: the {name} split is empty", field="dataset", path=source)
    return tuple(full.subset(torch.as_tensor(i, dtype=torch.long)) for i in (tr, va, te))  # type: ignore[return-value]


def stable_seed(*parts: object) -> int:
    """A seed from arbitrary values, stable across processes (unlike hash())."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little")

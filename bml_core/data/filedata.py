"""Datasets read from raw files clip by clip (CREMA-D, Kinetics-Sounds, UCF-101): the lazy
dataset base, dataset-parameter parsing with field errors, and the split bundle (a
validation split carved from train, seeded and stratified, never from test)."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from pydantic import BaseModel, ValidationError

from bml_core.config import DatasetConfig
from bml_core.data.base import DatasetBundle, DatasetError, MultimodalDataset, stratified_split

ParamsT = TypeVar("ParamsT", bound=BaseModel)
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}


class FileDataset(MultimodalDataset):
    """One split of a dataset on disk. Items are decoded on access (works with DataLoader
    workers: everything held here is plain paths and numbers). Training-time randomness
    (which frame, which crop) comes from `sample_rng(index)`, so it depends only on
    (seed, epoch, index); evaluation (`training` False) is deterministic."""

    def __init__(
        self,
        records: Sequence[Any],
        labels: Sequence[int] | np.ndarray,
        input_shapes: dict[str, tuple[int, ...]],
        where: str,
    ):
        super().__init__()
        self.records = list(records)
        self.y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.input_shapes = dict(input_shapes)
        self.modalities = list(input_shapes)
        self.where = where

    def labels(self) -> torch.Tensor:
        return self.y

    def load(self, record: Any, rng: np.random.Generator | None) -> dict[str, torch.Tensor]:
        """Decode one clip; `rng` is None in evaluation."""
        raise NotImplementedError

    def verify(self, record: Any) -> None:
        """Cheap check that the clip's files exist and their headers parse."""

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        rng = self.sample_rng(index) if self.training else None
        return self.load(self.records[index], rng), int(self.y[index])

    def subset(self, indices: Sequence[int] | np.ndarray) -> FileDataset:
        out = copy.copy(self)
        idx = np.asarray(indices, dtype=np.int64)
        out.records = [self.records[i] for i in idx]
        out.y = self.y[torch.as_tensor(idx)]
        out.training = False
        return out

    def verify_all(self) -> None:
        for record in self.records:
            self.verify(record)


def parse_params(model: type[ParamsT], cfg: DatasetConfig) -> ParamsT:
    """Validate `dataset.params` against a dataset's parameter model (unknown keys are errors)."""
    try:
        return model.model_validate(cfg.params)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            known = ", ".join(model.model_fields)
            msg = f"unknown parameter; known: {known}"
        raise DatasetError(msg, field=f"dataset.params.{loc}") from None


def dataset_root(cfg: DatasetConfig, layout_hint: str) -> Path:
    """`dataset.path` as an existing directory."""
    if not cfg.path:
        raise DatasetError(
            f"dataset {cfg.name!r} reads a folder: set dataset.path to its root ({layout_hint})",
            field="dataset.path",
        )
    root = Path(cfg.path).expanduser()
    if not root.is_dir():
        raise DatasetError(
            f"{root} is not a directory; dataset.path must be the dataset's root ({layout_hint})",
            field="dataset.path",
            path=str(root),
        )
    return root


def short_cell(text: str, limit: int = 32) -> str:
    """A label-like cell for an error message: quoted, printable characters only, at most
    `limit` characters (messages quote a bad label, never a line of the file)."""
    clean = "".join(c for c in text if c.isprintable())
    return repr(clean if len(clean) <= limit else clean[:limit] + "...")


def require_file(path: Path, what: str, fix: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path}: {what} is missing; {fix}", field="dataset.path", path=str(path))
    return path


def bundle_from_splits(
    name: str,
    splits: dict[str, FileDataset],
    cfg: DatasetConfig,
    split_seed: int,
    class_names: list[str],
    info: dict[str, Any],
) -> DatasetBundle:
    """train/test (and val if the layout has one) -> a bundle. Without a val split, a seeded
    stratified `dataset.val_fraction` of train becomes val (the same rows as the features
    file that `bml data prepare` writes, loaded with the same seed)."""
    train, test = splits["train"], splits["test"]
    val = splits.get("val")
    if val is None or len(val) == 0:
        if cfg.val_fraction <= 0:
            raise DatasetError(
                f"{name}: the layout has no validation split; set dataset.val_fraction > 0 so that "
                "one is carved from train",
                field="dataset.val_fraction",
            )
        tr_idx, va_idx, _ = stratified_split(train.y.numpy(), cfg.val_fraction, 0.0, split_seed)
        train, val = train.subset(tr_idx), train.subset(va_idx)
        info = {**info, "val_from": f"{cfg.val_fraction:g} of train (stratified, seed {split_seed})"}
    for split_name, ds in (("train", train), ("val", val), ("test", test)):
        if len(ds) == 0:
            raise DatasetError(f"{name}: the {split_name} split is empty", field="dataset", path=train.where)
    return DatasetBundle(
        name=name,
        train=train,
        val=val,
        test=test,
        input_shapes=dict(train.input_shapes),
        num_classes=len(class_names),
        class_names=class_names,
        info=info,
    )

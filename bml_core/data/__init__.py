"""Dataset registry and built-in datasets. `build_dataset(cfg)` turns a DatasetConfig into
train/val/test splits."""

from bml_core.data import (  # noqa: F401  (registration)
    cremad,
    features,
    kinetics_sounds,
    mfeat,
    synthetic,
    ucf101,
)
from bml_core.data.base import (
    DATASET_NOTES,
    DATASETS,
    DatasetBundle,
    DatasetError,
    MultimodalDataset,
    TensorDataset,
    build_dataset,
    register_dataset,
    stratified_split,
)

__all__ = [
    "DATASETS",
    "DATASET_NOTES",
    "DatasetBundle",
    "DatasetError",
    "MultimodalDataset",
    "TensorDataset",
    "build_dataset",
    "register_dataset",
    "stratified_split",
]

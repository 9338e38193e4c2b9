"""Torch-free. The former home of the datasets' path declarations (issue 15), kept so that
imports of it keep working: everything here is `bml_core.dataspecs`, the one place where
each dataset's parameter model lives, with its path-valued parameters (`PathParam`) and
`check_dataset_paths` (dataset.path and every declared path under BML_DATA_ROOTS)."""

from __future__ import annotations

from bml_core.dataspecs import (
    DATASET_PARAMS,
    CremadParams,
    KineticsSoundsParams,
    PathKind,
    PathParam,
    UCF101Params,
    check_dataset_paths,
    path_params,
    register_dataset_params,
)

__all__ = [
    "DATASET_PARAMS",
    "CremadParams",
    "KineticsSoundsParams",
    "PathKind",
    "PathParam",
    "UCF101Params",
    "check_dataset_paths",
    "path_params",
    "register_dataset_params",
]

"""Torch-free. The parameter models (`dataset.params`) of the datasets read from disk, with
their path-valued parameters declared in the model (`PathParam`, never guessed from a
name), and `check_dataset_paths`: `dataset.path` and every declared path parameter,
resolved (`..` and symlinks followed), must lie under BML_DATA_ROOTS. The client, the launch
form and the worker all call it, the worker again before any file is opened."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bml_core.config import DatasetConfig
from bml_core.dataroots import check_data_path
from bml_core.errors import DatasetError

# How a path parameter is read: "relative" = joined onto dataset.path (an absolute value
# replaces it, as pathlib does); "as_is" = a path of its own (absolute or relative to the
# process's directory). A list of strings declares every item as a path.
PathKind = Literal["relative", "as_is"]


def PathParam(default: Any = ..., *, kind: PathKind = "relative", **kwargs: Any) -> Any:  # noqa: N802
    """A pydantic Field that declares a path-valued dataset parameter."""
    return Field(default, json_schema_extra={"path": kind}, **kwargs)


class CremadParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    frames: int = Field(1, ge=1, le=16, description="frames per clip (OGM-GE uses 1)")
    image_size: int = Field(224, ge=8, le=1024, description="frame side in pixels")
    augment: bool = Field(True, description="random resized crop + flip on training frames")
    audio_dir: str = PathParam("AudioWAV", description="folder of <clip>.wav under the root")
    frames_dir: str = PathParam("Image-01-FPS", description="folder of <clip>/ frame folders under the root")
    train_list: str = PathParam("train.csv", description="training list under the root")
    test_list: str = PathParam("test.csv", description="test list under the root")
    split_seed: int = Field(0, ge=0, description="seed of the validation split carved from train")
    skip_missing: bool = Field(False, description="skip clips whose wav or frame folder is missing")
    verify: bool = Field(True, description="check every file's header when the dataset is built")


class KineticsSoundsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split_file: str = PathParam("KS.json", description="split JSON under the root (labels + database)")
    video_dir: str = PathParam("video", description="folder of <id>.hdf5 under the root")
    audio_dir: str = PathParam("audio", description="folder of <id>.npy (or trusted .pkl) under the root")
    image_size: int = Field(112, ge=8, le=1024, description="frame side in pixels (official: 112)")
    train_frames: Literal["fixed", "random"] = Field(
        "fixed", description="training frames: first/middle/last (official) or random per third"
    )
    augment: bool = Field(True, description="random resized crop + flip on training frames")
    audio_frames: int | None = Field(None, ge=1, description="crop/zero-pad the spectrogram's time axis")
    trust_pickle: list[str] = PathParam(
        default_factory=list, kind="as_is", description="files or folders whose .pkl files may be unpickled"
    )
    train_subset: str = "training"
    val_subset: str = "validation"
    test_subset: str = "testing"
    split_seed: int = Field(0, ge=0, description="seed of the validation split when carved from train")
    skip_missing: bool = Field(False, description="skip clips whose HDF5 or audio file is missing")
    verify: bool = Field(True, description="open every file once when the dataset is built")


class UCF101Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    split: int = Field(1, ge=1, le=3, description="official split: trainlist0N.txt / testlist0N.txt")
    frames: int = Field(3, ge=1, le=16, description="frames per stream (BalanceBenchmark: 3)")
    image_size: int = Field(224, ge=8, le=1024, description="frame side in pixels")
    augment: bool = Field(True, description="horizontal flip in training")
    class_index: str = PathParam("classInd.txt", description="class list under the root")
    rgb_dir: str = PathParam("rgb", description="folder of <video>/ RGB frame folders")
    flow_u_dir: str = PathParam("flow/u", description="folder of <video>/ horizontal-flow frames")
    flow_v_dir: str = PathParam("flow/v", description="folder of <video>/ vertical-flow frames")
    split_seed: int = Field(0, ge=0, description="seed of the validation split carved from train")
    skip_missing: bool = Field(False, description="skip videos whose frame folders are missing")
    verify: bool = Field(True, description="check every frame's header when the dataset is built")


# Datasets whose parameters name files: their models (the dataset modules use these too).
DATASET_PARAMS: dict[str, type[BaseModel]] = {
    "cremad": CremadParams,
    "kinetics_sounds": KineticsSoundsParams,
    "ucf101": UCF101Params,
}


def register_dataset_params(name: str, model: type[BaseModel]) -> None:
    """Declare a (plug-in) dataset's parameter model, so its PathParams are checked too."""
    DATASET_PARAMS[name] = model


def path_params(model: type[BaseModel]) -> dict[str, PathKind]:
    """The declared path-valued parameters of a model: name -> kind."""
    out: dict[str, PathKind] = {}
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra
        if isinstance(extra, dict) and extra.get("path") in ("relative", "as_is"):
            out[name] = extra["path"]  # type: ignore[assignment]
    return out


def check_dataset_paths(cfg: DatasetConfig, roots: list[Path] | None = None) -> dict[str, Path]:
    """Every path the dataset will read, resolved and checked against the data roots:
    `dataset.path` and each declared path parameter (its default included). Returns field ->
    resolved path; DatasetError naming the field otherwise. Reads no file."""
    out: dict[str, Path] = {}
    if cfg.path:
        out["dataset.path"] = check_data_path(cfg.path, roots)
    model = DATASET_PARAMS.get(cfg.name)
    if model is None:
        return out
    try:
        params = model.model_validate(cfg.params)
    except ValidationError:
        return out  # the dataset reports bad parameters itself, naming them, before reading
    base = Path(cfg.path).expanduser() if cfg.path else Path(os.curdir)
    for name, kind in path_params(model).items():
        value = getattr(params, name)
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            field = f"dataset.params.{name}" + (f".{i}" if isinstance(value, list) else "")
            raw = Path(str(item)).expanduser()
            target = base / raw if kind == "relative" else raw
            try:
                out[field] = check_data_path(target, roots)
            except DatasetError as exc:
                raise DatasetError(
                    f"{field}={str(item)!r} resolves outside the dataset directories: {exc}",
                    field=field,
                    path=str(target),
                ) from None
    return out

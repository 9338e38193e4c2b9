"""Dataset specs, the torch-free half of a dataset (like the strategy specs in
`bml_core.strategies.spec`): each dataset's parameter model (`dataset.params`, with its
hardening bounds), the modalities it yields, the config it is best started from
(`recommended`), whether it reads `dataset.path` and which parameters name files or folders
(declared in the model with `PathParam`, never guessed from a name). The config validates
`dataset.params` here (`check_dataset`), so `bml submit`, the launch form and the store
refuse bad parameters before anything is queued; `check_dataset_paths` resolves
`dataset.path` and every declared path parameter (`..` and symlinks followed) and refuses
any outside BML_DATA_ROOTS: the client at submit, the launch form and the worker (again,
before any file is opened) call it. The builders in `bml_core.data` (which import torch)
parse the same models."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bml_core import implref
from bml_core.dataroots import check_data_path
from bml_core.errors import DatasetError
from bml_core.schema import MAX_CLASSES, DatasetConfig, describe_parameters

MFEAT_VIEWS = ("fou", "fac", "kar", "pix", "zer", "mor")
DEFAULT_VIEWS = ["pix", "zer"]
MAX_SYNTHETIC_VALUES = 1 << 28  # samples x features of all modalities (1 GiB of float32)

# How a path parameter is read: "relative" = a path inside dataset.path (joined onto it;
# absolute values and `..` are refused by `check_dataset`); "as_is" = a path of its own
# (absolute or relative to the process's directory). A list of strings declares every item
# as a path. Either kind must resolve under BML_DATA_ROOTS (`check_dataset_paths`).
PathKind = Literal["relative", "as_is"]


def PathParam(default: Any = ..., *, kind: PathKind = "relative", **kwargs: Any) -> Any:  # noqa: N802
    """A pydantic Field that declares a path-valued dataset parameter."""
    return Field(default, json_schema_extra={"path": kind}, **kwargs)


def path_params(model: type[BaseModel]) -> dict[str, PathKind]:
    """The declared path-valued parameters of a model: name -> kind."""
    out: dict[str, PathKind] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get("path") in ("relative", "as_is"):
            out[name] = extra["path"]  # type: ignore[assignment]
    return out


# --------------------------------------------------------------------------- parameter models


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


class MfeatParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    views: list[str] = Field(
        default_factory=lambda: list(DEFAULT_VIEWS),
        description="views used as modalities, in order (fou, fac, kar, pix, zer, mor)",
    )
    standardize: bool = Field(True, description="z-score each column with the train split's mean and std")
    split_seed: int = Field(0, ge=0, description="seed of the stratified train/val/test split")

    @field_validator("views")
    @classmethod
    def _known_views(cls, v: list[str]) -> list[str]:
        bad = [name for name in v if name not in MFEAT_VIEWS]
        if bad:
            raise ValueError(f"unknown view(s) {bad}; choose from {', '.join(MFEAT_VIEWS)}")
        if len(v) < 2 or len(set(v)) != len(v):
            raise ValueError("choose at least two distinct views")
        return v


class SyntheticModality(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(max_length=100)
    strength: float = Field(1.0, ge=0.0, le=1e6, description="prototype scale (signal-to-noise)")
    coverage: float = Field(1.0, ge=0.0, le=1.0, description="share of samples that carry signal")
    shape: list[Annotated[int, Field(ge=1, le=1 << 16)]] = Field(
        default_factory=lambda: [32],
        min_length=1,
        max_length=4,
        description="per-sample shape: [D] or [C,H,W] / [F,T]",
    )


class SyntheticParams(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    num_samples: int = Field(3000, ge=10, le=10_000_000)
    num_classes: int = Field(6, ge=2, le=MAX_CLASSES)
    data_seed: int = Field(
        0, ge=0, le=2**32 - 1, description="fixes the data; the run seed varies only training"
    )
    modalities: list[SyntheticModality] = Field(
        default_factory=lambda: [
            SyntheticModality(name="audio", strength=1.0, coverage=1.0, shape=[256]),
            SyntheticModality(name="visual", strength=0.6, coverage=1.0, shape=[32]),
        ],
        max_length=16,
    )

    @model_validator(mode="after")
    def _size(self) -> SyntheticParams:
        per_sample = sum(math.prod(m.shape) for m in self.modalities)
        total = self.num_samples * per_sample + self.num_classes * per_sample
        if total > MAX_SYNTHETIC_VALUES:
            raise ValueError(
                f"num_samples x features ({total:,} values) exceeds {MAX_SYNTHETIC_VALUES:,}; "
                "use fewer samples or smaller shapes"
            )
        return self


class FeaturesParams(BaseModel):
    # the file holds everything else; other keys are ignored, as they always were (a config
    # switched to `features` with `--set dataset.name=features` keeps its old parameters)
    model_config = ConfigDict(extra="ignore")
    split_seed: int = Field(0, ge=0, description="seed of the stratified split when the file has no split")


# --------------------------------------------------------------------------- specs

ModalitiesOf = Callable[[Any], list[str]]


@dataclass(frozen=True)
class DatasetSpec:
    """Everything about a dataset that does not need torch. `modalities(params)` names the
    modalities a parameter set yields ([] when only the data file knows); `recommended` is
    a partial run config (dataset params, model, optimiser, training) that the launch form
    applies when the dataset is picked; `path_params` are the parameters the model declares
    with `PathParam` (a file or folder; `path_kinds` says how each is read)."""

    name: str
    description: str
    params: type[BaseModel]
    modalities: ModalitiesOf = field(default=lambda _p: [])
    recommended: Mapping[str, Any] = field(default_factory=dict)
    needs_path: bool = False
    layout: str = ""
    # "module:builder" (relative to the declaring module when it starts with `.` or `:`):
    # builder(DatasetConfig) -> DatasetBundle, imported when a run is built
    impl: str = ""
    listed: bool = True
    source: str = field(default="", compare=False)  # set by discovery
    module: str = field(default="", compare=False)  # the declaring module (found on construction)
    package: str = field(default="", compare=False)  # set by discovery: the distribution of a plug-in

    kind = "dataset"

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", implref.declaring_module(__name__))

    def load_impl(self) -> Any:
        """The builder (imports its module, which may import torch)."""
        if not self.impl:
            raise ImportError(f"dataset {self.name!r} names no implementation (impl = 'module:builder')")
        return implref.load("dataset", self.name, self.impl, self.module)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters(),
            "modalities": self.default_modalities(),
            "needs_path": self.needs_path,
            "layout": self.layout,
            "source": self.source,
            "package": self.package,
            "listed": self.listed,
        }

    @property
    def path_kinds(self) -> dict[str, PathKind]:
        return path_params(self.params)

    @property
    def path_params(self) -> frozenset[str]:
        return frozenset(self.path_kinds)

    def default_modalities(self) -> list[str]:
        return self.modalities(self.params())

    def parameters(self) -> list[dict[str, Any]]:
        out = describe_parameters(self.params)
        for p in out:
            p["path"] = p["name"] in self.path_params
        return out


_DEMO_SGD: dict[str, Any] = {
    "name": "sgd",
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": {"name": "none"},
}
_PAPER_SGD: dict[str, Any] = {
    "name": "sgd",
    "lr": 1e-3,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "scheduler": {"name": "step", "step_size": 70, "gamma": 0.1},
}


def _resnets(*modalities: str) -> dict[str, Any]:
    return {"feature_dim": 512, "encoders": {m: {"name": "resnet18"} for m in modalities}}


DATASET_SPECS: dict[str, DatasetSpec] = {}


# Datasets whose parameters name files: their models (every spec whose model declares a
# PathParam, plus plug-ins registered with `register_dataset_params` alone).
DATASET_PARAMS: dict[str, type[BaseModel]] = {}


def register_dataset_spec(spec: DatasetSpec) -> DatasetSpec:
    DATASET_SPECS[spec.name] = spec
    if spec.path_params:
        DATASET_PARAMS[spec.name] = spec.params
    return spec


def register_dataset_params(name: str, model: type[BaseModel]) -> None:
    """Declare a (plug-in) dataset's parameter model, so its PathParams are checked too."""
    DATASET_PARAMS[name] = model


for _spec in (
    DatasetSpec(
        name="synthetic",
        impl="bml_core.data.synthetic:build_synthetic",
        description="Seeded synthetic set with one dominant and one weaker modality.",
        params=SyntheticParams,
        modalities=lambda p: [m.name for m in p.modalities],
        # examples/synthetic-ogm-ge.yaml without its strategy
        recommended={"optim": _DEMO_SGD, "train": {"epochs": 20, "batch_size": 64}},
    ),
    DatasetSpec(
        name="mfeat",
        impl="bml_core.data.mfeat:build_mfeat",
        description="UCI Multiple Features digits (bundled, real): 6 views, 10 classes.",
        params=MfeatParams,
        modalities=lambda p: list(p.views),
        # examples/mfeat-imbalance.yaml without its strategy
        recommended={
            "dataset": {"params": {"views": ["pix", "zer"]}},
            "model": {"fusion": "concat", "feature_dim": 64},
            "optim": _DEMO_SGD,
            "train": {"epochs": 30, "batch_size": 64},
        },
    ),
    DatasetSpec(
        name="features",
        impl="bml_core.data.features:build_features",
        description="Your own per-modality arrays in one .npz or .h5 file (CONTRACT.md).",
        params=FeaturesParams,
        needs_path=True,
        layout="one .npz or .h5 file: x_<modality> arrays, y, optional split",
    ),
    DatasetSpec(
        name="cremad",
        impl="bml_core.data.cremad:build_cremad",
        description="CREMA-D audio + face frames, 6 emotions (OGM-GE layout under dataset.path).",
        params=CremadParams,
        modalities=lambda _p: ["audio", "visual"],
        # OGM-GE (CVPR 2022) on CREMA-D: ResNet-18 encoders, SGD 1e-3, 100 epochs
        recommended={
            "model": _resnets("audio", "visual"),
            "optim": _PAPER_SGD,
            "train": {"epochs": 100, "batch_size": 64},
        },
        needs_path=True,
        layout="train.csv, test.csv, AudioWAV/<clip>.wav, Image-01-FPS/<clip>/*.jpg",
    ),
    DatasetSpec(
        name="kinetics_sounds",
        impl="bml_core.data.kinetics_sounds:build_kinetics_sounds",
        description="Kinetics-Sounds audio spectrograms + HDF5 frames, 31 classes (T-PAMI layout).",
        params=KineticsSoundsParams,
        modalities=lambda _p: ["audio", "visual"],
        # T-PAMI 2024 on Kinetics-Sounds: AdamW 5e-5, step 40, 100 epochs, batch 32
        recommended={
            "model": _resnets("audio", "visual"),
            "optim": {
                "name": "adamw",
                "lr": 5e-5,
                "weight_decay": 0.01,
                "scheduler": {"name": "step", "step_size": 40, "gamma": 0.1},
            },
            "train": {"epochs": 100, "batch_size": 32},
        },
        needs_path=True,
        layout="KS.json, video/<id>.hdf5, audio/<id>.npy",
    ),
    DatasetSpec(
        name="ucf101",
        impl="bml_core.data.ucf101:build_ucf101",
        description="UCF-101 RGB + optical-flow frame folders, 101 actions (BalanceBenchmark layout).",
        params=UCF101Params,
        modalities=lambda _p: ["rgb", "flow"],
        recommended={
            "model": _resnets("rgb", "flow"),
            "optim": _PAPER_SGD,
            "train": {"epochs": 100, "batch_size": 64},
        },
        needs_path=True,
        layout="classInd.txt, trainlist01.txt, testlist01.txt, rgb/<video>/*.jpg, flow/u/<video>/*.jpg, flow/v/<video>/*.jpg",
    ),
):
    register_dataset_spec(_spec)


def dataset_specs() -> dict[str, DatasetSpec]:
    """The specs by name, sorted."""
    return dict(sorted(DATASET_SPECS.items()))


def get_dataset_spec(name: str) -> DatasetSpec | None:
    return DATASET_SPECS.get(name)


# --------------------------------------------------------------------------- checking


def _path_problem(value: Any) -> str | None:
    """What is wrong with a "relative" path parameter without looking at the disk: it must
    name something inside dataset.path, so neither absolute nor climbing out with `..`."""
    values = value if isinstance(value, list) else [value]
    for v in values:
        if not isinstance(v, str) or not v.strip():
            return "give a path relative to dataset.path"
        if PurePosixPath(v).is_absolute() or PureWindowsPath(v).is_absolute():
            return (
                f"{v!r} is absolute, so it may lie outside the dataset directories; "
                "give a path relative to dataset.path"
            )
        if ".." in PurePosixPath(v.replace("\\", "/")).parts:
            return f"{v!r} leaves dataset.path ('..'), outside the dataset directories; give a path inside it"
    return None


def params_errors(
    spec: DatasetSpec, params: Mapping[str, Any], *, path_rules: bool = True
) -> list[tuple[str, str]]:
    """Problems of `dataset.params` for this dataset: (dataset.params.<x>, message) each;
    with `path_rules`, also a relative path parameter that is absolute or climbs out (`..`)."""
    try:
        parsed = spec.params.model_validate(dict(params))
    except ValidationError as exc:
        out: list[tuple[str, str]] = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown parameter of {spec.name}; known: {', '.join(spec.params.model_fields)}"
            out.append((f"dataset.params.{loc}" if loc else "dataset.params", msg))
        return out
    out = []
    if not path_rules:
        return out
    for name, kind in sorted(spec.path_kinds.items()):
        if kind == "relative" and name in params:
            problem = _path_problem(getattr(parsed, name))
            if problem:
                out.append((f"dataset.params.{name}", problem))
    return out


def check_dataset(
    dataset: Any, *, path_rules: bool = True, requires: Mapping[str, str] | None = None
) -> list[tuple[str, str]]:
    """Problems of a DatasetConfig that need no data: an unknown name, bad parameters (and,
    with `path_rules`, relative path parameters that leave dataset.path). A dataset
    registered only with `bml_core.data.register_dataset` (no spec) is checked by its
    builder."""
    spec = get_dataset_spec(dataset.name)
    if spec is None:
        base = sys.modules.get("bml_core.data.base")
        if base is not None and dataset.name in getattr(base, "DATASETS", {}):
            return []
        package = (requires or {}).get(f"dataset/{dataset.name}", "")
        return [
            ("dataset.name", implref.unknown_plugin("dataset", dataset.name, list(DATASET_SPECS), package))
        ]
    return params_errors(spec, dataset.params or {}, path_rules=path_rules)


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
            where = f"dataset.params.{name}" + (f".{i}" if isinstance(value, list) else "")
            raw = Path(str(item)).expanduser()
            target = base / raw if kind == "relative" else raw
            try:
                out[where] = check_data_path(target, roots)
            except DatasetError as exc:
                raise DatasetError(
                    f"{where}={str(item)!r} resolves outside the dataset directories: {exc}",
                    field=where,
                    path=str(target),
                ) from None
    return out

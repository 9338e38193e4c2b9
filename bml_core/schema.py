"""The run configuration's schema: plain pydantic sections (dataset, model, optimiser,
training), the parameter base classes (`StrictModel`, `StrategyParams`), the limits and
`describe_parameters`. Torch-free and the bottom floor of the config: the plug-in specs
(`bml_core.strategies.spec`, `bml_core.dataspecs`, `bml_core.plugins`) import it, and
`bml_core.config` (the run config, validation, discovery) sits above them."""

from __future__ import annotations

import collections.abc
import math
import types
import typing
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

# --------------------------------------------------------------------------- errors


class ConfigError(ValueError):
    """An invalid run configuration: a list of (field path, message) pairs."""

    def __init__(self, errors: list[tuple[str, str]]):
        self.errors = errors
        super().__init__("\n".join(f"{path}: {msg}" for path, msg in errors))

    def as_dict(self) -> dict[str, str]:
        return {path: msg for path, msg in self.errors}


# Bounds on what can exhaust memory, disk or time, and on what the store can hold.
MAX_INT64 = 2**63 - 1  # seeds and step counts are BIGINT columns
MAX_EPOCHS = 100_000
MAX_BATCH_SIZE = 1 << 20
MAX_WIDTH = 1 << 16  # encoder widths and channels
MAX_TAGS = 64
MAX_TAG_LENGTH = 100  # db.models.MAX_TAG_LENGTH
MAX_CLASSES = 100_000  # a dataset's classes (the label of 1e9 must not build 1e9 names)
MAX_PATH_LENGTH = 4096


def _whole_number(v: Any) -> Any:
    if isinstance(v, bool | float):
        raise ValueError(f"must be a whole number (an integer), not {v!r}")
    return v


# An integer field that takes integers only: `true` is not 1 and 1e21 is not an epoch count.
Int = Annotated[int, BeforeValidator(_whole_number)]


def is_control(c: str) -> bool:
    """A C0 or C1 control character or DEL (U+0000-001F, U+007F-009F)."""
    return ord(c) < 32 or 127 <= ord(c) < 160


def no_control_chars(value: str, what: str = "text") -> str:
    """Refuse NUL and other control characters in names, groups and tags (PostgreSQL refuses
    NUL, terminals interpret escape codes)."""
    bad = sorted({f"U+{ord(c):04X}" for c in value if is_control(c)})
    if bad:
        raise ValueError(f"{what} must not contain control characters (found {', '.join(bad)})")
    return value


def _non_finite(value: Any, where: str = "") -> tuple[str, float] | None:
    """The first NaN/inf inside nested dicts and lists, with its dotted path."""
    if isinstance(value, float) and not math.isfinite(value):
        return where, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


class StrictModel(BaseModel):
    """Unknown keys are errors; floats must be finite (integer fields use `Int`: whole numbers
    only, never `true`/`false` or a float such as 1e21)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- sections


class DatasetConfig(StrictModel):
    """Which data to train on. `name` is a registered dataset (`synthetic`, `features`, ...)."""

    name: str = Field("synthetic", max_length=200, description="registered dataset name")
    path: str | None = Field(
        None, max_length=MAX_PATH_LENGTH, description="file or directory for datasets read from disk"
    )
    val_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="validation share when no split is given")
    test_fraction: float = Field(0.15, ge=0.0, lt=1.0, description="test share when no split is given")
    params: dict[str, Any] = Field(default_factory=dict, description="dataset-specific parameters")

    @field_validator("params")
    @classmethod
    def _finite_params(cls, v: dict[str, Any]) -> dict[str, Any]:
        # free-form, but stored as strict JSON: a NaN/inf would come back as null
        bad = _non_finite(v)
        if bad is not None:
            where, value = bad
            raise ValueError(f"{where}: must be a finite number, not {value!r}")
        return v

    @model_validator(mode="after")
    def _fractions(self) -> DatasetConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError("val_fraction + test_fraction must be < 1 (leave samples to train on)")
        return self


class EncoderConfig(StrictModel):
    """One modality's encoder: a registered encoder (`mlp` for vectors, `cnn` for [C,H,W] /
    [F,T], `resnet18` as in the papers, `transformer` / `gru` for sequences, or a plug-in);
    `params` are validated by that encoder's parameter model (bml_core.plugins)."""

    name: str = Field("mlp", min_length=1, max_length=200, description="registered encoder name")
    hidden_dim: Int = Field(256, gt=0, le=MAX_WIDTH, description="MLP hidden width")
    layers: Int = Field(2, ge=1, le=8, description="MLP hidden layers")
    channels: Int = Field(32, gt=0, le=MAX_WIDTH // 4, description="CNN base channels")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    params: dict[str, Any] = Field(default_factory=dict, description="the encoder's own parameters")


class ModelConfig(StrictModel):
    fusion: str = Field(
        "concat",
        min_length=1,
        max_length=200,
        description="registered fusion head (concat | sum | film | gated | plug-in)",
    )
    fusion_params: dict[str, Any] = Field(
        default_factory=dict, description="the fusion head's own parameters"
    )
    heads: Literal["split", "aux"] = Field(
        "split",
        description="uni-modal logits: split = the fusion head's per-modality blocks; "
        "aux = one extra linear head per modality on h_m",
    )
    head: Literal["concat", "shared"] = Field(
        "concat",
        description="concat = the fusion head of `fusion`; shared = every modality's feature "
        "projected to feature_dim and one Linear head applied to each (u_m = head(h_m), fused "
        "z = sum_m u_m unless a strategy fuses otherwise; MLA, ReconBoost)",
    )
    feature_dim: Int = Field(
        128, gt=0, le=MAX_WIDTH, description="encoder output width (ResNet-18 keeps 512)"
    )
    encoders: dict[str, EncoderConfig] = Field(
        default_factory=dict, description="per modality; missing ones are chosen from the input rank"
    )
    init: Literal["torch", "official"] = Field(
        "torch",
        description=(
            "weight initialisation: torch = PyTorch's defaults; official = both official codes' "
            "weight_init (Linear: Xavier-normal weights, zero bias; Conv2d: Kaiming-normal fan_out; "
            "BatchNorm: 1 and 0)"
        ),
    )

    @model_validator(mode="after")
    def _shared_head(self) -> ModelConfig:
        if self.head == "shared" and self.fusion != "concat":
            raise ValueError(
                f"head: shared replaces the fusion head, so fusion: {self.fusion} would be ignored; "
                "set fusion: concat (the default) or head: concat"
            )
        return self


class SchedulerConfig(StrictModel):
    name: Literal["none", "step", "cosine"] = "step"
    step_size: Int = Field(70, gt=0, le=MAX_EPOCHS, description="epochs between decays (step)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor (step)")


class OptimConfig(StrictModel):
    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(1e-3, gt=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD only")
    weight_decay: float = Field(1e-4, ge=0.0)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)


class TrainConfig(StrictModel):
    epochs: Int = Field(100, ge=1, le=MAX_EPOCHS)
    batch_size: Int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    eval_every: Int = Field(
        1, ge=1, le=MAX_EPOCHS, description="evaluate on val every N epochs (and at the last)"
    )
    device: str = Field("auto", max_length=20, description="auto | cpu | cuda | cuda:N")
    num_workers: Int = Field(0, ge=0, le=256, description="DataLoader workers for datasets read from disk")
    amp: Literal["off", "bf16", "fp16"] = "off"
    threads: Int = Field(0, ge=0, le=4096, description="torch CPU threads; 0 keeps torch's default")
    linear_probe: bool = Field(
        False, description="at the end, fit a linear classifier on each frozen encoder (CVPR definition)"
    )
    map_absent: Literal["zero", "skip"] = Field(
        "zero",
        description=(
            "mAP: a class with no positives in the split counts as AP 0 (zero, the official code's "
            "sklearn average_precision_score) or is left out of the mean (skip)"
        ),
    )
    shapley_absent: Literal["input", "feature"] = Field(
        "input",
        description=(
            "imbalance degree: a modality outside the Shapley subset has its input zeroed and "
            "encoded again (input, as BalanceBenchmark) or its pooled feature zeroed (feature)"
        ),
    )
    test_selected: bool = Field(
        True,
        description=(
            "also record the official protocol's number: the best test accuracy over the evaluated "
            "epochs (selected on test, reported apart, never used to select the model)"
        ),
    )
    deterministic: bool = Field(
        False,
        description="use PyTorch's deterministic algorithms (and CUBLAS_WORKSPACE_CONFIG) so that a GPU "
        "rerun repeats the run exactly; slower, and ops without a deterministic version fail",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda", "mps") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError("must be auto, cpu, cuda, cuda:N or mps")

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_bool(cls, v: Any) -> Any:
        # YAML reads a bare `off` as False.
        return "off" if v is False else v


# --------------------------------------------------------------------------- strategies

ScheduleT = TypeVar("ScheduleT", bound="StrategyParams")


class StrategyParams(StrictModel):
    """Parameters common to every strategy: when it is active (METHODS.md section 6)."""

    name: str
    start_epoch: Int = Field(
        0, ge=0, le=MAX_EPOCHS, description="first epoch with modulation (0-based, inclusive)"
    )
    end_epoch: Int | None = Field(
        None, ge=0, le=MAX_EPOCHS, description="last epoch with modulation (inclusive); null = the end"
    )
    warmup_epochs: Int = Field(0, ge=0, le=MAX_EPOCHS, description="no modulation for epochs < warmup_epochs")

    # Whether the launch form lists it; hidden ones are internal.
    listed: ClassVar[bool] = True
    summary: ClassVar[str] = ""

    @model_validator(mode="after")
    def _schedule(self: ScheduleT) -> ScheduleT:
        if self.end_epoch is not None and self.end_epoch < self.start_epoch:
            raise ValueError(f"end_epoch ({self.end_epoch}) must be >= start_epoch ({self.start_epoch})")
        return self

    def active(self, epoch: int) -> bool:
        if epoch < self.warmup_epochs or epoch < self.start_epoch:
            return False
        return self.end_epoch is None or epoch <= self.end_epoch


RatioName = Literal["pairwise_mean", "vs_rest", "vs_min"]


AUTHORS_KEY = "authors"


def authors(value: Any) -> dict[str, Any]:
    """`json_schema_extra` marking the value the method's authors' released code uses:
    `Field("official", json_schema_extra=authors("official"))`. The Launch form and /methods
    show that value as `official (authors')` (issue 21)."""
    return {AUTHORS_KEY: value}


def authors_default(value: Any, *, description: str, **constraints: Any) -> Any:
    """A parameter whose default is the value the authors' released code uses, the value
    written once: `Field(value, json_schema_extra=authors(value), description=..., ...)`."""
    return Field(value, json_schema_extra=authors(value), description=description, **constraints)


def authors_value(info: Any) -> Any:
    """The value a field's metadata marks as the authors' (None when unmarked)."""
    extra = getattr(info, "json_schema_extra", None)
    return extra.get(AUTHORS_KEY) if isinstance(extra, dict) else None


def authors_label(value: Any, authors_choice: Any) -> str:
    """`value (authors')` when `value` is the authors' one, else the value as text."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    if authors_choice is not None and value == authors_choice and type(value) is type(authors_choice):
        return f"{text} (authors')"
    return text


def describe_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """A parameter model's fields as plain data (name, type, default, bounds, description,
    choices): the Launch form, `bml strategies` / `bml plugins` and /methods read it."""
    out: list[dict[str, Any]] = []
    for name, info in model.model_fields.items():
        if name == "name":
            continue
        bounds: dict[str, Any] = {}
        for meta in info.metadata:
            for key in ("ge", "gt", "le", "lt", "min_length", "max_length"):
                if getattr(meta, key, None) is not None:
                    bounds[key] = getattr(meta, key)
        ann = info.annotation
        choices = list(getattr(ann, "__args__", ())) if getattr(ann, "__origin__", None) is Literal else None
        out.append(
            {
                "name": name,
                "type": _type_name(ann),
                "default": info.default if not info.is_required() else None,
                "required": info.is_required(),
                "bounds": bounds,
                "choices": choices,
                "authors": authors_value(info),
                "description": info.description or "",
            }
        )
    return out


def _type_name(ann: Any) -> str:
    """A readable type for people (`bml strategies`, /methods): `int`, `int or none`,
    `list of float`, `choice` (the choices are listed beside it); never a raw
    `Optional[Annotated[int, BeforeValidator(...)]]` (issue 25)."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if origin is Annotated:
        return _type_name(args[0])
    if origin is Literal:
        return "choice"
    if origin in (Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        if type(None) in args:
            names.append("none")
        return " or ".join(dict.fromkeys(names))
    if origin in (list, tuple, set, frozenset, collections.abc.Sequence):
        inner = [_type_name(a) for a in args if a is not Ellipsis]
        return f"list of {' or '.join(dict.fromkeys(inner))}" if inner else "list"
    if origin is dict or origin is collections.abc.Mapping:
        return "mapping"
    if ann is type(None):
        return "none"
    if ann is Any:
        return "any"
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")

"""The run configuration: pydantic models for every key of a run (CONTRACT.md), presets,
dotted overrides and advisories. Torch-free, so the dashboard can import it."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bml_core.alerts.config import AlertsConfig

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
MAX_SEEDS_PER_LAUNCH = 1000
MAX_CLASSES = 100_000  # a dataset's classes (the label of 1e9 must not build 1e9 names)
MAX_PATH_LENGTH = 4096


def _whole_number(v: Any) -> Any:
    if isinstance(v, bool | float):
        raise ValueError(f"must be a whole number (an integer), not {v!r}")
    return v


# An integer field that takes integers only: `true` is not 1 and 1e21 is not an epoch count.
Int = Annotated[int, BeforeValidator(_whole_number)]


def no_control_chars(value: str, what: str = "text") -> str:
    """Refuse NUL and other control characters in names, groups and tags (PostgreSQL refuses
    NUL, terminals interpret escape codes)."""
    bad = sorted({f"U+{ord(c):04X}" for c in value if ord(c) < 32 or 127 <= ord(c) < 160})
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
    """One modality's encoder. `mlp` for vectors, `cnn` for [C,H,W] / [F,T], `resnet18` as in the papers."""

    name: Literal["mlp", "cnn", "resnet18"] = "mlp"
    hidden_dim: Int = Field(256, gt=0, le=MAX_WIDTH, description="MLP hidden width")
    layers: Int = Field(2, ge=1, le=8, description="MLP hidden layers")
    channels: Int = Field(32, gt=0, le=MAX_WIDTH // 4, description="CNN base channels")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


class ModelConfig(StrictModel):
    fusion: Literal["concat", "sum", "film", "gated"] = "concat"
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


_STRATEGY_PARAMS: dict[str, type[StrategyParams]] = {}
_SYNCED: set[str] = set()  # names that came from discovered specs


def register_strategy_params(cls: type[StrategyParams], rebuild: bool = True) -> type[StrategyParams]:
    """Register a strategy's parameter model; the run config and the launch form pick it up.
    (Specs found by `bml_core.strategies.spec.discover` are registered automatically.)"""
    name = cls.model_fields["name"].default
    if not isinstance(name, str):
        raise TypeError(f"{cls.__name__}.name needs a string default")
    _STRATEGY_PARAMS[name] = cls
    if rebuild and "RunConfig" in globals():
        _rebuild_run_config()
    return cls


def sync_strategy_params(models: Mapping[str, type[StrategyParams]]) -> None:
    """Make the discovered specs' parameter models the config's (one rebuild)."""
    for name in _SYNCED - set(models):
        _STRATEGY_PARAMS.pop(name, None)
    _SYNCED.clear()
    for cls in models.values():
        register_strategy_params(cls, rebuild=False)
    _SYNCED.update(models)
    _rebuild_run_config()


def _ensure_strategies() -> dict[str, type[StrategyParams]]:
    """Discover the strategy specs (once; again when BML_PLUGINS changed)."""
    from bml_core.strategies.spec import discover

    discover()
    return _STRATEGY_PARAMS


# moved into their method packages (bml_core/strategies/<name>/); importable here as before
_MOVED = {
    "JointParams": "bml_core.strategies.joint",
    "OGMParams": "bml_core.strategies.ogm",
    "OGMGEParams": "bml_core.strategies.ogm",
    "OPMParams": "bml_core.strategies.opm",
}


def __getattr__(name: str) -> Any:
    if name == "STRATEGY_PARAMS":
        return _ensure_strategies()
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _strategy_union() -> Any:
    classes = tuple(_STRATEGY_PARAMS.values())
    if not classes:
        return StrategyParams
    if len(classes) == 1:
        return classes[0]
    return Annotated[Union[classes], Field(discriminator="name")]  # noqa: UP007


# --------------------------------------------------------------------------- the run


class RunConfig(StrictModel):
    """Everything one run needs. Every key has a default; unknown keys are errors."""

    name: str = Field("run", max_length=200)
    group: str = Field("default", max_length=200)
    seed: Int = Field(0, ge=0, le=MAX_INT64)
    tags: list[Annotated[str, Field(min_length=1, max_length=MAX_TAG_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_TAGS
    )

    @field_validator("name", "group")
    @classmethod
    def _plain_text(cls, v: str, info: ValidationInfo) -> str:
        return no_control_chars(v, str(info.field_name))

    @field_validator("tags")
    @classmethod
    def _plain_tags(cls, v: list[str]) -> list[str]:
        for tag in v:
            no_control_chars(tag, "a tag")
        return v

    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    strategies: list[SerializeAsAny[StrategyParams]] = Field(default_factory=list)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig, description="imbalance alerts: detector switches and thresholds"
    )

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategy_shorthand(cls, v: Any) -> Any:
        # Accept `strategies: [opm, ogm_ge]` and `strategies: ogm_ge` as shorthands.
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [{"name": s} if isinstance(s, str) else s for s in v]
        return v

    @field_validator("strategies", mode="after")
    @classmethod
    def _unique_strategies(cls, v: list[StrategyParams]) -> list[StrategyParams]:
        names = [s.name for s in v]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"strategy listed twice: {sorted(dup)}")
        return v

    @property
    def strategy_label(self) -> str:
        names = [s.name for s in self.strategies if s.name != "joint"]
        return "+".join(names) if names else "joint"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _rebuild_run_config() -> None:
    RunConfig.model_fields["strategies"].annotation = list[SerializeAsAny[_strategy_union()]]  # type: ignore[misc,assignment]
    RunConfig.model_rebuild(force=True)


_rebuild_run_config()


# --------------------------------------------------------------------------- loading


def _format_loc(loc: Iterable[Any]) -> str:
    parts: list[str] = []
    loc = list(loc)
    i = 0
    while i < len(loc):
        part = loc[i]
        parts.append(str(part))
        # discriminated unions add the tag (`strategies.0.ogm_ge.alpha`): drop it
        if (
            len(parts) >= 2
            and parts[-2] == "strategies"
            and isinstance(part, int)
            and i + 1 < len(loc)
            and loc[i + 1] in _STRATEGY_PARAMS
        ):
            i += 1
        i += 1
    return ".".join(parts) or "config"


def _format_msg(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown key (remove it or check its spelling against the documented keys)"
    if err["type"] == "union_tag_invalid":
        from bml_core.strategies.spec import plugin_errors

        known = ", ".join(sorted(_STRATEGY_PARAMS))
        name = err["input"].get("name") if isinstance(err.get("input"), dict) else None
        msg = f"unknown strategy {name!r}; known: {known}" if name else f"unknown strategy; known: {known}"
        broken = "; ".join(str(e) for e in plugin_errors())
        return f"{msg} (plug-ins that failed to load: {broken})" if broken else msg
    if err["type"] == "union_tag_not_found":
        return "each strategy needs a `name`"
    return msg.removeprefix("Value error, ")


def validate_config(raw: Mapping[str, Any], *, path_rules: bool = True) -> RunConfig:
    """Validate a config dict; raise ConfigError with one (path, message) per problem.
    `path_rules=False` skips the entry rule that a dataset's relative path parameters are
    relative without `..` (`bml_core.dataspecs.check_dataset`): the store and the run process
    use it, because what keeps a run inside the data is `check_dataset_paths` (every path
    resolved under BML_DATA_ROOTS), which the worker applies before it opens any file."""
    if not isinstance(raw, Mapping):
        raise ConfigError([("config", "must be a mapping of keys to values")])
    _ensure_strategies()
    try:
        cfg = RunConfig.model_validate(dict(raw))
    except ValidationError as exc:
        raise ConfigError([(_format_loc(e["loc"]), _format_msg(e)) for e in exc.errors()]) from None
    from bml_core.dataspecs import check_dataset
    from bml_core.strategies.spec import check_rules

    errors = check_dataset(cfg.dataset, path_rules=path_rules) + check_rules(cfg)
    if errors:
        raise ConfigError(errors)
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b.0.c=value` -> (["a","b","0","c"], parsed value); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError([(text or "--set", "an override needs the form key.path=value")])
    key, _, value = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError([(text, "an override needs a key before '='")])
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return path, parsed


def apply_override(raw: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at a dotted path inside nested dicts and lists (creating dicts as needed)."""
    node: Any = raw
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([(where, f"no list item {part!r} (the list has {len(node)} items)")])
            idx = int(part)
            if last:
                node[idx] = value
            else:
                if node[idx] is None or isinstance(node[idx], str):
                    node[idx] = {"name": node[idx]} if isinstance(node[idx], str) else {}
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if path[depth + 1].isdigit() else {}
                node = node[part]
        else:
            raise ConfigError([(where, "cannot set a key inside a plain value")])


def read_config_file(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError([("config file", f"{p} does not exist")])
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([("config file", f"{p} is not UTF-8 text (byte {exc.start})")]) from None
    except OSError as exc:
        raise ConfigError([("config file", f"{p} cannot be read: {exc.strerror}")]) from None
    try:
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError([("config file", f"{p} is not valid YAML/JSON: {exc}")]) from None
    except RecursionError:
        raise ConfigError([("config file", f"{p} is nested too deeply")]) from None
    if data is None:  # a 0-byte file (or comments only) is a mistake, not "all defaults"
        raise ConfigError(
            [("config file", f"{p} is empty; write at least one key (or give no file for all defaults)")]
        )
    if not isinstance(data, dict):
        raise ConfigError([("config file", f"{p} must hold a mapping of keys")])
    return data


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Iterable[str] = (),
    preset: str | None = None,
) -> RunConfig:
    """Read a YAML/JSON file (or a dict), apply a preset and `--set` overrides, validate."""
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = copy.deepcopy(dict(source))
    else:
        raw = read_config_file(source)
    if preset is not None:
        raw = apply_preset(raw, preset)
    for text in overrides:
        path, value = parse_override(text)
        apply_override(raw, path, value)
    return validate_config(raw)


# --------------------------------------------------------------------------- presets

_TPAMI_OPTIM: dict[str, Any] = {
    "name": "adamw",
    "lr": 5e-5,
    "weight_decay": 0.01,
    "scheduler": {"name": "step", "step_size": 40, "gamma": 0.1},
}
_TPAMI_TRAIN: dict[str, Any] = {"epochs": 100, "batch_size": 32}
_TPAMI_OGM: dict[str, Any] = {
    "name": "ogm_ge",
    "alpha": 0.8,
    "start_epoch": 0,
    "end_epoch": 60,
    "warmup_epochs": 6,
}
_TPAMI_OPM: dict[str, Any] = {"name": "opm", "q_base": 0.5, "lam": 0.5, "p_exe": 0.7, "warmup_epochs": 6}

_OFFICIAL_INIT: dict[str, Any] = {"init": "official"}  # both official codes: model.apply(weight_init)

PRESETS: dict[str, dict[str, Any]] = {
    "cvpr2022-ogm-ge": {
        "model": _OFFICIAL_INIT,
        "strategies": [{"name": "ogm_ge", "alpha": 0.8, "start_epoch": 0, "end_epoch": 50}],
        "optim": {
            "name": "sgd",
            "lr": 1e-3,
            "momentum": 0.9,
            "weight_decay": 1e-4,
            "scheduler": {"name": "step", "step_size": 70, "gamma": 0.1},
        },
        "train": {"epochs": 100, "batch_size": 64},
    },
    "tpami2024-ogm": {
        "model": _OFFICIAL_INIT,
        "strategies": [_TPAMI_OGM],
        "optim": _TPAMI_OPTIM,
        "train": _TPAMI_TRAIN,
    },
    "tpami2024-opm": {
        "model": _OFFICIAL_INIT,
        "strategies": [_TPAMI_OPM],
        "optim": _TPAMI_OPTIM,
        "train": _TPAMI_TRAIN,
    },
    "tpami2024-opm-ogm": {
        "model": _OFFICIAL_INIT,
        "strategies": [_TPAMI_OPM, _TPAMI_OGM],
        "optim": _TPAMI_OPTIM,
        "train": _TPAMI_TRAIN,
    },
    # STRATEGIES.md 2.1 / 2.7: BalanceBenchmark's "MMPareto" never takes its conflict branch, so
    # what it computes is uni_aux with the concat head's split blocks and encoder gradients x 3
    "bb-mmpareto": {
        "strategies": [{"name": "uni_aux", "encoder_grad_scale": 3.0}],
        "model": {"heads": "split"},
    },
}

PRESET_NOTES: dict[str, str] = {
    "cvpr2022-ogm-ge": "OGM-GE, CVPR 2022: alpha 0.8 (CREMA-D; 0.1 for VGGSound), SGD, 100 epochs.",
    "tpami2024-ogm": "T-PAMI 2024 OGM-GE on Kinetics-Sounds: AdamW 5e-5, warm-up 6 epochs.",
    "tpami2024-opm": "T-PAMI 2024 OPM: q_base 0.5, lambda 0.5, p_exe 0.7, warm-up 6 epochs.",
    "tpami2024-opm-ogm": "T-PAMI 2024 OPM + OGM-GE together (rho shared).",
    "bb-mmpareto": "What BalanceBenchmark's MMPareto computes: uni_aux with split heads and encoder "
    "gradients x 3 (its conflict test never fires). The faithful method is the strategy mmpareto.",
}


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def apply_preset(raw: Mapping[str, Any], preset: str) -> dict[str, Any]:
    """The preset's strategies, optimiser and schedule, with the user's own keys on top
    (except `strategies`, which the preset replaces)."""
    if preset not in PRESETS:
        raise ConfigError([("preset", f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")])
    user = {k: v for k, v in raw.items() if k != "strategies"}
    return _merge(PRESETS[preset], user)


# --------------------------------------------------------------------------- advisories

Advisory = Callable[[RunConfig], "str | None"]
_ADVISORIES: list[Advisory] = []


def advisory(fn: Advisory) -> Advisory:
    _ADVISORIES.append(fn)
    return fn


@advisory
def _schedule_past_end(cfg: RunConfig) -> str | None:
    for i, s in enumerate(cfg.strategies):
        first = max(s.start_epoch, s.warmup_epochs)
        if s.name != "joint" and first >= cfg.train.epochs:
            return (
                f"strategies.{i} ({s.name}) starts at epoch {first} but training has only "
                f"{cfg.train.epochs} epochs: it never runs."
            )
    return None


@advisory
def _fp16_on_cpu(cfg: RunConfig) -> str | None:
    if cfg.train.amp == "fp16" and cfg.train.device == "cpu":
        return "amp fp16 on the CPU is slow and unsupported for many ops; use bf16 or off."
    return None


def advisories(cfg: RunConfig) -> list[str]:
    """Warnings about valid but questionable settings (not errors)."""
    from bml_core.strategies.spec import spec_advisories

    return spec_advisories(cfg) + [msg for fn in _ADVISORIES if (msg := fn(cfg))]


def config_schema() -> dict[str, Any]:
    """JSON schema of the run config (for the launch form and docs)."""
    _ensure_strategies()
    return RunConfig.model_json_schema()

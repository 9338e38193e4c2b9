"""The run configuration: `RunConfig` (the schema's sections from `bml_core.schema`, with each
strategy parsed by its discovered spec's parameter model), validation (dataset, plug-ins,
strategy rules), presets, dotted overrides and advisories. Torch-free, so the dashboard can
import it. Floors: schema < specs (strategies, datasets, encoders, fusions) < config."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    Field,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
)
from pydantic_core import PydanticCustomError

from bml_core import implref
from bml_core.alerts.config import AlertsConfig
from bml_core.configpaths import apply_override
from bml_core.dataspecs import check_dataset
from bml_core.plugins import check_plugins, required_packages, resolve_params
from bml_core.plugins import discover as discover_plugins
from bml_core.schema import (
    MAX_INT64,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    ConfigError,
    DatasetConfig,
    EncoderConfig,
    Int,
    ModelConfig,
    OptimConfig,
    SchedulerConfig,
    StrategyParams,
    StrictModel,
    TrainConfig,
    no_control_chars,
)
from bml_core.strategies.spec import check_rules, discover, plugin_errors, spec_advisories

__all__ = [
    "PRESETS",
    "ConfigError",
    "DatasetConfig",
    "EncoderConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SchedulerConfig",
    "StrategyParams",
    "TrainConfig",
    "advisories",
    "apply_override",
    "apply_preset",
    "config_schema",
    "load_config",
    "parse_override",
    "read_config_file",
    "strategy_params",
    "validate_config",
]

# --------------------------------------------------------------------------- strategies


def strategy_params() -> dict[str, type[StrategyParams]]:
    """Every discovered strategy's parameter model by name (built-ins and plug-ins)."""
    return {name: spec.params for name, spec in discover().items()}


def _strategy_item(item: Any, requires: Mapping[str, str] | None = None) -> Any:
    """A strategy entry parsed by its own spec's parameter model (the name picks the model)."""
    if not isinstance(item, Mapping):
        return item
    name = item.get("name")
    if not isinstance(name, str):
        raise PydanticCustomError("strategy_name", "each strategy needs a `name`")
    package = str((requires or {}).get(f"strategy/{name}", "")) if isinstance(requires, Mapping) else ""
    models = strategy_params()
    if name not in models:
        raise PydanticCustomError("strategy_unknown", _unknown_strategy(name, models, package))
    return models[name].model_validate(dict(item))


def _unknown_strategy(name: str, models: Mapping[str, Any], package: str = "") -> str:
    if package:
        return implref.unknown_plugin("strategy", name, list(models), package)
    msg = f"unknown strategy {name!r}; known: {', '.join(sorted(models))}"
    broken = "; ".join(str(e) for e in plugin_errors())
    return f"{msg} (plug-ins that failed to load: {broken})" if broken else msg


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
    requires: dict[Annotated[str, Field(max_length=300)], Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict,
        max_length=64,
        description="the plug-ins this run uses and the packages that provide them (`<kind>/<name>: "
        "package`); filled in on validation, so that a worker without one names the package",
    )

    @model_serializer(mode="wrap")
    def _without_empty_requires(self, handler: SerializerFunctionWrapHandler) -> Any:
        # a run of built-ins only dumps exactly as before the key existed
        out = handler(self)
        if isinstance(out, dict) and not self.requires:
            out.pop("requires", None)
        return out

    @field_validator("strategies", mode="before")
    @classmethod
    def _strategy_shorthand(cls, v: Any) -> Any:
        # Accept `strategies: [opm, ogm_ge]` and `strategies: ogm_ge` as shorthands; each
        # entry is parsed by the parameter model of the strategy it names.
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            return [_strategy_item({"name": s} if isinstance(s, str) else s) for s in v]
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


# --------------------------------------------------------------------------- loading


def _format_loc(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc) or "config"


def _format_msg(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown key (remove it or check its spelling against the documented keys)"
    return msg.removeprefix("Value error, ")


def validate_config(raw: Mapping[str, Any], *, path_rules: bool = True) -> RunConfig:
    """Validate a config dict; raise ConfigError with one (path, message) per problem.
    `path_rules=False` skips the entry rule that a dataset's relative path parameters are
    relative without `..` (`bml_core.dataspecs.check_dataset`): the store and the run process
    use it, because what keeps a run inside the data is `check_dataset_paths` (every path
    resolved under BML_DATA_ROOTS), which the worker applies before it opens any file."""
    if not isinstance(raw, Mapping):
        raise ConfigError([("config", "must be a mapping of keys to values")])
    raw = dict(raw)
    discover_plugins()
    errors: list[tuple[str, str]] = []
    strategies = raw.get("strategies")
    if isinstance(strategies, list):
        # each entry by its own model, so that an error names `strategies.N.<field>`
        parsed = []
        for i, item in enumerate(strategies):
            try:
                parsed.append(
                    _strategy_item({"name": item} if isinstance(item, str) else item, raw.get("requires"))
                )
            except ValidationError as exc:
                errors += [(_format_loc(["strategies", i, *e["loc"]]), _format_msg(e)) for e in exc.errors()]
            except PydanticCustomError as exc:
                errors.append((f"strategies.{i}", str(exc)))
        raw["strategies"] = parsed if not errors else []
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        errors += [(_format_loc(e["loc"]), _format_msg(e)) for e in exc.errors()]
    if errors:
        raise ConfigError(errors)
    errors = (
        check_dataset(cfg.dataset, path_rules=path_rules, requires=cfg.requires)
        + check_plugins(cfg)
        + check_rules(cfg)
    )
    if errors:
        raise ConfigError(errors)
    resolve_params(cfg)
    needed = required_packages(cfg)
    if needed:
        cfg.requires = {**cfg.requires, **needed}
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
    return spec_advisories(cfg) + [msg for fn in _ADVISORIES if (msg := fn(cfg))]


def config_schema() -> dict[str, Any]:
    """JSON schema of the run config (for the launch form and docs): each strategy entry is
    one of the discovered strategies' parameter models."""
    schema = RunConfig.model_json_schema()
    defs = schema.setdefault("$defs", {})
    variants = []
    for _name, model in sorted(strategy_params().items()):
        sub = model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(sub.pop("$defs", {}))
        defs[model.__name__] = sub
        variants.append({"$ref": f"#/$defs/{model.__name__}"})
    schema["properties"]["strategies"]["items"] = {"oneOf": variants}
    return schema

"""The launch form's logic without Streamlit: which fields it shows (generated from the
config models), how widget values become a run config, the seeds and sweep-grid parsers,
validation into per-field errors and advisories, and the submission through
`services.actions`. Widget paths equal config paths, except a strategy's parameters, which
live under `strategy.<name>.<field>` so that they keep their values when the list of
chosen strategies changes."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import ValidationError

from app import catalog
from app.form_fields import FieldSpec, config_value, field_spec, model_field_specs, walk, widget_value
from app.views.launch import plugin_fields as pf
from bml_core.config import (
    PRESETS,
    ConfigError,
    DatasetConfig,
    EncoderConfig,
    RunConfig,
    advisories,
    apply_override,
    validate_config,
)
from bml_core.configpaths import flatten_config
from bml_core.seeds import MAX_SEEDS, MAX_SWEEP_RUNS, parse_seeds  # noqa: F401 - parse_seeds: the form's parser
from bml_core.strategies.spec import StrategySpec

max_seeds = MAX_SEEDS  # one cap for the form, the CLI and the API: bml_core.seeds
max_sweep_runs = MAX_SWEEP_RUNS
SEEDS_PATH = "seeds"
STRATEGIES_PATH = "strategies"
ENCODER_MODALITIES_PATH = "model.encoders"
SWEEP_STRATEGIES_PATH = "sweep.strategies"
SWEEP_GRID_PATH = "sweep.grid"
SWEEP_NAME_PATH = "sweep.name"
GENERAL_ERROR_PATH = "config"

# Sections of the form, in order: (title, config section name)
SECTIONS = (("Optimiser", "optim"), ("Training", "train"))


# --------------------------------------------------------------------------- fields


def run_fields() -> list[FieldSpec]:
    """Name, group and tags (the seed is the form's own `seeds` field)."""
    return model_field_specs(
        RunConfig, exclude=("seed", "dataset", "model", "strategies", "optim", "train", "alerts")
    )


def dataset_fields() -> list[FieldSpec]:
    """The dataset section; `dataset.name` is a choice among the registered datasets."""
    specs = model_field_specs(DatasetConfig, "dataset")
    names = tuple(catalog.datasets())
    return [
        FieldSpec(**{**s.__dict__, "kind": "choice", "options": names}) if s.path == "dataset.name" else s
        for s in specs
    ]


def model_fields() -> list[FieldSpec]:
    """Fusion (a choice among the registered fusion heads) and feature width; the chosen
    fusion head's own parameters are `fusion_param_fields`, encoders per-modality sections
    (`encoder_fields`)."""
    out = []
    for s in walk([section_spec("model")]):
        if s.path in ("model.encoders", "model.fusion_params"):
            continue
        out.append(pf.as_choice(s, list(catalog.fusions())) if s.path == "model.fusion" else s)
    return out


def encoder_fields(modality: str) -> list[FieldSpec]:
    """The encoder's name (a choice among the registered encoders) and its common widths;
    its own parameters are `encoder_param_fields`."""
    specs = model_field_specs(EncoderConfig, f"model.encoders.{modality}", exclude=("params",))
    names = list(catalog.encoders())
    return [pf.as_choice(s, names) if s.name == "name" else s for s in specs]


def short_description(spec: StrategySpec) -> str:
    """The one line shown next to a strategy's name: its params' `summary`, else the spec's."""
    return getattr(spec.params, "summary", "") or spec.description


def preselect_from_query(name: str | None, state: Any, key: str) -> bool:
    """`/launch?strategy=NAME`: select that strategy once per distinct link (a later edit of
    the form is kept across reruns). Unknown names are ignored."""
    if not name or name not in catalog.strategies() or state.get("launch_strategy_query") == name:
        return False
    state["launch_strategy_query"] = name
    state[key] = [name]
    return True


def strategy_fields(name: str) -> list[FieldSpec]:
    """A strategy's parameter fields from its registered pydantic model (not `name`)."""
    return model_field_specs(catalog.strategies()[name], f"strategy.{name}", exclude=("name",))


def section_spec(name: str) -> FieldSpec:
    return field_spec(name, RunConfig.model_fields[name])


def section_fields(name: str) -> list[FieldSpec]:
    return walk([section_spec(name)])


def all_fields(strategy_names: Sequence[str], encoder_modalities: Sequence[str]) -> list[FieldSpec]:
    specs = run_fields() + dataset_fields() + model_fields() + pf.all_fusion_param_fields()
    for m in encoder_modalities:
        specs += encoder_fields(m) + pf.all_encoder_param_fields(m)
    for s in strategy_names:
        specs += strategy_fields(s)
    for _, section in SECTIONS:
        specs += section_fields(section)
    return specs


def default_values() -> dict[str, Any]:
    """Widget path -> initial widget value: the models' defaults (every strategy's too),
    with the default dataset's recommended settings on top (`dataset_default_values`)."""
    specs = run_fields() + dataset_fields() + model_fields() + pf.all_fusion_param_fields()
    for name in catalog.strategies():
        specs += strategy_fields(name)
    for _, section in SECTIONS:
        specs += section_fields(section)
    out = {s.path: widget_value(s, s.default) for s in specs}
    out[SEEDS_PATH] = "0"
    out[STRATEGIES_PATH] = []
    out[ENCODER_MODALITIES_PATH] = []
    out.update(dataset_default_values(str(DatasetConfig.model_fields["name"].default)))
    return out


# --------------------------------------------------------------------------- start from


def _at(doc: Mapping[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node


def values_from_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Widget path -> widget value that make the form hold exactly this config (resolved:
    keys it leaves out take their defaults). The inverse of `assemble_config`; the seed
    becomes the `seeds` field. ConfigError when the config is invalid."""
    doc = validate_config(raw).to_dict()
    values: dict[str, Any] = {}
    specs = run_fields() + dataset_fields() + model_fields()
    for _, section in SECTIONS:
        specs += section_fields(section)
    for spec in specs:
        values[spec.path] = widget_value(spec, _at(doc, spec.path))
    for spec in pf.all_fusion_param_fields():
        values[spec.path] = widget_value(spec, spec.default)
    for spec in pf.fusion_param_fields(str(doc["model"]["fusion"])):
        values[spec.path] = widget_value(spec, doc["model"]["fusion_params"].get(spec.name, spec.default))
    encoders: dict[str, Any] = doc["model"]["encoders"]
    for modality, encoder in encoders.items():
        for spec in encoder_fields(modality):
            values[spec.path] = widget_value(spec, encoder.get(spec.name))
        for spec in pf.all_encoder_param_fields(modality):
            values[spec.path] = widget_value(spec, spec.default)
        for spec in pf.encoder_param_fields(modality, str(encoder["name"])):
            values[spec.path] = widget_value(spec, (encoder.get("params") or {}).get(spec.name, spec.default))
    names = [str(s["name"]) for s in doc["strategies"]]
    for entry in doc["strategies"]:
        for spec in strategy_fields(str(entry["name"])):
            values[spec.path] = widget_value(spec, entry.get(spec.name, spec.default))
    values[STRATEGIES_PATH] = names
    values[ENCODER_MODALITIES_PATH] = list(encoders)
    values[SEEDS_PATH] = str(doc["seed"])
    return values


def dataset_default_values(name: str) -> dict[str, Any]:
    """What picking a dataset sets: its recommended parameters, model, optimiser and
    training settings (the models' defaults where it recommends nothing). The run's name,
    seeds, strategies and `dataset.path` are left alone."""
    entry = catalog.datasets().get(name)
    recommended = dict(entry.spec.recommended) if entry is not None and entry.spec is not None else {}
    raw = copy.deepcopy(recommended)
    raw.setdefault("dataset", {})
    raw["dataset"] = {**raw["dataset"], "name": name}
    values = values_from_config(raw)
    keep = ("name", "group", "tags", SEEDS_PATH, STRATEGIES_PATH, "dataset.path")
    return {p: v for p, v in values.items() if p not in keep and not p.startswith("strategy.")}


def dataset_modalities(entry: catalog.DatasetEntry | None, params_text: Any) -> list[str]:
    """The modalities a dataset yields with the parameters in the form (its defaults while
    they do not parse)."""
    if entry is None or entry.spec is None:
        return []
    try:
        spec = next(s for s in dataset_fields() if s.path == "dataset.params")
        return entry.spec.modalities(entry.spec.params.model_validate(config_value(spec, params_text)))
    except (ValueError, StopIteration):
        return list(entry.modalities)


def parse_yaml_config(text: str) -> dict[str, Any]:
    """A pasted or uploaded YAML (or JSON) run config as a dict; ConfigError naming the problem."""
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ConfigError([("config file", f"not valid YAML ({first})")]) from None
    if data is None:
        raise ConfigError(
            [("config file", "is empty; paste a run config like examples/mfeat-imbalance.yaml")]
        )
    if not isinstance(data, dict):
        raise ConfigError([("config file", "must hold a mapping of keys (name:, dataset:, ...)")])
    return data


def error_shown(path: str, touched: set[str], attempted: bool) -> bool:
    """Whether the form shows an error yet: once Launch was pressed, or once the user
    touched its field (or a field inside it, or the mapping it lies in)."""
    if attempted:
        return True
    return any(w == path or w.startswith(path + ".") or path.startswith(w + ".") for w in touched)


def touched_paths(values: Mapping[str, Any], baseline: Mapping[str, Any]) -> set[str]:
    """The fields whose value differs from the one the form was filled with."""
    return {p for p, v in values.items() if p in baseline and baseline[p] != v}


# --------------------------------------------------------------------------- presets


def preset_values(preset: str) -> dict[str, Any]:
    """The widget values a preset sets: its strategies (list and parameters), optimiser
    and training keys. The user's other fields are left alone."""
    if preset not in PRESETS:
        raise ConfigError([("preset", f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")])
    spec = PRESETS[preset]
    out: dict[str, Any] = {}
    names: list[str] = []
    for strat in spec.get("strategies", []):
        strat = {"name": strat} if isinstance(strat, str) else strat
        name = strat["name"]
        names.append(name)
        fields = {f.name: f for f in strategy_fields(name)}
        for key, f in fields.items():
            out[f.path] = widget_value(f, strat.get(key, f.default))
    out[STRATEGIES_PATH] = names
    for section in ("model", "optim", "train"):  # model: the presets' `model.init: official`
        if spec.get(section):
            out.update(flatten_config(spec[section], section, lists=False))
    return out


# --------------------------------------------------------------------------- parsing


def parse_grid(text: str) -> dict[str, list[Any]]:
    """One `dotted.path = [v1, v2, ...]` per line (values in YAML). ValueError naming the line."""
    grid: dict[str, list[Any]] = {}
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(
                f"line {number}: write `key.path = [value, value]`, e.g. strategies.0.alpha = [0.4, 0.8]"
            )
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[\w]+)*", key):
            raise ValueError(f"line {number}: {key!r} is not a dotted config path like optim.lr")
        try:
            values = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ValueError(
                f"line {number}: the values are not valid YAML; write a list like [0.4, 0.8]"
            ) from None
        if not isinstance(values, list) or not values:
            raise ValueError(f"line {number}: {key} needs a non-empty list of values, e.g. [0.4, 0.8]")
        if key in grid:
            raise ValueError(f"line {number}: {key} is listed twice")
        grid[key] = values
    return grid


# --------------------------------------------------------------------------- assembling


def _set(raw: dict[str, Any], path: str, value: Any) -> None:
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value


def assemble_config(
    values: Mapping[str, Any], strategy_names: Sequence[str], encoder_modalities: Sequence[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(raw config dict, errors of fields whose text did not parse) from widget values."""
    raw: dict[str, Any] = {}
    errors: dict[str, str] = {}
    specs = run_fields() + dataset_fields() + model_fields()
    for m in encoder_modalities:
        specs += encoder_fields(m)
    for _, section in SECTIONS:
        specs += section_fields(section)
    for spec in specs:
        try:
            _set(raw, spec.path, config_value(spec, values.get(spec.path, spec.default)))
        except ValueError as exc:
            errors[spec.path] = str(exc)
    model = raw.setdefault("model", {})
    model.setdefault("encoders", {})
    fusion_params = pf.param_values(pf.fusion_param_fields(str(model.get("fusion"))), values, errors)
    if fusion_params:
        model["fusion_params"] = fusion_params
    for m in encoder_modalities:
        encoder = model["encoders"].setdefault(m, {})
        params = pf.param_values(pf.encoder_param_fields(m, str(encoder.get("name"))), values, errors)
        if params:
            encoder["params"] = params
    strategies: list[dict[str, Any]] = []
    for name in strategy_names:
        entry: dict[str, Any] = {"name": name}
        for spec in strategy_fields(name):
            entry[spec.name] = config_value(spec, values.get(spec.path, spec.default))
        strategies.append(entry)
    raw["strategies"] = strategies
    return raw, errors


def route_error(path: str, strategy_names: Sequence[str]) -> str:
    """The widget path that shows an error reported on a config path."""
    parts = path.split(".")
    if parts[0] == "strategies" and len(parts) >= 2 and parts[1].isdigit():
        index = int(parts[1])
        if index < len(strategy_names):
            return ".".join(["strategy", strategy_names[index], *parts[2:]])
        return STRATEGIES_PATH
    return path


# --------------------------------------------------------------------------- checking


@dataclass
class LaunchCheck:
    """The form checked: `errors` by widget path (empty when it can launch), advisories,
    the validated config, the seeds and, for a sweep, the grid and the number of runs."""

    errors: dict[str, str] = field(default_factory=dict)
    advisories: list[str] = field(default_factory=list)
    config: RunConfig | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    grid: dict[str, list[Any]] | None = None
    sweep_name: str | None = None
    run_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.config is not None


PathCheck = Callable[[str], "str | None"]


def default_path_check(path: str) -> str | None:
    """The dataset path outside BML_DATA_ROOTS: the reason; else None."""
    from bml_core.dataroots import check_data_path
    from bml_core.errors import DatasetError

    try:
        check_data_path(path)
    except DatasetError as exc:
        return str(exc)
    return None


def dataset_param_path_errors(dataset: DatasetConfig) -> dict[str, str]:
    """Path-valued dataset parameters (declared in the dataset's spec) outside
    BML_DATA_ROOTS, shown on the `dataset.params` field: widget path -> reason."""
    from bml_core.dataspecs import check_dataset_paths
    from bml_core.errors import DatasetError

    try:
        check_dataset_paths(dataset)
    except DatasetError as exc:
        if exc.field.startswith("dataset.params"):
            return {"dataset.params": str(exc)}
    return {}


def _dataset_or_none(raw: Mapping[str, Any]) -> DatasetConfig | None:
    try:
        return DatasetConfig.model_validate(raw.get("dataset") or {})
    except ValidationError:
        return None


def check_form(
    values: Mapping[str, Any],
    strategy_names: Sequence[str],
    encoder_modalities: Sequence[str],
    *,
    sweep: bool = False,
    sweep_strategies: Sequence[str] = (),
    path_check: PathCheck = default_path_check,
) -> LaunchCheck:
    """Everything wrong with the form, field by field (nothing is stored here)."""
    check = LaunchCheck()
    raw, errors = assemble_config(values, strategy_names, encoder_modalities)
    check.raw = raw
    check.errors.update(errors)
    for label in ("name", "group"):
        if not str(raw.get(label) or "").strip():
            check.errors[label] = f"give the run a {label} (1 to 200 characters)"
    try:
        check.seeds = parse_seeds(values.get(SEEDS_PATH, "0"))
    except ValueError as exc:
        check.errors[SEEDS_PATH] = str(exc)
    entry = catalog.datasets().get(str(raw.get("dataset", {}).get("name")))
    path = raw.get("dataset", {}).get("path")
    if entry is not None and entry.needs_path and not path:
        check.errors.setdefault(
            "dataset.path", f"dataset {entry.name} reads files: give the path of its data"
        )
    if path:
        reason = path_check(str(path))
        if reason:
            check.errors.setdefault("dataset.path", reason)
    bad_modalities = [m for m in encoder_modalities if not re.fullmatch(r"[A-Za-z_]\w*", m)]
    if bad_modalities:
        check.errors[ENCODER_MODALITIES_PATH] = (
            f"modality name {bad_modalities[0]!r}: use letters, digits and underscores"
        )
    raw_for_validation = {**raw, "seed": check.seeds[0] if check.seeds else 0}
    try:
        check.config = validate_config(raw_for_validation)
    except ConfigError as exc:
        for path, msg in exc.errors:
            check.errors.setdefault(pf.route_plugin_param(route_error(path, strategy_names), raw), msg)
    if check.config is not None:
        check.advisories = advisories(check.config)
    if path:
        # where the path parameters resolve (BML_DATA_ROOTS), shown even when the config has
        # other errors (a `..` in one is both: it leaves dataset.path and, maybe, the roots)
        dataset = check.config.dataset if check.config is not None else _dataset_or_none(raw)
        if dataset is not None:
            for where, reason in dataset_param_path_errors(dataset).items():
                check.errors.setdefault(where, reason)
    if sweep:
        _check_sweep(check, values, sweep_strategies)
    else:
        check.run_count = len(check.seeds)
    return check


def sweep_grid_of(
    grid_text: str, sweep_strategies: Sequence[str], values: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """The grid: the strategies to compare (each with the parameters set in the form) and
    the parameter lines."""
    grid = parse_grid(grid_text)
    if sweep_strategies:
        if STRATEGIES_PATH in grid:
            raise ValueError("strategies is set both by the strategy picker and a grid line; keep one")
        options: list[list[dict[str, Any]]] = []
        for name in sweep_strategies:
            if name == "joint":
                options.append([])
                continue
            entry: dict[str, Any] = {"name": name}
            for spec in strategy_fields(name):
                entry[spec.name] = config_value(spec, values.get(spec.path, spec.default))
            options.append([entry])
        grid = {STRATEGIES_PATH: options, **grid}
    return grid


def _check_sweep(check: LaunchCheck, values: Mapping[str, Any], sweep_strategies: Sequence[str]) -> None:
    name = str(values.get(SWEEP_NAME_PATH) or "").strip()
    if not name:
        check.errors[SWEEP_NAME_PATH] = "give the sweep a name: it becomes the group of its runs"
    check.sweep_name = name or None
    try:
        grid = sweep_grid_of(str(values.get(SWEEP_GRID_PATH) or ""), sweep_strategies, values)
    except ValueError as exc:
        check.errors[SWEEP_GRID_PATH] = str(exc)
        return
    if not grid:
        check.errors[SWEEP_GRID_PATH] = (
            "pick strategies to compare or add a line like strategies.0.alpha = [0.4, 0.8]"
        )
        return
    combos = 1
    for options in grid.values():
        combos *= len(options)
    check.run_count = combos * max(1, len(check.seeds))
    if check.run_count > max_sweep_runs:
        check.errors[SWEEP_GRID_PATH] = (
            f"{check.run_count} runs; at most {max_sweep_runs} per sweep: fewer values or seeds"
        )
        return
    check.grid = grid
    if check.config is None:
        return
    base = check.config.to_dict()
    for combo in itertools.product(*grid.values()):
        raw = copy.deepcopy(base)
        setting = ", ".join(f"{k} = {_short(v)}" for k, v in zip(grid, combo, strict=True))
        try:
            for key, value in zip(grid, combo, strict=True):
                apply_override(raw, key.split("."), copy.deepcopy(value))
            validate_config(raw)
        except ConfigError as exc:
            path, msg = exc.errors[0]
            check.errors[SWEEP_GRID_PATH] = f"with {setting}: {path}: {msg}"
            check.grid = None
            return


def _short(value: Any) -> str:
    if isinstance(value, list) and all(isinstance(v, Mapping) for v in value):
        return "[" + ", ".join(str(v.get("name")) for v in value) + "]"
    return repr(value)


# --------------------------------------------------------------------------- submitting


@dataclass
class LaunchResult:
    run_ids: list[int]
    sweep_id: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    failure: str | None = None


def submit_checked(
    check: LaunchCheck, strategy_names: Sequence[str], engine: Any = None, actor: Any = None
) -> LaunchResult:
    """Submit a checked form through services.actions as `actor`: one run per seed, or the
    sweep grid. Field errors the client still finds come back routed to their widgets."""
    from services import actions as client

    if not check.ok or check.config is None:
        return LaunchResult([], errors=dict(check.errors) or {GENERAL_ERROR_PATH: "the form has errors"})
    try:
        if check.grid is not None:
            sweep_id, ids = client.submit_sweep(
                check.config.to_dict(),
                check.grid,
                check.seeds,
                name=check.sweep_name or "",
                engine=engine,
                actor=actor,
            )
            return LaunchResult(ids, sweep_id=sweep_id)
        return LaunchResult(client.submit(check.config, check.seeds, engine=engine, actor=actor))
    except ConfigError as exc:
        errors: dict[str, str] = {}
        for path, msg in exc.errors:
            label, sep, rest = path.partition(": ")
            if sep and check.grid is not None:
                errors.setdefault(SWEEP_GRID_PATH, f"{label}: {rest}: {msg}")
            else:
                errors.setdefault(route_error(path, strategy_names), msg)
        return LaunchResult([], errors=errors)
    except Exception as exc:  # noqa: BLE001 - broker or store trouble: shown to the user as is
        return LaunchResult([], failure=f"{type(exc).__name__}: {exc}")

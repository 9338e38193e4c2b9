"""Which fields the launch form shows, generated from the config models (run, dataset,
model, encoders, strategies, optimiser, training), and the widget values that fill them:
the defaults, a config (`values_from_config`, the inverse of `parse.assemble_config`), a
dataset's recommended settings, a preset. Widget paths equal config paths, except a
strategy's parameters, which live under `strategy.<name>.<field>` so that they keep their
values when the list of chosen strategies changes."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from app import catalog
from app.form_fields import FieldSpec, config_value, field_spec, model_field_specs, walk, widget_value
from app.views.launch import plugin_fields as pf
from bml_core.config import (
    PRESETS,
    ConfigError,
    DatasetConfig,
    EncoderConfig,
    RunConfig,
    validate_config,
)
from bml_core.configpaths import flatten_config
from bml_core.seeds import MAX_SEEDS, MAX_SWEEP_RUNS
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

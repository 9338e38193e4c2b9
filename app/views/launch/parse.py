"""Text and widget values into a run config: a pasted YAML, the sweep grid lines, the
seeds (`parse_seeds`, the one parser of `bml_core.seeds`), the widget values assembled into
a config dict (`assemble_config`) and a config path routed to the widget that shows it."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from app.form_fields import config_value
from app.views.launch import plugin_fields as pf
from app.views.launch.fields import (
    SECTIONS,
    STRATEGIES_PATH,
    dataset_fields,
    encoder_fields,
    model_fields,
    run_fields,
    section_fields,
    strategy_fields,
)
from bml_core.config import (
    ConfigError,
)
from bml_core.seeds import parse_seeds  # noqa: F401 - the form's seeds parser, here with the others


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

"""The launch form checked without storing anything: per-field errors (pydantic's, routed
to the widget that shows them), advisories, the data paths against BML_DATA_ROOTS, the
sweep grid and its run count; and when an error is shown (touched or Launch pressed)."""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from app import catalog
from app.form_fields import config_value
from app.views.launch import plugin_fields as pf
from app.views.launch.fields import (
    ENCODER_MODALITIES_PATH,
    SEEDS_PATH,
    STRATEGIES_PATH,
    SWEEP_GRID_PATH,
    SWEEP_NAME_PATH,
    max_sweep_runs,
    strategy_fields,
)
from app.views.launch.parse import assemble_config, parse_grid, route_error
from bml_core.config import (
    ConfigError,
    DatasetConfig,
    RunConfig,
    advisories,
    apply_override,
    validate_config,
)
from bml_core.seeds import parse_seeds


def error_shown(path: str, touched: set[str], attempted: bool) -> bool:
    """Whether the form shows an error yet: once Launch was pressed, or once the user
    touched its field (or a field inside it, or the mapping it lies in)."""
    if attempted:
        return True
    return any(w == path or w.startswith(path + ".") or path.startswith(w + ".") for w in touched)


def touched_paths(values: Mapping[str, Any], baseline: Mapping[str, Any]) -> set[str]:
    """The fields whose value differs from the one the form was filled with."""
    return {p for p, v in values.items() if p in baseline and baseline[p] != v}


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

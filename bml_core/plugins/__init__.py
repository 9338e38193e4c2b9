"""Plug-ins of the model and data: encoders, fusion heads and datasets, in the strategies'
pattern (a torch-free spec with a pydantic parameter model and a lazily imported
implementation; docs/PLUGINS.md). `check_plugins(cfg)` is the config's check of the names and
parameters; `catalogue()` lists all four kinds (`bml plugins`, /methods). Torch-free."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bml_core import implref
from bml_core.plugins.discovery import (
    GROUPS,
    dataset_specs,
    discover,
    encoder_specs,
    fusion_specs,
    get_dataset,
    get_encoder,
    get_fusion,
    plugin_errors,
)
from bml_core.plugins.specs import EncoderSpec, FusionSpec, NoParams, params_errors
from bml_core.strategies import spec as strategy_spec

if TYPE_CHECKING:
    from bml_core.config import RunConfig

__all__ = [
    "GROUPS",
    "EncoderSpec",
    "FusionSpec",
    "NoParams",
    "catalogue",
    "check_plugins",
    "dataset_specs",
    "discover",
    "encoder_specs",
    "fusion_specs",
    "get_dataset",
    "get_encoder",
    "get_fusion",
    "plugin_errors",
    "required_packages",
    "resolve_params",
    "unknown_message",
]


def unknown_message(kind: str, name: str, known: list[str], package: str = "") -> str:
    msg = implref.unknown_plugin(kind, name, known, package)
    broken = "; ".join(str(e) for e in plugin_errors())
    return f"{msg} (plug-ins that failed to load: {broken})" if broken else msg


def required_packages(cfg: RunConfig) -> dict[str, str]:
    """`<kind>/<name>: package` for each plug-in of the config that an installed package
    provides (the run records it in `requires`, so a worker without it names the package)."""
    out: dict[str, str] = {}
    for params in cfg.strategies:
        spec = strategy_spec.get_spec(params.name)
        if spec is not None and spec.package:
            out[f"strategy/{spec.name}"] = spec.package
    used: list[Any] = [get_fusion(cfg.model.fusion), get_dataset(cfg.dataset.name)]
    used += [get_encoder(e.name) for e in cfg.model.encoders.values()]
    for spec in used:
        if spec is not None and spec.package:
            out[f"{_KEY[spec.kind]}/{spec.name}"] = spec.package
    return dict(sorted(out.items()))


_KEY = {"encoder": "encoder", "fusion head": "fusion", "dataset": "dataset"}


def check_plugins(cfg: RunConfig) -> list[tuple[str, str]]:
    """The model's plug-ins of a parsed config: known names, valid parameters."""
    discover()
    errors: list[tuple[str, str]] = []
    fusions = fusion_specs()
    fusion = fusions.get(cfg.model.fusion)
    if fusion is None:
        package = cfg.requires.get(f"fusion/{cfg.model.fusion}", "")
        errors.append(
            ("model.fusion", unknown_message("fusion head", cfg.model.fusion, list(fusions), package))
        )
    elif fusion.selected_by != "model.fusion":
        errors.append(("model.fusion", f"{fusion.name} is not set here: use {fusion.selected_by}"))
    else:
        errors += params_errors(fusion.params, cfg.model.fusion_params, "model.fusion_params")
    encoders = encoder_specs()
    for modality, enc in cfg.model.encoders.items():
        spec = encoders.get(enc.name)
        where = f"model.encoders.{modality}"
        if spec is None:
            package = cfg.requires.get(f"encoder/{enc.name}", "")
            errors.append((f"{where}.name", unknown_message("encoder", enc.name, list(encoders), package)))
            continue
        errors += params_errors(spec.params, enc.params, f"{where}.params")
    return errors


def resolve_params(cfg: RunConfig) -> None:
    """Write each plug-in's parameters as its model parsed them (defaults filled in), so the
    stored config is the resolved one, as for strategies. Call after `check_plugins`."""
    fusion = get_fusion(cfg.model.fusion)
    if fusion is not None:
        resolved = fusion.parse(cfg.model.fusion_params).model_dump(mode="json")
        if resolved != cfg.model.fusion_params:
            cfg.model.fusion_params = resolved
    for enc in cfg.model.encoders.values():
        spec = get_encoder(enc.name)
        if spec is not None:
            resolved = spec.parse(enc.params).model_dump(mode="json")
            if resolved != enc.params:
                enc.params = resolved


def catalogue(listed_only: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Every strategy, encoder, fusion head and dataset (built-in and plug-ins) as plain data."""
    strategies = strategy_spec.all_specs()
    out: dict[str, list[dict[str, Any]]] = {
        "strategies": [{"kind": "strategy", **s.as_dict(), "package": s.package} for s in strategies],
        "encoders": [s.as_dict() for s in encoder_specs().values()],
        "fusions": [s.as_dict() for s in fusion_specs().values()],
        "datasets": [s.as_dict() for s in dataset_specs().values()],
    }
    if listed_only:
        out = {k: [d for d in v if d.get("listed", True)] for k, v in out.items()}
    out["errors"] = [
        {"source": e.source, "message": e.message} for e in (*strategy_spec.plugin_errors(), *plugin_errors())
    ]
    return out

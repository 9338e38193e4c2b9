"""The Launch form's fields of the model plug-ins (encoders, fusion heads): the chosen
plug-in's parameters as fields generated from its spec's pydantic model, under their own
widget paths (`fusion.<name>.<field>`, `encoder.<m>.<name>.<field>`, like the strategies'
`strategy.<name>.<field>`), how they become `model.fusion_params` /
`model.encoders.<m>.params`, and how a config error on those paths finds its widget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app import catalog
from app.form_fields import FieldSpec, config_value, model_field_specs


def as_choice(spec: FieldSpec, options: Sequence[str]) -> FieldSpec:
    return FieldSpec(**{**spec.__dict__, "kind": "choice", "options": tuple(options)})


def fusion_param_fields(fusion: str) -> list[FieldSpec]:
    """A fusion head's parameter fields from its spec's model (`fusion.<name>.<field>`; they
    become `model.fusion_params` of the chosen one)."""
    spec = catalog.fusions().get(fusion)
    return model_field_specs(spec.params, f"fusion.{fusion}") if spec is not None else []


def all_fusion_param_fields() -> list[FieldSpec]:
    return [f for name in catalog.fusions() for f in fusion_param_fields(name)]


def encoder_param_fields(modality: str, encoder: str) -> list[FieldSpec]:
    """An encoder's parameter fields from its spec's model (`encoder.<m>.<name>.<field>`;
    they become `model.encoders.<m>.params` of the chosen encoder)."""
    spec = catalog.encoders().get(encoder)
    return model_field_specs(spec.params, f"encoder.{modality}.{encoder}") if spec is not None else []


def all_encoder_param_fields(modality: str) -> list[FieldSpec]:
    return [f for name in catalog.encoders() for f in encoder_param_fields(modality, name)]


def param_values(
    specs: Sequence[FieldSpec], values: Mapping[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for spec in specs:
        try:
            out[spec.name] = config_value(spec, values.get(spec.path, spec.default))
        except ValueError as exc:
            errors[spec.path] = str(exc)
    return out


def route_plugin_param(path: str, raw: Mapping[str, Any]) -> str:
    """`model.fusion_params.x` -> `fusion.<chosen>.x`; `model.encoders.<m>.params.x` ->
    `encoder.<m>.<chosen>.x` (the widgets of the chosen plug-in's parameters)."""
    parts = path.split(".")
    model = raw.get("model") or {}
    if parts[:2] == ["model", "fusion_params"] and len(parts) > 2:
        return ".".join(["fusion", str(model.get("fusion")), *parts[2:]])
    if parts[:2] == ["model", "encoders"] and len(parts) > 4 and parts[3] == "params":
        name = ((model.get("encoders") or {}).get(parts[2]) or {}).get("name")
        return ".".join(["encoder", parts[2], str(name), *parts[4:]])
    return path

"""The Methods page's data: one entry per listed strategy spec (built-ins and plug-ins) as
plain rows for the page: what it does, its parameters, cost class, metrics and reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app import catalog
from bml_core.strategies.spec import COST_CLASSES, StrategySpec


@dataclass(frozen=True)
class MethodEntry:
    name: str
    description: str
    reference: str
    cost: str
    cost_text: str
    source: str
    parameters: list[dict[str, Any]]  # rows of the parameter table
    metrics: list[str]  # "key/<modality>: title"
    capabilities: list[str]


def _bounds(bounds: dict[str, Any]) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "min_length": "len ≥", "max_length": "len ≤"}
    return ", ".join(f"{signs.get(k, k)} {v}" for k, v in bounds.items())


def parameter_rows(spec: StrategySpec) -> list[dict[str, Any]]:
    rows = []
    for p in spec.parameters():
        rows.append(
            {
                "parameter": p["name"],
                "type": " | ".join(map(str, p["choices"])) if p["choices"] else p["type"],
                "default": "" if p["default"] is None else str(p["default"]),
                "bounds": _bounds(p["bounds"]),
                "description": p["description"],
            }
        )
    return rows


def entry(spec: StrategySpec) -> MethodEntry:
    return MethodEntry(
        name=spec.name,
        description=spec.description,
        reference=spec.reference,
        cost=spec.cost,
        cost_text=COST_CLASSES[spec.cost] + (f"; {spec.cost_note}" if spec.cost_note else ""),
        source=spec.source,
        parameters=parameter_rows(spec),
        metrics=[
            f"`{m.key}/<modality>`: {m.title}" if m.per_modality else f"`{m.key}`: {m.title}"
            for m in spec.metrics
        ],
        capabilities=sorted(spec.capabilities),
    )


def methods() -> list[MethodEntry]:
    """Every strategy the Launch form offers, in catalogue order."""
    return [entry(spec) for spec in catalog.strategy_specs().values()]

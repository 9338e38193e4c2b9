"""The Methods page's data: one entry per listed strategy spec (built-ins and plug-ins) as
plain rows for the page: what it does, its parameters, cost class, metrics and reference."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app import catalog
from bml_core.plugins import EncoderSpec, FusionSpec
from bml_core.schema import authors_label
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


def parameter_rows(spec: Any) -> list[dict[str, Any]]:
    rows = []
    for p in spec.parameters():
        rows.append(
            {
                "parameter": p["name"],
                "type": " | ".join(authors_label(c, p.get("authors")) for c in p["choices"])
                if p["choices"]
                else p["type"],
                "default": "" if p["default"] is None else authors_label(p["default"], p.get("authors")),
                "authors": "" if p.get("authors") is None else authors_label(p["authors"], None),
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


KIND_TITLES = {"encoders": "Encoders", "fusions": "Fusion heads", "datasets": "Datasets"}


def model_catalogue() -> dict[str, list[dict[str, Any]]]:
    """The other three plug-in kinds (encoders, fusion heads, datasets), built-in and
    plug-in, as table rows: name, what it is, what it accepts, where it comes from, its
    parameters (`name type = default`)."""
    out: dict[str, list[dict[str, Any]]] = {}
    specs: Mapping[str, Any]
    for kind, specs in (
        ("encoders", catalog.encoders()),
        ("fusions", catalog.all_fusions()),
        ("datasets", {n: e.spec for n, e in catalog.datasets().items() if e.spec is not None}),
    ):
        rows = []
        for name, spec in specs.items():
            if isinstance(spec, EncoderSpec):
                accepts = f"rank {', '.join(map(str, spec.ranks))}" + (" + lengths" if spec.sequence else "")
            elif isinstance(spec, FusionSpec):
                accepts = spec.selected_by + ("" if spec.per_modality_blocks else "; no per-modality blocks")
            else:
                accepts = ", ".join(spec.default_modalities()) or "from the data file"
            params = "; ".join(f"{r['parameter']} {r['type']} = {r['default']}" for r in parameter_rows(spec))
            source = spec.source or "built-in"
            rows.append(
                {
                    "name": name,
                    "what it is": spec.description,
                    "accepts" if kind != "datasets" else "modalities": accepts,
                    "parameters": params,
                    "from": source if not spec.package else f"{source}, package {spec.package}",
                }
            )
        out[kind] = rows
    return out

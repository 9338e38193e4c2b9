"""What the launch form offers, read without importing torch: the datasets from their
torch-free specs (`bml_core.dataspecs`), the strategies from theirs (built-ins and
plug-ins: `bml_core.strategies.spec`), the paper presets and the example configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bml_core.config import PRESET_NOTES, PRESETS, StrategyParams
from bml_core.dataspecs import DatasetSpec
from bml_core.plugins import EncoderSpec, FusionSpec, dataset_specs, encoder_specs, fusion_specs
from bml_core.plugins import plugin_errors as model_plugin_errors
from bml_core.strategies.spec import PluginError, StrategySpec, listed_specs, plugin_errors

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    note: str
    needs_path: bool
    modalities: list[str]
    spec: DatasetSpec | None = field(default=None, compare=False)


def datasets() -> dict[str, DatasetEntry]:
    """The datasets by name (built-ins and plug-ins, from their specs), sorted."""
    return {
        name: DatasetEntry(
            name=name,
            note=spec.description,
            needs_path=spec.needs_path,
            modalities=spec.default_modalities(),
            spec=spec,
        )
        for name, spec in dataset_specs().items()
        if spec.listed
    }


def strategy_specs() -> dict[str, StrategySpec]:
    """The listed strategy specs by name: joint, the other built-ins, then plug-ins."""
    return {spec.name: spec for spec in listed_specs() if spec.params.listed}


def strategies() -> dict[str, type[StrategyParams]]:
    """Strategies the launch form lists: name -> parameter model."""
    return {name: spec.params for name, spec in strategy_specs().items()}


def encoders() -> dict[str, EncoderSpec]:
    """The listed encoders (built-ins and plug-ins) by name."""
    return {name: spec for name, spec in encoder_specs().items() if spec.listed}


def fusions() -> dict[str, FusionSpec]:
    """The fusion heads chosen by `model.fusion` (built-ins and plug-ins) by name."""
    return {n: s for n, s in fusion_specs().items() if s.listed and s.selected_by == "model.fusion"}


def all_fusions() -> dict[str, FusionSpec]:
    """Every listed fusion head, those chosen otherwise (`model.head: shared`) too."""
    return {n: s for n, s in fusion_specs().items() if s.listed}


def broken_plugins() -> list[PluginError]:
    """Plug-ins named in BML_PLUGINS or by entry points that failed to load (every kind)."""
    return plugin_errors() + model_plugin_errors()


def presets() -> dict[str, str]:
    """Preset name -> one-line note."""
    return {name: PRESET_NOTES.get(name, "") for name in PRESETS}


def examples() -> dict[str, Path]:
    """The bundled example configs (`examples/*.yaml`) by file name."""
    return {p.name: p for p in sorted(EXAMPLES_DIR.glob("*.yaml"))}


def example_config(name: str) -> dict[str, Any]:
    """One example config as a dict (the file's keys, unvalidated)."""
    data = yaml.safe_load(examples()[name].read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}

"""What the launch form offers, read without importing torch: the registered datasets
(found by reading the `@register_dataset(...)` calls in `bml_core/data/*.py` with `ast`,
because importing `bml_core.data` loads torch), the strategies from their torch-free specs
(built-ins and plug-ins: `bml_core.strategies.spec`) and the paper presets."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bml_core
from bml_core.config import PRESET_NOTES, PRESETS, StrategyParams
from bml_core.strategies.spec import PluginError, StrategySpec, listed_specs, plugin_errors

DATA_PACKAGE_DIR = Path(bml_core.__file__).resolve().parent / "data"

# Modalities each built-in dataset yields by default (docs/ARCHITECTURE.md, "Datasets"):
# offered as the modalities whose encoder the form can set. Other names can be typed in.
DEFAULT_MODALITIES: dict[str, list[str]] = {
    "synthetic": ["audio", "visual"],
    "mfeat": ["pix", "zer"],
    "cremad": ["audio", "visual"],
    "kinetics_sounds": ["audio", "visual"],
    "ucf101": ["rgb", "flow"],
}
# Datasets read from a file or directory under BML_DATA_ROOTS (`dataset.path` required).
DATASETS_WITH_PATH = frozenset({"features", "cremad", "kinetics_sounds", "ucf101"})


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    note: str
    needs_path: bool
    modalities: list[str]


def _registrations(source: str) -> list[tuple[str, str]]:
    """(name, note) of every `@register_dataset("name", "note")` decorator in a module's source."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            if not (isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register_dataset"):
                continue
            args = [a.value for a in deco.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            note_kw = [
                k.value.value
                for k in deco.keywords
                if k.arg == "note" and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
            ]
            if not args:
                continue
            note = args[1] if len(args) > 1 else (note_kw[0] if note_kw else "")
            if not note:
                doc = ast.get_docstring(node) or ""
                note = doc.strip().splitlines()[0] if doc.strip() else ""
            found.append((args[0], note))
    return found


@lru_cache(maxsize=1)
def datasets() -> dict[str, DatasetEntry]:
    """The registered datasets by name (as `bml_core.data.DATASETS` has them), sorted."""
    entries: dict[str, DatasetEntry] = {}
    for module in sorted(DATA_PACKAGE_DIR.glob("*.py")):
        for name, note in _registrations(module.read_text(encoding="utf-8")):
            entries[name] = DatasetEntry(
                name=name,
                note=note,
                needs_path=name in DATASETS_WITH_PATH,
                modalities=list(DEFAULT_MODALITIES.get(name, [])),
            )
    return dict(sorted(entries.items()))


def strategy_specs() -> dict[str, StrategySpec]:
    """The listed strategy specs by name: joint, the other built-ins, then plug-ins."""
    return {spec.name: spec for spec in listed_specs() if spec.params.listed}


def strategies() -> dict[str, type[StrategyParams]]:
    """Strategies the launch form lists: name -> parameter model."""
    return {name: spec.params for name, spec in strategy_specs().items()}


def broken_plugins() -> list[PluginError]:
    """Plug-ins named in BML_PLUGINS or by entry points that failed to load."""
    return plugin_errors()


def presets() -> dict[str, str]:
    """Preset name -> one-line note."""
    return {name: PRESET_NOTES.get(name, "") for name in PRESETS}

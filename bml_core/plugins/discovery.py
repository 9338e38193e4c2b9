"""Discovery of the encoder, fusion-head and dataset plug-ins (the strategies have theirs in
bml_core.strategies.spec): the built-ins (bml_core.plugins.builtin, bml_core.dataspecs), the
entry-point groups `bml.encoders`, `bml.fusions`, `bml.datasets`, and the modules named in
BML_PLUGINS (each module's `SPEC` / `SPECS`, any kind). Torch-free; a broken plug-in is
recorded (`plugin_errors()`) and never takes the built-ins down."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import threading
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bml_core import dataspecs, implref
from bml_core.dataspecs import DatasetSpec
from bml_core.plugins import builtin, seqdata
from bml_core.plugins.specs import EncoderSpec, FusionSpec
from bml_core.strategies.spec import PLUGIN_ENV, PluginError

GROUPS = {"bml.encoders": EncoderSpec, "bml.fusions": FusionSpec, "bml.datasets": DatasetSpec}
KINDS = (EncoderSpec, FusionSpec, DatasetSpec)

_ENCODERS: dict[str, EncoderSpec] = {}
_FUSIONS: dict[str, FusionSpec] = {}
_ERRORS: list[PluginError] = []
_state: dict[str, Any] = {"builtin": False, "plugins": None}
_LOCK = threading.RLock()


def specs_of(obj: Any, kinds: tuple[type, ...] = KINDS) -> list[Any]:
    """The specs of the given kinds that a module (SPEC / SPECS), a spec or a list holds."""
    if isinstance(obj, kinds):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [s for s in obj if isinstance(s, kinds)]
    if isinstance(obj, ModuleType):
        return specs_of(getattr(obj, "SPEC", None), kinds) + specs_of(getattr(obj, "SPECS", ()), kinds)
    return []


def _table(spec: Any) -> dict[str, Any]:
    if isinstance(spec, EncoderSpec):
        return _ENCODERS
    if isinstance(spec, FusionSpec):
        return _FUSIONS
    return dataspecs.DATASET_SPECS


def _register(spec: Any, source: str, package: str = "") -> str | None:
    table = _table(spec)
    known = table.get(spec.name)
    if known is not None and (getattr(known, "source", "") or "built-in") != source:
        return f"{type(spec).__name__} {spec.name!r} is already defined by {known.source or 'built-in'}"
    object.__setattr__(spec, "source", source)
    object.__setattr__(spec, "package", package)
    if isinstance(spec, DatasetSpec):
        dataspecs.register_dataset_spec(spec)
    else:
        table[spec.name] = spec
    return None


def _load(
    source: str, load: Callable[[], Any], kinds: tuple[type, ...], quiet_if_empty: bool, package: str
) -> None:
    try:
        specs = specs_of(load(), kinds)
    except Exception as exc:  # a broken plug-in must not take the built-ins down
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = (
            f" ({last[0].filename}:{last[0].lineno})" if last and not last[0].filename.startswith("<") else ""
        )
        _ERRORS.append(PluginError(source, f"{type(exc).__name__}: {exc}{where}"))
        return
    if not specs and not quiet_if_empty:
        _ERRORS.append(PluginError(source, f"defines no {kinds[0].__name__} (set SPEC = ... or SPECS)"))
    for spec in specs:
        problem = _register(spec, source, package)
        if problem:
            _ERRORS.append(PluginError(source, problem))


def _drop_plugins() -> None:
    for table in (_ENCODERS, _FUSIONS, dataspecs.DATASET_SPECS):
        for name in [n for n, s in table.items() if getattr(s, "source", "") not in ("", "built-in")]:
            del table[name]
            if table is dataspecs.DATASET_SPECS:
                dataspecs.DATASET_PARAMS.pop(name, None)


def discover(refresh: bool = False) -> None:
    """Load the built-ins once and the plug-ins again when BML_PLUGINS changed (or refresh)."""
    with _LOCK:
        if not _state["builtin"]:
            _state["builtin"] = True
            for spec in (*builtin.ENCODERS, *builtin.FUSIONS, seqdata.SPEC):
                _register(spec, "built-in")
            for spec in dataspecs.DATASET_SPECS.values():
                object.__setattr__(spec, "source", spec.source or "built-in")
        plugins = os.environ.get(PLUGIN_ENV, "")
        if not refresh and _state["plugins"] == plugins:
            return
        _drop_plugins()
        _ERRORS.clear()
        _state["plugins"] = plugins
        for name in [p.strip() for p in plugins.split(",") if p.strip()]:
            # a BML_PLUGINS module may hold strategies only: no error for no model plug-ins
            _load(
                f"{PLUGIN_ENV} module {name!r}",
                lambda name=name: importlib.import_module(name),  # type: ignore[misc]
                KINDS,
                True,
                implref.package_of(name),
            )
        for group, kind in GROUPS.items():
            try:
                points = list(importlib.metadata.entry_points(group=group))
            except Exception as exc:  # pragma: no cover - a broken installation's metadata
                _ERRORS.append(PluginError(f"entry points {group}", str(exc)))
                continue
            for ep in points:
                _load(
                    f"entry point {ep.name!r} ({ep.value}, group {group})",
                    ep.load,
                    (kind,),
                    False,
                    implref.dist_of(ep),
                )


def encoder_specs() -> dict[str, EncoderSpec]:
    discover()
    return dict(_ENCODERS)


def fusion_specs() -> dict[str, FusionSpec]:
    discover()
    return dict(_FUSIONS)


def dataset_specs() -> dict[str, DatasetSpec]:
    discover()
    return dataspecs.dataset_specs()


def get_encoder(name: str) -> EncoderSpec | None:
    return encoder_specs().get(name)


def get_fusion(name: str) -> FusionSpec | None:
    return fusion_specs().get(name)


def get_dataset(name: str) -> DatasetSpec | None:
    discover()
    return dataspecs.get_dataset_spec(name)


def plugin_errors() -> list[PluginError]:
    discover()
    return list(_ERRORS)

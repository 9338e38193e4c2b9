"""Strategy specs, the torch-free half of a strategy plug-in (STRATEGIES.md section 1), and
their discovery: built-in packages under bml_core/strategies/, the entry-point group
`bml.strategies`, and the modules named in BML_PLUGINS. The config, the CLI and the
dashboard read specs; only the trainer imports an implementation (`spec.load_impl()`)."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import threading
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from bml_core import implref
from bml_core.schema import StrategyParams, describe_parameters

if TYPE_CHECKING:
    from bml_core.config import RunConfig

COST_CLASSES: dict[str, str] = {
    "none": "no per-step work beyond joint training",
    "cheap": "a few tensor operations per step (no extra forward or backward pass)",
    "extra_forward": "extra forward passes per step",
    "extra_backward": "extra backward passes or gradient evaluations per step",
    "side_training": "trains something besides the model (extra epochs or models)",
}
CAPABILITIES: dict[str, str] = {
    "needs_unimodal_logits_with_grad": "compute_loss receives uni-modal logits u_m that carry gradient",
    "needs_features": "reads the per-modality features h_m",
    "needs_aux_heads": "a linear head per modality on h_m (model.heads: aux creates them)",
    "needs_shared_head": "one head shared by every modality (requires model.head: shared)",
    "needs_val": "reads the validation split during training",
    "needs_heldout": "holds out `heldout_fraction` of the training split (fixed seed; never trained on; "
    "split 'heldout' in ctx.iter_batches / iter_features)",
    "needs_masked_forward": "forwards with some modalities absent (ctx.forward(present=...))",
    "needs_init_snapshot": "keeps a copy of the initial weights",
    "overrides_step": "replaces the default training step (training_step)",
    "overrides_backward": "replaces the default backward pass (backward)",
}
PLUGIN_ENV = "BML_PLUGINS"
ENTRY_POINT_GROUP = "bml.strategies"
BUILTIN_PACKAGE = "bml_core.strategies"

# fn(cfg, params) -> message or None. A rule's message is a config error at `strategies.N`
# (or return (path, message) to name another field); an advisory's is a warning.
Rule = Callable[["RunConfig", "StrategyParams"], "str | tuple[str, str] | None"]
Advisory = Callable[["RunConfig", "StrategyParams"], "str | None"]
# fn(cfg, params) -> {param: value}: the values that let the strategy do its periodic work
# within cfg.train.epochs (e.g. a shorter period), {} when its own values already do.
EpochFit = Callable[["RunConfig", "StrategyParams"], "dict[str, Any]"]


@dataclass(frozen=True)
class MetricFamily:
    """A family of per-step (or per-eval) series a strategy logs, and how Live draws it:
    one panel titled `title`, one line per modality (`<key>/<m>`) when `per_modality`, else
    the single series `<key>`; `reference` draws a horizontal line (e.g. 1.0 = no change).
    `panel` names a panel that several families of the same strategy share (Live never
    draws two strategies on one chart: each strategy's panels are its own)."""

    key: str
    title: str
    y_axis: str = ""
    reference: float | None = None
    per_modality: bool = True
    kind: Literal["step", "eval", "event"] = "step"
    description: str = ""
    panel: str | None = None

    def series(self, modalities: Iterable[str]) -> list[str]:
        return [f"{self.key}/{m}" for m in modalities] if self.per_modality else [self.key]

    def matches(self, series_key: str) -> bool:
        """Whether a logged series belongs to this family."""
        if self.per_modality:
            prefix = self.key + "/"
            return series_key.startswith(prefix) and "/" not in series_key[len(prefix) :]
        return series_key == self.key

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "y_axis": self.y_axis,
            "reference": self.reference,
            "per_modality": self.per_modality,
            "kind": self.kind,
            "description": self.description,
            "panel": self.panel,
        }


@dataclass(frozen=True)
class StrategySpec:
    """Everything about a strategy that does not need torch. `impl` is "module:Class"; the
    module is imported only when a run is built."""

    name: str
    description: str
    params: type[StrategyParams]
    impl: str
    reference: str = ""
    metrics: tuple[MetricFamily, ...] = ()
    advisories: tuple[Advisory, ...] = ()
    rules: tuple[Rule, ...] = ()
    epoch_fit: EpochFit | None = None
    cost: str = "none"
    cost_note: str = ""
    capabilities: frozenset[str] = frozenset()
    listed: bool = True  # the Launch form and /methods show it
    source: str = field(default="", compare=False)  # set by discovery: where it came from
    # the module that declared the spec (found on construction): a relative `impl`
    # (".impl:Class", ":Class") is resolved against it
    module: str = field(default="", compare=False)
    package: str = field(default="", compare=False)  # set by discovery: the distribution of a plug-in

    def __post_init__(self) -> None:
        if not self.module:
            object.__setattr__(self, "module", implref.declaring_module(__name__))
        problems = []
        if self.cost not in COST_CLASSES:
            problems.append(f"cost {self.cost!r} is not one of {', '.join(COST_CLASSES)}")
        unknown = sorted(set(self.capabilities) - set(CAPABILITIES))
        if unknown:
            problems.append(f"unknown capabilities {unknown}; known: {', '.join(CAPABILITIES)}")
        if ":" not in self.impl:
            problems.append(f"impl {self.impl!r} must be 'module:Class'")
        declared = self.params.model_fields["name"].default
        if declared != self.name:
            problems.append(f"params model {self.params.__name__} has name {declared!r}, not {self.name!r}")
        if problems:
            raise ValueError(f"strategy spec {self.name!r}: " + "; ".join(problems))

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def load_impl(self) -> type[Any]:
        """The implementation class (imports its module, which may import torch); `impl` may be
        relative to the declaring module. A module this process lacks is an ImportError naming
        the strategy and the package to install."""
        return implref.load("strategy", self.name, self.impl, self.module)

    def parameters(self) -> list[dict[str, Any]]:
        """The parameters as plain data (name, type, default, bounds, description, choices)."""
        return describe_parameters(self.params)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "reference": self.reference,
            "cost": self.cost,
            "cost_description": COST_CLASSES[self.cost],
            "cost_note": self.cost_note,
            "capabilities": sorted(self.capabilities),
            "parameters": self.parameters(),
            "metrics": [m.as_dict() for m in self.metrics],
            "source": self.source,
            "listed": self.listed,
        }


# --------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class PluginError:
    """A plug-in that could not be loaded: where from, and why (the built-ins still load)."""

    source: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


_SPECS: dict[str, StrategySpec] = {}
_ERRORS: list[PluginError] = []
_state: dict[str, Any] = {"builtin": False, "plugins": None}  # plugins: BML_PLUGINS last loaded
_LOCK = threading.RLock()  # the dashboard runs page scripts on several threads


def _specs_of(obj: Any) -> list[StrategySpec]:
    """The specs a module (SPEC / SPECS), a spec or a list of specs holds."""
    if isinstance(obj, StrategySpec):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [s for s in obj if isinstance(s, StrategySpec)]
    if isinstance(obj, ModuleType):
        found: list[StrategySpec] = []
        if isinstance(getattr(obj, "SPEC", None), StrategySpec):
            found.append(obj.SPEC)
        found += _specs_of(getattr(obj, "SPECS", ()))
        return found
    return []


def _register(specs: list[StrategySpec], source: str, package: str = "") -> list[str]:
    problems = []
    for spec in specs:
        known = _SPECS.get(spec.name)
        if known is not None and known.source != source:
            problems.append(f"strategy {spec.name!r} is already defined by {known.source}")
            continue
        object.__setattr__(spec, "source", source)
        object.__setattr__(spec, "package", package)
        _SPECS[spec.name] = spec
    return problems


def _other_plugin_specs(obj: Any) -> bool:
    """Whether a module holds plug-in specs of another kind (SPEC / SPECS with load_impl)."""
    items = [getattr(obj, "SPEC", None), *getattr(obj, "SPECS", ())] if isinstance(obj, ModuleType) else []
    return any(hasattr(item, "load_impl") and hasattr(item, "kind") for item in items)


def _load(source: str, load: Callable[[], Any], package: str = "") -> None:
    try:
        loaded = load()
        specs = _specs_of(loaded)
    except Exception as exc:  # a broken plug-in must not take the built-ins down
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = (
            f" ({last[0].filename}:{last[0].lineno})" if last and not last[0].filename.startswith("<") else ""
        )
        _ERRORS.append(PluginError(source, f"{type(exc).__name__}: {exc}{where}"))
        return
    if not specs:
        if _other_plugin_specs(loaded):
            return  # a module of encoders, fusion heads or datasets only (bml_core.plugins)
        _ERRORS.append(PluginError(source, "defines no StrategySpec (set SPEC = StrategySpec(...) or SPECS)"))
        return
    for problem in _register(specs, source, package):
        _ERRORS.append(PluginError(source, problem))


def _discover_builtin() -> None:
    package = importlib.import_module(BUILTIN_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(
            f"{BUILTIN_PACKAGE}.{info.name}"
        )  # a broken built-in is a bug: raise
        for problem in _register(_specs_of(module), "built-in"):
            raise RuntimeError(problem)


def _discover_plugins(plugins: str) -> None:
    for name in [p.strip() for p in plugins.split(",") if p.strip()]:
        _load(
            f"{PLUGIN_ENV} module {name!r}",
            lambda name=name: importlib.import_module(name),  # type: ignore[misc]
            implref.package_of(name),
        )
    try:
        points = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # pragma: no cover - a broken installation's metadata
        _ERRORS.append(PluginError(f"entry points {ENTRY_POINT_GROUP}", str(exc)))
        points = []
    for ep in points:
        _load(f"entry point {ep.name!r} ({ep.value})", ep.load, implref.dist_of(ep))


def discover(refresh: bool = False) -> dict[str, StrategySpec]:
    """Every spec by name. Built-ins load once; plug-ins load again when BML_PLUGINS changed
    (or with refresh=True). Failures of plug-ins are kept in `plugin_errors()`."""
    with _LOCK:
        return _discover(refresh)


def _discover(refresh: bool) -> dict[str, StrategySpec]:
    plugins = os.environ.get(PLUGIN_ENV, "")
    if not _state["builtin"]:
        _state["builtin"] = True
        _discover_builtin()
    if refresh or _state["plugins"] != plugins:
        for name in [n for n, s in _SPECS.items() if s.source != "built-in"]:
            del _SPECS[name]
        _ERRORS.clear()
        _state["plugins"] = plugins
        _discover_plugins(plugins)
    return _SPECS


# METHODS.md's reference methods lead the built-ins; the others follow in name order
REFERENCE_METHODS = ("joint", "ogm", "ogm_ge", "opm")


def all_specs() -> list[StrategySpec]:
    """Every discovered spec: built-ins first (joint, ogm, ogm_ge, opm, then the rest in name
    order), then plug-ins."""
    specs = discover()
    lead = {name: i for i, name in enumerate(REFERENCE_METHODS)}
    return sorted(
        specs.values(),
        key=lambda s: (s.source != "built-in", lead.get(s.name, len(lead)), s.name),
    )


def get_spec(name: str) -> StrategySpec | None:
    return discover().get(name)


def plugin_errors() -> list[PluginError]:
    discover()
    return list(_ERRORS)


def listed_specs() -> list[StrategySpec]:
    return [s for s in all_specs() if s.listed]


# --------------------------------------------------------------------------- config checks


def check_rules(cfg: RunConfig) -> list[tuple[str, str]]:
    """Spec rules, capabilities and composition of a validated config: (path, message) each."""
    errors: list[tuple[str, str]] = []
    overriding: dict[str, list[int]] = {"overrides_step": [], "overrides_backward": []}
    for i, params in enumerate(cfg.strategies):
        spec = get_spec(params.name)
        if spec is None:
            continue  # a params model registered without a spec (tests); the runtime refuses it
        where = f"strategies.{i}"
        for rule in spec.rules:
            result = rule(cfg, params)
            if isinstance(result, tuple):
                errors.append(result)
            elif result:
                errors.append((where, result))
        if (
            spec.has("needs_unimodal_logits_with_grad")
            and cfg.model.fusion in ("film", "gated")
            and cfg.model.heads == "split"
        ):
            errors.append(
                (
                    "model.heads",
                    f"{params.name} (strategies.{i}) needs uni-modal logits with gradient; "
                    f"fusion {cfg.model.fusion} has no per-modality blocks: set model.heads: aux",
                )
            )
        if spec.has("needs_shared_head") and cfg.model.head != "shared":
            errors.append(
                (
                    "model.head",
                    f"{params.name} (strategies.{i}) trains one head shared by every modality: "
                    "set model.head: shared",
                )
            )
        for cap, idx in overriding.items():
            if spec.has(cap):
                idx.append(i)
    for cap, idx in overriding.items():
        if len(idx) > 1:
            what = "training step" if cap == "overrides_step" else "backward pass"
            names = " and ".join(f"{cfg.strategies[i].name} (strategies.{i})" for i in idx)
            errors.append((f"strategies.{idx[1]}", f"{names} both replace the {what}; use one of them"))
    return errors


def epoch_fits(cfg: RunConfig) -> list[dict[str, Any]]:
    """Per strategy of the config (in order), the parameter values its spec's `epoch_fit`
    proposes for a run of cfg.train.epochs epochs ({} when none is needed or declared).
    Used by tools that shorten runs (bench/strategy_grid.py); never applied silently."""
    out: list[dict[str, Any]] = []
    for params in cfg.strategies:
        spec = get_spec(params.name)
        fit = spec.epoch_fit if spec is not None else None
        out.append(dict(fit(cfg, params)) if fit is not None else {})
    return out


def spec_advisories(cfg: RunConfig) -> list[str]:
    out: list[str] = []
    for params in cfg.strategies:
        spec = get_spec(params.name)
        for fn in spec.advisories if spec is not None else ():
            msg = fn(cfg, params)
            if msg and msg not in out:
                out.append(msg)
    return out

"""Torch-free. How a plug-in spec points at its implementation: `"module:attr"`, where a
module starting with `.` (or empty, `":attr"`) is relative to the module that declared the
spec, so a plug-in copied or renamed into another package keeps working. The import happens
only when a run is built; a missing module is an error naming the plug-in and its package."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any


class PluginMissingError(ImportError):
    """A run needs a plug-in implementation that this process cannot import."""


def declaring_module(skip: str) -> str:
    """The module whose code constructs the spec: the first frame outside `skip` (the spec
    class's own module, where dataclasses put the generated `__init__`)."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name not in (skip, __name__, "dataclasses"):
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return ""


def resolve(impl: str, module: str) -> tuple[str, str]:
    """`impl` as (absolute module name, attribute)."""
    target, _, attr = impl.partition(":")
    if not target:
        return module, attr
    if target.startswith("."):
        if not module:
            raise ImportError(f"impl {impl!r} is relative but the declaring module is unknown")
        package = module if _is_package(module) else module.rpartition(".")[0]
        return importlib.util.resolve_name(target, package or module), attr
    return target, attr


def _is_package(module: str) -> bool:
    mod = sys.modules.get(module)
    return mod is not None and hasattr(mod, "__path__")


def package_of(module: str) -> str:
    """The distribution that provides a module (for "install it" messages), else its top name."""
    top = module.split(".")[0]
    try:
        import importlib.metadata as md

        dists = md.packages_distributions().get(top)
    except Exception:  # pragma: no cover - broken metadata
        dists = None
    return dists[0] if dists else top


def dist_of(entry_point: Any) -> str:
    """The distribution that declares an entry point ("" when unknown)."""
    dist = getattr(entry_point, "dist", None)
    return str(getattr(dist, "name", "") or "")


def load(kind: str, name: str, impl: str, module: str) -> Any:
    """Import the implementation `impl` of the `kind` plug-in `name`, declared in `module`."""
    target, attr = resolve(impl, module)
    try:
        mod = importlib.import_module(target)
    except ModuleNotFoundError as exc:
        missing = exc.name or target
        raise PluginMissingError(
            f"{kind} {name!r} needs the module {missing!r} (impl {impl!r} of {module or target}), "
            f"which this process cannot import: install the package that provides it "
            f"(pip install {package_of(missing)}) on this machine and its workers, or add its "
            "folder to PYTHONPATH"
        ) from exc
    obj = getattr(mod, attr, None)
    if obj is None:
        raise ImportError(f"{kind} {name!r}: {target} has no {attr!r} (impl = {impl!r})")
    return obj


INSTALL_HINT = (
    "if it is a plug-in, install the package that provides it on this machine (and on the "
    "workers), or name its module in BML_PLUGINS"
)


def unknown_plugin(kind: str, name: str, known: list[str], package: str = "") -> str:
    """The message for a plug-in name nothing declares here: with `package` (the run's
    `requires`, recorded where it was validated), the package to install."""
    if package:
        return (
            f"{kind} {name!r} is a plug-in from the package {package!r}, which this process lacks: "
            f"pip install {package} here (every worker that runs it needs it), or name its module in "
            f"BML_PLUGINS; known: {', '.join(sorted(known))}"
        )
    return f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}; {INSTALL_HINT}"

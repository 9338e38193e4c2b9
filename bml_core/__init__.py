"""bml_core: the ML library of BML Studio. `bml_core.init` / `bml_core.Run` (tracking from
one's own loop, bml_core/tracking) are imported on first use, so `import bml_core` stays light."""

from __future__ import annotations

from typing import Any

_LAZY = {"init": "bml_core.tracking", "Run": "bml_core.tracking", "Balancer": "bml_core.balancer"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bml_core' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["Balancer", "Run", "init"]

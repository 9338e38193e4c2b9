"""A config as dotted paths, written once: `flatten_config` ({'a': {'b': [1, {'c': 2}]}} ->
{'a.b.0': 1, 'a.b.1.c': 2}, the paths `--set` takes) and `diff_configs` (the paths whose
values differ between configs). The store's config diff (`db.config_diff`, the environment
diff) and the Compare grouping (`bml_core.compare.grouping.config_paths`, which adds the
strategy parameters by name, `ogm_ge.alpha`) build on these. Torch-free, standard library only."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

from bml_core.schema import ConfigError

K = TypeVar("K", bound=Hashable)


def flatten_into(node: Any, path: str, out: dict[str, Any], lists: bool = True) -> None:
    """Add `node`'s leaves under `path` to `out`; an empty mapping or list is a leaf, and so
    is every list when `lists` is false (a form field holds a list whole)."""
    if isinstance(node, Mapping) and node:
        for k, v in node.items():
            flatten_into(v, f"{path}.{k}" if path else str(k), out, lists)
    elif lists and isinstance(node, list | tuple) and node:
        for i, v in enumerate(node):
            flatten_into(v, f"{path}.{i}" if path else str(i), out, lists)
    else:
        out[path] = node


def flatten_config(config: Mapping[str, Any], prefix: str = "", lists: bool = True) -> dict[str, Any]:
    """{'a': {'b': [1, {'c': 2}]}} -> {'a.b.0': 1, 'a.b.1.c': 2} (dotted paths as `--set` takes);
    with `lists=False` -> {'a.b': [1, {'c': 2}]}."""
    out: dict[str, Any] = {}
    flatten_into(config, prefix, out, lists)
    return out


def diff_configs(
    configs: Mapping[K, Mapping[str, Any]],
    flatten: Callable[[Mapping[str, Any]], Mapping[str, Any]] = flatten_config,
) -> dict[str, dict[K, Any]]:
    """Dotted paths whose values differ between the configs: {path: {key: value}}; a config
    that lacks the path is left out of that path's dict. `flatten` names the paths (default:
    list positions, `strategies.0.alpha`; Compare passes `compare.grouping.named_paths`,
    strategy parameters by name, `ogm_ge.alpha`)."""
    flat = {key: flatten(cfg) for key, cfg in configs.items()}
    paths = sorted({p for f in flat.values() for p in f})
    out: dict[str, dict[K, Any]] = {}
    for path in paths:
        present = {key: f[path] for key, f in flat.items() if path in f}
        values = list(present.values())
        if len(present) < len(flat) or any(v != values[0] for v in values[1:]):
            out[path] = present
    return out


def apply_override(raw: dict[str, Any], path: list[str], value: Any) -> None:
    """Set `value` at a dotted path inside nested dicts and lists (creating dicts as needed)."""
    node: Any = raw
    for depth, part in enumerate(path):
        last = depth == len(path) - 1
        where = ".".join(path[: depth + 1])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError([(where, f"no list item {part!r} (the list has {len(node)} items)")])
            idx = int(part)
            if last:
                node[idx] = value
            else:
                if node[idx] is None or isinstance(node[idx], str):
                    node[idx] = {"name": node[idx]} if isinstance(node[idx], str) else {}
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                if node.get(part) is None:
                    node[part] = [] if path[depth + 1].isdigit() else {}
                node = node[part]
        else:
            raise ConfigError([(where, "cannot set a key inside a plain value")])

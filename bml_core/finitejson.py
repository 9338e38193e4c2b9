"""The one finite-JSON conversion: a JSON-ready copy of a value (keys strings, tuples lists)
in which NaN and +-inf are written one of two ways, chosen by the caller:

- `"null"` (`None`): the report document and its JSON (`json.dumps(..., allow_nan=False)`
  accepts it; a reader sees "no value"), the benchmarks' JSON;
- `"string"` (`"nan"`, `"inf"`, `"-inf"`): the run's event log `metrics.jsonl` and the alert
  webhook, where a diverged loss must stay visible as what it was.

Torch-free, standard library only."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

NonFinite = Literal["null", "string"]
NON_FINITE_CHOICES: tuple[str, ...] = ("null", "string")


def _check(non_finite: str) -> None:
    if non_finite not in NON_FINITE_CHOICES:
        raise ValueError(f"non_finite={non_finite!r} is not one of {', '.join(NON_FINITE_CHOICES)}")


def finite_float(value: float, non_finite: NonFinite = "null") -> float | str | None:
    """`value` if finite, else None (`"null"`) or its text `"nan"`/`"inf"`/`"-inf"` (`"string"`)."""
    _check(non_finite)
    if math.isfinite(value):
        return value
    return str(float(value)) if non_finite == "string" else None


def finite_json(value: Any, non_finite: NonFinite = "null") -> Any:
    """A JSON-ready copy of `value`: floats through `finite_float`, mappings with string keys,
    lists and tuples as lists, anything else unchanged."""
    _check(non_finite)
    if isinstance(value, float):
        return finite_float(value, non_finite)
    if isinstance(value, Mapping):
        return {str(k): finite_json(v, non_finite) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v, non_finite) for v in value]
    return value

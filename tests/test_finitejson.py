"""bml_core.finitejson: the one finite-JSON conversion, used by the report document (NaN as
null), the event log and the alert webhook (NaN as its text)."""

from __future__ import annotations

import json
import math

import pytest

from bml_core.finitejson import finite_float, finite_json


def test_null_mode_nested() -> None:
    value = {1: (1.5, math.nan), "b": [math.inf, {"c": -math.inf}], "d": "x", "e": None, "f": 3}
    out = finite_json(value)
    assert out == {"1": [1.5, None], "b": [None, {"c": None}], "d": "x", "e": None, "f": 3}
    assert json.loads(json.dumps(out, allow_nan=False)) == out


def test_string_mode_keeps_the_text() -> None:
    out = finite_json({"loss": math.nan, "g": [math.inf, -math.inf, 0.25]}, "string")
    assert out == {"loss": "nan", "g": ["inf", "-inf", 0.25]}
    assert finite_float(-math.inf, "string") == "-inf"
    assert finite_float(2.0, "string") == 2.0 and finite_float(math.nan) is None


def test_bool_and_int_unchanged() -> None:
    assert finite_json([True, 0, 7]) == [True, 0, 7]


def test_unknown_mode_named() -> None:
    with pytest.raises(ValueError, match=r"non_finite='none' is not one of null, string"):
        finite_json(1.0, "none")  # type: ignore[arg-type]


def test_the_callers_share_it() -> None:
    """The sinks, the webhook and the report call this module, not a copy of their own."""
    from bml_core import sinks
    from bml_core.alerts import webhook
    from bml_core.compare import report

    assert sinks.finite_json is finite_json and webhook.finite_json is finite_json
    assert report.finite_json is finite_json
    assert not hasattr(sinks, "_json_safe") and not hasattr(report, "json_ready")

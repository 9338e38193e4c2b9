"""bml_core.compare.fmt.format_p: the one p-value format of Compare, /report and `bml report`."""

from __future__ import annotations

import math

from bml_core.compare.fmt import format_p


def test_three_decimals_and_floor() -> None:
    assert format_p(0.0234) == "0.023"
    assert format_p(1.0) == "1.000"
    assert format_p(0.001) == "0.001"
    assert format_p(0.000999) == "< 0.001"
    assert format_p(1e-4) == "< 0.001"  # was "1.0e-04" on Compare and "< 0.0001" in the report
    assert format_p(0.0) == "< 0.001"


def test_missing_is_the_callers_dash() -> None:
    assert format_p(None) == "—" and format_p(math.nan) == "—" and format_p(math.inf, missing="–") == "–"


def test_page_and_report_write_the_same() -> None:
    from app.views.compare import data as cv
    from bml_core.compare import report

    for p in (0.5, 0.0499, 0.00042, 1e-9):
        assert cv._p(p) == report._p(p) == format_p(p)


def test_p_clause_never_writes_equals_before_less_than() -> None:
    from bml_core.compare.fmt import p_clause

    assert p_clause(0.0004) == "p < 0.001"
    assert p_clause(0.0234) == "p = 0.023"
    assert p_clause(None) == "p = —"

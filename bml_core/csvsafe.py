"""Spreadsheet-safe CSV cells (OWASP "CSV injection"): a text cell starting with = + - @,
a tab or a carriage return is prefixed with a single quote so that Excel, LibreOffice and
Google Sheets show it as text instead of evaluating it as a formula (a group named `=1+2`
or `=HYPERLINK(...)`). Numbers are written as they are: -0.5 stays a number. Every CSV the
product writes goes through `safe_cell` (Compare downloads, `bml export --format csv`)."""

from __future__ import annotations

from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """`value` with a leading ' when it is text that a spreadsheet would run as a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value

"""The one way a p-value is written, on the Compare page, on /report and in `bml report`
(HTML, Markdown, the summary lines): three decimals, and "< 0.001" below that (no
exponent notation, no four-decimal variant). A missing or non-finite p is the caller's
dash (the page writes "—", the report "–")."""

from __future__ import annotations

import math

P_FLOOR = 0.001


def format_p(p: float | None, missing: str = "—") -> str:
    """`0.023`, `1.000`, `< 0.001`; `missing` for None, NaN or inf."""
    if p is None or not math.isfinite(p):
        return missing
    if p < P_FLOOR:
        return f"< {P_FLOOR:g}"
    return f"{p:.3f}"


def p_clause(p: float | None, missing: str = "—") -> str:
    """`p = 0.023`, `p < 0.001` (never `p = < 0.001`); `p = —` when missing."""
    text = format_p(p, missing)
    return f"p {text}" if text.startswith("<") else f"p = {text}"

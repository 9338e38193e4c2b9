"""The Report page's data: which runs the address names (`?group=G` (several allowed),
`?runs=ID,ID`, `&by=PATH,PATH`, `&baseline=LABEL`), and the comparison report of `bml
report` built from them (`services.report.make_report`: the same document, so the page
and the command never disagree), rendered as its self-contained HTML and its JSON.
Plain functions; no Streamlit here."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine


@dataclass
class Report:
    doc: dict[str, Any]
    html: str
    json: str


def split_list(values: Sequence[str]) -> list[str]:
    """`?by=a,b&by=c` -> ['a', 'b', 'c'] (blanks dropped, order kept, each once)."""
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in re.split(r",", v or "") if p.strip())
    return list(dict.fromkeys(out))


def build(
    engine: Engine,
    groups: Sequence[str] = (),
    run_ids: Sequence[int] = (),
    by: Sequence[str] | None = None,
    baseline: str | None = None,
) -> Report:
    """The report of the runs as `bml report --group ... --runs ... --by ... --baseline ...`
    makes it. ValueError / KeyError with the message for the user (unknown group or id,
    a key that is not a config path, an unknown baseline, nothing finished)."""
    from bml_core.compare.report import render_html, render_json
    from services.report import make_report

    doc = make_report(engine, list(groups), list(run_ids), list(by) if by else None, baseline)
    return Report(doc, render_html(doc), render_json(doc))


def file_stem(groups: Sequence[str], run_ids: Sequence[int]) -> str:
    """`report-<groups>` or `report-runs-1-2-3`, safe as a file name (as `bml report` names it)."""
    name = "-".join(groups) if groups else "runs-" + "-".join(str(i) for i in run_ids[:5])
    return "report-" + (re.sub(r"[^A-Za-z0-9_.+-]+", "_", name)[:80] or "runs")

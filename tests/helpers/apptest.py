"""Helpers of the dashboard tests: the whole app under AppTest switched to one page, and
readers for what a page drew (charts, errors, tables)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

APP_DIR = Path(__file__).resolve().parents[2] / "app"
MAIN_SCRIPT = str(APP_DIR / "main.py")


def widget_key(path: str) -> str:
    """The session-state key of a Launch form field's widget (`f:<path>`)."""
    return f"f:{path}"


def open_page(page: str | None = None, timeout_s: float = 60.0, **query: str) -> Any:
    """An AppTest of the whole app (st.navigation), switched to `views/<page>/page.py` with the
    given query parameters, after its first run."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MAIN_SCRIPT, default_timeout=timeout_s)
    at.run()
    if page is not None:
        at.switch_page(f"views/{page}/page.py")
        for k, v in query.items():
            at.query_params[k] = v
        at.run()
    return at


def chart_specs(at: Any) -> list[dict[str, Any]]:
    """The Plotly figures the page drew, as dicts (data + layout): st.plotly_chart ones and
    the mounted charts of Live and Compare (app/plotly_chart.py)."""
    specs = [json.loads(el.proto.spec) for el in at.get("plotly_chart")]
    for el in at.get("bidi_component"):
        if el.proto.component_name == "bml_chart":
            specs.append(json.loads(el.proto.json)["figure"])
    return specs


def errors_of(at: Any) -> list[str]:
    return [e.value for e in at.error]


def _shown(value: Any) -> Any:
    """A st.table cell as the page shows it: the Markdown escapes (app.text.md) removed."""
    return re.sub(r"\\(.)", r"\1", value) if isinstance(value, str) else value


def frame_with(at: Any, column: str) -> Any:
    """The first dataframe or table (st.dataframe, st.table) on the page that has `column`
    (st.dataframe without selection carries no key in AppTest); a table's cells and headers
    as shown (st.table renders Markdown, so the page escapes them)."""
    for df in at.dataframe:
        if column in df.value.columns:
            return df.value
    for table in at.table:
        frame = table.value.copy()
        frame.columns = [_shown(c) for c in frame.columns]
        if column in frame.columns:
            for col in frame.columns:
                frame[col] = [_shown(v) for v in frame[col]]
            return frame
    raise KeyError(f"no dataframe with a {column!r} column")

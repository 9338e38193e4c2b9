"""Layout at laptop and desktop widths (issue 14), in a real browser (Playwright driving
Debian's Chromium) against the dashboard alone, serving a store seeded with finished, running
and queued runs. At 800 px and 1400 px, Launch, Runs, Live and Compare are screenshotted
(into $BML_SCREENSHOT_DIR, else docs/screenshots, as PAGE-WIDTH.png); on each, no text of a
metric, button or page link is cut (ends in "…" or overflows under `text-overflow:
ellipsis`), and no chart's legend box intersects its plot area. The sidebar starts
collapsed at 800 px and open at 1400 px; at 1400 px the Runs table shows id, name, status,
progress, strategy and the Live link without scrolling."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import db
from tests.helpers.browser import launch_browser, open_page, serve_dashboard, wait_idle
from tests.helpers.stored_runs import add_run, summary_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
WIDTHS = (800, 1400)
RUNS_VISIBLE = ("id", "name", "status", "progress", "strategy", "live")

# Texts of metrics, buttons and page links that are cut: "…" at the end, or wider than
# their box under `text-overflow: ellipsis` (what the browser draws as "…").
CUT_TEXT_JS = """
() => {
  const out = [];
  const sel = '[data-testid="stMetric"], [data-testid="stMetric"] *, button, button *, '
            + '[data-testid="stPageLink"], [data-testid="stPageLink"] *';
  for (const el of document.querySelectorAll(sel)) {
    if (!el.getClientRects().length) continue;
    const text = (el.textContent || '').trim();
    const style = getComputedStyle(el);  // the ellipsis is drawn by the box that overflows
    const overflows = style.textOverflow === 'ellipsis' && el.scrollWidth > el.clientWidth + 1;
    if ((!el.children.length && text.endsWith('…')) || overflows) out.push(text);
  }
  return out;
}
"""
# Each Plotly chart: its title, its legend's box and its plot area's box (page pixels).
LEGENDS_JS = """
() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => {
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
  const title = ((el.layout && el.layout.title && el.layout.title.text) || '').replace(/<[^>]*>/g, '');
  return {title, legend: box(el.querySelector('g.legend')), plot: box(el.querySelector('.nsewdrag'))};
})
"""
SIDEBAR_RIGHT_JS = """
() => { const s = document.querySelector('[data-testid="stSidebar"]');
        return s ? s.getBoundingClientRect().right : null; }
"""
# The Runs table's column headers the grid has drawn (it renders the visible columns only).
GRID_HEADERS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"] [role="columnheader"]'))
        .map(h => (h.textContent || '').trim())
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """The dashboard (no worker) on a store with a joint baseline, two finished strategy runs,
    a running and a queued run in one group."""
    home = tmp_path_factory.mktemp("layout")
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    db.upgrade(engine)
    degree = {"audio": 0.74, "visual": 0.55}
    runs = {
        "joint": add_run(engine, "joint", "mfeat-demo", [], steps=150),
        "ogm": add_run(
            engine,
            "ogm-ge alpha 0.8",
            "mfeat-demo",
            ["ogm_ge"],
            steps=150,
            summary=summary_for(0.82, 0.8, degree, 0.19, 9.0),
        ),
        "opm": add_run(engine, "opm", "mfeat-demo", ["opm"], steps=150),
        "running": add_run(engine, "running-ogm", "mfeat-demo", ["ogm_ge"], steps=80, status="running"),
        "queued": add_run(engine, "waiting", "mfeat-demo", ["opm"], status="queued"),
    }
    engine.dispose()
    with serve_dashboard(home) as url:
        yield url, runs


def _shots() -> Path:
    return Path(os.environ.get("BML_SCREENSHOT_DIR") or REPO / "docs" / "screenshots")


def _full_screenshot(page: Any, path: Path, width: int) -> None:
    height = page.evaluate(
        '() => Math.max(...Array.from(document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stAppViewContainer"]\')).map(e => e.scrollHeight), 800)'
    )
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 4000)})
    wait_idle(page)
    page.wait_for_timeout(1200)  # tables and charts draw after the script run
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))


def _intersects(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["left"] < b["right"]
        and b["left"] < a["right"]
        and a["top"] < b["bottom"]
        and b["top"] < a["bottom"]
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_pages_fit_the_window_without_cut_text_or_covered_plots(
    served: tuple[str, dict[str, int]], width: int
) -> None:
    from playwright.sync_api import sync_playwright

    url, runs = served
    pages = {
        "launch": "/launch",
        "runs": "/runs",
        "live": f"/live?run={runs['ogm']}",
        "compare": "/compare?group=mfeat-demo",
    }
    with sync_playwright() as pw:
        browser = launch_browser(pw)
        context = browser.new_context(viewport={"width": width, "height": 1000})
        page = context.new_page()
        try:
            for name, path in pages.items():
                open_page(page, url + path)
                page.wait_for_timeout(1500)  # charts, tables and the sidebar script settle
                right = page.evaluate(SIDEBAR_RIGHT_JS)
                if width <= 1024:
                    assert right is not None and right <= 1, f"{name} at {width}px: the sidebar is open"
                else:
                    assert right is not None and right >= 200, f"{name} at {width}px: the sidebar is closed"
                assert page.evaluate(CUT_TEXT_JS) == [], f"{name} at {width}px: cut texts"
                charts = page.evaluate(LEGENDS_JS)
                if name in ("live", "compare"):
                    assert charts, f"{name} drew no chart"
                for chart in charts:
                    if chart["legend"] and chart["plot"]:
                        assert not _intersects(chart["legend"], chart["plot"]), (name, width, chart)
                if name == "runs" and width == 1400:
                    headers = page.evaluate(GRID_HEADERS_JS)
                    # the grid draws only the columns in view: these, and the one after live, are
                    assert set(RUNS_VISIBLE) | {"ETA"} <= set(headers), headers
                _full_screenshot(page, _shots() / f"{name}-{width}.png", width)
                page.set_viewport_size({"width": width, "height": 1000})
        finally:
            context.close()
            browser.close()

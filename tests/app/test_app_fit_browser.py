"""Tables whose text is cut (issue 25), in a real browser (Playwright driving Debian's
Chromium) against the dashboard alone, at 800 and 1400 px: `/methods` cut "what it does"
mid-sentence at 800 px; `/runs` at 1400 px clipped the name and alert cells ("8 (8 wa") and
its columns after "seed" scrolled away; the Compare results table was clipped at "seeds".
Each page is screenshotted (into $BML_SCREENSHOT_DIR, else /tmp/shots_edges, as
fit-PAGE-WIDTH.png) before the checks: every text named below is on screen whole (an element
holding it lies inside the window and does not overflow its box; text a canvas grid draws
counts only when the grid's column is as wide as the text), and every column of the Runs
table is within the window at 1400 px."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import db
from app.views.methods import data as methods_data
from tests.helpers.browser import launch_browser, open_page, serve_dashboard, wait_idle
from tests.helpers.stored_runs import add_run, summary_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WIDTHS = (800, 1400)
LONG_NAME = "ogm-ge alpha 0.8 warm-up 2 epochs"
ALERTS = "8 (8 warning)"

# Texts shown whole (in the page's first table, or anywhere): for each wanted text, whether an element whose own text is exactly it
# is drawn (has a box), lies inside the window horizontally and does not overflow its box.
# Text inside a canvas grid (stDataFrame) is drawn on the canvas at the column's width: the
# DOM copy there (for screen readers) says nothing about what is seen, so it does not count.
WHOLE_JS = """
([texts, firstTable]) => {
  const out = {};
  const main = document.querySelector('[data-testid="stMain"]');
  const scope = firstTable ? main.querySelector('[data-testid="stDataFrame"], [data-testid="stTable"]') : main;
  const all = scope ? [scope, ...scope.querySelectorAll('*')] : [];
  for (const text of texts) {
    out[text] = all.some(el => {
      if (el.closest('[data-testid="stDataFrame"]')) return false;
      if ((el.textContent || '').trim() !== text) return false;
      const r = el.getBoundingClientRect();
      if (!r.width || !r.height) return false;
      return r.left >= 0 && r.right <= window.innerWidth + 1 && el.scrollWidth <= el.clientWidth + 1;
    });
  }
  return out;
}
"""
# The grids' drawn column headers (a canvas grid renders the columns in view only) and, per
# grid, whether it scrolls sideways.
GRIDS_JS = """
() => Array.from(document.querySelectorAll('[data-testid="stDataFrame"]')).map(g => {
  const scroller = g.querySelector('.dvn-scroller');
  return {headers: Array.from(g.querySelectorAll('[role="columnheader"]')).map(h => (h.textContent || '').trim()),
          scrolls: scroller ? scroller.scrollWidth > scroller.clientWidth + 1 : null,
          right: g.getBoundingClientRect().right};
})
"""
# Widths a grid's cell text needs, in the grid's own font: {text: px}.
TEXT_PX_JS = """
(texts) => { const c = document.createElement('canvas').getContext('2d');
  const g = document.querySelector('[data-testid="stDataFrame"] canvas') || document.body;
  const f = getComputedStyle(g); c.font = `${f.fontWeight} 14px ${f.fontFamily}`;
  const out = {}; for (const t of texts) out[t] = c.measureText(t).width; return out; }
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The dashboard (no worker) on a store with a sweep of joint / OGM-GE / OPM x 2 seeds
    in group `sweep` (one run with a long name and 8 warnings)."""
    home = tmp_path_factory.mktemp("fit")
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    db.upgrade(engine)
    degree = {"audio": 0.74, "visual": 0.55}
    for seed in (0, 1):
        for strategies, acc in (([], 0.70), (["ogm_ge"], 0.78), (["opm"], 0.81)):
            name = (
                LONG_NAME
                if strategies == ["ogm_ge"] and seed == 1
                else f"{'+'.join(strategies) or 'joint'}-{seed}"
            )
            run_id = add_run(
                engine,
                name,
                "sweep",
                strategies,
                seed=seed,
                steps=60,
                summary=summary_for(acc + 0.01, acc + 0.01 * seed, degree, 0.2, 9.0),
            )
            if name == LONG_NAME:
                sink = db.DbMetricSink(engine, run_id, flush_interval_s=0.05, record_status=False)
                for step in range(8):
                    sink.on_alert(
                        {
                            "key": f"dominance:visual:{step}",
                            "detector": "dominance",
                            "severity": "warning",
                            "modality": "visual",
                            "step": step,
                            "message": f"visual under-optimised at step {step}",
                        }
                    )
                sink.close()
    engine.dispose()
    with serve_dashboard(home) as url:
        yield url


def _shots() -> Path:
    return Path(os.environ.get("BML_SCREENSHOT_DIR") or "/tmp/shots_edges")


def _look(page: Any, url: str, name: str, width: int) -> None:
    open_page(page, url)
    page.wait_for_timeout(1500)  # tables and the sidebar script settle
    height = page.evaluate(
        '() => Math.max(...Array.from(document.querySelectorAll(\'[data-testid="stMain"], '
        '[data-testid="stAppViewContainer"]\')).map(e => e.scrollHeight), 800)'
    )
    page.set_viewport_size({"width": width, "height": min(int(height) + 40, 6000)})
    wait_idle(page)
    page.wait_for_timeout(1200)
    _shots().mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(_shots() / f"fit-{name}-{width}.png"))
    page.set_viewport_size({"width": width, "height": 1000})
    page.wait_for_timeout(500)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_browser(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def browser_page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page at the test's width (the sidebar starts as it does for a new visitor)."""
    width = request.node.callspec.params["width"]
    context = browser.new_context(viewport={"width": width, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_methods_shows_what_each_strategy_does_whole(served: str, browser_page: Any, width: int) -> None:
    _look(browser_page, served + "/methods", "methods", width)
    # as the Markdown is drawn: `code` marks gone, <- as an arrow
    wanted = [e.description.replace("`", "").replace("<-", "←") for e in methods_data.methods()]
    whole = browser_page.evaluate(WHOLE_JS, [wanted, True])  # in the table at the top
    assert all(whole.values()), f"cut at {width}px: {[t[:60] for t, ok in whole.items() if not ok]}"


@pytest.mark.parametrize("width", WIDTHS)
def test_runs_table_shows_every_column_and_whole_cells(served: str, browser_page: Any, width: int) -> None:
    from app.views.runs import page_columns

    _look(browser_page, served + "/runs", "runs", width)
    (grid,) = browser_page.evaluate(GRIDS_JS)
    if width == 1400:  # at 800 px the table may scroll sideways; at 1400 px every column is in view
        assert grid["scrolls"] is False and set(grid["headers"]) == {
            page_columns.LABELS.get(c, c) for c in page_columns.COLUMNS
        }, grid
        assert sum(page_columns.WIDTHS.values()) <= page_columns.MAIN_WIDTH_1400_PX
    assert grid["right"] <= width + 1
    # the cell texts, in the grid's font, fit their columns (a canvas grid cuts them otherwise)
    texts = {
        LONG_NAME: "name",
        ALERTS: "alerts",
        "opm+ogm_ge": "strategy",
        "0.8200": "best val acc",
        "1h 02m": "ETA",
        "9999": "id",
    }
    texts.update({s: "status" for s in (*db.RUN_STATUSES, "cancelling")})
    need = browser_page.evaluate(TEXT_PX_JS, list(texts))
    pad = 2 * page_columns.CELL_PADDING_PX
    cut = {t: (c, need[t]) for t, c in texts.items() if need[t] + pad > page_columns.WIDTHS[c]}
    assert cut == {}, cut


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_results_table_shows_every_column_whole(served: str, browser_page: Any, width: int) -> None:
    _look(browser_page, served + "/compare?group=sweep", "compare", width)
    wanted = ["group", "seeds", "0, 1", "joint", "ogm_ge", "opm", "verdict", "baseline", "test", "p (Holm)"]
    whole = browser_page.evaluate(WHOLE_JS, [wanted, True])  # the results table comes first
    assert all(whole.values()), f"cut at {width}px: {[t for t, ok in whole.items() if not ok]}"


GROUP_CELLS_JS = """
() => { const t = document.querySelector('[data-testid="stMain"] [data-testid="stTable"]');
        return t ? Array.from(t.querySelectorAll('tbody tr')).map(r => (r.cells[0].textContent || '').trim()) : null; }
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_compare_and_report_name_the_groups_alike(served: str, browser_page: Any, width: int) -> None:
    """Issue 25: the same group was `joint` on Compare and `strategies=joint` on Report."""
    open_page(browser_page, served + "/compare?group=sweep")
    browser_page.wait_for_selector('[data-testid="stMain"] [data-testid="stTable"] tbody tr', timeout=30_000)
    assert browser_page.evaluate(GROUP_CELLS_JS) == ["joint", "ogm_ge", "opm"]
    _look(browser_page, served + "/report?group=sweep", "report", width)
    frame = next(f for f in browser_page.frames if f != browser_page.main_frame and "ogm_ge" in f.content())
    text = frame.locator("body").inner_text()
    assert "strategies=" not in text and "ogm_ge" in text and "joint" in text
    assert frame.get_by_text("opm: test accuracy", exact=False).count() >= 1, text[:2000]

"""Playwright helpers for the dashboard's browser tests: Debian's Chromium (never a
downloaded browser), waiting for Streamlit to finish a script run, reading what a Plotly
chart holds (decoded points from `_fullData`), and driving Streamlit widgets."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
]
VIEWPORT = {"width": 1400, "height": 1000}

# The traces of the chart whose title starts with `prefix`: {name: [x...]} (bands skipped).
CHART_POINTS_JS = """
(prefix) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const raw = (el.layout && el.layout.title && el.layout.title.text) || '';
    const title = raw.replace(/<[^>]*>/g, '');  // Streamlit's theme wraps titles in <b>
    if (!title.startsWith(prefix) || !el._fullData) continue;
    const out = {};
    for (const t of el._fullData) {
      if (t.fill === 'toself') continue;
      out[t.name] = Array.from(t.x || []);
    }
    return out;
  }
  return null;
}
"""


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_idle(page: Any, timeout_s: float = 30.0) -> None:
    """Until the app's script run (or fragment run) has finished."""
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000
    )


def open_page(page: Any, url: str, timeout_s: float = 30.0) -> None:
    page.goto(url)
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)


def chart_points(page: Any, title_prefix: str) -> dict[str, list[float]] | None:
    """The decoded x values of each line of a chart (None when the chart is not drawn)."""
    return page.evaluate(CHART_POINTS_JS, title_prefix)


def wait_chart(page: Any, title_prefix: str, timeout_s: float = 30.0) -> dict[str, list[float]]:
    page.wait_for_selector('[data-testid="stPlotlyChart"], .bml-live-chart', timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        points = chart_points(page, title_prefix)
        if points and any(points.values()):
            return points
        page.wait_for_timeout(100)
    raise AssertionError(f"no chart titled {title_prefix!r} with points after {timeout_s}s")


def fill(page: Any, container: str, value: str) -> None:
    """Type into the text or number input inside the container keyed `container`, commit."""
    box = page.locator(f".st-key-{container} input").first
    box.fill(value)
    box.press("Enter")
    wait_idle(page)


def pick(page: Any, container: str, option_text: str) -> None:
    """Choose an option of the multiselect / selectbox inside a keyed container."""
    box = page.locator(f".st-key-{container} input").first
    box.click()
    box.fill(option_text)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    wait_idle(page)


def screenshot(page: Any, directory: Path | None, name: str) -> None:
    """A full-height screenshot of the page into `directory` (skipped when None)."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    height = page.evaluate(
        '() => Math.max(...Array.from(document.querySelectorAll(\'[data-testid="stMain"], section.main, '
        '[data-testid="stAppViewContainer"]\')).map(e => e.scrollHeight), 1000)'
    )
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, 4000)})
    page.wait_for_timeout(300)
    page.screenshot(path=str(directory / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)

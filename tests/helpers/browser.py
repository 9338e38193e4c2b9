"""Playwright helpers for the dashboard's browser tests: Debian's Chromium (never a
downloaded browser), waiting for Streamlit to finish a script run, reading what a Plotly
chart holds (decoded points from `_fullData`), and driving Streamlit widgets."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.helpers.net import free_port

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


@contextlib.contextmanager
def chromium_page(viewport: Mapping[str, int] = VIEWPORT) -> Iterator[Any]:
    """One page of Debian's Chromium at `viewport`, closed with its browser afterwards."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch_browser(pw)
        try:
            yield browser.new_page(viewport=dict(viewport))
        finally:
            browser.close()


@contextlib.contextmanager
def serve_app(
    cmd: Sequence[str],
    port: int,
    env: Mapping[str, str],
    log_path: Path,
    *,
    stop: signal.Signals = signal.SIGTERM,
    stop_timeout_s: float = 30.0,
) -> Iterator[str]:
    """Run `cmd` (`bml up` / `bml dashboard` / the app's command line, serving on
    127.0.0.1:port) in a process group of its own with its output in `log_path`; yield its
    URL once `/_stcore/health` answers (the log's tail in the error if it never does); on
    exit send `stop` to the group (SIGINT: `bml up` stops its worker too), then SIGKILL
    after `stop_timeout_s`."""
    from services.processes import wait_until_healthy

    url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            list(cmd), env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            if not wait_until_healthy(url, timeout_s=120, alive=proc):
                raise AssertionError(
                    f"{' '.join(map(str, cmd))} did not serve {url}: {log_path.read_text()[-3000:]}"
                )
            yield url
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, stop)
            try:
                proc.wait(timeout=stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@contextlib.contextmanager
def serve_dashboard(home: Path) -> Iterator[str]:
    """The dashboard alone (no worker) on the store in `home` (BML_HOME), on a free port;
    yields its URL."""
    from services.processes import dashboard_command

    env = {k: v for k, v in os.environ.items() if k not in ("BML_DATABASE_URL", "BML_AUTH")}
    env.update(BML_HOME=str(home), PYTHONUNBUFFERED="1")
    port = free_port()
    with serve_app(
        dashboard_command(port, "127.0.0.1"), port, env, home / "dashboard.log", stop_timeout_s=60
    ) as url:
        yield url


WATCH_RUNS_JS = """
() => {
  if (window.__bmlWatch) return window.__bmlRuns;
  window.__bmlRuns = 0;
  const app = document.querySelector('[data-testid="stApp"]');
  window.__bmlWatch = new MutationObserver(() => {
    if (app.getAttribute('data-test-script-state') === 'running') window.__bmlRuns += 1;
  });
  window.__bmlWatch.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  return window.__bmlRuns;
}
"""


def wait_idle(page: Any, timeout_s: float = 30.0) -> None:
    """Until the app's script run (or fragment run) has finished."""
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout_s * 1000
    )


def after_rerun(page: Any, act: Any, timeout_s: float = 30.0) -> None:
    """Do `act()` (a click, a key press) and wait until the rerun it causes has finished."""
    before = page.evaluate(WATCH_RUNS_JS)
    act()
    page.wait_for_function(
        """(before) => window.__bmlRuns > before && document.querySelector('[data-testid="stApp"]')
            .getAttribute('data-test-script-state') === 'notRunning'""",
        arg=before,
        timeout=timeout_s * 1000,
    )


def open_page(page: Any, url: str, timeout_s: float = 30.0) -> None:
    page.goto(url)
    page.wait_for_selector("h1", timeout=timeout_s * 1000)
    wait_idle(page, timeout_s)


def chart_points(page: Any, title_prefix: str) -> dict[str, list[float]] | None:
    """The decoded x values of each line of a chart (None when the chart is not drawn)."""
    return page.evaluate(CHART_POINTS_JS, title_prefix)


def wait_chart(page: Any, title_prefix: str, timeout_s: float = 30.0) -> dict[str, list[float]]:
    page.wait_for_selector('[data-testid="stPlotlyChart"], .bml-chart', timeout=timeout_s * 1000)
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
    box.wait_for()
    box.fill(value)
    try:
        after_rerun(page, lambda: box.press("Enter"), timeout_s=10)
    except PlaywrightTimeout:
        if box.input_value() != value:  # no rerun is fine only when the value was already there
            raise


def pick(page: Any, container: str, option: str) -> None:
    """Add `option` (the option whose label is it, or starts with it and a space) in the
    multiselect or selectbox inside a keyed container."""
    box = page.locator(f".st-key-{container} input").first
    box.click()
    box.fill(option)
    choice = page.get_by_role("option", name=re.compile(rf"^{re.escape(option)}(\s|$)"))
    after_rerun(page, choice.first.click)
    page.keyboard.press("Escape")


def screenshot(page: Any, directory: Path | None, name: str, width: int | None = None) -> None:
    """A full-height screenshot of the page into `directory` (skipped when None), at the
    viewport's width or `width` pixels."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    wide = width or VIEWPORT["width"]
    if wide != VIEWPORT["width"]:
        page.set_viewport_size({"width": wide, "height": VIEWPORT["height"]})
        wait_idle(page)
        page.wait_for_timeout(1000)  # charts and tables re-lay out at the new width
    height = page.evaluate(
        '() => Math.max(...Array.from(document.querySelectorAll(\'[data-testid="stMain"], section.main, '
        '[data-testid="stAppViewContainer"]\')).map(e => e.scrollHeight), 1000)'
    )
    page.set_viewport_size({"width": wide, "height": min(int(height) + 40, 4000)})
    wait_idle(page)
    page.wait_for_timeout(1500)  # tables and charts draw after the script run
    page.screenshot(path=str(directory / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)


def choose(page: Any, key: str, option: str) -> None:
    """Pick `option` in the selectbox keyed `key` (no rerun when it is already the choice)."""
    box = page.locator(f".st-key-{key}")
    # a rerun can leave the widget's element in the page, still empty, for a moment
    page.wait_for_function(
        "k => { const b = document.querySelector('.st-key-' + k); return b && b.innerText.trim() !== ''; }",
        arg=key,
        timeout=30_000,
    )
    inputs = box.locator("input")
    shown = box.inner_text() + " " + " ".join(inputs.nth(i).input_value() for i in range(inputs.count()))
    if option in shown:
        return
    box.click()
    try:
        after_rerun(page, page.get_by_role("option", name=option).click)
    except PlaywrightTimeout:
        options = page.get_by_role("option").all_inner_texts()
        raise AssertionError(
            f"could not pick {option!r} in {key} (it showed {shown!r}; options {options[:20]!r})"
        ) from None


AXIS_JS = """
(prefix) => {
  for (const el of document.querySelectorAll('.js-plotly-plot')) {
    const title = ((el.layout && el.layout.title && el.layout.title.text) || '').replace(/<[^>]*>/g, '');
    if (title.startsWith(prefix)) return {range: el._fullLayout.xaxis.range, auto: el._fullLayout.xaxis.autorange,
                                          points: el._fullData[0].x.length};
  }
  return null;
}
"""


def x_axis(page: Any, title_prefix: str) -> dict[str, Any] | None:
    """The chart's x range, whether it is automatic, and its first line's point count."""
    return page.evaluate(AXIS_JS, title_prefix)


def drag_zoom(
    page: Any, title_prefix: str, start: float = 0.3, end: float = 0.6, timeout_s: float = 15.0
) -> None:
    """Zoom the chart as a user does: drag across the plot area from `start` to `end` of its
    width, and drag again, until `timeout_s`, when the chart's x axis did not leave autorange:
    a refresh can move the chart (the Live alert strip appearing above it) between finding
    its plot area and the drag, which then lands elsewhere, as a user's would."""
    deadline = time.monotonic() + timeout_s
    while True:
        box = _plot_area(page, title_prefix)
        if box is not None:
            y = box["y"] + box["height"] * 0.5
            page.mouse.move(box["x"] + box["width"] * start, y)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * end, y, steps=8)
            page.mouse.up()
            zoomed_by = time.monotonic() + 2
            while time.monotonic() < zoomed_by:
                axis = x_axis(page, title_prefix)
                if axis is not None and axis["auto"] is False:
                    return
                page.wait_for_timeout(100)
        if time.monotonic() > deadline:
            raise AssertionError(f"could not zoom the chart titled {title_prefix!r} in {timeout_s}s")
        page.wait_for_timeout(100)


def _plot_area(page: Any, title_prefix: str) -> dict[str, float] | None:
    """The on-screen box of the chart's plot area (scrolled into view), None when the chart is
    not there or not laid out yet."""
    charts = page.locator(".js-plotly-plot")
    for i in range(charts.count()):
        chart = charts.nth(i)
        title = chart.evaluate(
            "el => ((el.layout && el.layout.title && el.layout.title.text) || '').replace(/<[^>]*>/g, '')"
        )
        if title.startswith(title_prefix):
            chart.scroll_into_view_if_needed()  # e.g. below an alert strip: mouse events need it on screen
            box: dict[str, float] | None = chart.locator(".nsewdrag").first.bounding_box()
            return box
    return None

"""User text is inert in a real browser (issue 15): runs named with Markdown image and link
syntax are stored, `bml dashboard` serves them from a temporary BML_HOME on a free port, and
Chromium (through Playwright, every request recorded) opens Overview, Runs, Live and Compare.
The names appear as literal text, no <img> or <a> carries their address, and the browser
asks nothing of any host but the dashboard's own. The address is a documentation one
(198.51.100.0/24, TEST-NET-2): nothing is contacted even if the test failed."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

import db
from app.text import JOINER
from tests.helpers.browser import open_page, serve_app
from tests.helpers.net import free_port
from tests.helpers.stored_runs import add_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

HOST = "198.51.100.7"
IMAGE_NAME = f"![i](http://{HOST}/t.png)"
LINK_NAME = f"[x](http://{HOST}/)"
MAIL_NAME = "ops@docs.example www.docs.example"  # GFM autolink literals (mailto:, http://www.)
GROUP = f"[g](http://{HOST}/g)"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

# Elements whose URL (resolved against the page) is on the foreign host: what would fetch it
# or link to it. The dashboard's own links may carry the name in a query string.
ACTIVE_JS = """
(host) => Array.from(document.querySelectorAll('img, a, link, script, iframe, source, video, audio, object'))
  .filter(el => ['src', 'href', 'data', 'srcset'].some(a => {
    const v = el.getAttribute(a);
    if (!v) return false;
    return v.split(',').some(part => {
      try { return new URL(part.trim().split(' ')[0], document.baseURI).hostname === host; }
      catch (e) { return false; }
    });
  }))
  .map(el => el.outerHTML.slice(0, 300))
"""


@dataclass
class Dashboard:
    url: str
    image_run: int
    link_run: int


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory: pytest.TempPathFactory, bml_exe: str) -> Iterator[Dashboard]:
    home = tmp_path_factory.mktemp("plain-home")
    engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
    db.upgrade(engine)
    image_run = add_run(engine, IMAGE_NAME, GROUP, seed=0, steps=60)
    link_run = add_run(engine, LINK_NAME, GROUP, seed=1, steps=60)
    add_run(engine, MAIL_NAME, "mail", seed=2, steps=20)
    engine.dispose()
    env = {k: v for k, v in os.environ.items() if k not in ("BML_DATABASE_URL", "BML_BROKER_URL", "BML_AUTH")}
    env.update(BML_HOME=str(home), PYTHONUNBUFFERED="1")
    port = free_port()
    with serve_app([bml_exe, "dashboard", "--port", str(port)], port, env, home / "dashboard.log") as url:
        yield Dashboard(url, image_run, link_run)


def _shown_text(page: Any) -> str:
    """What a visitor reads: the page's text (without the invisible WORD JOINER that
    app.text.md puts inside `://`), a selectbox's choice (the value of its input: Live's run
    picker), and the cells of a data grid (drawn on a canvas; read from the DOM it keeps for
    accessibility)."""
    text = page.inner_text("body")
    text += "\n".join(page.eval_on_selector_all("input", "els => els.map(e => e.value)"))
    text += page.evaluate(
        '() => Array.from(document.querySelectorAll(\'[data-testid="stDataFrame"] td, '
        '[data-testid="stDataFrame"] [role="gridcell"]\')).map(e => e.textContent).join(\'\\n\')'
    )
    return str(text).replace(JOINER, "")


@pytest.mark.parametrize(
    ("page_name", "path", "expected"),
    [
        ("overview", "/", [IMAGE_NAME, LINK_NAME, GROUP, MAIL_NAME]),
        ("runs", "/runs", [IMAGE_NAME, LINK_NAME, MAIL_NAME]),
        ("live", "/live?run={image_run}", [IMAGE_NAME]),
        ("compare", "/compare?group=" + quote(GROUP, safe=""), [GROUP]),
    ],
)
def test_markdown_in_names_is_text_and_loads_nothing(
    dashboard: Dashboard, browser: Any, page_name: str, path: str, expected: list[str]
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    try:
        open_page(page, dashboard.url + path.format(image_run=dashboard.image_run), timeout_s=60)
        deadline = time.monotonic() + 30  # tables, pickers and charts draw after the script run
        while True:
            shown = _shown_text(page)
            missing = [name for name in expected if name not in shown]
            if not missing or time.monotonic() > deadline:
                break
            page.wait_for_timeout(250)
        assert not missing, f"{page_name}: {missing!r} not shown as text in {shown[-2000:]!r}"
        page.wait_for_timeout(500)
        assert page.evaluate(ACTIVE_JS, HOST) == [], f"{page_name}: an element points at {HOST}"
        autolinks = page.eval_on_selector_all(
            "a[href^='mailto:'], a[href*='docs.example']", "els => els.map(e => e.outerHTML)"
        )
        assert autolinks == [], f"{page_name}: user text became a link"
        foreign = [u for u in requests if (urlsplit(u).hostname or "") not in LOCAL_HOSTS]
        assert not [u for u in foreign if not u.startswith(("data:", "blob:"))], foreign
        assert requests, "the recorder saw the page's own requests"
    finally:
        context.close()

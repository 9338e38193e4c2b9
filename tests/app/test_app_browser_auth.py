"""The login end to end in a real browser against `bml up --auth` (its own BML_HOME, a free
port, accounts made with `bml user add`): without a login every page and deep link shows
the login form and no data; wrong passwords are refused, then throttled; a viewer sees the
runs but is offered no Launch, Cancel or Delete; an operator launches and cancels their own
run but is offered nothing on another's; an admin deletes; a reload keeps the login and
logout ends it. The store confirms each outcome and its audit trail."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

import db
from tests.helpers.browser import choose, fill, open_page, serve_app, wait_idle
from tests.helpers.net import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORDS = {"ada": "ada-admin-pw", "otto": "otto-operator-pw", "olga": "olga-operator-pw", "vic": "vic-viewer-pw", "tom": "tom-viewer-pw"}  # fmt: skip
ROLES = {"ada": "admin", "otto": "operator", "olga": "operator", "vic": "viewer", "tom": "viewer"}
TINY_RUN = {
    "name": "olga-run",
    "group": "shared",
    "dataset": {"params": {"num_samples": 200}},
    "model": {"feature_dim": 8, "encoders": {"audio": {"hidden_dim": 16}, "visual": {"hidden_dim": 16}}},
    "train": {"epochs": 1, "batch_size": 32, "threads": 1},
}


@dataclass
class Studio:
    url: str
    home: Path
    engine: Engine
    env: dict[str, str]


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, bml_exe: str) -> Iterator[Studio]:
    home = tmp_path_factory.mktemp("studio-auth")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("BML_DATABASE_URL", "BML_BROKER_URL", "BML_USER", "BML_AUTH")
    }
    env.update(BML_HOME=str(home), PYTHONUNBUFFERED="1", BML_TORCH_THREADS="1")
    subprocess.run([bml_exe, "db", "upgrade"], env=env, check=True, capture_output=True)
    for name, password in PASSWORDS.items():
        subprocess.run(
            [bml_exe, "user", "add", name, "--role", ROLES[name], "--password-stdin"],
            env=env, input=password + "\n", text=True, check=True, capture_output=True,
        )  # fmt: skip
    port = free_port()
    up = [bml_exe, "up", "--auth", "--port", str(port)]
    with serve_app(up, port, env, home / "up.log", stop=signal.SIGINT, stop_timeout_s=60) as url:
        engine = db.make_engine(f"sqlite:///{home / 'bml.db'}")
        yield Studio(url, home, engine, env)
        engine.dispose()


@contextlib.contextmanager
def visitor(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own cookies) and page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def log_in(
    page: Any, studio: Studio, user: str, password: str | None = None, next_path: str = "/runs"
) -> None:
    page.goto(f"{studio.url}/_bml/login?next={next_path}")
    page.fill("#user", user)
    page.fill("#password", password or PASSWORDS[user])
    page.click("button[type=submit]")


def wait_status(engine: Engine, run_id: int, statuses: set[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while db.get_run(engine, run_id).status not in statuses:
        assert time.monotonic() < deadline, f"run {run_id} is {db.get_run(engine, run_id).status}"
        time.sleep(0.2)


def buttons(page: Any) -> set[str]:
    return {t.strip() for t in page.locator("[data-testid='stButton'] button").all_inner_texts()}


def test_login_roles_and_logout(studio: Studio, browser: Any, bml_exe: str, tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.json"
    cfg.write_text(json.dumps(TINY_RUN))
    out = subprocess.run(
        [bml_exe, "submit", str(cfg)],
        env={**studio.env, "BML_USER": "olga"},
        capture_output=True,
        text=True,
        check=True,
    )
    olga_run = int(out.stdout.split()[0])

    # not logged in: every page and deep link shows the login form, no data
    with visitor(browser) as page:
        for path in ("/", "/launch", "/runs", f"/live?run={olga_run}", "/compare?group=shared", "/workers"):
            page.goto(f"{studio.url}{path}")
            page.wait_for_selector("#password")
            assert "/_bml/login" in page.url and "Log in to BML Studio" in page.content()
            assert "olga-run" not in page.content()
        cookies = page.context.cookies()
        assert not any(c["name"] == "bml_session" for c in cookies)

        # wrong passwords are refused, then throttled (the right one waits too)
        for _ in range(2):
            log_in(page, studio, "tom", "wrong-password")
            page.wait_for_selector("[role=alert]")
            assert "wrong user name or password" in page.inner_text("[role=alert]")
        log_in(page, studio, "tom", "wrong-password")
        assert "too many failed logins" in page.inner_text("[role=alert]")
        log_in(page, studio, "tom")
        assert "too many failed logins" in page.inner_text("[role=alert]") and "/_bml/login" in page.url

    # a viewer sees the runs, but no Launch, Cancel or Delete; reload keeps the login; logout ends it
    with visitor(browser) as page:
        log_in(page, studio, "vic", next_path=f"/live?run={olga_run}")
        page.wait_for_url(f"**/live?run={olga_run}")
        wait_idle(page)
        cookie = next(c for c in page.context.cookies() if c["name"] == "bml_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
        assert page.evaluate("document.cookie").find("bml_session") == -1  # not readable by scripts
        open_page(page, f"{studio.url}/runs")
        page.wait_for_selector(".st-key-runs_pick input")
        assert "olga-run" in page.locator(".st-key-runs_pick input").first.input_value()  # runs listed
        assert not buttons(page) & {"Cancel", "Delete", "Retry (clone)"}
        assert "Signed in as vic (viewer)" in page.inner_text("body")
        page.reload()
        page.wait_for_selector("h1")
        wait_idle(page)
        assert "/_bml/login" not in page.url and "Runs" in page.inner_text("h1")
        open_page(page, f"{studio.url}/launch")
        page.get_by_text("launching runs needs the operator or admin role").wait_for()
        assert page.locator(".st-key-launch_button").count() == 0
        page.get_by_role("link", name="Log out").click()
        page.wait_for_selector("#password")
        page.goto(f"{studio.url}/runs")
        page.wait_for_selector("#password")
        assert "/_bml/login" in page.url

    # an operator launches and cancels their own run, and is offered nothing on another's
    with visitor(browser) as page:
        log_in(page, studio, "otto", next_path="/launch")
        page.wait_for_url("**/launch")
        open_page(page, page.url)
        fill(page, "field-name", "otto-run")
        fill(page, "field-train-epochs", "500")
        page.get_by_role("button", name="Launch 1 run").click()
        page.wait_for_selector(".st-key-launched-runs", timeout=30_000)
        otto_run = db.list_runs(studio.engine, owner="otto").runs[0]
        assert otto_run.name == "otto-run"
        open_page(page, f"{studio.url}/runs")
        choose(page, "runs_pick", f"#{otto_run.id} otto-run")
        assert "Cancel" in buttons(page)
        page.get_by_role("button", name="Cancel").click()
        page.get_by_text(f"Run {otto_run.id}").first.wait_for()
        wait_status(studio.engine, otto_run.id, {"cancelled"}, timeout_s=60)
        choose(page, "runs_pick", f"#{olga_run} olga-run")
        assert not buttons(page) & {"Cancel", "Delete", "Retry (clone)"}

    # an admin deletes another user's run
    wait_status(studio.engine, olga_run, {"succeeded", "failed"}, timeout_s=120)
    with visitor(browser) as page:
        log_in(page, studio, "ada")
        page.wait_for_url("**/runs")
        open_page(page, page.url)
        choose(page, "runs_pick", f"#{olga_run} olga-run")
        page.get_by_role("button", name="Delete").click()
        page.get_by_role("button", name="Yes, delete").click()
        page.get_by_test_id("stAlertContentSuccess").get_by_text(
            f"Run {olga_run} and all its data deleted."
        ).wait_for(timeout=30_000)
    with pytest.raises(db.RunNotFound):
        db.get_run(studio.engine, olga_run)
    trail = {(a.actor, a.action, a.run_id) for a in db.audit_events(studio.engine)}
    assert {("otto", "cancel", otto_run.id), ("ada", "delete", olga_run)} <= trail
    log_text = (studio.home / "logs" / "dashboard.log").read_text()
    for password in PASSWORDS.values():
        assert password not in log_text
    assert "argon2" not in log_text

"""`BML_AUTH=oidc` end to end: `bml dashboard` logs people in through Streamlit's st.login
against a small OIDC provider the test runs on 127.0.0.1 (tests/app/oidc_provider.py), and
maps each to a role by e-mail, group or the default, as BML_OIDC_ROLES says. Plus the role
mapping itself."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from oidc_provider import OidcProvider

from app.oidc import role_for
from tests.helpers.browser import launch_browser, open_page, serve_app, wait_idle
from tests.helpers.net import free_port

ROLES = {"group:ml-admins": "admin", "bob@lab.example": "operator", "@blocked.example": "viewer"}


def test_role_mapping_by_email_group_and_domain() -> None:
    assert role_for("Bob@Lab.example", [], ROLES, "viewer") == "operator"
    assert role_for("carol@lab.example", ["ml-admins"], ROLES, "viewer") == "admin"
    assert role_for("bob@lab.example", ["ml-admins"], ROLES, "viewer") == "admin"  # the highest wins
    assert role_for("eve@blocked.example", [], ROLES, None) == "viewer"
    assert role_for("dave@else.example", [], ROLES, "viewer") == "viewer"
    assert role_for("dave@else.example", [], ROLES, None) is None


@pytest.mark.browser
@pytest.mark.slow
def test_oidc_login_maps_people_to_roles(tmp_path: Path, bml_exe: str) -> None:
    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    provider = OidcProvider("bml-studio", "client-secret-for-tests", f"{url}/oauth2callback").start()
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("BML_DATABASE_URL", "BML_BROKER_URL", "BML_USER")}
    env.update(
        BML_HOME=str(home),
        BML_AUTH="oidc",
        BML_OIDC_METADATA_URL=provider.metadata_url,
        BML_OIDC_CLIENT_ID="bml-studio",
        BML_OIDC_CLIENT_SECRET="client-secret-for-tests",
        BML_OIDC_REDIRECT_URI=f"{url}/oauth2callback",
        BML_OIDC_ROLES=json.dumps(ROLES),
        BML_OIDC_DEFAULT_ROLE="viewer",
    )
    subprocess.run([bml_exe, "db", "upgrade"], env=env, check=True, capture_output=True)
    try:
        with (
            serve_app([bml_exe, "dashboard", "--port", str(port)], port, env, tmp_path / "dashboard.log"),
            sync_playwright() as pw,
        ):
            browser = launch_browser(pw)
            for email, groups, role in (
                ("bob@lab.example", [], "operator"),
                ("carol@lab.example", ["ml-admins"], "admin"),
                ("dave@else.example", [], "viewer"),
            ):
                context = browser.new_context(viewport={"width": 1400, "height": 1000})
                page = context.new_page()
                open_page(page, f"{url}/runs")
                assert "Log in to BML Studio" in page.inner_text("h1")
                provider.next_user = {"sub": email, "email": email, "groups": groups, "name": email}
                page.get_by_role("button", name="Log in with your organisation's account").click()
                page.get_by_text(f"Signed in as {email} ({role})").wait_for(timeout=60_000)
                assert f"{url}/" in page.url and "127.0.0.1:" + str(port) in page.url
                page.reload()  # the login survives a reload
                page.get_by_text(f"Signed in as {email} ({role})").wait_for(timeout=60_000)
                wait_idle(page)
                open_page(page, f"{url}/launch")
                launch_offered = page.locator(".st-key-launch_button").count() > 0
                assert launch_offered is (role != "viewer")
                context.close()
            browser.close()
        assert "/token" in provider.requests and "/jwks" in provider.requests
    finally:
        provider.stop()

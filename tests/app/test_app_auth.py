"""The dashboard's login without a browser: the bind refusal of `bml up` / `bml dashboard`
(exit 2 with how to turn the login on; `--insecure-no-auth` overrides loudly), the signed
session cookie (tampered, expired or foreign cookies are rejected; the key file is 0600),
and the login routes and middleware of app/login.py driven as an ASGI app: deep links go to
the form, a good password sets an HttpOnly cookie, a wrong one is refused and throttled,
logout voids the cookie even if it is replayed."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import typer
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import db
from app import auth, login
from db import accounts

KEY = b"k" * 32


def test_up_and_dashboard_refuse_a_public_bind_without_login(bml_exe: str, _isolated_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "BML_AUTH"}
    for cmd in (
        ["up", "--host", "0.0.0.0"],
        ["dashboard", "--host", "0.0.0.0"],
        ["up", "--host", "192.168.1.5"],
    ):
        out = subprocess.run(
            [bml_exe, *cmd, "--port", "1"], capture_output=True, text=True, timeout=60, env=env
        )
        assert out.returncode == 2, (cmd, out.stderr)
        assert "without a login" in out.stderr and "--auth" in out.stderr
        assert "bml user add NAME --role admin" in out.stderr and "--insecure-no-auth" in out.stderr
    # the login on but no account to log in with: refused too, saying the first step
    out = subprocess.run(
        [bml_exe, "up", "--auth", "--host", "0.0.0.0", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 2 and "no account" in out.stderr and "bml user add" in out.stderr


def test_insecure_no_auth_overrides_loudly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bml_cli.dashboard_cmd import resolve_auth

    monkeypatch.setenv("BML_AUTH", "off")  # restored after the test (resolve_auth sets it)
    assert resolve_auth("0.0.0.0", auth=False, insecure_no_auth=True) == "off"
    assert "WITHOUT A LOGIN" in capsys.readouterr().err
    assert resolve_auth("127.0.0.1", auth=False, insecure_no_auth=False) == "off"
    assert resolve_auth("0.0.0.0", auth=True, insecure_no_auth=False) == "local"
    assert os.environ["BML_AUTH"] == "local"
    monkeypatch.setenv("BML_AUTH", "ldap")
    with pytest.raises(typer.Exit):
        resolve_auth("127.0.0.1", auth=False, insecure_no_auth=False)
    assert auth.is_loopback("::1") and auth.is_loopback("localhost") and auth.is_loopback("127.0.0.2")
    assert not auth.is_loopback("0.0.0.0") and not auth.is_loopback("example.org")


def test_session_cookie_is_signed_and_expires() -> None:
    value = auth.make_session("ada", KEY, ttl_s=60, now=1000.0)
    session = auth.read_session(value, KEY, now=1030.0)
    assert session is not None and session.user == "ada" and session.expires_at == 1060.0
    assert auth.read_session(value, KEY, now=1061.0) is None  # expired
    assert auth.read_session(value, b"x" * 32, now=1030.0) is None  # another key
    payload, signature = value.split(".")
    forged = auth.make_session("root", KEY, ttl_s=60, now=1000.0).split(".")[0]
    assert auth.read_session(f"{forged}.{signature}", KEY, now=1030.0) is None  # payload swapped
    assert auth.read_session(f"{payload}.{signature[:-2]}AA", KEY, now=1030.0) is None
    for junk in ("", "abc", "a.b.c", ".", None):
        assert auth.read_session(junk, KEY) is None


def test_secret_key_file_is_private_and_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BML_SECRET_KEY", raising=False)
    key = auth.secret_key(tmp_path)
    assert len(key) == 64 and auth.secret_key(tmp_path) == key
    assert stat.S_IMODE((tmp_path / auth.SECRET_FILE).stat().st_mode) == 0o600
    monkeypatch.setenv("BML_SECRET_KEY", "short")
    with pytest.raises(auth.AuthConfigError, match="too short"):
        auth.secret_key(tmp_path)


# --------------------------------------------------------------------------- the routes


def call(
    app: Any, method: str, path: str, *, cookie: str | None = None, form: dict[str, str] | None = None
) -> tuple[int, dict[str, list[str]], str]:
    """One HTTP request to an ASGI app: (status, headers, body)."""
    path, _, query = path.partition("?")
    body = urlencode(form).encode() if form else b""
    headers = [(b"host", b"testserver")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    if form is not None:
        headers.append((b"content-type", b"application/x-www-form-urlencoded"))
    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "headers": headers, "scheme": "http", "server": ("testserver", 80), "client": ("127.0.0.1", 5000),
        "http_version": "1.1", "root_path": "",
    }  # fmt: skip
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    out: dict[str, list[str]] = {}
    for k, v in start["headers"]:
        out.setdefault(k.decode().lower(), []).append(v.decode())
    text = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body").decode()
    return start["status"], out, text


@pytest.fixture
def site(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The login routes and middleware around a stand-in page, on this test's store."""
    monkeypatch.setenv("BML_SECRET_KEY", "s" * 32)
    login._engine.cache_clear()
    admin = db.Actor("root", "admin")
    accounts.add_user(engine, "ada", "admin", "correct horse", actor=admin)
    accounts.add_user(engine, "vic", "viewer", "battery staple", actor=admin)

    async def page(request: Any) -> PlainTextResponse:
        return PlainTextResponse("secret data")

    app = Starlette(
        routes=[*login.routes(), Route("/{path:path}", page)], middleware=[Middleware(login.LoginRequired)]
    )
    yield app
    login._engine.cache_clear()


def session_cookie(headers: dict[str, list[str]]) -> str:
    (value,) = [c for c in headers.get("set-cookie", []) if c.startswith(auth.COOKIE_NAME + "=")]
    return value


def test_deep_links_need_a_login_that_sets_an_httponly_cookie(site: Any) -> None:
    for path in ("/", "/runs", "/live?run=7", "/compare?group=g"):
        status, headers, body = call(site, "GET", path)
        assert status == 303 and "secret data" not in body
        assert headers["location"][0].startswith("/_bml/login?next=")
    status, _, body = call(site, "GET", "/_bml/login?next=%2Flive%3Frun%3D7")
    assert status == 200 and 'name="password"' in body and 'value="/live?run=7"' in body
    assert call(site, "GET", "/_stcore/health")[0] == 200  # assets and health stay open

    status, headers, _ = call(
        site, "POST", "/_bml/login", form={"user": "vic", "password": "battery staple", "next": "/live?run=7"}
    )
    assert status == 303 and headers["location"] == ["/live?run=7"]
    cookie = session_cookie(headers)
    attrs = [a.strip().lower() for a in cookie.split(";")]
    assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
    assert any(a.startswith("max-age=") for a in attrs)
    value = cookie.split(";")[0]
    assert "battery" not in value
    status, _, body = call(site, "GET", "/live?run=7", cookie=value)
    assert status == 200 and body == "secret data"
    # a tampered cookie (another user in the payload, the old signature) is rejected
    payload, signature = value.split("=", 1)[1].split(".")
    forged = auth.make_session("ada", b"wrong key wrong key", 3600).split(".")[0]
    assert call(site, "GET", "/runs", cookie=f"{auth.COOKIE_NAME}={forged}.{signature}")[0] == 303
    # an open redirect is not possible
    _, headers, _ = call(
        site,
        "POST",
        "/_bml/login",
        form={"user": "vic", "password": "battery staple", "next": "//evil.example/x"},
    )
    assert headers["location"] == ["/"]


def test_logout_voids_the_cookie_even_when_replayed(site: Any) -> None:
    _, headers, _ = call(
        site, "POST", "/_bml/login", form={"user": "ada", "password": "correct horse", "next": "/"}
    )
    value = session_cookie(headers).split(";")[0]
    assert call(site, "GET", "/runs", cookie=value)[0] == 200
    status, headers, body = call(site, "GET", "/_bml/logout", cookie=value)
    assert status == 200 and "logged out" in body
    assert any("max-age=0" in c.lower() or "expires=" in c.lower() for c in headers["set-cookie"])
    assert call(site, "GET", "/runs", cookie=value)[0] == 303


def test_wrong_passwords_are_refused_then_throttled(site: Any, engine: Engine) -> None:
    for _ in range(accounts.free_failures - 1):
        status, headers, body = call(
            site, "POST", "/_bml/login", form={"user": "ada", "password": "nope", "next": "/"}
        )
        assert status == 401 and "wrong user name or password" in body and "set-cookie" not in headers
    status, _, body = call(site, "POST", "/_bml/login", form={"user": "ada", "password": "nope", "next": "/"})
    assert status == 429 and "too many failed logins" in body
    status, headers, body = call(
        site, "POST", "/_bml/login", form={"user": "ada", "password": "correct horse", "next": "/"}
    )
    assert status == 429 and "set-cookie" not in headers  # locked: even the right password waits
    assert "correct horse" not in body

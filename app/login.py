"""Server-side login for `BML_AUTH=local`: Starlette routes mounted next to Streamlit by
`app/asgi.py` (Streamlit's `st.App`), because a Streamlit page script cannot set an
HttpOnly cookie.

- `GET /_bml/login?next=PATH`: a plain HTML form (user, password).
- `POST /_bml/login`: checks the password (`db.authenticate`, throttled per user in the
  store); on success sets the signed, expiring `bml_session` cookie (HttpOnly,
  SameSite=Lax, Secure over https) and redirects to PATH; otherwise answers 401 (429 while
  the account is locked) with the form and the reason.
- `GET|POST /_bml/logout`: ends every session of the user (`db.accounts.end_sessions`),
  clears the cookie and shows the form.
- `LoginRequired` (middleware): a page request (`/`, `/runs`, `/live?run=7`, ...) without a
  valid session is redirected to the form with the deep link in `next`, so no page is served
  before login. The page script checks the session again on every run (`app/access.py`):
  the websocket that carries the data is never trusted on its own."""

from __future__ import annotations

import html
import logging
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from app.auth import COOKIE_NAME, make_session, read_session, secret_key, session_ttl_s

log = logging.getLogger("bml.login")
LOGIN_PATH = "/_bml/login"
LOGOUT_PATH = "/_bml/logout"
# paths the middleware lets through: Streamlit's assets and API, and the login itself
OPEN_PREFIXES = ("/_stcore/", "/static/", "/media/", "/component/", "/_bml/", "/app/static/")


@lru_cache(maxsize=1)
def _engine() -> Engine:
    import db

    return db.make_engine()


def safe_next(target: str | None) -> str:
    """A local path to go back to after login (never another site)."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    return target


def session_user(request: Request) -> str | None:
    """The user of the request's valid session cookie (signature, expiry, not logged out)."""
    import db.accounts

    session = read_session(request.cookies.get(COOKIE_NAME), secret_key())
    if session is None:
        return None
    issued = datetime.fromtimestamp(session.issued_at, UTC)
    actor = db.accounts.session_actor(_engine(), session.user, issued)
    return None if actor is None else actor.name


def _form(next_path: str, message: str = "", user: str = "", status: int = 200) -> HTMLResponse:
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in · BML Studio</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: sans-serif; background: #f6f7f9; display: flex; justify-content: center; }}
main {{ background: #fff; margin-top: 10vh; padding: 2rem 2.5rem; border-radius: 8px;
        box-shadow: 0 1px 4px #0002; min-width: 18rem; }}
label {{ display: block; margin: .8rem 0 .2rem; }}
input {{ width: 100%; padding: .4rem; box-sizing: border-box; }}
button {{ margin-top: 1.2rem; padding: .5rem 1.2rem; }}
.error {{ color: #b00020; }}
</style></head>
<body><main>
<h1>Log in to BML Studio</h1>
{error}
<form method="post" action="{LOGIN_PATH}">
<input type="hidden" name="next" value="{html.escape(next_path)}">
<label for="user">User</label><input id="user" name="user" autocomplete="username" value="{html.escape(user)}" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form></main></body></html>"""
    headers = {"Cache-Control": "no-store"}
    return HTMLResponse(body, status_code=status, headers=headers)


async def login_page(request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next"))
    if await run_in_threadpool(session_user, request):
        return RedirectResponse(next_path, status_code=303)
    return _form(next_path)


async def login_submit(request: Request) -> Response:
    import db

    form = await request.form()
    user = str(form.get("user", "")).strip()
    password = str(form.get("password", ""))
    next_path = safe_next(str(form.get("next", "/")))
    try:
        actor = await run_in_threadpool(db.authenticate, _engine(), user, password)
    except db.LoginRefused as exc:
        client = request.client.host if request.client else "?"
        log.warning("refused login of %r from %s: %s", user, client, exc)  # never the password
        return _form(next_path, str(exc), user, status=429 if exc.retry_after_s else 401)
    ttl = session_ttl_s()
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        COOKIE_NAME,
        make_session(actor.name, secret_key(), ttl),
        max_age=int(ttl),
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    log.info("login of %r (%s)", actor.name, actor.role)
    return response


async def logout(request: Request) -> Response:
    import db.accounts

    user = await run_in_threadpool(session_user, request)
    if user is not None:
        await run_in_threadpool(db.accounts.end_sessions, _engine(), user)
        log.info("logout of %r", user)
    response = _form("/", "You are logged out.")
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="lax")
    return response


def routes() -> list[Route]:
    return [
        Route(LOGIN_PATH, login_page, methods=["GET"]),
        Route(LOGIN_PATH, login_submit, methods=["POST"]),
        Route(LOGOUT_PATH, logout, methods=["GET", "POST"]),
    ]


def is_page_path(path: str) -> bool:
    """Whether `path` is one of the dashboard's pages (served as the app's HTML)."""
    if path.startswith(OPEN_PREFIXES):
        return False
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return "." not in last  # favicon.png, manifest.json, ... are assets


class LoginRequired:
    """ASGI middleware: page requests without a valid session go to the login form."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and is_page_path(scope["path"]):
            request = Request(scope)
            if await run_in_threadpool(session_user, request) is None:
                target = scope["path"] + (
                    f"?{scope['query_string'].decode()}" if scope["query_string"] else ""
                )
                response = RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

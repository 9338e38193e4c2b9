"""Who is using the dashboard, for the page scripts: `gate()` runs in `app/main.py` before
any page; with `BML_AUTH=local` it reads the session cookie (sent with the page's
websocket, `st.context.cookies`), checks it (`app.auth`, `db.accounts.session_actor`) and,
without a valid one, shows only a link to the login form and stops; with `BML_AUTH=oidc`
it asks Streamlit's `st.user` and maps the person to a role (`app/oidc.py`). `current_actor()` is
the result for the pages, which hide what the role may not do and pass the actor to
services.actions (which refuses anyway)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

import streamlit as st
from sqlalchemy import Engine

import db
from app.auth import COOKIE_NAME, auth_mode, read_session, secret_key
from app.text import md

ACTOR_KEY = "bml_actor"


def _login_link() -> str:
    url = st.context.url or "/"
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"/_bml/login?next={quote(target or '/', safe='')}"


def gate(engine: Engine) -> db.Actor:
    """The actor of this session, or (login on, no valid session) the login prompt and stop."""
    mode = auth_mode()
    if mode == "off":
        actor = db.local_admin()
    elif mode == "local":
        session = read_session(st.context.cookies.get(COOKIE_NAME), secret_key())
        found = None
        if session is not None:
            issued = datetime.fromtimestamp(session.issued_at, UTC)
            found = db.accounts.session_actor(engine, session.user, issued)
        if found is None:
            st.session_state.pop(ACTOR_KEY, None)
            st.title("Log in to BML Studio")
            st.markdown(
                f'This dashboard needs a login. <a href="{_login_link()}" target="_self">Log in</a>',
                unsafe_allow_html=True,
            )
            st.stop()
        assert found is not None
        actor = found
    else:  # oidc: Streamlit's own login (st.login), mapped to a role (app/oidc.py)
        from app.oidc import oidc_actor

        if not st.user.is_logged_in:
            st.session_state.pop(ACTOR_KEY, None)
            st.title("Log in to BML Studio")
            st.button("Log in with your organisation's account", on_click=st.login, key="oidc_login")
            st.stop()
        mapped = oidc_actor(engine, {k: st.user.get(k) for k in ("email", "groups")})
        if mapped is None:
            st.error(f"{md(st.user.get('email'))} has no role in BML Studio; ask an admin.")
            st.button("Log out", on_click=st.logout, key="oidc_logout_norole")
            st.stop()
        actor = mapped
    st.session_state[ACTOR_KEY] = actor
    return actor


def current_actor() -> db.Actor:
    """The actor `gate()` found for this run of the page."""
    actor = st.session_state.get(ACTOR_KEY)
    return actor if isinstance(actor, db.Actor) else db.local_admin()


def sidebar_account(actor: db.Actor) -> None:
    """Who is logged in, and the logout link (login on only)."""
    mode = auth_mode()
    if mode == "off":
        return
    if mode == "oidc":
        with st.sidebar:
            st.markdown(f"Signed in as **{md(actor.name, email_links=True)}** ({actor.role})")
            st.button("Log out", on_click=st.logout, key="oidc_logout")
        return
    with st.sidebar:
        st.markdown(
            f"Signed in as **{actor.name}** ({actor.role}) · "
            '<a href="/_bml/logout" target="_self">Log out</a>',
            unsafe_allow_html=True,
        )

"""The dashboard with a login (`BML_AUTH=local` or `oidc`): Streamlit's own ASGI app
(`st.App`) serving `app/main.py`. `local`: plus the login routes and the middleware of
`app/login.py`. `oidc`: plus the `[auth]` secrets Streamlit's st.login reads, built from
the environment (`app/oidc.py`). `bml dashboard --auth` / `bml up --auth` (or BML_AUTH)
run `streamlit run app/asgi.py`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from app.auth import auth_mode
from app.login import LoginRequired, routes
from app.oidc import oidc_secrets

MODE = auth_mode()

app = st.App(
    str(Path(__file__).resolve().parent / "main.py"),
    routes=routes() if MODE == "local" else [],
    middleware=[Middleware(LoginRequired)] if MODE == "local" else [],
    secrets=oidc_secrets() if MODE == "oidc" else None,
)

"""The dashboard with the login on (`BML_AUTH=local`): Streamlit's own ASGI app (`st.App`)
serving `app/main.py`, plus the login routes and the middleware of `app/login.py`.
`bml dashboard --auth` / `bml up --auth` run `streamlit run app/asgi.py`."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from app.login import LoginRequired, routes

app = st.App(
    str(Path(__file__).resolve().parent / "main.py"),
    routes=routes(),
    middleware=[Middleware(LoginRequired)],
)

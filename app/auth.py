"""The dashboard's login: the auth mode (`BML_AUTH`), the bind check (no login on anything
but loopback is refused), and the session cookie.

The cookie `bml_session` is `<payload>.<signature>`: the payload is base64url JSON
`{"u": user, "iat": issued, "exp": expires}`, the signature HMAC-SHA256 of the payload
with a secret key (`BML_SECRET_KEY`, else a random key generated once into
`$BML_HOME/secret_key` with 0600 permissions). It is set and cleared only by the
server-side routes in `app/login.py` (HttpOnly, SameSite=Lax; Secure behind https), never
by the page script, so page JavaScript cannot read it. A cookie is accepted when the
signature matches, it has not expired, and its user still exists and has not logged out
since it was issued (`db.accounts.session_actor`); the role is read from the store on
every page run, so a role change takes effect at once. No Streamlit import here: the
login routes use this module too."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

AUTH_MODES = ("off", "local", "oidc")
COOKIE_NAME = "bml_session"
SECRET_FILE = "secret_key"
default_session_hours = 12.0


class AuthConfigError(ValueError):
    """A setting the dashboard cannot start with (the message says the fix)."""


def auth_mode(env: dict[str, str] | None = None) -> str:
    """`BML_AUTH`: off (default), local or oidc; AuthConfigError for anything else."""
    value = (env if env is not None else os.environ).get("BML_AUTH", "").strip().lower() or "off"
    if value not in AUTH_MODES:
        raise AuthConfigError(f"BML_AUTH={value!r} is not one of {', '.join(AUTH_MODES)}")
    return value


def is_loopback(host: str) -> bool:
    """Whether binding `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, mode: str) -> None:
    """AuthConfigError when `host` is reachable from other machines and login is off."""
    if mode == "off" and not is_loopback(host):
        raise AuthConfigError(
            f"refusing to serve the dashboard on {host} without a login: anyone who can reach it "
            "could launch, cancel and delete runs. Turn the login on with `--auth` (or "
            "BML_AUTH=local) after adding an admin with `bml user add NAME --role admin`, or "
            "bind 127.0.0.1; `--insecure-no-auth` serves it open anyway (not recommended)."
        )


def session_ttl_s() -> float:
    """How long a login lasts: `BML_SESSION_HOURS` (default 12)."""
    raw = os.environ.get("BML_SESSION_HOURS", "").strip()
    try:
        hours = float(raw) if raw else default_session_hours
    except ValueError:
        raise AuthConfigError(f"BML_SESSION_HOURS={raw!r} is not a number of hours") from None
    if not hours > 0:
        raise AuthConfigError(f"BML_SESSION_HOURS={raw!r} must be > 0")
    return hours * 3600.0


def secret_key(home: Path | None = None) -> bytes:
    """The signing key: `BML_SECRET_KEY`, else `$BML_HOME/secret_key` (created with 0600
    the first time; every dashboard process of this BML_HOME shares it)."""
    env = os.environ.get("BML_SECRET_KEY", "")
    if env:
        if len(env) < 16:
            raise AuthConfigError("BML_SECRET_KEY is too short: use at least 16 random characters")
        return env.encode()
    from db.engine import bml_home

    path = (home or bml_home()) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: str, key: bytes) -> str:
    return _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())


def make_session(user: str, key: bytes, ttl_s: float, now: float | None = None) -> str:
    """A signed cookie value for `user`, valid for `ttl_s` seconds."""
    now = time.time() if now is None else now
    payload = _b64(json.dumps({"u": user, "iat": now, "exp": now + ttl_s}, separators=(",", ":")).encode())
    return f"{payload}.{_sign(payload, key)}"


@dataclass(frozen=True)
class Session:
    user: str
    issued_at: float
    expires_at: float


def read_session(value: str | None, key: bytes, now: float | None = None) -> Session | None:
    """The session in a cookie value; None when absent, tampered with, or expired."""
    if not value or value.count(".") != 1:
        return None
    payload, signature = value.split(".")
    if not hmac.compare_digest(signature, _sign(payload, key)):
        return None
    try:
        doc = json.loads(_unb64(payload))
        session = Session(user=str(doc["u"]), issued_at=float(doc["iat"]), expires_at=float(doc["exp"]))
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    now = time.time() if now is None else now
    return session if session.expires_at > now else None

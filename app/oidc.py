"""`BML_AUTH=oidc`: log in through the organisation's identity provider with Streamlit's
own OIDC support (`st.login`, Authlib), configured from the environment, and map the
person to a role.

Settings: `BML_OIDC_METADATA_URL` (the provider's `.well-known/openid-configuration`),
`BML_OIDC_CLIENT_ID`, `BML_OIDC_CLIENT_SECRET`, `BML_OIDC_REDIRECT_URI` (this dashboard's
`http(s)://HOST:PORT/oauth2callback`, registered at the provider), `BML_OIDC_ROLES` (JSON:
`{"alice@lab.org": "admin", "group:ml-team": "operator", "@lab.org": "viewer"}`: an e-mail,
a group from the ID token's `groups` claim, or an e-mail domain; the highest matching role
wins) and `BML_OIDC_DEFAULT_ROLE` (`viewer` by default; `none` refuses anyone not mapped).
An account stored under the same e-mail (`bml user add EMAIL --role R --no-password`)
takes precedence over the mapping. Streamlit signs its own login cookie with the key of
`app.auth.secret_key`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from app.auth import AuthConfigError, secret_key

ROLE_ORDER = ("viewer", "operator", "admin")
REQUIRED = ("BML_OIDC_METADATA_URL", "BML_OIDC_CLIENT_ID", "BML_OIDC_CLIENT_SECRET", "BML_OIDC_REDIRECT_URI")


def oidc_secrets() -> dict[str, Any]:
    """The `[auth]` section Streamlit's st.login reads, built from the environment."""
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        raise AuthConfigError(f"BML_AUTH=oidc needs {', '.join(missing)} (see docs/ARCHITECTURE.md, Login)")
    role_mapping()  # refuse a bad mapping before serving
    return {
        "auth": {
            "redirect_uri": os.environ["BML_OIDC_REDIRECT_URI"],
            "cookie_secret": secret_key().decode(),
            "client_id": os.environ["BML_OIDC_CLIENT_ID"],
            "client_secret": os.environ["BML_OIDC_CLIENT_SECRET"],
            "server_metadata_url": os.environ["BML_OIDC_METADATA_URL"],
        }
    }


def role_mapping() -> tuple[dict[str, str], str | None]:
    """(BML_OIDC_ROLES as a dict, the default role or None)."""
    raw = os.environ.get("BML_OIDC_ROLES", "").strip() or "{}"
    try:
        mapping = json.loads(raw)
    except ValueError as exc:
        raise AuthConfigError(f"BML_OIDC_ROLES is not JSON: {exc}") from None
    if not isinstance(mapping, dict) or any(v not in ROLE_ORDER for v in mapping.values()):
        raise AuthConfigError(
            f"BML_OIDC_ROLES must map e-mails, group:NAME or @domain to one of {ROLE_ORDER}"
        )
    default = os.environ.get("BML_OIDC_DEFAULT_ROLE", "viewer").strip() or "viewer"
    if default not in (*ROLE_ORDER, "none"):
        raise AuthConfigError(f"BML_OIDC_DEFAULT_ROLE={default!r}: one of {', '.join(ROLE_ORDER)} or none")
    return {str(k).lower(): str(v) for k, v in mapping.items()}, None if default == "none" else default


def role_for(
    email: str, groups: Sequence[str], mapping: Mapping[str, str], default: str | None
) -> str | None:
    """The highest role that the e-mail, one of the groups or the e-mail's domain maps to;
    else `default`."""
    email = email.lower()
    keys = [email, *(f"group:{g}".lower() for g in groups)]
    if "@" in email:
        keys.append("@" + email.split("@", 1)[1])
    found = [mapping[k] for k in keys if k in mapping]
    if not found:
        return default
    return max(found, key=ROLE_ORDER.index)


def oidc_actor(engine: Any, claims: Mapping[str, Any]) -> Any:
    """The Actor for a person logged in through the provider (None: no role for them)."""
    import db

    email = str(claims.get("email") or "")
    if not email:
        return None
    stored = db.accounts.get_user(engine, email)
    if stored is not None:
        return db.Actor(name=stored.name, role=stored.role)
    groups = claims.get("groups") or []
    mapping, default = role_mapping()
    role = role_for(email, [str(g) for g in groups] if isinstance(groups, list) else [], mapping, default)
    return None if role is None else db.Actor(name=email, role=role)

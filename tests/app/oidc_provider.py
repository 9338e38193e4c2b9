"""A minimal OpenID Connect provider for tests, on 127.0.0.1: discovery, JWKS, authorize
(no login screen: it signs in whoever the test put in `next_user`), token (an RS256 ID
token with the request's nonce, signed with Authlib's JOSE) and userinfo. One client."""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from authlib.jose import JsonWebKey, jwt


class OidcProvider:
    def __init__(self, client_id: str, client_secret: str, redirect_uri: str) -> None:
        self.client_id, self.client_secret, self.redirect_uri = client_id, client_secret, redirect_uri
        self.key = JsonWebKey.generate_key("RSA", 2048, is_private=True)
        self.kid = "test-key"
        self.next_user: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _json(self, doc: Any, status: int = 200) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                provider.requests.append(url.path)
                if url.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif url.path == "/jwks":
                    public = provider.key.as_dict(is_private=False)
                    self._json({"keys": [{**public, "kid": provider.kid, "use": "sig", "alg": "RS256"}]})
                elif url.path == "/authorize":
                    if (
                        query.get("client_id") != provider.client_id
                        or query.get("redirect_uri") != provider.redirect_uri
                    ):
                        self._json({"error": "invalid_request"}, 400)
                        return
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = {"user": dict(provider.next_user), "nonce": query.get("nonce")}
                    target = f"{provider.redirect_uri}?{urlencode({'code': code, 'state': query.get('state', '')})}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                elif url.path == "/userinfo":
                    token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                    user = provider.tokens.get(token)
                    self._json(user if user else {"error": "invalid_token"}, 200 if user else 401)
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self) -> None:
                provider.requests.append(self.path)
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                basic = self.headers.get("Authorization", "")
                if basic.startswith("Basic "):
                    cid, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
                else:
                    cid, secret = form.get("client_id", ""), form.get("client_secret", "")
                grant = provider.codes.pop(form.get("code", ""), None)
                if (cid, secret) != (provider.client_id, provider.client_secret) or grant is None:
                    self._json({"error": "invalid_grant"}, 400)
                    return
                self._json(provider.token_response(grant))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": ["openid", "email", "profile"],
            "code_challenge_methods_supported": ["S256"],
        }

    def token_response(self, grant: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        user = grant["user"]
        claims = {
            "iss": self.issuer, "aud": self.client_id, "iat": now, "exp": now + 600,
            "sub": user.get("sub", user.get("email")), **user,
        }  # fmt: skip
        if grant.get("nonce"):
            claims["nonce"] = grant["nonce"]
        access = secrets.token_urlsafe(16)
        self.tokens[access] = user
        id_token = jwt.encode({"alg": "RS256", "kid": self.kid}, claims, self.key).decode()
        return {"access_token": access, "token_type": "Bearer", "expires_in": 600, "id_token": id_token}

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self) -> OidcProvider:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""An in-memory RFC 7591/7592 server behind httpx.MockTransport, for unit tests of the engine.

Switches emulate the quirks real servers have (dcr-interop.md): RAT rotation on update, responses
that omit registration_client_uri or the RAT (Hydra), scope rewriting (policies), unknown-field
rejection (Keycloak), secret expiry, injected failures.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import httpx

from clientreg.http import HttpClient, HttpSettings

ISSUER = "https://as.example.test"


@dataclass
class FakeAS:
    rotate_rat_on_update: bool = True
    omit_uri_in_responses: bool = False      # Hydra: PUT/GET omit registration_client_uri
    omit_rat_on_read: bool = False           # Hydra: GET omits the RAT
    allowed_scopes: set[str] | None = None   # drop other scopes (oidc-provider policies, Keycloak)
    reject_unknown: bool = False             # Keycloak: 400 Unrecognized field
    secret_lifetime: int | None = None
    add_defaults: bool = True                # servers add application_type etc.
    iat: str | None = None
    fail_next: list[int] = field(default_factory=list)  # statuses to answer before serving normally
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    rats: dict[str, str] = field(default_factory=dict)
    calls: Counter[str] = field(default_factory=Counter)
    now: float = field(default_factory=time.time)
    #: (status, JSON body) the token endpoint answers instead of authenticating the client (None: authenticate).
    token_answer: tuple[int, dict[str, Any]] | None = None

    KNOWN = frozenset({"client_name", "redirect_uris", "grant_types", "response_types", "scope",
                       "token_endpoint_auth_method", "contacts", "client_uri", "logo_uri", "jwks", "jwks_uri",
                       "software_id", "software_version", "application_type", "client_id"})

    def http(self, **settings: Any) -> HttpClient:
        return HttpClient(HttpSettings(**settings), transport=httpx.MockTransport(self.handle),
                          sleep=lambda _s: None)

    def writes(self) -> int:
        return sum(n for k, n in self.calls.items() if not k.startswith("GET"))

    def _rewrite(self, body: dict[str, Any]) -> dict[str, Any] | httpx.Response:
        unknown = set(body) - self.KNOWN
        if self.reject_unknown and unknown:
            return httpx.Response(400, json={"error": "invalid_client_metadata",
                                             "error_description": f"Unrecognized field {sorted(unknown)[0]}"})
        out = dict(body)
        if self.allowed_scopes is not None and "scope" in out:
            out["scope"] = " ".join(s for s in out["scope"].split() if s in self.allowed_scopes)
        if self.add_defaults:
            out.setdefault("application_type", "web")
            out.setdefault("token_endpoint_auth_method", "client_secret_basic")
        return out

    def _answer(self, client_id: str, status: int, *, with_rat: bool = True, with_secret: bool = True,
                with_uri: bool = True) -> httpx.Response:
        data = dict(self.clients[client_id])
        if not with_secret:
            data.pop("client_secret", None)
        if with_rat:
            data["registration_access_token"] = self.rats[client_id]
        if with_uri:
            data["registration_client_uri"] = f"{ISSUER}/register/{client_id}"
        return httpx.Response(status, json=data)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        route = path if not path.startswith("/register/") else "/register/<id>"
        self.calls[f"{request.method} {route}"] += 1
        if self.fail_next:
            return httpx.Response(self.fail_next.pop(0), text="<html>busy</html>")
        if path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={"issuer": ISSUER, "registration_endpoint": f"{ISSUER}/register",
                                             "token_endpoint": f"{ISSUER}/token"})
        if path == "/register" and request.method == "POST":
            if self.iat and request.headers.get("authorization") != f"Bearer {self.iat}":
                return httpx.Response(401, json={"error": "invalid_token"})
            body = self._rewrite(json.loads(request.content))
            if isinstance(body, httpx.Response):
                return body
            client_id = secrets.token_hex(8)
            body.update(client_id=client_id, client_secret=secrets.token_urlsafe(24),
                        client_id_issued_at=int(self.now),
                        client_secret_expires_at=int(self.now + self.secret_lifetime) if self.secret_lifetime else 0)
            self.clients[client_id] = body
            self.rats[client_id] = secrets.token_urlsafe(24)
            return self._answer(client_id, 201)
        if path == "/token" and request.method == "POST":
            return self._token(request)
        if path.startswith("/register/"):
            client_id = path.rsplit("/", 1)[1]
            if client_id not in self.clients or request.headers.get("authorization") != \
                    f"Bearer {self.rats[client_id]}":
                return httpx.Response(401, json={"error": "invalid_token"})
            if request.method == "GET":
                return self._answer(client_id, 200, with_rat=not self.omit_rat_on_read,
                                    with_uri=not self.omit_uri_in_responses, with_secret=not self.omit_rat_on_read)
            if request.method == "DELETE":
                del self.clients[client_id]
                return httpx.Response(204)
            if request.method == "PUT":
                body = json.loads(request.content)
                if "client_secret" in body or "registration_access_token" in body:
                    return httpx.Response(403, json={"error": "forbidden field in update"})
                if body.get("client_id") != client_id:
                    return httpx.Response(400, json={"error": "invalid_client_metadata"})
                rewritten = self._rewrite(body)
                if isinstance(rewritten, httpx.Response):
                    return rewritten
                keep = {k: self.clients[client_id][k] for k in ("client_secret", "client_id_issued_at",
                                                                 "client_secret_expires_at")}
                self.clients[client_id] = {**rewritten, **keep}
                if self.rotate_rat_on_update:
                    self.rats[client_id] = secrets.token_urlsafe(24)
                return self._answer(client_id, 200, with_uri=not self.omit_uri_in_responses)
        return httpx.Response(404, json={"error": "not_found"})

    def _token(self, request: httpx.Request) -> httpx.Response:
        """client_credentials (RFC 6749 §4.4): invalid_client (§5.2) unless the client and its secret match."""
        if self.token_answer is not None:
            return httpx.Response(self.token_answer[0], json=self.token_answer[1])
        form = dict(parse_qsl(request.content.decode()))
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.startswith("Basic "):
            client_id, _, secret = base64.b64decode(basic[6:]).decode().partition(":")
            client_id, secret = unquote(client_id), unquote(secret)
        known = self.clients.get(client_id or "")
        if known is None or known.get("client_secret") != secret:
            return httpx.Response(401, json={"error": "invalid_client"})
        return httpx.Response(200, json={"access_token": secrets.token_urlsafe(16), "token_type": "Bearer",
                                         "expires_in": 300})

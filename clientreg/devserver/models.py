"""The objects Authlib's endpoints and grants work with: a registered client and the two kinds of token.

Secrets are excluded from every ``repr`` because Authlib logs clients with ``%r``.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, list_to_scope, scope_to_list

from .settings import SECRET_AUTH_METHODS

# RFC 7591 §2: what a client that names no grant_types / response_types gets.
_DEFAULT_GRANT_TYPES = ["authorization_code"]
_DEFAULT_RESPONSE_TYPES = ["code"]
_DEFAULT_AUTH_METHOD = "client_secret_basic"


def auth_method_uses_secret(method: str) -> bool:
    return method in SECRET_AUTH_METHODS


@dataclass
class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """A client as stored. ``metadata`` holds every field the client sent (and we kept), unknown ones too."""

    client_id: str
    client_id_issued_at: int
    metadata: dict[str, Any]
    client_secret: str | None = field(default=None, repr=False)
    client_secret_expires_at: int = 0
    #: Only set on the instance that just minted it: the store keeps a digest, never this value.
    fresh_registration_access_token: str | None = field(default=None, repr=False, compare=False)

    @property
    def token_endpoint_auth_method(self) -> str:
        return str(self.metadata.get("token_endpoint_auth_method", _DEFAULT_AUTH_METHOD))

    @property
    def client_info(self) -> dict[str, Any]:
        """The server-issued half of an RFC 7591 §3.2.1 client information response."""
        info: dict[str, Any] = {"client_id": self.client_id, "client_id_issued_at": self.client_id_issued_at}
        if self.client_secret is not None:
            info["client_secret"] = self.client_secret
            info["client_secret_expires_at"] = self.client_secret_expires_at
        return info

    @property
    def client_metadata(self) -> dict[str, Any]:
        return dict(self.metadata)

    def secret_has_expired(self, now: int) -> bool:
        return self.client_secret_expires_at != 0 and now >= self.client_secret_expires_at

    # --- Authlib's ClientMixin ------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.metadata.get("redirect_uris") or []
        return str(uris[0]) if uris else None

    def get_allowed_scope(self, scope: str | None) -> str:
        registered = self.metadata.get("scope")
        if not scope:
            # RFC 6749 §3.3: an omitted scope gets the pre-defined default, here everything registered.
            return str(registered or "")
        if registered is None:
            return scope
        allowed = set(scope_to_list(registered))
        return str(list_to_scope([word for word in scope_to_list(scope) if word in allowed]))

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.metadata.get("redirect_uris") or [])

    def check_client_secret(self, client_secret: str) -> bool:
        # Expiry is the token endpoint's business (see authentication.py): an RFC 7592 PUT may still
        # echo the current secret after it expired.
        if self.client_secret is None:
            return False
        return hmac.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type in (self.metadata.get("response_types") or _DEFAULT_RESPONSE_TYPES)

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.metadata.get("grant_types") or _DEFAULT_GRANT_TYPES)


@dataclass(frozen=True)
class RegistrationAccessToken(TokenMixin):  # type: ignore[misc]
    """The RFC 7592 bearer token presented at ``/register/<client_id>``."""

    client_id: str
    value: str = field(repr=False)

    def check_client(self, client: RegisteredClient) -> bool:
        return client.client_id == self.client_id


@dataclass(frozen=True)
class InitialAccess:
    """Who may register: the holder of the initial access token, or anyone when registration is open."""

    open_registration: bool


@dataclass(frozen=True)
class IssuedAccessToken(TokenMixin):  # type: ignore[misc]
    """An opaque access token as stored: the store knows its digest, not its value."""

    token_digest: str = field(repr=False)
    client_id: str
    scope: str
    issued_at: int
    expires_in: int
    clock: Callable[[], float] = field(repr=False, compare=False)

    @property
    def expires_at(self) -> int:
        return self.issued_at + self.expires_in

    def check_client(self, client: RegisteredClient) -> bool:
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def is_expired(self) -> bool:
        return self.clock() >= self.expires_at

    def is_revoked(self) -> bool:
        # Tokens are deleted, not flagged, when their client goes.
        return False

"""The token endpoint's client_credentials grant and RFC 7662 introspection, on Authlib's classes."""

from __future__ import annotations

import logging
from typing import Any

from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc7662 import IntrospectionEndpoint

from .models import IssuedAccessToken, RegisteredClient
from .settings import Deployment
from .storage import Storage

# Methods a client may use to obtain a client_credentials token. ``none`` is missing on purpose:
# RFC 6749 §4.4 reserves this grant for confidential clients.
CONFIDENTIAL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


class DevClientCredentialsGrant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS


class DevIntrospectionEndpoint(IntrospectionEndpoint):  # type: ignore[misc]
    """Any authenticated client may introspect any token: resource servers register as clients too."""

    CLIENT_AUTH_METHODS = CONFIDENTIAL_AUTH_METHODS
    SUPPORTED_TOKEN_TYPES = ("access_token",)

    def __init__(self, deployment: Deployment, storage: Storage) -> None:
        super().__init__()
        self._deployment = deployment
        self._storage = storage

    def query_token(self, token_string: str, token_type_hint: str | None) -> IssuedAccessToken | None:
        return self._storage.get_access_token(token_string)

    def check_permission(self, token: IssuedAccessToken, client: RegisteredClient, request: Any) -> bool:
        return True

    def introspect_token(self, token: IssuedAccessToken) -> dict[str, Any]:
        return {
            "active": True,
            "client_id": token.client_id,
            "scope": token.scope,
            "token_type": "Bearer",
            "iat": token.issued_at,
            "exp": token.expires_at,
            "iss": self._deployment.issuer,
        }


def token_saver(deployment: Deployment, storage: Storage) -> Any:
    """Authlib's ``save_token`` callback: keeps a digest of each access token it issues."""

    def save_token(token: dict[str, Any], request: Any) -> None:
        storage.save_access_token(token["access_token"], request.client.client_id, token.get("scope", ""),
                                  issued_at=deployment.now(), expires_in=int(token.get("expires_in", 0)))

    return save_token


class _WithoutIssuedTokens(logging.Filter):
    """Drops Authlib's debug record that prints every issued token dict, access token included."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not any(isinstance(arg, dict) and "access_token" in arg for arg in args)


def keep_issued_tokens_out_of_logs() -> None:
    # Filters apply only on the logger a record is created on, so this targets Authlib's grant module.
    grant_logger = logging.getLogger(ClientCredentialsGrant.__module__)
    if not any(isinstance(existing, _WithoutIssuedTokens) for existing in grant_logger.filters):
        grant_logger.addFilter(_WithoutIssuedTokens())

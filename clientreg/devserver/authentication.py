"""Client authentication at the token and introspection endpoints, on top of Authlib's methods.

Authlib provides ``client_secret_basic``, ``client_secret_post`` and ``none``; this adds the refusal of
an expired secret (RFC 7591 ``client_secret_expires_at``) and ``private_key_jwt`` (RFC 7523 §2.2)
verified against the client's registered ``jwks`` or ``jwks_uri`` (fetched under the SSRF guard, like
Client ID Metadata Documents: the client chose that URL).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749.authenticate_client import (
    authenticate_client_secret_basic,
    authenticate_client_secret_post,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from ..errors import ClientregError
from .cimd import error_description, fetch_client_document
from .models import RegisteredClient
from .settings import Deployment
from .storage import Storage

# How long past its "exp" an assertion is still accepted: Authlib's default leeway for clock skew.
_ASSERTION_LEEWAY_SECONDS = 60

AuthMethod = Callable[[Callable[[str], Any], Any], Any]


def refusing_expired_secrets(authenticate: AuthMethod, deployment: Deployment) -> AuthMethod:
    """Wrap one of Authlib's shared-secret methods so that a correct but expired secret fails."""

    def authenticate_unexpired(query_client: Callable[[str], Any], request: Any) -> Any:
        client = authenticate(query_client, request)
        if isinstance(client, RegisteredClient) and client.secret_has_expired(deployment.now()):
            raise InvalidClientError(status_code=401, description="The client secret has expired.")
        return client

    return authenticate_unexpired


def shared_secret_methods(deployment: Deployment) -> dict[str, AuthMethod]:
    return {
        "client_secret_basic": refusing_expired_secrets(authenticate_client_secret_basic, deployment),
        "client_secret_post": refusing_expired_secrets(authenticate_client_secret_post, deployment),
    }


def _fetch_jwks(deployment: Deployment, jwks_uri: str) -> dict[str, Any]:
    document = fetch_client_document(deployment, jwks_uri)
    if not isinstance(document, dict):
        raise ValueError("not a JWK Set")
    return document


class PrivateKeyJWT(JWTBearerClientAssertion):  # type: ignore[misc]
    """``private_key_jwt``: Authlib's RFC 7523 client assertion, keys from the client's registration."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, deployment: Deployment, storage: Storage) -> None:
        super().__init__(leeway=_ASSERTION_LEEWAY_SECONDS)
        self._deployment = deployment
        self._storage = storage

    def get_audiences(self) -> list[str]:
        # RFC 7523 §3 lets the audience be the token endpoint or the issuer; the same assertion
        # also authenticates at the introspection endpoint.
        deployment = self._deployment
        return [deployment.token_endpoint, deployment.issuer, deployment.introspection_endpoint]

    def validate_jti(self, claims: dict[str, Any], jti: object) -> bool:
        expires_at = int(claims["exp"]) + _ASSERTION_LEEWAY_SECONDS
        return self._storage.remember_assertion_id(str(claims["sub"]), str(jti), expires_at)

    def resolve_client_public_key(self, client: RegisteredClient) -> KeySet:
        jwks = client.metadata.get("jwks")
        jwks_uri = client.metadata.get("jwks_uri")
        try:
            if isinstance(jwks, dict):
                return KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            if isinstance(jwks_uri, str):
                return KeySet.import_key_set(_fetch_jwks(self._deployment, jwks_uri))  # type: ignore[arg-type]
        except ClientregError as error:
            raise InvalidClientError(description=error_description(
                f"The client keys at jwks_uri could not be fetched: {error}")) from error
        except (OSError, ValueError, JoseError) as error:
            raise InvalidClientError(description="The registered client keys could not be loaded.") from error
        raise InvalidClientError(description="The client has registered neither jwks nor jwks_uri.")

"""RFC 7591 registration and RFC 7592 client configuration, as subclasses of Authlib's endpoints."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import replace
from typing import Any

from authlib.oauth2.rfc6750 import InvalidTokenError
from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint, InvalidClientMetadataError
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint
from flask import request as flask_request

from .metadata import validate_client_metadata
from .models import InitialAccess, RegisteredClient, RegistrationAccessToken, auth_method_uses_secret
from .settings import TOKEN_ENDPOINT_AUTH_METHODS, Deployment
from .storage import Storage

_DEFAULT_AUTH_METHOD = "client_secret_basic"


def _bearer_token(request: Any) -> str | None:
    scheme, _, token = str(request.headers.get("Authorization", "")).partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def _require_json_object() -> None:
    # Authlib reads the body as whatever JSON it is; a list or a form would fail deep inside it.
    if not isinstance(flask_request.get_json(silent=True), dict):
        raise InvalidClientMetadataError("The request body must be a JSON object.")


def new_registration_access_token() -> str:
    return secrets.token_urlsafe(32)


def _secret_expiry(deployment: Deployment, issued_at: int) -> int:
    lifetime = deployment.settings.secret_lifetime
    return issued_at + lifetime if lifetime else 0


def _validated_metadata(deployment: Deployment, body: dict[str, Any]) -> dict[str, Any]:
    return validate_client_metadata(body, auth_methods=TOKEN_ENDPOINT_AUTH_METHODS,
                                    allowed_scopes=deployment.settings.allowed_scopes)


class RegistrationEndpoint(ClientRegistrationEndpoint):  # type: ignore[misc]
    """``POST /register``: open, or guarded by the initial access token from the settings."""

    def __init__(self, deployment: Deployment, storage: Storage) -> None:
        super().__init__()
        self._deployment = deployment
        self._storage = storage

    def __call__(self, request: Any) -> Any:
        _require_json_object()
        return super().__call__(request)

    def authenticate_token(self, request: Any) -> InitialAccess:
        expected = self._deployment.settings.initial_access_token
        if expected is None:
            return InitialAccess(open_registration=True)
        presented = _bearer_token(request)
        if presented is None or not hmac.compare_digest(presented.encode(), expected.encode()):
            # RFC 7591 §3: the initial access token is an RFC 6750 bearer token, so its errors are too.
            raise InvalidTokenError(description="A valid initial access token is required to register.")
        return InitialAccess(open_registration=False)

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        return _validated_metadata(self._deployment, request.payload.data)

    def get_server_metadata(self) -> dict[str, Any]:
        return {"token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS)}

    def generate_client_secret(self, request: Any) -> str | None:
        method = request.payload.data.get("token_endpoint_auth_method", _DEFAULT_AUTH_METHOD)
        return secrets.token_urlsafe(32) if auth_method_uses_secret(method) else None

    def generate_client_info(self, request: Any) -> dict[str, Any]:
        info: dict[str, Any] = super().generate_client_info(request)
        info["client_id_issued_at"] = self._deployment.now()
        if info["client_secret"] is None:
            # RFC 7591 §3.2.1: no secret issued, so neither it nor its expiry belong in the response.
            del info["client_secret"], info["client_secret_expires_at"]
        else:
            info["client_secret_expires_at"] = _secret_expiry(self._deployment, info["client_id_issued_at"])
        return info

    def save_client(self, client_info: dict[str, Any], client_metadata: dict[str, Any],
                    request: Any) -> RegisteredClient:
        registration_access_token = new_registration_access_token()
        client = RegisteredClient(
            client_id=client_info["client_id"],
            client_id_issued_at=client_info["client_id_issued_at"],
            metadata=client_metadata,
            client_secret=client_info.get("client_secret"),
            client_secret_expires_at=client_info.get("client_secret_expires_at", 0),
            fresh_registration_access_token=registration_access_token,
        )
        self._storage.insert_client(client, registration_access_token)
        return client

    def generate_client_registration_info(self, client: RegisteredClient, request: Any) -> dict[str, str]:
        return {
            "registration_client_uri": self._deployment.registration_client_uri(client.client_id),
            "registration_access_token": client.fresh_registration_access_token or "",
        }


class ConfigurationEndpoint(ClientConfigurationEndpoint):  # type: ignore[misc]
    """``GET/PUT/DELETE /register/<client_id>``, authorised by the client's registration access token."""

    def __init__(self, deployment: Deployment, storage: Storage) -> None:
        super().__init__()
        self._deployment = deployment
        self._storage = storage

    def __call__(self, request: Any) -> Any:
        if request.method == "PUT":
            _require_json_object()
        return super().__call__(request)

    @staticmethod
    def _client_id_in_path() -> str:
        return str((flask_request.view_args or {}).get("client_id", ""))

    def authenticate_token(self, request: Any) -> RegistrationAccessToken:
        presented = _bearer_token(request)
        owner = self._storage.client_id_for_registration_access_token(presented) if presented else None
        # RFC 7592 §2: an unknown client and a bad token look the same, 401 invalid_token, so that
        # the answer tells nothing about which clients exist.
        if presented is None or owner is None or owner != self._client_id_in_path():
            raise InvalidTokenError(description="The registration access token is not valid for this client.")
        return RegistrationAccessToken(client_id=owner, value=presented)

    def authenticate_client(self, request: Any) -> RegisteredClient | None:
        return self._storage.get_client(self._client_id_in_path())

    def revoke_access_token(self, *_: Any) -> None:
        # Only reached for a client that is gone; its token digest went with its row.
        return None

    def check_permission(self, client: RegisteredClient, request: Any) -> bool:
        return True

    def extract_client_metadata(self, request: Any) -> dict[str, Any]:
        return _validated_metadata(self._deployment, request.payload.data)

    def get_server_metadata(self) -> dict[str, Any]:
        return {"token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS)}

    def introspect_client(self, client: RegisteredClient) -> dict[str, Any]:
        return {**client.client_metadata, **client.client_info}

    def update_client(self, client: RegisteredClient, client_metadata: dict[str, Any],
                      request: Any) -> RegisteredClient:
        # RFC 7592 §2.2: the body replaces the metadata entirely; omitted fields are deleted.
        updated = replace(client, metadata=client_metadata)
        if not auth_method_uses_secret(updated.token_endpoint_auth_method):
            updated = replace(updated, client_secret=None, client_secret_expires_at=0)
        elif updated.client_secret is None:
            # Moving to a shared-secret method needs a secret; the response hands it out (RFC 7592 §2.2).
            issued_at = self._deployment.now()
            updated = replace(updated, client_secret=secrets.token_urlsafe(32),
                              client_secret_expires_at=_secret_expiry(self._deployment, issued_at))
        if self._deployment.settings.rotate_registration_access_token:
            updated = replace(updated, fresh_registration_access_token=new_registration_access_token())
        self._storage.replace_client(updated, updated.fresh_registration_access_token)
        return updated

    def delete_client(self, client: RegisteredClient, request: Any) -> None:
        self._storage.delete_client(client.client_id)

    def generate_client_registration_info(self, client: RegisteredClient, request: Any) -> dict[str, str]:
        # The store keeps only a digest, so the current token is the one presented, unless just rotated.
        token = client.fresh_registration_access_token or request.credential.value
        return {
            "registration_client_uri": self._deployment.registration_client_uri(client.client_id),
            "registration_access_token": token,
        }

"""The RFC 8414 authorization server metadata document, and where it is served."""

from __future__ import annotations

from typing import Any

from authlib.common.security import is_secure_transport
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

from .settings import ASSERTION_SIGNING_ALGORITHMS, TOKEN_ENDPOINT_AUTH_METHODS, Deployment
from .tokens import CONFIDENTIAL_AUTH_METHODS


def server_metadata(deployment: Deployment) -> AuthorizationServerMetadata:
    document: dict[str, Any] = {
        "issuer": deployment.issuer,
        "token_endpoint": deployment.token_endpoint,
        "registration_endpoint": deployment.registration_endpoint,
        "introspection_endpoint": deployment.introspection_endpoint,
        # Only what /token can do. Registration still accepts any grant and response type, because the
        # dev server stands in for servers that run those flows.
        "grant_types_supported": ["client_credentials"],
        # RFC 8414 requires a non-empty list; "code" is the RFC 7591 default a client registers with.
        "response_types_supported": ["code"],
        "token_endpoint_auth_methods_supported": list(TOKEN_ENDPOINT_AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_SIGNING_ALGORITHMS),
        "introspection_endpoint_auth_methods_supported": list(CONFIDENTIAL_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_SIGNING_ALGORITHMS),
        "client_id_metadata_document_supported": deployment.settings.cimd,
    }
    if deployment.settings.allowed_scopes is not None:
        document["scopes_supported"] = list(deployment.settings.allowed_scopes)
    metadata = AuthorizationServerMetadata(document)
    # Authlib insists on https except for loopback; a dev server on another plain-http host is deliberate.
    if is_secure_transport(deployment.issuer):
        metadata.validate()
    return metadata


def metadata_routes(deployment: Deployment) -> list[str]:
    """Every path a client may derive from the issuer: RFC 8414 and OIDC inserted, OIDC appended."""
    issuer = deployment.issuer
    routes = [
        get_well_known_url(issuer, suffix="oauth-authorization-server"),
        get_well_known_url(issuer, suffix="openid-configuration"),
    ]
    if deployment.path_prefix:
        routes.append(f"{deployment.path_prefix}/.well-known/openid-configuration")
    return routes

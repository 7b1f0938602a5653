"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document, as adopted by MCP).

The client_id is an https URL; the document served there is the client's metadata with ``client_id``
equal to that URL. No shared secret can exist, so no ``client_secret`` and no secret-based auth.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._spec_checks import check_cimd_url
from .errors import ConfigurationError
from .spec import SHARED_SECRET_METHODS

MEDIA_TYPE = "application/json"


def render_document(client_id_url: str, metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The document to publish at ``client_id_url``."""
    try:
        check_cimd_url(client_id_url)
    except ValueError as exc:
        raise ConfigurationError(str(exc), field="spec.clientIdUrl", rule="CIMD §3") from None
    method = metadata.get("token_endpoint_auth_method", "none")
    if method in SHARED_SECRET_METHODS:
        raise ConfigurationError(f"token_endpoint_auth_method {method!r} needs a shared secret, which a CIMD "
                                 "client cannot have (CIMD §4)", field="spec.tokenEndpointAuthMethod")
    document = {"client_id": client_id_url, "token_endpoint_auth_method": method}
    document.update({k: v for k, v in metadata.items() if k not in ("client_secret", "client_secret_expires_at")})
    document["client_id"] = client_id_url
    return document


def validate_document(client_id_url: str, document: Mapping[str, Any]) -> None:
    """What an AS checks on a fetched document (CIMD §4.1); used by the dev AS and by drift checks."""
    if document.get("client_id") != client_id_url:
        raise ConfigurationError(f"client_id in the document is {document.get('client_id')!r}, not the URL "
                                 f"it was fetched from ({client_id_url}) (CIMD §4.1)")
    if "client_secret" in document or "client_secret_expires_at" in document:
        raise ConfigurationError("a Client ID Metadata Document must not contain client_secret (CIMD §4.1)")
    if document.get("token_endpoint_auth_method") in SHARED_SECRET_METHODS:
        raise ConfigurationError("a Client ID Metadata Document must not use a shared-secret auth method")

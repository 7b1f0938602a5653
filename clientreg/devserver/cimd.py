"""Client ID Metadata Document clients at the dev server, and every fetch it makes on a client's word.

A ``client_id`` that is an https URL (CIMD §3) names a client nobody registered: the document served at
that URL is its metadata. It is fetched through :mod:`clientreg.ssrf` (https only, addresses vetted
before connecting, no redirects, capped, timed out), checked with :func:`clientreg.cimd.validate_document`
and then with the same metadata rules as a registration. Documents are fetched on every use, never
cached: a dev server's job is to show the current document's effect (CIMD §4.2 allows an AS to cache).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc7591 import InvalidClientMetadataError

from .._spec_checks import check_cimd_url
from ..cimd import validate_document
from ..errors import ClientregError
from ..ssrf import FetchPolicy, fetch_json
from .metadata import validate_client_metadata
from .models import RegisteredClient
from .settings import TOKEN_ENDPOINT_AUTH_METHODS, Deployment
from .storage import Storage

log = logging.getLogger(__name__)


def fetch_policy(deployment: Deployment) -> FetchPolicy:
    settings = deployment.settings
    return FetchPolicy(allow_loopback=settings.fetch_allow_loopback, ca_bundle=settings.fetch_ca_bundle)


def fetch_client_document(deployment: Deployment, url: str) -> Any:
    """GET a document a client named (CIMD document, jwks_uri) under the SSRF guard."""
    return fetch_json(url, policy=fetch_policy(deployment))


def error_description(text: str) -> str:
    """RFC 6749 §5.2 allows only printable ASCII without '"' and '\\' in error_description (Authlib
    enforces it): our messages quote sections (§) and values."""
    text = text.replace("§", "section ").replace('"', "'").replace("\\", "/")
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E)[:300]


def is_client_id_url(client_id: str) -> bool:
    return urlsplit(client_id).scheme in ("https", "http") and "/" in client_id


class ClientResolver:
    """Authlib's ``query_client``: registered clients from storage, CIMD clients from their URL."""

    def __init__(self, deployment: Deployment, storage: Storage) -> None:
        self._deployment = deployment
        self._storage = storage

    def get_client(self, client_id: str) -> RegisteredClient | None:
        client = self._storage.get_client(client_id)
        if client is not None or not self._deployment.settings.cimd or not is_client_id_url(client_id):
            return client
        return self._document_client(client_id)

    def _document_client(self, url: str) -> RegisteredClient:
        try:
            check_cimd_url(url)
            document = fetch_client_document(self._deployment, url)
            if not isinstance(document, dict):
                raise InvalidClientMetadataError("the document is not a JSON object")
            validate_document(url, document)
            metadata = validate_client_metadata(document, auth_methods=TOKEN_ENDPOINT_AUTH_METHODS,
                                                allowed_scopes=self._deployment.settings.allowed_scopes)
        except (ValueError, ClientregError, InvalidClientMetadataError) as error:
            reason = getattr(error, "description", None) or str(error)
            log.info("client ID metadata document %s refused: %s", url, reason)
            raise InvalidClientError(description=error_description(f"client_id metadata document refused: {reason}")) \
                from error
        return RegisteredClient(client_id=url, client_id_issued_at=self._deployment.now(), metadata=metadata)

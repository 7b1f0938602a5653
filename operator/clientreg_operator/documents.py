"""Published documents (CIMD, JWKS at jwks_uri) of every OAuthClient this operator holds, served read-only.

The reconciler fills a :class:`DocumentIndex` from each record (:func:`clientreg.publish.documents`);
the endpoints server answers ``GET /documents/<host>/<path>`` from it with :func:`clientreg.publish.render`
(``<host>/<path>`` is :func:`clientreg.publish.static_path` of the URL). Documents are public by
definition: no private key ever reaches them. A path claimed by two OAuthClients with different
documents is served to neither (one tenant must not replace another's document).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from clientreg import publish
from clientreg.errors import ClientregError

log = logging.getLogger(__name__)

#: Route prefix on the operator's HTTP endpoint.
PREFIX = "/documents/"


class DocumentIndex:
    """static path → rendered bytes, per OAuthClient. Thread-safe: reconciles run in worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_client: dict[tuple[str, str], dict[str, bytes]] = {}

    def put(self, namespace: str, name: str, documents: Mapping[str, Mapping[str, Any]]) -> None:
        rendered: dict[str, bytes] = {}
        for url, document in documents.items():
            try:
                rendered[str(publish.static_path(url))] = publish.render(document)
            except ClientregError as exc:
                log.warning("OAuthClient %s/%s: document not served: %s", namespace, name, exc)
        with self._lock:
            if rendered:
                self._by_client[(namespace, name)] = rendered
            else:
                self._by_client.pop((namespace, name), None)

    def drop(self, namespace: str, name: str) -> None:
        with self._lock:
            self._by_client.pop((namespace, name), None)

    def get(self, path: str) -> bytes | None:
        """The document at ``<host>/<path>``; None when no client, or clients that disagree, hold it."""
        host, _, rest = path.strip("/").partition("/")
        key = f"{host.lower()}/{rest}"  # static_path lowercases the host, never the path
        with self._lock:
            found = {docs[key] for docs in self._by_client.values() if key in docs}
        if len(found) != 1:
            if found:
                log.warning("document %s is claimed by OAuthClients with different contents; not served", key)
            return None
        return found.pop()

    def paths(self) -> list[str]:
        with self._lock:
            return sorted({p for docs in self._by_client.values() for p in docs})

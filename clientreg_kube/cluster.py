"""The few API calls clientreg makes to Kubernetes, behind a protocol so the operator's reconciler is testable
without a cluster (the Pulumi provider's Kubernetes option uses the same client).

Objects travel as plain dicts in their JSON shape (camelCase, Secret data base64-encoded): the same
shape watch events carry and the one the fakes in the unit tests store.
"""

from __future__ import annotations

import http.client
import logging
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes.client.exceptions import ApiException

from clientreg.names import path_segment

from .conventions import (
    API_VERSION,
    AUTHORIZATIONSERVERS,
    CLUSTERAUTHORIZATIONSERVERS,
    EVENT_COMPONENT,
    MERGE_PATCH,
    OAUTHCLIENTS,
)

log = logging.getLogger(__name__)

Body = dict[str, Any]
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_GROUP, _VERSION = API_VERSION.split("/")
#: Objects per page of a list.
LIST_PAGE = 100


class Transport(Protocol):
    """JSON requests to the API server (:class:`clientreg_kube.transport.KubeTransport`, or a fake in tests):
    raises ApiException for an answer other than 2xx, OSError or http.client.HTTPException for none."""

    def request(self, method: str, path: str, *, query: dict[str, str] | None = None, body: Body | None = None,
                content_type: str = "application/json") -> Body: ...


class Conflict(Exception):
    """The object changed or appeared since it was read (HTTP 409)."""


class Cluster(Protocol):
    def get_client(self, namespace: str, name: str) -> Body | None: ...
    def get_server(self, kind: str, namespace: str | None, name: str) -> Body | None: ...
    def get_secret(self, namespace: str, name: str) -> Body | None: ...
    def get_namespace(self, name: str) -> Body | None: ...
    def list_secrets(self, namespace: str, label_selector: str) -> Iterable[Body]: ...
    def create_secret(self, namespace: str, body: Body) -> Body: ...
    def replace_secret(self, namespace: str, name: str, body: Body) -> Body: ...
    def patch_secret(self, namespace: str, name: str, patch: Body) -> Body | None: ...
    def delete_secret(self, namespace: str, name: str) -> None: ...
    def patch_client(self, namespace: str, name: str, patch: Body) -> Body | None: ...
    def patch_client_status(self, namespace: str, name: str, patch: Body) -> str | None: ...
    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Body) -> None: ...
    def post_event(self, involved: Body, *, warning: bool, reason: str, message: str) -> None: ...
    def list_deployments(self, namespace: str) -> list[Body]: ...
    def patch_deployment(self, namespace: str, name: str, patch: Body) -> None: ...


def unavailable(exc: BaseException) -> bool:
    """True when the API server did not act on a request and may well act on it a moment later: unreachable,
    restarting, overloaded (5xx, 429), or just restarted and answering 401/403 until its authenticator and
    RBAC caches are filled (seen right after a kube-apiserver restart)."""
    if isinstance(exc, ApiException):
        return exc.status in (401, 403, 429) or (exc.status or 0) >= 500
    return isinstance(exc, OSError | http.client.HTTPException)


def _none_on_404(exc: ApiException) -> None:
    if exc.status != 404:
        raise exc


class KubeCluster:
    """:class:`Cluster` over a :class:`Transport` (synchronous: it runs in the reconcile threads).

    Plain JSON in and out, not the official client's generated ``CoreV1Api``-style classes: those validate
    every call with pydantic and build typed models that this module would only turn back into dicts. At
    1,000 OAuthClients that was a quarter of the operator's memory (their validators) and a good share of its
    CPU (bench/converge.py); the official client's transport was most of the rest (clientreg_kube/transport.py).
    """

    def __init__(self, transport: Transport) -> None:
        self._request = transport.request

    def _get(self, path: str) -> Body | None:
        try:
            return self._request("GET", path)
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def get_client(self, namespace: str, name: str) -> Body | None:
        return self._get(_custom(namespace, OAUTHCLIENTS, name))

    def get_server(self, kind: str, namespace: str | None, name: str) -> Body | None:
        return self._get(_server(kind, namespace, name))

    def get_secret(self, namespace: str, name: str) -> Body | None:
        return self._get(_secrets(namespace, name))

    def get_namespace(self, name: str) -> Body | None:
        # Read only when a ClusterAuthorizationServer's allowedNamespaces selector decides (RBAC: get
        # namespaces, cluster-wide). The name is an OAuthClient's namespace, a label by construction; checked
        # again here because it becomes a path segment.
        if not _NAMESPACE.fullmatch(name):
            raise ValueError(f"{name[:80]!r} is not a namespace name (a DNS-1123 label)")
        return self._get(f"/api/v1/namespaces/{name}")

    def list_secrets(self, namespace: str, label_selector: str) -> Iterator[Body]:
        """The Secrets, a page at a time, read as they are iterated: one answer with 1,000 record Secrets held
        all of them at once as bytes, text and dicts (every replica lists them every few seconds, docfeed.py),
        and the RSS keeps that high-water mark. A continue token that expired mid-list (410) raises."""
        path = _secrets(namespace)  # a crafted namespace is refused here, at the call, not at the first read
        return self._pages(path, {"labelSelector": label_selector, "limit": str(LIST_PAGE)})

    def _pages(self, path: str, query: dict[str, str]) -> Iterator[Body]:
        while True:
            found = self._request("GET", path, query=query)
            yield from found.get("items") or []
            token = (found.get("metadata") or {}).get("continue")
            if not token:
                return
            query["continue"] = token

    def create_secret(self, namespace: str, body: Body) -> Body:
        path = _secrets(namespace)
        path_segment(body["metadata"]["name"])  # the name the API server will use: refused here as in a path
        try:
            return self._request("POST", path, body=_with_kind(body, "Secret"))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Secret {namespace}/{body['metadata']['name']} already exists") from None
            raise

    def replace_secret(self, namespace: str, name: str, body: Body) -> Body:
        try:
            return self._request("PUT", _secrets(namespace, name),
                                     body=_with_kind(body, "Secret"))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Secret {namespace}/{name} changed meanwhile") from None
            raise

    def patch_secret(self, namespace: str, name: str, patch: Body) -> Body | None:
        try:
            return self._request("PATCH", _secrets(namespace, name), body=patch,
                              content_type=MERGE_PATCH)
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def delete_secret(self, namespace: str, name: str) -> None:
        try:
            self._request("DELETE", _secrets(namespace, name))
        except ApiException as exc:
            _none_on_404(exc)

    def patch_client(self, namespace: str, name: str, patch: Body) -> Body | None:
        """A JSON merge patch of the OAuthClient itself (its finalizers); the object after it, None when gone."""
        try:
            return self._request("PATCH", _custom(namespace, OAUTHCLIENTS, name), body=patch,
                                     content_type=MERGE_PATCH)
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def patch_client_status(self, namespace: str, name: str, patch: Body) -> str | None:
        """The object's resourceVersion after the patch (None when it was deleted meanwhile)."""
        try:
            patched = self._request("PATCH", _custom(namespace, OAUTHCLIENTS, name, "status"),
                                        body={"status": patch}, content_type=MERGE_PATCH)
        except ApiException as exc:
            _none_on_404(exc)  # deleted meanwhile: nothing to report on
            return None
        return str((patched.get("metadata") or {}).get("resourceVersion") or "") or None

    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Body) -> None:
        path = f"{_server(kind, namespace, name)}/status"
        try:
            self._request("PATCH", path, body={"status": patch}, content_type=MERGE_PATCH)
        except ApiException as exc:
            _none_on_404(exc)

    def post_event(self, involved: Body, *, warning: bool, reason: str, message: str) -> None:
        meta = involved.get("metadata", {})
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        namespace = meta.get("namespace") or "default"
        path = f"/api/v1/namespaces/{_ns(namespace)}/events"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name', 'clientreg')}.", "namespace": namespace},
            "involvedObject": {"apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                               "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                               "resourceVersion": meta.get("resourceVersion")},
            "type": "Warning" if warning else "Normal", "reason": reason, "message": message[:1024],
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "source": {"component": EVENT_COMPONENT}, "reportingComponent": EVENT_COMPONENT,
            "reportingInstance": EVENT_COMPONENT,
        }
        try:
            self._request("POST", path, body=event)
        except ApiException as exc:
            # An event is a courtesy: never let it fail a reconcile.
            log.warning("could not post event %s on %s/%s: HTTP %s", reason, namespace, meta.get("name"), exc.status)

    def list_deployments(self, namespace: str) -> list[Body]:
        path = f"/apis/apps/v1/namespaces/{_ns(namespace)}/deployments"
        return list(self._request("GET", path).get("items") or [])

    def patch_deployment(self, namespace: str, name: str, patch: Body) -> None:
        path = f"/apis/apps/v1/namespaces/{_ns(namespace)}/deployments/{path_segment(name)}"
        self._request("PATCH", path, body=patch, content_type=MERGE_PATCH)


# Every path is built here, each segment that came from a document through path_segment: a name such as
# "../../kube-system/secrets/x" raises ConfigurationError before a request exists (defence in depth: the
# models and the CRDs refuse it first).

def _ns(namespace: str) -> str:
    return path_segment(namespace, kind="namespace")


def _custom(namespace: str, plural: str, name: str, *subresource: str) -> str:
    return (f"/apis/{_GROUP}/{_VERSION}/namespaces/{_ns(namespace)}/{plural}/"
            f"{path_segment(name)}" + "".join(f"/{s}" for s in subresource))


def _server(kind: str, namespace: str | None, name: str) -> str:
    if kind == "ClusterAuthorizationServer":
        return f"/apis/{_GROUP}/{_VERSION}/{CLUSTERAUTHORIZATIONSERVERS}/{path_segment(name)}"
    return _custom(namespace or "default", AUTHORIZATIONSERVERS, name)


def _secrets(namespace: str, name: str | None = None) -> str:
    path = f"/api/v1/namespaces/{_ns(namespace)}/secrets"
    return path if name is None else f"{path}/{path_segment(name)}"


def _with_kind(body: Body, kind: str) -> Body:
    return {"apiVersion": "v1", "kind": kind, **body}

"""The few API calls the operator makes, behind a protocol so the reconciler is testable without a cluster.

Objects travel as plain dicts in their JSON shape (camelCase, Secret data base64-encoded): the same
shape kopf hands to handlers and the one the fakes in the unit tests store.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

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
_GROUP, _VERSION = API_VERSION.split("/")


class Conflict(Exception):
    """The object changed or appeared since it was read (HTTP 409)."""


class Cluster(Protocol):
    def get_client(self, namespace: str, name: str) -> Body | None: ...
    def get_server(self, kind: str, namespace: str | None, name: str) -> Body | None: ...
    def get_secret(self, namespace: str, name: str) -> Body | None: ...
    def list_secrets(self, namespace: str, label_selector: str) -> list[Body]: ...
    def create_secret(self, namespace: str, body: Body) -> Body: ...
    def replace_secret(self, namespace: str, name: str, body: Body) -> Body: ...
    def patch_secret(self, namespace: str, name: str, patch: Body) -> Body | None: ...
    def delete_secret(self, namespace: str, name: str) -> None: ...
    def patch_client_status(self, namespace: str, name: str, patch: Body) -> None: ...
    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Body) -> None: ...
    def post_event(self, involved: Body, *, warning: bool, reason: str, message: str) -> None: ...
    def list_deployments(self, namespace: str) -> list[Body]: ...
    def patch_deployment(self, namespace: str, name: str, patch: Body) -> None: ...


def _none_on_404(exc: ApiException) -> None:
    if exc.status != 404:
        raise exc


class KubeCluster:
    """:class:`Cluster` over the official client (synchronous: it runs in the reconcile threads)."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.apps = k8s.AppsV1Api(api)

    def _dict(self, obj: Any) -> Body:
        result: Body = self.api.sanitize_for_serialization(obj)
        return result

    def get_client(self, namespace: str, name: str) -> Body | None:
        try:
            result: Body = self.custom.get_namespaced_custom_object(_GROUP, _VERSION, namespace, OAUTHCLIENTS, name)
            return result
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def get_server(self, kind: str, namespace: str | None, name: str) -> Body | None:
        try:
            if kind == "ClusterAuthorizationServer":
                found: Body = self.custom.get_cluster_custom_object(_GROUP, _VERSION, CLUSTERAUTHORIZATIONSERVERS,
                                                                    name)
            else:
                found = self.custom.get_namespaced_custom_object(_GROUP, _VERSION, namespace or "default",
                                                                 AUTHORIZATIONSERVERS, name)
            return found
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def get_secret(self, namespace: str, name: str) -> Body | None:
        try:
            return self._dict(self.core.read_namespaced_secret(name, namespace))
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def list_secrets(self, namespace: str, label_selector: str) -> list[Body]:
        found = self.core.list_namespaced_secret(namespace, label_selector=label_selector)
        return [self._dict(item) for item in found.items]

    def create_secret(self, namespace: str, body: Body) -> Body:
        try:
            return self._dict(self.core.create_namespaced_secret(namespace, body))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Secret {namespace}/{body['metadata']['name']} already exists") from None
            raise

    def replace_secret(self, namespace: str, name: str, body: Body) -> Body:
        try:
            return self._dict(self.core.replace_namespaced_secret(name, namespace, body))
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"Secret {namespace}/{name} changed meanwhile") from None
            raise

    def patch_secret(self, namespace: str, name: str, patch: Body) -> Body | None:
        try:
            return self._dict(self.core.patch_namespaced_secret(name, namespace, patch,
                                                                 _content_type=MERGE_PATCH))
        except ApiException as exc:
            _none_on_404(exc)
            return None

    def delete_secret(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_secret(name, namespace)
        except ApiException as exc:
            _none_on_404(exc)

    def patch_client_status(self, namespace: str, name: str, patch: Body) -> None:
        try:
            self.custom.patch_namespaced_custom_object_status(_GROUP, _VERSION, namespace, OAUTHCLIENTS, name,
                                                              {"status": patch}, _content_type=MERGE_PATCH)
        except ApiException as exc:
            _none_on_404(exc)  # deleted meanwhile: nothing to report on

    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Body) -> None:
        try:
            if kind == "ClusterAuthorizationServer":
                self.custom.patch_cluster_custom_object_status(_GROUP, _VERSION, CLUSTERAUTHORIZATIONSERVERS,
                                                               name, {"status": patch}, _content_type=MERGE_PATCH)
            else:
                self.custom.patch_namespaced_custom_object_status(_GROUP, _VERSION, namespace or "default",
                                                                  AUTHORIZATIONSERVERS, name, {"status": patch},
                                                                  _content_type=MERGE_PATCH)
        except ApiException as exc:
            _none_on_404(exc)

    def post_event(self, involved: Body, *, warning: bool, reason: str, message: str) -> None:
        meta = involved.get("metadata", {})
        now = datetime.now(UTC)
        namespace = meta.get("namespace") or "default"
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name=f"{meta.get('name', 'clientreg')}.", namespace=namespace),
            involved_object=k8s.V1ObjectReference(
                api_version=involved.get("apiVersion"), kind=involved.get("kind"), name=meta.get("name"),
                namespace=meta.get("namespace"), uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion")),
            type="Warning" if warning else "Normal", reason=reason, message=message[:1024],
            first_timestamp=now, last_timestamp=now, count=1, event_time=None,
            source=k8s.V1EventSource(component=EVENT_COMPONENT), reporting_component=EVENT_COMPONENT,
            reporting_instance=EVENT_COMPONENT)
        try:
            self.core.create_namespaced_event(namespace, event)
        except ApiException as exc:
            # An event is a courtesy: never let it fail a reconcile.
            log.warning("could not post event %s on %s/%s: HTTP %s", reason, namespace, meta.get("name"), exc.status)

    def list_deployments(self, namespace: str) -> list[Body]:
        return [self._dict(d) for d in self.apps.list_namespaced_deployment(namespace).items]

    def patch_deployment(self, namespace: str, name: str, patch: Body) -> None:
        self.apps.patch_namespaced_deployment(name, namespace, patch, _content_type=MERGE_PATCH)

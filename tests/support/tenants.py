"""Tenants as a platform team would set them up: a namespace, a ServiceAccount and a namespace-scoped Role like
the built-in admin/edit ClusterRoles (OAuthClients, AuthorizationServers and Secrets of that namespace, nothing
else), and API clients authenticated as that ServiceAccount, never as cluster admin."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from support.recorder_as import RecorderAS

GROUP, VERSION = "clientreg.dev", "v1alpha1"
KINDS = {"oauthclients": "OAuthClient", "authorizationservers": "AuthorizationServer"}


def tenant_role(namespace: str) -> dict[str, Any]:
    every = ["get", "list", "watch", "create", "update", "patch", "delete"]
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "tenant-admin", "namespace": namespace},
            "rules": [{"apiGroups": [GROUP], "resources": ["oauthclients", "authorizationservers"], "verbs": every},
                      {"apiGroups": [""], "resources": ["secrets"], "verbs": every},
                      {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}]}


class Tenant:
    """One tenant's identity: its own kubeconfig, API clients, and the recorder AS it controls."""

    def __init__(self, namespace: str, kubeconfig: Path, recorder: RecorderAS, kube_class: type) -> None:
        self.namespace, self.recorder = namespace, recorder
        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        #: tests/e2e/conftest.py's Kube helpers, authenticated as this tenant.
        self.kube = kube_class(self.api)

    def create(self, plural: str, name: str, spec: dict[str, Any], namespace: str | None = None) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace or self.namespace, plural, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": KINDS[plural], "metadata": {"name": name}, "spec": spec})

    def can(self, verb: str, resource: str, namespace: str | None, group: str = "", name: str = "",
            subresource: str = "") -> bool:
        """SelfSubjectAccessReview: what the API server's authorizer says this tenant may do."""
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                            namespace=namespace, name=name or None,
                                                            subresource=subresource or None)))
        status = client.AuthorizationV1Api(self.api).create_self_subject_access_review(review).status
        return bool(status is not None and status.allowed)

    def secret_values(self) -> list[str]:
        """Every value of every Secret the tenant can list in its own namespace, decoded."""
        found = self.core.list_namespaced_secret(self.namespace).items
        return [base64.b64decode(v).decode(errors="replace") for s in found for v in (s.data or {}).values()]

    def close(self) -> None:
        self.api.close()


def _create(call: Callable[[], object]) -> None:
    """Create, tolerating what an earlier run in the same cluster left behind."""
    try:
        call()
    except ApiException as exc:
        if exc.status != 409:
            raise


def make_tenant(kube: Any, control_plane: Any, namespace: str, recorder: RecorderAS, folder: Path,
                kube_class: type) -> Tenant:
    """Namespace, ServiceAccount ``tenant``, Role and RoleBinding ``tenant-admin`` (as cluster admin), then the
    tenant's own clients."""
    rbac = client.RbacAuthorizationV1Api(kube.api)
    kube.namespace(namespace)
    # Plain dicts: the client serializes them as they are (its typed models would add nothing here).
    role: Any = tenant_role(namespace)
    binding: Any = {
        "metadata": {"name": "tenant-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "tenant-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "tenant", "namespace": namespace}]}
    _create(lambda: kube.core.create_namespaced_service_account(namespace, {"metadata": {"name": "tenant"}}))
    _create(lambda: rbac.create_namespaced_role(namespace, role))
    _create(lambda: rbac.create_namespaced_role_binding(namespace, binding))
    path = control_plane.service_account_kubeconfig(namespace, "tenant", folder / f"{namespace}.kubeconfig")
    return Tenant(namespace, path, recorder, kube_class)

"""ClusterAuthorizationServer.spec.allowedNamespaces on a real API server, under the chart's RBAC.

The CRD refuses malformed selectors at once; the operator (as the chart's ServiceAccount, which may get
Namespaces and nothing more about them) admits a listed namespace and a labelled one, and refuses the
rest with Ready=False / NamespaceNotAllowed before anything reaches the AS. The AS is the dev AS on
loopback.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from support.operator_process import OPERATOR_NAMESPACE, OperatorProcess

pytestmark = pytest.mark.e2e

GROUP, VERSION = "clientreg.dev", "v1alpha1"
Kube = Any
M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}


def _cluster_server(kube: Kube, name: str, spec: dict[str, Any]) -> None:
    kube.custom.create_cluster_custom_object(GROUP, VERSION, "clusterauthorizationservers", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterAuthorizationServer", "metadata": {"name": name},
        "spec": spec})


def _delete_cluster_server(kube: Kube, name: str) -> None:
    try:
        kube.custom.delete_cluster_custom_object(GROUP, VERSION, "clusterauthorizationservers", name)
    except ApiException as exc:
        if exc.status != 404:
            raise


def _labelled_namespace(kube: Kube, name: str, labels: dict[str, str]) -> str:
    kube.namespace(name)
    client.CoreV1Api(kube.api).patch_namespace(name, {"metadata": {"labels": labels}})
    return name


@pytest.mark.parametrize(("allowed", "expected"), [
    ({"selector": {}}, "empty selector would match every namespace"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "In"}]}}, "In and NotIn need values"),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "Exists", "values": ["x"]}]}},
     "Exists and DoesNotExist take none"),
    ({"names": ["../kube-system"]}, "names"),
    ({"selector": {"matchLabels": {"tier": "a b"}}}, "matchLabels"),
])
def test_the_crd_refuses_malformed_allowed_namespaces(kube: Kube, chart_installed: str, allowed: dict[str, Any],
                                                      expected: str) -> None:
    with pytest.raises(ApiException) as info:
        _cluster_server(kube, "malformed", {"issuer": "https://as.example.com", "allowedNamespaces": allowed})
    assert info.value.status == 422 and expected in info.value.body


def test_allowed_namespaces_admit_by_name_or_label_and_refuse_the_rest(
        kube: Kube, operator: OperatorProcess, dev_server: Any, eventually: Any) -> None:
    listed = kube.namespace("cas-listed")
    gold = _labelled_namespace(kube, "cas-gold", {"clientreg.dev/tier": "gold"})
    other = _labelled_namespace(kube, "cas-other", {"clientreg.dev/tier": "free"})
    kube.secret(OPERATOR_NAMESPACE, "cas-dev-iat", {"token": "e2e-dev-iat"})
    _cluster_server(kube, "cas-dev", {
        "issuer": dev_server.issuer,
        "initialAccessToken": {"secretKeyRef": {"name": "cas-dev-iat", "key": "token"}},
        "allowedNamespaces": {"names": [listed], "selector": {"matchLabels": {"clientreg.dev/tier": "gold"}}}})
    try:
        ref = {"serverRef": {"kind": "ClusterAuthorizationServer", "name": "cas-dev"}, **M2M}
        for namespace in (listed, gold, other):
            kube.oauth_client(namespace, "app", ref)
        kube.wait_ready(listed, "app")
        kube.wait_ready(gold, "app")  # the chart's RBAC lets the operator read the Namespace's labels

        def refused() -> dict[str, Any] | None:
            cond = kube.condition(other, "app")
            return cond if cond and cond["reason"] == "NamespaceNotAllowed" else None

        cond = eventually(refused, "the unlabelled namespace refused")
        assert cond["status"] == "False"
        assert "ClusterAuthorizationServer 'cas-dev'" in cond["message"] and "allowedNamespaces" in cond["message"]
        assert listed not in cond["message"], "the refusal must not name the admitted namespaces"
        body = kube.get_client(other, "app")
        assert body is not None and "clientId" not in (body.get("status") or {})
        assert "NamespaceNotAllowed" in [e.reason for e in kube.events(other, "app")]

        # Labelling the namespace admits it without touching the OAuthClient (retried with backoff).
        client.CoreV1Api(kube.api).patch_namespace(other, {"metadata": {"labels": {"clientreg.dev/tier": "gold"}}})
        kube.wait_ready(other, "app", timeout=120)
    finally:
        for namespace in (listed, gold, other):
            kube.delete_client(namespace, "app")
        _delete_cluster_server(kube, "cas-dev")

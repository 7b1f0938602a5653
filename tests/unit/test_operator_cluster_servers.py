"""The operator's side of ClusterAuthorizationServer.spec.allowedNamespaces and of the per-kind SSRF policy.

A refused OAuthClient gets Ready=False with reason NamespaceNotAllowed, the AS sees no request and the
platform's initial access token is never read; namespace labels are read only when a selector decides.
The address policy follows the kind of server: strict for tenants' AuthorizationServers, private addresses
allowed for ClusterAuthorizationServers. Nothing here opens a socket.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from clientreg_operator.config import DEFAULT_ADDRESS_POLICIES, ServerAddressPolicies
from support.fake_as import ISSUER
from support.server_status import ServerStatusCluster
from test_operator_reconciler import NS, World

from clientreg.ssrf import AddressPolicy
from clientreg_kube.cluster import Body

PLATFORM_IAT = "platform-IAT-9z8y7x6w"


class CountingWorld(World):
    """The reconciler's world plus a ClusterAuthorizationServer, Namespace objects and read counters."""

    def __init__(self, allowed_namespaces: dict[str, Any] | None, namespace_labels: dict[str, str] | None = None,
                 ) -> None:
        super().__init__(iat=PLATFORM_IAT)
        self.secret_reads: list[tuple[str, str]] = []
        self.namespace_reads: list[str] = []
        spec: dict[str, Any] = {"issuer": ISSUER,
                                "initialAccessToken": {"secretKeyRef": {"name": "platform-iat", "key": "token"}}}
        if allowed_namespaces is not None:
            spec["allowedNamespaces"] = allowed_namespaces
        self.cluster.put("ClusterAuthorizationServer", {"apiVersion": "clientreg.dev/v1alpha1",
                                                        "kind": "ClusterAuthorizationServer",
                                                        "metadata": {"name": "platform"}, "spec": spec})
        self.cluster.put("Secret", {"apiVersion": "v1", "kind": "Secret",
                                    "metadata": {"name": "platform-iat", "namespace": "clientreg"},
                                    "data": {"token": base64.b64encode(PLATFORM_IAT.encode()).decode()}})
        self.cluster.put("Namespace", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": NS, "labels": namespace_labels or {}}})
        get_secret, get_namespace = self.cluster.get_secret, self.cluster.get_namespace

        def counted_secret(namespace: str, name: str) -> Body | None:
            self.secret_reads.append((namespace, name))
            return get_secret(namespace, name)

        def counted_namespace(name: str) -> Body | None:
            self.namespace_reads.append(name)
            return get_namespace(name)

        self.cluster.get_secret = counted_secret  # type: ignore[method-assign]
        self.cluster.get_namespace = counted_namespace  # type: ignore[method-assign]

    def add_cluster_client(self) -> None:
        self.add_client(serverRef={"kind": "ClusterAuthorizationServer", "name": "platform"})


def test_a_refused_namespace_is_not_ready_and_costs_the_as_nothing() -> None:
    w = CountingWorld({"names": ["tenant-z"], "selector": {"matchLabels": {"tier": "gold"}}}, {"tier": "free"})
    w.add_cluster_client()
    result = w.reconcile()
    ready = w.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotAllowed")
    assert "ClusterAuthorizationServer 'platform'" in ready["message"]
    assert "spec.allowedNamespaces" in ready["message"] and NS in ready["message"]
    assert "tenant-z" not in ready["message"], "another tenant's namespace name leaked into the status"
    assert dict(w.fake.calls) == {}, "the AS was contacted for a refused namespace"
    assert ("clientreg", "platform-iat") not in w.secret_reads, "the platform's IAT was read"
    assert w.namespace_reads == [NS]
    assert [e["reason"] for e in w.cluster.events] == ["NamespaceNotAllowed"]
    assert w.cluster.events[0]["warning"] is True
    visible = json.dumps(w.cluster.client()["status"]) + json.dumps(w.cluster.events)
    assert PLATFORM_IAT not in visible
    assert result.reason == "NamespaceNotAllowed" and result.requeue_after is not None  # labels may change


@pytest.mark.parametrize(("allowed", "labels"), [
    (None, {}),
    ({"names": [NS]}, {}),
    ({"selector": {"matchLabels": {"tier": "gold"}}}, {"tier": "gold"}),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}},
     {"tier": "silver"}),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["free"]}]}}, {}),
    ({"selector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}}, {"tier": ""}),
    ({"selector": {"matchExpressions": [{"key": "quarantine", "operator": "DoesNotExist"}]}}, {"tier": "x"}),
])
def test_an_admitted_namespace_registers_at_the_cluster_server(allowed: dict[str, Any] | None,
                                                               labels: dict[str, str]) -> None:
    w = CountingWorld(allowed, labels)
    w.add_cluster_client()
    w.reconcile()
    ready = w.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("True", "InSync"), ready
    assert w.fake.calls["POST /register"] == 1
    assert ("clientreg", "platform-iat") in w.secret_reads
    selector_decides = allowed is not None and NS not in allowed.get("names", [])
    assert w.namespace_reads == ([NS] if selector_decides else [])


def test_an_admitted_client_is_refused_once_its_namespace_is_taken_off_the_list() -> None:
    w = CountingWorld(None)
    w.add_cluster_client()
    w.reconcile()
    assert w.condition("Ready")["status"] == "True"
    body = w.cluster.objects[("ClusterAuthorizationServer", "", "platform")]
    body["spec"]["allowedNamespaces"] = {"names": ["tenant-z"]}
    body["metadata"]["generation"] += 1
    w.fake.calls.clear()
    w.clock.now = w.clock.now.replace(hour=13)
    w.reconcile()
    ready = w.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NamespaceNotAllowed")
    assert dict(w.fake.calls) == {}


# --- the address policy of each kind --------------------------------------------------------------------------

def test_default_policies_are_strict_for_tenants_and_allow_private_for_the_platform() -> None:
    assert DEFAULT_ADDRESS_POLICIES.for_kind("AuthorizationServer") == AddressPolicy(allow_loopback=False,
                                                                                     allow_private=False)
    assert DEFAULT_ADDRESS_POLICIES.for_kind("ClusterAuthorizationServer") == AddressPolicy(allow_loopback=False,
                                                                                            allow_private=True)


@pytest.mark.parametrize(("kind", "namespace"), [("AuthorizationServer", "tenant-a"),
                                                 ("ClusterAuthorizationServer", None)])
def test_the_server_status_check_uses_the_policy_of_its_kind(monkeypatch: pytest.MonkeyPatch, kind: str,
                                                             namespace: str | None) -> None:
    from clientreg_operator import servers

    from clientreg.errors import TransportError

    policies = ServerAddressPolicies(cluster=AddressPolicy(allow_loopback=False, allow_private=True),
                                     namespaced=AddressPolicy(allow_loopback=True, allow_private=False))
    seen: list[AddressPolicy | None] = []

    def for_spec(spec: Any, *, name: str, address_policy: AddressPolicy | None) -> Any:
        seen.append(address_policy)
        raise TransportError("stopped here: no connection in unit tests")

    monkeypatch.setattr(servers.ServerConnection, "for_spec", for_spec)

    cluster = ServerStatusCluster()
    body = {"apiVersion": "clientreg.dev/v1alpha1", "kind": kind,
            "metadata": {"name": "as", "namespace": namespace, "generation": 1},
            "spec": {"issuer": "https://10.0.0.1"}}
    error = servers.check_server(cluster, body, cluster_resource_namespace="clientreg",  # type: ignore[arg-type]
                                 address_policies=policies)
    assert isinstance(error, TransportError)
    assert seen == [policies.for_kind(kind)]


def test_a_namespaced_server_on_a_private_address_is_refused_by_default() -> None:
    from clientreg_operator.servers import check_server

    cluster = ServerStatusCluster()
    patches = cluster.patches

    body = {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
            "metadata": {"name": "inward", "namespace": "tenant-a", "generation": 1},
            "spec": {"issuer": "https://10.96.0.10"}}
    # An IP literal: refused before any resolution or connection.
    error = check_server(cluster, body, cluster_resource_namespace="clientreg")  # type: ignore[arg-type]
    assert error is not None and error.reason == "FetchRefused"
    ready = patches[0]["conditions"][0]
    assert (ready["status"], ready["reason"]) == ("False", "FetchRefused")
    assert "a private address" in ready["message"]


def test_missing_rbac_on_namespaces_is_a_clear_waiting_condition() -> None:
    from kubernetes.client.exceptions import ApiException

    w = CountingWorld({"selector": {"matchLabels": {"tier": "gold"}}}, {"tier": "gold"})

    def forbidden(name: str) -> Body | None:
        raise ApiException(status=403, reason="Forbidden")

    w.cluster.get_namespace = forbidden  # type: ignore[method-assign]
    w.add_cluster_client()
    w.reconcile()
    ready = w.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Waiting")
    assert "get on namespaces" in ready["message"] and "HTTP 403" in ready["message"]
    assert dict(w.fake.calls) == {} and ("clientreg", "platform-iat") not in w.secret_reads

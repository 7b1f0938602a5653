"""High availability: several replicas, exactly one active through the Lease, failover when it dies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client

pytestmark = pytest.mark.e2e

OPERATOR_NAMESPACE = "clientreg"


def lease_holder(kube: Any) -> str | None:
    lease = client.CoordinationV1Api(kube.api).read_namespaced_lease("clientreg-operator", OPERATOR_NAMESPACE)
    holder: str | None = lease.spec.holder_identity
    return holder


def test_one_replica_leads_and_a_standby_takes_over(kube: Any, operator: Any, dev_server: Any,
                                                    operator_factory: Callable[[str], Any],
                                                    eventually: Callable[..., Any]) -> None:
    assert lease_holder(kube) == operator.identity
    standby = operator_factory("standby")
    try:
        assert not standby.is_leader() and lease_holder(kube) == operator.identity
        namespace = kube.namespace("failover")
        kube.secret(namespace, "iat", {"token": "e2e-dev-iat"})
        kube.server(namespace, "dev", {"issuer": dev_server.issuer,
                                       "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
        kube.oauth_client(namespace, "before", {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"]})
        kube.wait_ready(namespace, "before")
        # The standby serves its probes and metrics but reconciles nothing while the primary leads.
        assert not standby.is_leader() and "clientreg_reconcile_total{" not in standby.metrics()

        operator.kill()  # no release: the standby must wait for the Lease to expire
        eventually(standby.is_leader, "the standby taking over", timeout=60)
        assert lease_holder(kube) == standby.identity
        kube.oauth_client(namespace, "after", {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"]})
        kube.wait_ready(namespace, "after")
    finally:
        standby.stop()  # a clean stop hands the Lease back at once
    eventually(lambda: lease_holder(kube) in (None, ""), "the Lease released on a clean stop", timeout=30)
    operator.start()
    eventually(operator.is_leader, "the primary leading again", timeout=60)

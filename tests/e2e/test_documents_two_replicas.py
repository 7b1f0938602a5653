"""Published documents with two replicas: the leader and a standby serve the same CIMD document and JWK Set
byte for byte (the Service balances over both), and a second tenant claiming the first one's document path
neither takes it over nor knocks it offline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

A_CIMD = "https://app.docs-a.example.test/clients/agent.json"
A_JWKS = "https://keys.docs-a.example.test/svc/jwks.json"
B_OWN = "https://app.docs-b.example.test/clients/own.json"


def path_of(url: str) -> str:
    return url.split("://", 1)[1]


def fetch(proc: Any, url: str) -> bytes | None:
    response = httpx.get(f"http://127.0.0.1:{proc.metrics_port}/documents/{path_of(url)}", timeout=5)
    if response.status_code == 404:
        return None
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    return response.content


@pytest.fixture
def standby(operator: Any, operator_factory: Callable[[str], Any]) -> Iterator[Any]:
    proc = operator_factory("documents-standby")
    try:
        yield proc
    finally:
        proc.stop()


def test_leader_and_standby_serve_the_same_documents_and_a_tenant_cannot_take_another_ones_path(
        kube: Any, operator: Any, standby: Any, dev_server: Any, eventually: Callable[..., Any]) -> None:
    assert operator.is_leader() and not standby.is_leader()
    tenant_a, tenant_b = kube.namespace("docs-tenant-a"), kube.namespace("docs-tenant-b")
    for namespace in (tenant_a, tenant_b):
        kube.secret(namespace, "iat", {"token": "e2e-dev-iat"})
        kube.server(namespace, "dev", {"issuer": dev_server.issuer,
                                       "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    cimd = {"serverRef": {"name": "dev"}, "registration": "cimd", "tokenEndpointAuthMethod": "none",
            "grantTypes": ["authorization_code"]}
    try:
        kube.oauth_client(tenant_a, "agent", {**cimd, "clientIdUrl": A_CIMD, "clientName": "Tenant A agent",
                                              "redirectUris": ["https://app.docs-a.example.test/cb"]})
        kube.oauth_client(tenant_a, "svc", {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"],
                                            "tokenEndpointAuthMethod": "private_key_jwt", "keyPair": {},
                                            "jwksUri": A_JWKS})

        def both_serve_a() -> tuple[bytes, bytes] | None:
            found = [(fetch(p, A_CIMD), fetch(p, A_JWKS)) for p in (operator, standby)]
            if any(body is None for pair in found for body in pair):
                return None
            assert found[0] == found[1], "the leader and the standby serve different bytes"
            return found[0]  # type: ignore[return-value]

        cimd_body, jwks_body = eventually(both_serve_a, "the leader and the standby serving tenant A's documents",
                                          timeout=90)
        document = json.loads(cimd_body)
        assert document["client_id"] == A_CIMD and document["client_name"] == "Tenant A agent"
        jwks = json.loads(jwks_body)
        assert jwks["keys"] and all(not {"d", "p", "q", "k"} & set(key) for key in jwks["keys"])

        # Tenant B, later, claims tenant A's path with its own document.
        kube.oauth_client(tenant_b, "evil", {**cimd, "clientIdUrl": A_CIMD, "clientName": "Tenant B impostor",
                                             "redirectUris": ["https://app.docs-b.example.test/cb"]})
        refused = eventually(lambda: (c := kube.condition(tenant_b, "evil")) and c["reason"] == "DocumentHostTaken"
                             and c, "tenant B's client refused the host", timeout=90)
        assert refused["status"] == "False" and tenant_a not in refused["message"]
        # A marker created after B's record: once the standby serves it, its list included B's record too.
        kube.oauth_client(tenant_b, "own", {**cimd, "clientIdUrl": B_OWN, "clientName": "Tenant B own",
                                            "redirectUris": ["https://app.docs-b.example.test/cb"]})
        eventually(lambda: all(fetch(p, B_OWN) for p in (operator, standby)), "tenant B's own document served",
                   timeout=90)
        for proc in (operator, standby):
            assert fetch(proc, A_CIMD) == cimd_body, f"{proc.identity} no longer serves tenant A's document"
            assert fetch(proc, A_JWKS) == jwks_body
    finally:
        for namespace, name in ((tenant_b, "evil"), (tenant_b, "own"), (tenant_a, "agent"), (tenant_a, "svc")):
            kube.delete_client(namespace, name)

"""Counted from the API server's audit log: a new client costs the operator at most four Kubernetes writes
(finalizer, record Secret, credentials Secret, status; no bookkeeping annotation, no routine Event), and one
drift-check round over N unchanged clients is N reads at the AS and no write anywhere (bench/converge.py
prints the same counts at N = 100 and 1,000)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.operator_process import SERVICE_ACCOUNT_USER, OperatorProcess

pytestmark = pytest.mark.e2e

CLIENTS = 40
SHARD = "test.clientreg.dev/shard"
# Long enough for all CLIENTS to converge before the first scheduled check of any of them.
DRIFT_CHECK_SECONDS = 20


@pytest.fixture(scope="module")
def counted_server() -> Iterator[Any]:
    """A dev AS of this module alone, so its request counters hold only this module's traffic."""
    from clientreg.devserver import DevServer, DevServerSettings

    with DevServer(DevServerSettings(port=0, initial_access_token="steady-iat")) as server:
        yield server


@pytest.fixture(scope="module")
def steady_operator(operator_kubeconfig: Path, operator_logs: Path) -> Iterator[OperatorProcess]:
    proc = OperatorProcess(operator_kubeconfig, operator_logs, identity="steady", extra=(
        "--label-selector", f"{SHARD}=steady", "--lease-name", "clientreg-steady",
        "--drift-check-interval", f"{DRIFT_CHECK_SECONDS}s")).start()
    yield proc
    proc.stop()


def _requests(server: Any) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{server.issuer}/_dev/requests", timeout=5).json()
    return counts


def test_one_drift_round_reads_each_client_once_and_writes_nothing(
        kube: Any, control_plane: Any, counted_server: Any, steady_operator: OperatorProcess,
        eventually: Any) -> None:
    namespace = kube.namespace("steady-state")
    kube.secret(namespace, "iat", {"token": "steady-iat"})
    kube.server(namespace, "dev", {"issuer": counted_server.issuer,
                                   "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    eventually(steady_operator.is_leader, "the steady-state operator leading", timeout=60)

    def writes() -> list[dict[str, Any]]:
        return [e for e in control_plane.audit_events(user=SERVICE_ACCOUNT_USER)
                if e.get("objectRef", {}).get("resource") != "leases"]

    creation_mark = len(writes())
    for i in range(CLIENTS):
        kube.custom.create_namespaced_custom_object("clientreg.dev", "v1alpha1", namespace, "oauthclients", {
            "apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
            "metadata": {"name": f"c{i:03d}", "labels": {SHARD: "steady"}},
            "spec": {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"]}})
    for i in range(CLIENTS):
        kube.wait_ready(namespace, f"c{i:03d}")
    time.sleep(2)  # the last status patches and their watch events settle
    _assert_at_most_four_writes_per_new_client(kube, namespace, writes()[creation_mark:])

    registered = sum(n for route, n in _requests(counted_server).items() if route == "POST /register")
    assert registered == CLIENTS, "one registration per OAuthClient"
    httpx.post(f"{counted_server.issuer}/_dev/reset-counters", timeout=5)
    writes_before = len(writes())

    def reads() -> int:
        return sum(n for route, n in _requests(counted_server).items() if route.startswith("GET /register/"))

    eventually(lambda: reads() >= CLIENTS, "one drift-check round", timeout=DRIFT_CHECK_SECONDS + 60)
    time.sleep(3)  # a second read of any client, or a write, would show by now (the next round is ~20 s away)
    counts = _requests(counted_server)
    assert reads() == CLIENTS, f"exactly one RFC 7592 read per client in one round, got {counts}"
    assert sum(n for route, n in counts.items() if not route.startswith("GET")) == 0, counts
    new_writes = writes()[writes_before:]
    assert new_writes == [], "a drift round over unchanged clients writes nothing to Kubernetes: " + ", ".join(
        f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}" for e in new_writes)


def _assert_at_most_four_writes_per_new_client(kube: Any, namespace: str, audited: list[dict[str, Any]]) -> None:
    """The creation's writes, per client: its finalizer (patch oauthclients), its record Secret (in the
    records namespace, named by the client's UID), its credentials Secret and its status; nothing else."""
    uids = {item["metadata"]["uid"]: item["metadata"]["name"] for item in kube.custom.list_namespaced_custom_object(
        "clientreg.dev", "v1alpha1", namespace, "oauthclients")["items"]}
    per_client: dict[str, list[str]] = {}
    for event in audited:
        ref = event.get("objectRef", {})
        name = str(ref.get("name") or "")
        if ref.get("resource") == "authorizationservers":
            continue  # the server's own status, written once for all its clients
        if ref.get("namespace") == namespace:
            owner = name.removesuffix("-oauth") if ref.get("resource") == "secrets" else name
        elif ref.get("resource") == "secrets" and name.startswith("clientreg-record-"):
            owner = uids.get(name.removeprefix("clientreg-record-"), "")
        else:
            continue
        if ref.get("resource") == "events" and not owner:
            owner = "(event)"
        what = f"{event['verb']} {ref.get('resource')}" + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        per_client.setdefault(owner, []).append(what)
    assert set(per_client) == set(uids.values()), per_client.keys() - set(uids.values())
    expected = ["create secrets", "create secrets", "patch oauthclients", "patch oauthclients/status"]
    too_many = {name: sorted(done) for name, done in per_client.items() if sorted(done) != expected}
    assert not too_many, f"a new client costs exactly these four writes, {expected}: {too_many}"

"""kstatus's conditions (Stalled, Reconciling) as the operator writes them, reason by reason.

Flux's health checks read status with kstatus (sigs.k8s.io/cli-utils), which ignores Synced and reads
Ready=False as InProgress: without Stalled a client whose spec can never work keeps a health check
waiting until its timeout. Each scenario below is a real status block out of the reconciler; this
module checks the conditions in it, and tests/interop/test_kstatus.py hands the same blocks to the
real kstatus library.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clientreg_operator import status as st
from clientreg_operator.servers import check_server
from support.fake_as import ISSUER
from test_operator_reconciler import NS, FakeCluster, World, _secret_body

Body = dict[str, Any]
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Scenario:
    build: Callable[[], Body]
    #: What kstatus must compute: Current, InProgress or Failed.
    kstatus: str
    #: The kstatus condition the operator sets (None: neither), and the Ready reason behind it.
    condition: str | None
    reason: str | None
    #: How far metadata.generation is ahead of status.observedGeneration.
    unobserved: int = 0


def _settled_world() -> World:
    w = World()
    w.add_client()
    w.reconcile()
    return w


def in_sync() -> Body:
    return _settled_world().cluster.client()


def invalid_spec() -> Body:
    w = World()
    w.add_client(grantTypes=["authorization_code"])  # no redirectUris: only an edit fixes it
    w.reconcile()
    return w.cluster.client()


def invalid_spec_fixed() -> Body:
    w = World()
    w.add_client(grantTypes=["authorization_code"])
    w.reconcile()
    w.cluster.edit_client(grantTypes=["client_credentials"])
    w.reconcile()
    return w.cluster.client()


def redirect_not_permitted() -> Body:
    w = World()
    server = w.cluster.objects[("AuthorizationServer", NS, "as")]
    server["spec"]["allowedRedirectHosts"] = ["app.example.com"]
    w.add_client(grantTypes=["authorization_code"], responseTypes=["code"],
                 redirectUris=["https://elsewhere.example.net/callback"])
    w.reconcile()
    return w.cluster.client()


def secret_conflict() -> Body:
    w = World()
    w.cluster.put("Secret", _secret_body("billing-oauth", {"mine": "yes"}))
    w.add_client()
    w.reconcile()
    return w.cluster.client()


def waiting_for_secret() -> Body:
    w = World(with_iat_secret=False)
    w.add_client()
    w.reconcile()
    return w.cluster.client()


def server_unreachable() -> Body:
    w = _settled_world()
    w.clock.now += timedelta(minutes=1)
    w.fake.fail_next = [503] * 20
    w.reconcile()
    return w.cluster.client()


def generation_ahead() -> Body:
    w = _settled_world()
    w.cluster.edit_client(scope="api:read api:write")  # the spec changed; no reconcile has seen it yet
    return w.cluster.client()


class _ServerCluster(FakeCluster):
    """Keeps the status check_server writes (FakeCluster only counts them)."""

    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Body) -> None:
        body = self.objects[(kind, namespace or "", name)]
        status = body.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value


def _server(with_token: bool) -> Body:
    cluster = _ServerCluster()
    body = cluster.put("AuthorizationServer", {
        "apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
        "metadata": {"name": "direct", "namespace": NS},
        "spec": {"registrationEndpoint": f"{ISSUER}/register",
                 "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}}})
    if with_token:
        cluster.put("Secret", _secret_body("iat", {"token": "t"}))
    check_server(cluster, body, cluster_resource_namespace="clientreg")
    return copy.deepcopy(cluster.objects[("AuthorizationServer", NS, "direct")])


def _server_bad_spec() -> Body:
    cluster = _ServerCluster()
    body = cluster.put("AuthorizationServer", {
        "apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
        "metadata": {"name": "nowhere", "namespace": NS}, "spec": {}})  # neither issuer nor endpoint
    check_server(cluster, body, cluster_resource_namespace="clientreg")
    return copy.deepcopy(cluster.objects[("AuthorizationServer", NS, "nowhere")])


SCENARIOS: dict[str, Scenario] = {
    "in-sync": Scenario(in_sync, "Current", None, "InSync"),
    "invalid-spec": Scenario(invalid_spec, "Failed", st.STALLED, "InvalidSpec"),
    "invalid-spec-fixed": Scenario(invalid_spec_fixed, "Current", None, "InSync"),
    "redirect-not-permitted": Scenario(redirect_not_permitted, "Failed", st.STALLED, "NotPermitted"),
    "secret-conflict": Scenario(secret_conflict, "Failed", st.STALLED, "SecretConflict"),
    "waiting-for-secret": Scenario(waiting_for_secret, "InProgress", st.RECONCILING, "Waiting"),
    "server-unreachable": Scenario(server_unreachable, "InProgress", st.RECONCILING, None),
    "generation-ahead": Scenario(generation_ahead, "InProgress", None, "InSync", unobserved=1),
    "server-waiting": Scenario(lambda: _server(False), "InProgress", st.RECONCILING, "Waiting"),
    "server-ready": Scenario(lambda: _server(True), "Current", None, "Discovered"),
    "server-invalid": Scenario(_server_bad_spec, "Failed", st.STALLED, "InvalidSpec"),
}


def _conditions(body: Body) -> dict[str, Body]:
    return {c["type"]: c for c in body["status"]["conditions"]}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_each_reason_sets_the_kstatus_condition_its_table_row_says(name: str) -> None:
    scenario = SCENARIOS[name]
    body = scenario.build()
    conditions = _conditions(body)
    ready = conditions["Ready"]
    if scenario.reason is not None:
        assert ready["reason"] == scenario.reason
    kstatus = {t for t in (st.STALLED, st.RECONCILING) if t in conditions}
    assert kstatus == ({scenario.condition} if scenario.condition else set())
    if scenario.condition:
        # Same reason and message as Ready: a health check's failure names what to fix.
        flagged = conditions[scenario.condition]
        assert flagged["status"] == "True"
        assert (flagged["reason"], flagged["message"]) == (ready["reason"], ready["message"])
    assert body["status"]["observedGeneration"] == body["metadata"]["generation"] - scenario.unobserved


def test_unreachable_server_reconciles_while_the_old_credentials_keep_ready() -> None:
    conditions = _conditions(server_unreachable())
    assert conditions["Ready"]["status"] == "True" and conditions["Synced"]["status"] == "False"
    assert conditions[st.RECONCILING]["reason"] in {"ServerUnreachable", "ServerError"}


def test_stalled_clears_with_the_edit_that_fixes_the_spec_and_status_stays_byte_stable() -> None:
    w = World()
    w.add_client(grantTypes=["authorization_code"])
    w.reconcile()
    assert st.STALLED in _conditions(w.cluster.client())
    w.cluster.edit_client(grantTypes=["client_credentials"])
    w.reconcile()
    body = w.cluster.client()
    assert set(_conditions(body)) == {"Ready", "Synced"} and body["status"]["observedGeneration"] == 2
    w.cluster.writes.clear()
    w.clock.now += timedelta(minutes=10)
    w.reconcile()
    assert w.cluster.writes["client-status"] == 0


def test_a_stalled_condition_keeps_its_transition_time_across_retries() -> None:
    w = World()
    w.cluster.put("Secret", _secret_body("billing-oauth", {"mine": "yes"}))
    w.add_client()
    w.reconcile()
    first = _conditions(w.cluster.client())[st.STALLED]["lastTransitionTime"]
    w.clock.now += timedelta(minutes=5)
    w.reconcile()
    assert _conditions(w.cluster.client())[st.STALLED]["lastTransitionTime"] == first


@pytest.mark.parametrize("reason", sorted(st.TERMINAL_REASONS))
def test_every_terminal_reason_is_stalled_and_named_in_the_table(reason: str) -> None:
    out = st.progress(reason, "why", settled=False, generation=3, previous=[], now=NOW)
    assert [(c["type"], c["status"], c["reason"]) for c in out] == [(st.STALLED, "True", reason)]
    assert re.search(rf"^{reason}\b|/ {reason}\b", st.__doc__ or "", re.MULTILINE), reason


@pytest.mark.parametrize("reason", ["Waiting", "ServerUnreachable", "RateLimited", "ServerError",
                                    "DiscoveryFailed", "DocumentNotPublished", "SomeReasonAddedLater"])
def test_retried_and_unknown_reasons_are_reconciling_never_failed(reason: str) -> None:
    out = st.progress(reason, "why", settled=False, generation=3, previous=[], now=NOW)
    assert [(c["type"], c["status"]) for c in out] == [(st.RECONCILING, "True")]


def test_a_settled_resource_carries_neither_condition() -> None:
    assert st.progress("InvalidSpec", "stale", settled=True, generation=1, previous=[], now=NOW) == []

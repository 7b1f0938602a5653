"""The operator's reconcile adapter against an in-memory cluster and an in-memory AS with real quirks.

What is checked here is the adapter's contract: which Secrets, status and Events come out of which
cluster state, and that nothing is written when nothing changed. The real API server runs in tests/e2e.
"""

from __future__ import annotations

import base64
import copy
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from clientreg_operator.connections import Connections
from clientreg_operator.metrics import Metrics
from clientreg_operator.reconciler import Reconciler
from clientreg_operator.status import status_patch
from support.fake_as import ISSUER, FakeAS

from clientreg_kube.cluster import Body, Conflict
from clientreg_kube.conventions import RECORD_FINALIZER, ROTATE_ANNOTATION
from clientreg_kube.secrets import decode, read_record

NS = "tenant-a"
#: The operator's own namespace, where record Secrets (registration access tokens) live.
RECORDS = "clientreg-system"


class FakeCluster:
    """Just enough of the API server: objects by key, resourceVersions, finalizers, merge patches."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Body] = {}
        self.events: list[dict[str, Any]] = []
        self.writes: Counter[str] = Counter()
        self._version = 0

    def _bump(self, body: Body) -> Body:
        self._version += 1
        body["metadata"]["resourceVersion"] = str(self._version)
        return body

    # -- test helpers --
    def put(self, kind: str, body: Body) -> Body:
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{kind}-{meta['name']}")
        meta.setdefault("generation", 1)
        self.objects[(kind, meta.get("namespace", ""), meta["name"])] = self._bump(body)
        return body

    def secret(self, name: str, namespace: str = NS) -> Body | None:
        return self.objects.get(("Secret", namespace, name))

    def client(self, name: str = "billing") -> Body:
        return self.objects[("OAuthClient", NS, name)]

    def edit_client(self, name: str = "billing", **changes: Any) -> None:
        body = self.client(name)
        body["metadata"]["generation"] += 1
        for key, value in changes.items():
            body["spec"][key] = value

    # -- the Cluster protocol --
    def get_client(self, namespace: str, name: str) -> Body | None:
        found = self.objects.get(("OAuthClient", namespace, name))
        return copy.deepcopy(found) if found else None

    def get_server(self, kind: str, namespace: str | None, name: str) -> Body | None:
        found = self.objects.get((kind, namespace or "", name))
        return copy.deepcopy(found) if found else None

    def get_secret(self, namespace: str, name: str) -> Body | None:
        found = self.objects.get(("Secret", namespace, name))
        return copy.deepcopy(found) if found else None

    def get_namespace(self, name: str) -> Body | None:
        found = self.objects.get(("Namespace", "", name))
        return copy.deepcopy(found) if found else None

    def list_secrets(self, namespace: str, label_selector: str) -> list[Body]:
        wanted = dict(term.split("=", 1) for term in label_selector.split(",") if term)
        return [copy.deepcopy(b) for (k, ns, _), b in self.objects.items() if k == "Secret" and ns == namespace
                and all((b["metadata"].get("labels") or {}).get(key) == value for key, value in wanted.items())]

    def create_secret(self, namespace: str, body: Body) -> Body:
        key = ("Secret", namespace, body["metadata"]["name"])
        if key in self.objects:
            raise Conflict("exists")
        self.writes["create"] += 1
        body = copy.deepcopy(body)
        body["metadata"].setdefault("uid", f"uid-secret-{body['metadata']['name']}")
        self.objects[key] = self._bump(body)
        return copy.deepcopy(body)

    def replace_secret(self, namespace: str, name: str, body: Body) -> Body:
        key = ("Secret", namespace, name)
        current = self.objects.get(key)
        if current is None:
            raise Conflict("gone")
        wanted = body["metadata"].get("resourceVersion")
        if wanted and wanted != current["metadata"]["resourceVersion"]:
            raise Conflict("changed")
        self.writes["replace"] += 1
        body = copy.deepcopy(body)
        body["metadata"]["uid"] = current["metadata"]["uid"]
        if current["metadata"].get("deletionTimestamp"):
            body["metadata"]["deletionTimestamp"] = current["metadata"]["deletionTimestamp"]
        self.objects[key] = self._bump(body)
        self._finish_deletion(key)
        return copy.deepcopy(body)

    def patch_secret(self, namespace: str, name: str, patch: Body) -> Body | None:
        key = ("Secret", namespace, name)
        if key not in self.objects:
            return None
        self.writes["patch"] += 1
        meta = self.objects[key]["metadata"]
        for field, value in patch.get("metadata", {}).items():
            if value is None:
                meta.pop(field, None)
            else:
                meta[field] = value
        self._bump(self.objects[key])
        self._finish_deletion(key)
        return copy.deepcopy(self.objects.get(key))

    def delete_secret(self, namespace: str, name: str) -> None:
        key = ("Secret", namespace, name)
        if key not in self.objects:
            return
        self.writes["delete"] += 1
        self.objects[key]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
        self._finish_deletion(key)

    def _finish_deletion(self, key: tuple[str, str, str]) -> None:
        body = self.objects.get(key)
        if body and body["metadata"].get("deletionTimestamp") and not body["metadata"].get("finalizers"):
            del self.objects[key]

    def patch_client_status(self, namespace: str, name: str, patch: Body) -> None:
        self.writes["status"] += 1
        body = self.objects[("OAuthClient", namespace, name)]
        status = body.setdefault("status", {})
        for key, value in patch.items():
            if value is None:
                status.pop(key, None)
            else:
                status[key] = value

    def patch_server_status(self, kind: str, namespace: str | None, name: str, patch: Body) -> None:
        self.writes["server-status"] += 1

    def post_event(self, involved: Body, *, warning: bool, reason: str, message: str) -> None:
        self.events.append({"reason": reason, "message": message, "warning": warning})

    def list_deployments(self, namespace: str) -> list[Body]:
        return []

    def patch_deployment(self, namespace: str, name: str, patch: Body) -> None:
        raise AssertionError("not expected")


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _secret_body(name: str, data: dict[str, str], namespace: str = NS) -> Body:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
            "type": "Opaque", "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


class World:
    def __init__(self, *, iat: str | None = "iat-value", secret_lifetime: int | None = None,
                 with_iat_secret: bool = True) -> None:
        self.clock = Clock()
        self.fake = FakeAS(iat=iat, secret_lifetime=secret_lifetime, now=self.clock.now.timestamp())
        self.cluster = FakeCluster()
        self.metrics = Metrics()
        spec: dict[str, Any] = {"issuer": ISSUER}
        if iat is not None:
            spec["initialAccessToken"] = {"secretKeyRef": {"name": "as-iat", "key": "token"}}
            if with_iat_secret:
                self.cluster.put("Secret", _secret_body("as-iat", {"token": iat}))
        self.cluster.put("AuthorizationServer", {"apiVersion": "clientreg.dev/v1alpha1",
                                                 "kind": "AuthorizationServer",
                                                 "metadata": {"name": "as", "namespace": NS}, "spec": spec})
        connections = Connections(self.cluster, cluster_resource_namespace="clientreg",
                                  http_factory=lambda settings, server: self.fake.http())
        self.reconciler = Reconciler(self.cluster, connections, drift_check_interval=600, metrics=self.metrics,
                                     clock=self.clock, records_namespace=RECORDS)

    def add_client(self, name: str = "billing", annotations: dict[str, str] | None = None, **spec: Any) -> None:
        base: dict[str, Any] = {"serverRef": {"name": "as"}, "clientName": "Billing",
                                "grantTypes": ["client_credentials"], "scope": "api:read"}
        base.update(spec)
        self.cluster.put("OAuthClient", {"apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
                                         "metadata": {"name": name, "namespace": NS,
                                                      "annotations": annotations or {}},
                                         "spec": base})

    def reconcile(self, name: str = "billing") -> Any:
        return self.reconciler.reconcile(NS, name)

    def credentials(self, name: str = "billing-oauth") -> dict[str, str]:
        return decode(self.cluster.secret(name))

    def record_secret(self, client: str = "billing") -> Body | None:
        uid = self.cluster.client(client)["metadata"]["uid"]
        return self.cluster.secret(f"clientreg-record-{uid}", RECORDS)

    def record(self, client: str = "billing") -> Any:
        return read_record(self.record_secret(client))

    def condition(self, type_: str = "Ready", client: str = "billing") -> dict[str, Any]:
        return next(c for c in self.cluster.client(client)["status"]["conditions"] if c["type"] == type_)


def test_create_publishes_credentials_record_and_status_but_no_routine_event() -> None:
    w = World()
    w.add_client()
    result = w.reconcile()
    creds = w.credentials()
    assert creds["client_id"] in w.fake.clients
    assert creds["client_secret"] == w.fake.clients[creds["client_id"]]["client_secret"]
    assert creds["issuer"] == ISSUER and creds["token_endpoint"] == f"{ISSUER}/token"
    app = w.cluster.secret("billing-oauth")
    assert app is not None
    assert app["metadata"]["ownerReferences"][0]["uid"] == w.cluster.client()["metadata"]["uid"]
    assert app["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "clientreg-operator"
    # The RAT lives only in the operator's record Secret, which a finalizer protects.
    assert "registration_access_token" not in json.dumps(creds)
    record_secret = w.record_secret()
    assert record_secret is not None and RECORD_FINALIZER in record_secret["metadata"]["finalizers"]
    assert w.record().registration_access_token is not None
    ready = w.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("True", "InSync")
    status = w.cluster.client()["status"]
    assert status["clientId"] == creds["client_id"] and status["observedGeneration"] == 1
    assert status["secretName"] == "billing-oauth" and status["server"] == "AuthorizationServer/as"
    # A routine first registration posts no Event: the Ready condition and status.registeredAt tell it, and a
    # new client costs four writes (finalizer, record, credentials Secret, status), not five.
    assert w.cluster.events == []
    assert result.requeue_after == 600 and result.client_id == creds["client_id"]


def test_a_stable_client_causes_no_write_and_no_event() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    w.cluster.writes.clear()
    w.fake.calls.clear()
    events = len(w.cluster.events)
    for _ in range(3):
        w.clock.now += timedelta(minutes=10)
        w.reconcile()
    assert dict(w.cluster.writes) == {}
    assert len(w.cluster.events) == events
    assert dict(w.fake.calls) == {"GET /register/<id>": 3}


def test_deleted_or_edited_secret_is_healed_without_asking_the_as() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    good = w.credentials()
    w.fake.calls.clear()
    w.cluster.objects[("Secret", NS, "billing-oauth")]["data"]["client_secret"] = base64.b64encode(b"x").decode()
    w.reconciler.heal(NS, "billing")
    assert w.credentials() == good
    del w.cluster.objects[("Secret", NS, "billing-oauth")]
    w.reconciler.heal(NS, "billing")
    assert w.credentials() == good
    assert dict(w.fake.calls) == {}
    assert [e["reason"] for e in w.cluster.events][-2:] == ["SecretRestored", "SecretRestored"]


def test_drift_check_restores_an_edited_secret_without_any_secret_watch() -> None:
    """--no-watch-credentials (chart: secrets.watchCredentials=false) relies on this: the scheduled reconcile
    alone puts the credentials back, so the operator needs no list/watch on tenants' Secrets."""
    w = World()
    w.add_client()
    w.reconcile()
    good = w.credentials()
    w.cluster.objects[("Secret", NS, "billing-oauth")]["data"]["client_secret"] = base64.b64encode(b"x").decode()
    w.clock.now += timedelta(minutes=10)
    w.reconcile()
    assert w.credentials() == good
    del w.cluster.objects[("Secret", NS, "billing-oauth")]
    w.clock.now += timedelta(minutes=10)
    w.reconcile()
    assert w.credentials() == good


def test_spec_change_updates_the_client_at_the_as() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    client_id = w.credentials()["client_id"]
    w.cluster.edit_client(scope="api:read api:write")
    w.reconcile()
    assert w.fake.clients[client_id]["scope"] == "api:read api:write"
    assert w.credentials()["client_id"] == client_id
    assert w.cluster.client()["status"]["observedGeneration"] == 2
    assert "Updated" in [e["reason"] for e in w.cluster.events]


def test_client_deleted_at_the_as_is_registered_again_and_the_secret_follows() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    old = w.credentials()["client_id"]
    del w.fake.clients[old]
    result = w.reconcile()
    new = w.credentials()["client_id"]
    assert new != old and new in w.fake.clients
    assert result.rotated
    assert w.cluster.client()["status"]["clientId"] == new


def test_rotate_annotation_replaces_credentials_and_deletes_the_old_client_after_grace() -> None:
    w = World()
    w.add_client(rotation={"gracePeriod": "5m"})
    w.reconcile()
    old = w.credentials()["client_id"]
    w.cluster.client()["metadata"]["annotations"][ROTATE_ANNOTATION] = "r1"
    result = w.reconcile()
    new = w.credentials()["client_id"]
    assert new != old and old in w.fake.clients and result.rotated
    assert result.requeue_after == pytest.approx(300)
    status = w.cluster.client()["status"]
    assert status["lastRotationRequest"] == "r1" and status["retiring"][0]["clientId"] == old
    w.reconcile()  # same annotation value: no second rotation
    assert w.credentials()["client_id"] == new
    w.clock.now += timedelta(minutes=6)
    w.reconcile()
    assert old not in w.fake.clients and new in w.fake.clients
    assert "retiring" not in w.cluster.client()["status"]


def test_expiring_secret_is_rotated_ahead_of_expiry() -> None:
    w = World(secret_lifetime=3600)
    w.add_client(rotation={"rotateBefore": "10m", "gracePeriod": "1m"})
    result = w.reconcile()
    old = w.credentials()["client_id"]
    assert result.requeue_after == 600  # the drift check comes first; the rotation is due at 12:50
    assert w.cluster.client()["status"]["secretExpiresAt"] == "2026-11-28T13:00:00Z"
    assert w.cluster.client()["status"]["nextRotation"] == "2026-11-28T12:50:00Z"
    w.clock.now += timedelta(minutes=51)
    w.fake.now = w.clock.now.timestamp()
    w.reconcile()
    assert w.credentials()["client_id"] != old
    assert "Rotated" in [e["reason"] for e in w.cluster.events]


def test_deletion_deletes_the_client_and_releases_the_record() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    client_id = w.credentials()["client_id"]
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:05:00Z"
    result = w.reconcile()
    assert result.finished
    assert client_id not in w.fake.clients
    assert w.cluster.secret("clientreg-record-uid-OAuthClient-billing", RECORDS) is None


def test_orphan_policy_keeps_the_client() -> None:
    w = World()
    w.add_client(deletionPolicy="Orphan")
    w.reconcile()
    client_id = w.credentials()["client_id"]
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:05:00Z"
    assert w.reconcile().finished
    assert client_id in w.fake.clients
    assert w.cluster.secret("clientreg-record-uid-OAuthClient-billing", RECORDS) is None


def test_missing_initial_access_token_waits_and_registers_nothing() -> None:
    w = World(with_iat_secret=False)
    w.add_client()
    result = w.reconcile()
    assert w.fake.clients == {} and dict(w.fake.calls) == {}
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "Waiting")
    assert "as-iat" in ready["message"]
    assert result.requeue_after is not None and not result.finished
    w.cluster.put("Secret", _secret_body("as-iat", {"token": "iat-value"}))
    w.reconcile()
    assert len(w.fake.clients) == 1 and w.condition()["status"] == "True"


def test_a_server_of_another_namespace_is_not_found() -> None:
    w = World()
    w.cluster.put("AuthorizationServer", {"apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
                                          "metadata": {"name": "theirs", "namespace": "tenant-b"},
                                          "spec": {"issuer": ISSUER}})
    w.add_client(serverRef={"name": "theirs"})
    w.reconcile()
    assert w.fake.clients == {}
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "does not exist in namespace 'tenant-a'" in ready["message"]


def test_a_foreign_secret_is_never_overwritten() -> None:
    w = World()
    w.cluster.put("Secret", _secret_body("billing-oauth", {"mine": "yes"}))
    w.add_client()
    w.reconcile()
    assert w.credentials() == {"mine": "yes"}
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "SecretConflict")


def test_an_invalid_spec_is_reported_and_not_retried() -> None:
    w = World()
    w.add_client(grantTypes=["authorization_code"])  # no redirectUris
    result = w.reconcile()
    assert result.requeue_after is None
    ready = w.condition()
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert "redirectUris" in ready["message"]


def test_unreachable_server_keeps_ready_while_credentials_work_and_backs_off() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    transition = w.condition()["lastTransitionTime"]
    w.clock.now += timedelta(minutes=1)
    w.fake.fail_next = [503] * 20
    first = w.reconcile()
    second = w.reconcile()
    assert first.requeue_after is not None and second.requeue_after is not None
    assert second.requeue_after > first.requeue_after
    ready, synced = w.condition("Ready"), w.condition("Synced")
    assert ready["status"] == "True" and ready["lastTransitionTime"] == transition
    assert synced["status"] == "False"
    assert ready["reason"] == synced["reason"] != "InSync"
    warnings = [e for e in w.cluster.events if e["warning"]]
    assert len(warnings) == 1  # one event for the transition, not one per retry


def test_secret_template_shapes_the_secret() -> None:
    w = World()
    w.add_client(secretName="creds", secretTemplate={
        "labels": {"team": "billing"}, "annotations": {"reloader.stakater.com/match": "true"},
        "clientIdKey": "CLIENT_ID", "clientSecretKey": "CLIENT_SECRET", "issuerKey": None,
        "extraData": {"OIDC_URL": "{issuer}/.well-known/openid-configuration", "DSN": "{clientId}@{tokenEndpoint}"}})
    w.reconcile()
    creds = w.credentials("creds")
    assert set(creds) == {"CLIENT_ID", "CLIENT_SECRET", "token_endpoint", "OIDC_URL", "DSN"}
    assert creds["DSN"] == f"{creds['CLIENT_ID']}@{ISSUER}/token"
    meta = w.cluster.secret("creds")["metadata"]  # type: ignore[index]
    assert meta["labels"]["team"] == "billing" and meta["annotations"]["reloader.stakater.com/match"] == "true"


def test_renaming_the_secret_removes_the_old_one() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    w.cluster.edit_client(secretName="renamed")
    w.reconcile()
    assert w.cluster.secret("billing-oauth") is None
    assert w.credentials("renamed")["client_id"] == w.cluster.client()["status"]["clientId"]


def test_a_deleted_record_secret_is_written_anew() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    rat = w.record().registration_access_token
    w.cluster.delete_secret(RECORDS, "clientreg-record-uid-OAuthClient-billing")  # held by the finalizer
    assert w.record_secret() is not None
    w.reconcile()
    secret = w.record_secret()
    assert secret is not None and not secret["metadata"].get("deletionTimestamp")
    assert w.record().registration_access_token == rat
    assert len(w.fake.clients) == 1


def test_no_secret_value_reaches_status_or_events() -> None:
    w = World()
    w.add_client()
    w.reconcile()
    w.cluster.client()["metadata"]["annotations"][ROTATE_ANNOTATION] = "now"
    w.reconcile()
    record = w.record()
    secrets = {record.client_secret.get_secret_value(), record.registration_access_token.get_secret_value(),
               "iat-value"}
    for old in record.retiring:
        secrets.add(old.registration_access_token.get_secret_value())
    visible = json.dumps(w.cluster.client()["status"]) + json.dumps(w.cluster.events)
    assert not [s for s in secrets if s in visible]


def test_metrics_follow_the_client() -> None:
    w = World(secret_lifetime=3600)
    w.add_client()
    w.reconcile()
    client_id = w.credentials()["client_id"]
    value = w.metrics.registry.get_sample_value("clientreg_client_secret_expiration_timestamp_seconds",
                                                {"namespace": NS, "name": "billing", "client_id": client_id})
    assert value == w.clock.now.timestamp() + 3600
    assert w.metrics.registry.get_sample_value("clientreg_registrations_total", {"reason": "NotRegistered"}) == 1
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:05:00Z"
    w.reconcile()
    assert w.metrics.registry.get_sample_value("clientreg_client_secret_expiration_timestamp_seconds",
                                               {"namespace": NS, "name": "billing", "client_id": client_id}) is None


def test_status_patch_only_carries_changes() -> None:
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "b": 2}) is None
    assert status_patch({"a": 1, "b": 2}, {"a": 1, "c": 3}) == {"b": None, "c": 3}


def test_server_status_waits_for_its_token_then_is_ready() -> None:
    from clientreg_operator.servers import check_server

    cluster = FakeCluster()
    body = cluster.put("AuthorizationServer", {
        "apiVersion": "clientreg.dev/v1alpha1", "kind": "AuthorizationServer",
        "metadata": {"name": "direct", "namespace": NS},
        "spec": {"registrationEndpoint": "https://as.example.test/register",
                 "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}}})
    error = check_server(cluster, body, cluster_resource_namespace="clientreg")
    assert error is not None and error.reason == "Waiting"
    cluster.put("Secret", _secret_body("iat", {"token": "t"}))
    assert check_server(cluster, body, cluster_resource_namespace="clientreg") is None
    assert cluster.writes["server-status"] == 2


def test_a_record_naming_another_client_stops_before_registering() -> None:
    w = World()
    stale = {"apiVersion": "v1", "kind": "Secret", "type": "clientreg.dev/registration-record",
             "metadata": {"name": "clientreg-record-uid-OAuthClient-billing", "namespace": RECORDS,
                          "labels": {"app.kubernetes.io/managed-by": "clientreg-operator"},
                          "annotations": {"clientreg.dev/oauthclient": "tenant-b/billing"}},
             "data": {}}
    w.cluster.put("Secret", stale)
    w.add_client()
    w.reconcile()
    assert w.fake.clients == {} and dict(w.fake.calls) == {}
    assert w.condition()["reason"] == "SecretConflict"


def test_deletion_works_when_the_namespace_lost_its_server_and_token_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clientreg.server import ServerConnection

    w = World()
    w.add_client()
    w.reconcile()
    client_id = w.credentials()["client_id"]
    del w.cluster.objects[("AuthorizationServer", NS, "as")]
    del w.cluster.objects[("Secret", NS, "as-iat")]
    w.cluster.client()["metadata"]["deletionTimestamp"] = "2026-11-28T12:05:00Z"
    # The fallback connection is built from the record; route it to the in-memory AS.
    original = ServerConnection.for_spec.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(ServerConnection, "for_spec",
                        classmethod(lambda cls, spec, **kw: original(cls, spec, **{**kw, "http": w.fake.http()})))
    assert w.reconcile().finished
    assert client_id not in w.fake.clients


def test_every_client_of_one_server_shares_one_discovery() -> None:
    w = World()
    for name in ("a", "b", "c"):
        w.add_client(name)
        assert w.reconcile(name).reason == "NotRegistered"
    discovery = sum(n for call, n in w.fake.calls.items() if "/.well-known/" in call)
    assert discovery == 1, w.fake.calls
    assert w.fake.calls["POST /register"] == 3


def test_a_record_write_waits_out_an_api_server_restart_instead_of_orphaning_the_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from clientreg_operator import reconciler as module
    from kubernetes.client.exceptions import ApiException

    monkeypatch.setattr(module.time, "sleep", lambda _seconds: None)
    w = World()
    w.add_client()
    create = w.cluster.create_secret
    failures = [ApiException(status=503, reason="restarting"), ApiException(status=403, reason="warming up")]

    def flaky_create(namespace: str, body: Body) -> Body:
        if body["metadata"]["name"].startswith("clientreg-record-") and failures:
            raise failures.pop(0)
        return create(namespace, body)

    w.cluster.create_secret = flaky_create  # type: ignore[method-assign]
    w.reconcile()
    assert not failures and w.fake.calls["POST /register"] == 1
    assert w.record().client_id in w.fake.clients, "the answer the AS gave is in the record, not lost"
    assert w.credentials()["client_id"] == w.record().client_id

"""``kubernetes_secret``: the provider's lifecycle methods writing the operator's credentials Secret.

The provider runs against the in-process dev AS; the cluster is an in-memory stand-in for the operator's
``Cluster`` protocol (the engine-driven test, tests/e2e/test_pulumi_kubernetes.py, uses the real API
server). The Secret is rendered and written by the operator's own code in both.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import dill
import httpx
import pytest
from clientreg_pulumi import KubernetesSecretArgs, OAuthClientError, OAuthClientProvider, args, kube_secret
from clientreg_pulumi.provider import STATUS_FAILED, STATUS_IN_SYNC, STATUS_SECRET_DRIFT
from kubernetes.client.exceptions import ApiException
from pulumi.dynamic.dynamic import serialize_provider

from clientreg.devserver import DevServer, DevServerSettings
from clientreg.record import RegistrationRecord
from clientreg.spec import SecretTemplate
from clientreg_kube.cluster import Conflict
from clientreg_kube.secrets import render_credentials

IAT = "iat-for-the-kubernetes-secret-tests"
OWNER = "pulumi:proj/dev/web"
Body = dict[str, Any]


class FakeCluster:
    """The Secret calls of the operator's Cluster protocol, in memory, with the API server's 409s."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], Body] = {}
        self.version = 0
        self.writes = 0
        self.fail_with: Exception | None = None

    def _stored(self, body: Body) -> Body:
        self.version += 1
        self.writes += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        data = dict(stored.get("data") or {})
        data.update({k: base64.b64encode(v.encode()).decode() for k, v in (stored.pop("stringData", None)
                                                                            or {}).items()})
        stored["data"] = data
        return stored

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def get_secret(self, namespace: str, name: str) -> Body | None:
        self._check()
        found = self.secrets.get((namespace, name))
        return copy.deepcopy(found) if found else None

    def create_secret(self, namespace: str, body: Body) -> Body:
        self._check()
        key = (namespace, body["metadata"]["name"])
        if key in self.secrets:
            raise Conflict("exists")
        self.secrets[key] = self._stored(body)
        return copy.deepcopy(self.secrets[key])

    def replace_secret(self, namespace: str, name: str, body: Body) -> Body:
        self._check()
        have = self.secrets.get((namespace, name))
        if have is None or have["metadata"]["resourceVersion"] != body["metadata"].get("resourceVersion"):
            raise Conflict("changed")
        self.secrets[(namespace, name)] = self._stored(body)
        return copy.deepcopy(self.secrets[(namespace, name)])

    def patch_secret(self, namespace: str, name: str, patch: Body) -> Body | None:
        raise AssertionError("not used for credentials Secrets")

    def delete_secret(self, namespace: str, name: str) -> None:
        self._check()
        self.secrets.pop((namespace, name), None)

    def data(self, namespace: str = "apps", name: str = "web-oauth") -> dict[str, str]:
        body = self.secrets[(namespace, name)]
        return {k: base64.b64decode(v).decode() for k, v in body["data"].items()}


@pytest.fixture(scope="module")
def dev_as() -> Iterator[DevServer]:
    with DevServer(DevServerSettings(initial_access_token=IAT, secret_lifetime=3600)) as server:
        yield server


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
    fake = FakeCluster()
    places: list[args.SecretPlace] = []

    @contextlib.contextmanager
    def fake_cluster(place: args.SecretPlace, secret_values: list[str]) -> Iterator[FakeCluster]:
        places.append(place)
        # The error translation of the real one, over the fake.
        try:
            yield fake
        except kube_secret.SecretConflict as exc:
            raise kube_secret.KubeSecretError(str(exc)) from None
        except ApiException as exc:
            raise kube_secret.KubeSecretError(f"Secret {place.namespace}/{place.name}: "
                                              f"{kube_secret._api_error(exc, secret_values)}") from None

    monkeypatch.setattr(kube_secret, "_cluster", fake_cluster)
    fake.places = places  # type: ignore[attr-defined]
    return fake


@pytest.fixture
def provider() -> OAuthClientProvider:
    return OAuthClientProvider()


def inputs(server: DevServer, **secret: Any) -> dict[str, Any]:
    return {"issuer": server.issuer, "initial_access_token": IAT, "client_name": "Web",
            "grant_types": ["client_credentials"], "response_types": [],
            "kubernetes_secret": {"name": "web-oauth", "namespace": "apps", "kubeconfig": "/tmp/kubeconfig",
                                  **secret},
            "kubernetes_secret_owner": OWNER}


def clients_at(server: DevServer) -> set[str]:
    return set(httpx.get(f"{server.dev_url}/clients").json())


# --- arguments -------------------------------------------------------------------------------------------

def test_the_args_class_passes_only_what_is_set() -> None:
    given = KubernetesSecretArgs(name="web-oauth", namespace="apps", client_id_key="ID", issuer_key="")
    assert given.to_input() == {"name": "web-oauth", "namespace": "apps", "client_id_key": "ID", "issuer_key": ""}


def test_secret_place_defaults_and_template() -> None:
    place = args.secret_place({"kubernetes_secret": {"name": "web-oauth"}})
    assert place is not None
    assert (place.name, place.namespace, place.kubeconfig, place.context) == ("web-oauth", "default", None, None)
    assert place.template == SecretTemplate()
    shaped = args.secret_place({"kubernetes_secret": {"name": "x", "issuer_key": "", "client_id_key": "ID",
                                                      "extra_data": {"url": "{tokenEndpoint}"}}})
    assert shaped is not None
    assert shaped.template.issuer_key is None and shaped.template.client_id_key == "ID"
    assert args.secret_place({}) is None


@pytest.mark.parametrize(("secret", "words"), [
    ({"namespace": "apps"}, "name: the Secret's name is required"),
    ({"name": "Web_OAuth"}, "name: 'Web_OAuth' must be a lowercase RFC 1123 subdomain"),
    ({"name": "web", "namespace": "Apps"}, "namespace: 'Apps' must be a lowercase RFC 1123 label"),
    ({"name": "web", "secretName": "x"}, "secretName: unknown field"),
    ({"name": "web", "client_id_key": "a key"}, "client_id_key: 'a key' must be a Secret key"),
    ({"name": "web", "client_id_key": "issuer"}, "the Secret's keys collide: issuer"),
    ({"name": "web", "labels": "team"}, "labels: Input should be a valid dictionary"),
])
def test_check_names_the_bad_field(secret: dict[str, Any], words: str) -> None:
    found = dict(args.problems({"issuer": "https://auth.example.com", "client_name": "Web",
                                "grant_types": ["client_credentials"], "kubernetes_secret": secret,
                                "kubernetes_secret_owner": OWNER}))
    assert words in found["kubernetes_secret"]


def test_check_skips_a_secret_not_known_yet() -> None:
    assert args.problems({"issuer": "https://auth.example.com", "grant_types": ["client_credentials"],
                          "kubernetes_secret": {"name": "web", "namespace": args.UNKNOWN},
                          "kubernetes_secret_owner": OWNER}) == []


def test_the_secret_is_the_operators_with_our_label_and_owner() -> None:
    record = RegistrationRecord.from_storage({"client_id": "c1", "client_secret": "s1", "issuer": "https://i",
                                              "token_endpoint": "https://i/token"})
    place = args.secret_place({"kubernetes_secret": {"name": "web-oauth", "namespace": "apps",
                                                     "labels": {"team": "a"}}})
    assert place is not None
    ours = kube_secret.render(record, place, OWNER)
    operators = render_credentials(record, place.template, name="web-oauth", namespace="apps", client_name="web")
    assert ours["data"] == operators["data"] and ours["type"] == operators["type"]
    assert ours["metadata"]["labels"] == {**operators["metadata"]["labels"],
                                          "app.kubernetes.io/managed-by": "clientreg-pulumi"}
    assert ours["metadata"]["annotations"] == {"clientreg.dev/owner": OWNER}
    assert "ownerReferences" not in ours["metadata"]


# --- lifecycle ---------------------------------------------------------------------------------------------

def test_create_writes_the_secret(dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    outs = provider.create(inputs(dev_as, client_id_key="ID", extra_data={"env": "ID={clientId}"})).outs
    assert outs is not None and outs["status"] == STATUS_IN_SYNC
    assert cluster.data() == {"ID": outs["client_id"], "client_secret": outs["client_secret"],
                              "issuer": dev_as.issuer, "token_endpoint": dev_as.token_endpoint,
                              "env": f"ID={outs['client_id']}"}
    # Only plain values reached the cluster code: the path and context, as declared.
    assert cluster.places[-1].kubeconfig == "/tmp/kubeconfig"  # type: ignore[attr-defined]
    # The echoed declaration holds no credential.
    assert outs["client_secret"] not in json.dumps({k: outs[k] for k in ("kubernetes_secret",
                                                                         "kubernetes_secret_owner")})


def test_create_refuses_a_foreign_secret_before_registering(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    cluster.create_secret("apps", {"metadata": {"name": "web-oauth", "namespace": "apps"},
                                   "data": {"k": base64.b64encode(b"v").decode()}})
    before = clients_at(dev_as)
    with pytest.raises(OAuthClientError) as caught:
        provider.create(inputs(dev_as))
    assert str(caught.value) == ("could not register the client 'Web': Secret apps/web-oauth already exists and is "
                                 f"not managed by {OWNER}: choose another Secret name or delete that Secret")
    assert clients_at(dev_as) == before
    assert cluster.data() == {"k": "v"}


def test_a_secret_of_another_resource_is_foreign_too(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    provider.create({**inputs(dev_as), "kubernetes_secret_owner": "pulumi:proj/dev/other"})
    with pytest.raises(OAuthClientError, match="not managed by pulumi:proj/dev/web"):
        provider.create(inputs(dev_as))


def test_update_and_rotation_rewrite_the_secret_in_the_same_step(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    news = inputs(dev_as)
    outs = provider.create(news).outs
    assert outs is not None
    writes = cluster.writes
    same = provider.update("id", outs, news).outs
    assert cluster.writes == writes  # nothing changed: nothing written
    rotated = provider.update("id", same, {**news, "rotation_trigger": "r1"}).outs
    assert rotated["client_id"] != outs["client_id"]
    assert cluster.data()["client_id"] == rotated["client_id"]
    assert cluster.data()["client_secret"] == rotated["client_secret"]


def test_refresh_notices_deletion_and_edits_and_update_restores(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    news = inputs(dev_as)
    outs = provider.create(news).outs
    assert outs is not None
    assert provider.read("id", outs).outs["status"] == STATUS_IN_SYNC

    cluster.delete_secret("apps", "web-oauth")
    refreshed = provider.read("id", outs).outs
    assert refreshed["status"] == STATUS_SECRET_DRIFT
    assert refreshed["status_message"] == "Secret apps/web-oauth was deleted; `pulumi up` restores it"
    assert provider.diff("id", refreshed, news).changes is True
    healed = provider.update("id", refreshed, news).outs
    assert healed["status"] == STATUS_IN_SYNC and cluster.data()["client_secret"] == outs["client_secret"]

    body = cluster.secrets[("apps", "web-oauth")]
    body["data"]["client_secret"] = base64.b64encode(b"tampered").decode()
    refreshed = provider.read("id", healed).outs
    assert refreshed["status"] == STATUS_SECRET_DRIFT and "was changed" in refreshed["status_message"]
    assert "tampered" not in json.dumps(refreshed)
    provider.update("id", refreshed, news)
    assert cluster.data()["client_secret"] == outs["client_secret"]
    # A refresh that finds it fine again clears the status.
    assert provider.read("id", refreshed).outs["status"] == STATUS_IN_SYNC


def test_refresh_notices_a_secret_taken_over(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    news = inputs(dev_as)
    outs = provider.create(news).outs
    cluster.secrets[("apps", "web-oauth")]["metadata"]["annotations"] = {"clientreg.dev/owner": "someone"}
    refreshed = provider.read("id", outs).outs
    assert refreshed["status"] == STATUS_SECRET_DRIFT and "now managed by someone" in refreshed["status_message"]
    with pytest.raises(OAuthClientError, match="not managed by pulumi:proj/dev/web"):
        provider.update("id", refreshed, news)


def test_moving_the_secret_removes_the_old_one(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    outs = provider.create(inputs(dev_as)).outs
    moved = inputs(dev_as, namespace="web")
    assert provider.diff("id", outs, moved).changes is True
    provider.update("id", outs, moved)
    assert set(cluster.secrets) == {("web", "web-oauth")}
    dropped = {k: v for k, v in moved.items() if not k.startswith("kubernetes_secret")}
    provider.update("id", {**outs, **moved}, dropped)
    assert cluster.secrets == {}


def test_a_renamed_resource_keeps_its_secret(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    outs = provider.create(inputs(dev_as)).outs
    renamed = {**inputs(dev_as), "kubernetes_secret_owner": "pulumi:proj/prod/web"}
    provider.update("id", outs, renamed)
    annotations = cluster.secrets[("apps", "web-oauth")]["metadata"]["annotations"]
    assert annotations["clientreg.dev/owner"] == "pulumi:proj/prod/web"


def test_delete_removes_the_secret_but_never_a_foreign_one(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    outs = provider.create(inputs(dev_as)).outs
    provider.delete("id", outs)
    assert cluster.secrets == {} and outs["client_id"] not in clients_at(dev_as)

    outs = provider.create(inputs(dev_as)).outs
    cluster.secrets[("apps", "web-oauth")]["metadata"]["annotations"] = {"clientreg.dev/owner": "someone"}
    provider.delete("id", outs)
    assert ("apps", "web-oauth") in cluster.secrets


def test_a_failed_write_after_registration_keeps_the_credentials(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise ApiException(status=403, reason="Forbidden")

    cluster.create_secret = refuse  # type: ignore[method-assign]
    outs = provider.create(inputs(dev_as)).outs
    assert outs is not None and outs["client_id"] in clients_at(dev_as)
    assert outs["status"] == STATUS_FAILED
    assert outs["status_message"] == (f"could not write the Secret of client {outs['client_id']}: Secret "
                                      "apps/web-oauth: HTTP 403 Forbidden")
    assert provider.diff("id", outs, inputs(dev_as)).changes is True  # the next up retries
    del cluster.create_secret
    assert provider.update("id", outs, inputs(dev_as)).outs["status"] == STATUS_IN_SYNC
    assert cluster.data()["client_id"] == outs["client_id"]


def test_errors_never_quote_the_credentials(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    news = inputs(dev_as)
    outs = provider.create(news).outs
    # An API server echoing the request body in its message must not put the credentials in front of the user.
    exc = ApiException(status=422, reason="Unprocessable Entity")
    exc.body = json.dumps({"message": f"Secret is invalid: {outs['client_secret']}"})
    cluster.secrets.clear()
    cluster.fail_with = exc
    with pytest.raises(OAuthClientError) as caught:
        provider.update("id", outs, news)  # no credential changed: the update fails as a whole
    message = str(caught.value)
    assert message.endswith("Secret apps/web-oauth: HTTP 422 Unprocessable Entity: Secret is invalid: ***")
    assert outs["client_secret"] not in message


def test_the_pickled_provider_still_carries_nothing(dev_as: DevServer) -> None:
    blob = base64.b64decode(serialize_provider(OAuthClientProvider()))
    assert len(blob) < 200
    restored = dill.loads(blob)
    assert isinstance(restored, OAuthClientProvider) and vars(restored) == {}
    assert pickle.loads(pickle.dumps(restored)).__getstate__() == {}


def test_secret_drift_is_not_hidden_by_a_reported_refusal(
        dev_as: DevServer, provider: OAuthClientProvider, cluster: FakeCluster) -> None:
    outs = provider.create(inputs(dev_as)).outs
    cluster.delete_secret("apps", "web-oauth")
    refreshed = provider.read("id", {**outs, "status": "ServerRefusedValue"}).outs
    assert refreshed["status"] == STATUS_SECRET_DRIFT
    assert provider.diff("id", refreshed, inputs(dev_as)).changes is True

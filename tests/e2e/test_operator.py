"""The operator end to end: chart installed with Helm into a real API server, the operator process under
the chart's ServiceAccount, real authorization servers (node oidc-provider and the dev AS) on loopback.

Each scenario has its own namespace; every wait polls with a deadline and asserts behaviour.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr
from support.operator_process import OPERATOR_NAMESPACE, OperatorProcess

from clientreg import rfc7592
from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.e2e

GROUP, VERSION = "clientreg.dev", "v1alpha1"
# Kube's type lives in tests/e2e/conftest.py; this folder is not a package.
Kube = Any

M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}


def record_name(kube: Kube, namespace: str, name: str) -> str:
    """The record Secret of an OAuthClient: in the operator's namespace, keyed by the OAuthClient's UID."""
    body = kube.get_client(namespace, name)
    assert body is not None, f"OAuthClient {namespace}/{name} missing"
    return f"clientreg-record-{body['metadata']['uid']}"


def record_of(kube: Kube, namespace: str, name: str) -> RegistrationRecord:
    data = kube.read_secret(OPERATOR_NAMESPACE, record_name(kube, namespace, name))
    assert data is not None, "record Secret missing"
    return RegistrationRecord.from_storage(json.loads(data["record.json"]))


def token_works(creds: dict[str, str]) -> bool:
    record = RegistrationRecord(client_id=creds["client_id"], client_secret=SecretStr(creds["client_secret"]),
                                token_endpoint=creds["token_endpoint"])
    with HttpClient() as http:
        return bool(client_credentials_token(http, record).access_token.get_secret_value())


def dev_clients(dev_server: Any) -> set[str]:
    return set(httpx.get(f"{dev_server.issuer}/_dev/clients", timeout=5).json())


def dev_requests(dev_server: Any) -> dict[str, int]:
    counts: dict[str, int] = httpx.get(f"{dev_server.issuer}/_dev/requests", timeout=5).json()
    return counts


def server_ready(kube: Kube, namespace: str, name: str) -> tuple[str, str] | None:
    body = kube.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "authorizationservers", name)
    cond = next((c for c in (body.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), None)
    return (cond["status"], cond["reason"]) if cond else None


def _writes(counts: dict[str, int]) -> int:
    return sum(n for route, n in counts.items() if not route.startswith("GET"))


@pytest.fixture
def tenant(kube: Kube, oidc_provider: Any, request: pytest.FixtureRequest) -> str:
    """A namespace with an AuthorizationServer for oidc-provider and its initial access token."""
    namespace = kube.namespace(request.node.name.replace("_", "-")[:50].strip("-").lower())
    kube.secret(namespace, "op-iat", {"token": oidc_provider.initial_access_token})
    kube.server(namespace, "op", {"issuer": oidc_provider.issuer,
                                  "initialAccessToken": {"secretKeyRef": {"name": "op-iat", "key": "token"}}})
    return namespace


@pytest.fixture
def dev_tenant(kube: Kube, dev_server: Any, request: pytest.FixtureRequest) -> str:
    """A namespace with an AuthorizationServer for the dev AS (it can count requests and list clients)."""
    namespace = kube.namespace(request.node.name.replace("_", "-")[:50].strip("-").lower())
    kube.secret(namespace, "dev-iat", {"token": "e2e-dev-iat"})
    kube.server(namespace, "dev", {"issuer": dev_server.issuer,
                                   "initialAccessToken": {"secretKeyRef": {"name": "dev-iat", "key": "token"}}})
    return namespace


# --- the chart -----------------------------------------------------------------------------------------

def test_chart_lints_and_renders(helm: Any, chart_path: Any) -> None:
    chart = chart_path
    helm("lint", str(chart), "--strict")
    helm("lint", str(chart), "--strict", "--set", "watchNamespaces={a,b}", "--set",
         "metrics.serviceMonitor.enabled=true", "--set", "restartDeploymentsOnRotation=true")
    rendered = helm("template", "x", str(chart), "--namespace", "ops", "--set", "watchNamespaces={a,b}").stdout
    assert "kind: ClusterRoleBinding" in rendered  # ClusterAuthorizationServers are cluster-scoped
    # a, b, the cluster resource namespace, the records (release) namespace, the Lease
    assert rendered.count("kind: RoleBinding") == 5
    assert "--records-namespace=ops" in rendered
    assert '"*"' not in rendered and "- '*'" not in rendered
    assert "--namespace=a,b" in rendered
    bad = helm("template", "x", str(chart), "--set", "replicaCount=-1", check=False)
    assert bad.returncode != 0 and "replicaCount" in bad.stderr


def test_least_privilege(control_plane: Any, operator_kubeconfig: Any) -> None:
    """What the chart's ServiceAccount may do, asked of the API server as that ServiceAccount."""
    from kubernetes import config

    api = config.new_client_from_config(config_file=str(operator_kubeconfig))
    auth = client.AuthorizationV1Api(api)

    def can(verb: str, resource: str, namespace: str | None = "t", group: str = "", sub: str | None = None) -> bool:
        review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                            namespace=namespace, subresource=sub)))
        return bool(auth.create_self_subject_access_review(review).status.allowed)

    try:
        allowed = [("get", "secrets", "t", ""), ("create", "secrets", "t", ""), ("watch", "oauthclients", "t", GROUP),
                   ("patch", "oauthclients", "t", GROUP), ("create", "events", "t", ""),
                   ("list", "clusterauthorizationservers", None, GROUP), ("update", "leases", OPERATOR_NAMESPACE,
                                                                          "coordination.k8s.io"),
                   ("get", "namespaces", None, "")]
        for verb, resource, namespace, group in allowed:
            assert can(verb, resource, namespace, group), f"{verb} {resource} should be allowed"
        assert can("patch", "oauthclients", "t", GROUP, sub="status")
        denied = [("delete", "oauthclients", "t", GROUP), ("create", "oauthclients", "t", GROUP),
                  ("update", "authorizationservers", "t", GROUP), ("patch", "authorizationservers", "t", GROUP),
                  ("patch", "clusterauthorizationservers", None, GROUP), ("get", "configmaps", "t", ""),
                  ("create", "pods", "t", ""), ("list", "nodes", None, ""), ("patch", "deployments", "t", "apps"),
                  ("update", "leases", "t", "coordination.k8s.io"), ("create", "clusterrolebindings", None,
                                                                       "rbac.authorization.k8s.io"),
                  ("delete", "clusterauthorizationservers", None, GROUP), ("create", "serviceaccounts/token", "t", ""),
                  ("patch", "events", "t", ""), ("list", "namespaces", None, ""), ("watch", "namespaces", None, "")]
        for verb, resource, namespace, group in denied:
            assert not can(verb, resource, namespace, group), f"{verb} {resource} must be denied"
    finally:
        api.close()


def test_namespaced_install_is_confined_to_its_namespaces(control_plane: Any, helm: Any, kube: Kube,
                                                         chart_installed: str, chart_path: Any,
                                                         scratch: Any) -> None:
    """watchNamespaces: RoleBindings in exactly those namespaces (and Secret reads in the cluster resource
    namespace), proven by asking the API server as the second release's ServiceAccount."""
    from kubernetes import config

    served, home = kube.namespace("scoped-a"), "clientreg-scoped"
    helm("install", "scoped", str(chart_path), "--namespace", home, "--create-namespace",
         "--set", f"watchNamespaces={{{served}}}", "--set", "leaderElection.leaseName=scoped",
         "--set", "image.repository=example.invalid/clientreg-operator")
    try:
        api = config.new_client_from_config(config_file=str(control_plane.service_account_kubeconfig(
            home, "scoped-clientreg", scratch / "scoped.kubeconfig")))
        auth = client.AuthorizationV1Api(api)

        def can(verb: str, resource: str, namespace: str | None, group: str = "") -> bool:
            review = client.V1SelfSubjectAccessReview(spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(verb=verb, resource=resource, group=group,
                                                                namespace=namespace)))
            return bool(auth.create_self_subject_access_review(review).status.allowed)

        try:
            assert can("watch", "oauthclients", served, GROUP) and can("create", "secrets", served)
            # ClusterAuthorizationServer IATs, and the record Secrets (registration access tokens) of this release.
            assert can("get", "secrets", home) and can("list", "secrets", home) and can("patch", "secrets", home)
            assert can("list", "clusterauthorizationservers", None, GROUP)
            assert can("update", "leases", home, "coordination.k8s.io")
            for namespace in ("t", OPERATOR_NAMESPACE):
                assert not can("get", "secrets", namespace), f"secrets of {namespace} must stay unreadable"
                assert not can("watch", "oauthclients", namespace, GROUP)
            assert not can("list", "secrets", None) and not can("list", "oauthclients", None, GROUP)
        finally:
            api.close()
    finally:
        helm("uninstall", "scoped", "--namespace", home)


def test_crd_validation_rejects_bad_documents(kube: Kube, chart_installed: str) -> None:
    namespace = kube.namespace("validation")
    cases = [
        ({"serverRef": {"name": "x"}, "grantTypes": ["authorization_code"]}, "redirectUris is required"),
        ({"serverRef": {"name": "x"}, **M2M, "jwks": {"keys": []}, "jwksUri": "https://x.example/jwks"},
         "jwks and jwksUri"),
        ({"serverRef": {"name": "x"}, **M2M, "scope": "a  b"}, "scope"),
        ({"serverRef": {"name": "x"}, **M2M, "rotation": {"period": "30d"}}, "period"),
    ]
    for spec, expected in cases:
        with pytest.raises(ApiException) as info:
            kube.oauth_client(namespace, "bad", spec)
        assert info.value.status == 422 and expected in info.value.body
    # serverRef changes: tests/e2e/test_admission_ux.py


# --- the lifecycle -------------------------------------------------------------------------------------

def test_created_client_gets_a_secret_whose_credentials_obtain_a_token(
        kube: Kube, operator: OperatorProcess, tenant: str, oidc_provider: Any,
        eventually: Any) -> None:
    kube.oauth_client(tenant, "billing", {"serverRef": {"name": "op"}, "clientName": "Billing", **M2M})
    body = kube.wait_ready(tenant, "billing")
    creds = eventually(lambda: kube.read_secret(tenant, "billing-oauth"), "credentials Secret")
    assert creds["client_id"] == body["status"]["clientId"]
    assert creds["issuer"] == oidc_provider.issuer and creds["token_endpoint"] == oidc_provider.token_endpoint
    assert set(creds) == {"client_id", "client_secret", "issuer", "token_endpoint"}
    assert token_works(creds)
    assert "registration_access_token" not in json.dumps(creds)
    reasons = [e.reason for e in kube.events(tenant, "billing")]
    # A routine first registration posts no Event (the Ready condition and status.registeredAt carry it, as
    # cert-manager's Ready does); a registration anew does, named for its outcome (see the next tests).
    assert "Registered" not in reasons and "NotRegistered" not in reasons
    # The operator-only Secret holds the RAT; the app Secret is owned by the OAuthClient.
    secret = client.CoreV1Api(kube.api).read_namespaced_secret("billing-oauth", tenant)
    assert secret.metadata.owner_references[0].name == "billing"


def test_spec_change_is_applied_at_the_server(kube: Kube, operator: OperatorProcess, tenant: str) -> None:
    kube.oauth_client(tenant, "app", {"serverRef": {"name": "op"}, "clientName": "Before", **M2M})
    kube.wait_ready(tenant, "app")
    kube.patch_client(tenant, "app", {"spec": {"clientName": "After", "contacts": ["ops@example.com"]}})
    kube.wait_ready(tenant, "app")
    record = record_of(kube, tenant, "app")
    assert record.registration_client_uri and record.registration_access_token
    with HttpClient() as http:
        info = rfc7592.read(http, record.registration_client_uri, record.registration_access_token)
    assert info.metadata["client_name"] == "After" and info.metadata["contacts"] == ["ops@example.com"]
    assert "Updated" in [e.reason for e in kube.events(tenant, "app")]


def test_client_deleted_at_the_server_is_registered_again(kube: Kube, operator: OperatorProcess, tenant: str,
        eventually: Any) -> None:
    kube.oauth_client(tenant, "gone", {"serverRef": {"name": "op"}, **M2M})
    old_id = kube.wait_ready(tenant, "gone")["status"]["clientId"]
    record = record_of(kube, tenant, "gone")
    assert record.registration_client_uri and record.registration_access_token
    with HttpClient() as http:
        rfc7592.delete(http, record.registration_client_uri, record.registration_access_token)
    creds = eventually(lambda: (c := kube.read_secret(tenant, "gone-oauth")) and c["client_id"] != old_id and c,
                       "a new client in the Secret")
    assert token_works(creds)
    # RFC 7592 §2: a server answers 401 for a client that no longer exists (and revokes its registration access
    # token), so a conforming server such as oidc-provider makes "gone" look like "token rejected".
    # The Event names the outcome (Registered), its message the cause.
    assert [e for e in kube.events(tenant, "gone") if e.reason == "Registered" and "registering anew" in e.message]


def test_deleted_or_edited_secret_is_healed(kube: Kube, operator: OperatorProcess, tenant: str,
        eventually: Any) -> None:
    kube.oauth_client(tenant, "heal", {"serverRef": {"name": "op"}, **M2M})
    kube.wait_ready(tenant, "heal")
    good = eventually(lambda: kube.read_secret(tenant, "heal-oauth"), "credentials Secret")
    core = client.CoreV1Api(kube.api)
    core.patch_namespaced_secret("heal-oauth", tenant, {"stringData": {"client_secret": "tampered"}},
                                _content_type="application/merge-patch+json")
    eventually(lambda: kube.read_secret(tenant, "heal-oauth") == good, "edited Secret restored")
    core.delete_namespaced_secret("heal-oauth", tenant)
    eventually(lambda: kube.read_secret(tenant, "heal-oauth") == good, "deleted Secret restored")


def test_rotate_annotation_issues_new_credentials_and_retires_the_old_client(
        kube: Kube, operator: OperatorProcess, dev_tenant: str, dev_server: Any,
        eventually: Any) -> None:
    kube.oauth_client(dev_tenant, "rot", {"serverRef": {"name": "dev"}, **M2M, "rotation": {"gracePeriod": "3s"}})
    old_id = kube.wait_ready(dev_tenant, "rot")["status"]["clientId"]
    kube.patch_client(dev_tenant, "rot", {"metadata": {"annotations": {"clientreg.dev/rotate": "e2e-1"}}})
    creds = eventually(lambda: (c := kube.read_secret(dev_tenant, "rot-oauth")) and c["client_id"] != old_id and c,
                       "rotated credentials")
    assert token_works(creds)
    eventually(lambda: old_id not in dev_clients(dev_server), "old client deleted after the grace period")
    body = kube.wait_ready(dev_tenant, "rot")
    assert body["status"]["lastRotationRequest"] == "e2e-1" and body["status"]["clientId"] == creds["client_id"]
    assert creds["client_id"] in dev_clients(dev_server)


def test_cli_rotate_verb_sets_the_annotation(kube: Kube, operator: OperatorProcess, dev_tenant: str,
                                             control_plane: Any,
        eventually: Any) -> None:
    from clientreg_operator.cli import main

    kube.oauth_client(dev_tenant, "verb", {"serverRef": {"name": "dev"}, **M2M})
    old_id = kube.wait_ready(dev_tenant, "verb")["status"]["clientId"]
    assert main(["rotate", f"{dev_tenant}/verb", "--kubeconfig", str(control_plane.kubeconfig)]) == 0
    eventually(lambda: (c := kube.read_secret(dev_tenant, "verb-oauth")) and c["client_id"] != old_id,
               "rotation after `clientreg-operator rotate`")


def test_expiring_secret_is_rotated_ahead_of_expiry(kube: Kube, operator: OperatorProcess,
        eventually: Any) -> None:
    from clientreg.devserver import DevServer, DevServerSettings

    with DevServer(DevServerSettings(port=0, initial_access_token="short-iat", secret_lifetime=40)) as short:
        namespace = kube.namespace("expiring")
        kube.secret(namespace, "iat", {"token": "short-iat"})
        kube.server(namespace, "short", {"issuer": short.issuer,
                                         "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
        kube.oauth_client(namespace, "exp", {"serverRef": {"name": "short"}, **M2M,
                                             "rotation": {"rotateBefore": "35s", "gracePeriod": "1s"}})
        first = kube.wait_ready(namespace, "exp")["status"]
        assert first["secretExpiresAt"]
        creds = eventually(lambda: (c := kube.read_secret(namespace, "exp-oauth")) and
                           c["client_id"] != first["clientId"] and c, "rotation ahead of expiry")
        assert token_works(creds)
        assert "Rotated" in [e.reason for e in kube.events(namespace, "exp")]
        kube.delete_client(namespace, "exp")
        eventually(lambda: kube.get_client(namespace, "exp") is None, "client deleted")


def test_deleting_the_resource_deletes_the_client(kube: Kube, operator: OperatorProcess, dev_tenant: str,
                                                  dev_server: Any,
        eventually: Any) -> None:
    kube.oauth_client(dev_tenant, "bye", {"serverRef": {"name": "dev"}, **M2M})
    client_id = kube.wait_ready(dev_tenant, "bye")["status"]["clientId"]
    assert client_id in dev_clients(dev_server)
    record = record_name(kube, dev_tenant, "bye")
    assert kube.read_secret(OPERATOR_NAMESPACE, record) is not None
    kube.delete_client(dev_tenant, "bye")
    eventually(lambda: kube.get_client(dev_tenant, "bye") is None, "finalizer released")
    assert client_id not in dev_clients(dev_server)
    eventually(lambda: kube.read_secret(OPERATOR_NAMESPACE, record) is None, "record Secret released")


def test_orphan_policy_keeps_the_client(kube: Kube, operator: OperatorProcess, dev_tenant: str,
                                        dev_server: Any,
        eventually: Any) -> None:
    kube.oauth_client(dev_tenant, "keep", {"serverRef": {"name": "dev"}, **M2M, "deletionPolicy": "Orphan"})
    client_id = kube.wait_ready(dev_tenant, "keep")["status"]["clientId"]
    kube.delete_client(dev_tenant, "keep")
    eventually(lambda: kube.get_client(dev_tenant, "keep") is None, "finalizer released")
    assert client_id in dev_clients(dev_server)


def test_a_stable_client_causes_no_writes(kube: Kube, operator: OperatorProcess, dev_tenant: str,
                                          dev_server: Any,
        eventually: Any) -> None:
    kube.oauth_client(dev_tenant, "calm", {"serverRef": {"name": "dev"}, **M2M})
    kube.wait_ready(dev_tenant, "calm")
    core = client.CoreV1Api(kube.api)
    drift_reads = "GET /register/<client_id>"

    record = record_name(kube, dev_tenant, "calm")

    def versions() -> tuple[str, str, str]:
        return (str((kube.get_client(dev_tenant, "calm") or {})["metadata"]["resourceVersion"]),
                core.read_namespaced_secret("calm-oauth", dev_tenant).metadata.resource_version,
                core.read_namespaced_secret(record, OPERATOR_NAMESPACE).metadata.resource_version)

    def drift_checks_after(count: int) -> int:
        return eventually(lambda: (n := dev_requests(dev_server).get(drift_reads, 0)) >= count and n,
                          "drift checks", timeout=60)

    # The first drift check lets whatever the creation still had in flight settle.
    settled = drift_checks_after(dev_requests(dev_server).get(drift_reads, 0) + 1)
    before, writes_before = versions(), _writes(dev_requests(dev_server))
    drift_checks_after(settled + 3)
    assert versions() == before, "a stable OAuthClient and its Secrets must not be written"
    assert _writes(dev_requests(dev_server)) == writes_before, "nothing may be written at the AS either"


def test_tenants_cannot_reach_each_others_servers_or_secrets(kube: Kube, operator: OperatorProcess,
                                                             dev_server: Any,
        eventually: Any) -> None:
    a, b = kube.namespace("tenant-a"), kube.namespace("tenant-b")
    kube.secret(a, "a-iat", {"token": "e2e-dev-iat"})
    kube.server(a, "a-server", {"issuer": dev_server.issuer,
                                "initialAccessToken": {"secretKeyRef": {"name": "a-iat", "key": "token"}}})
    # b names a's server: not visible from b.
    kube.oauth_client(b, "steal-server", {"serverRef": {"name": "a-server"}, **M2M})
    # b's own server names a's Secret: Secrets are read only from b.
    kube.server(b, "b-server", {"issuer": dev_server.issuer,
                                "initialAccessToken": {"secretKeyRef": {"name": "a-iat", "key": "token"}}})
    kube.oauth_client(b, "steal-secret", {"serverRef": {"name": "b-server"}, **M2M})
    before = dev_clients(dev_server)
    first = eventually(lambda: (c := kube.condition(b, "steal-server")) and c["status"] == "False" and c,
                       "a not-found condition")
    assert first["reason"] == "InvalidSpec" and "does not exist in namespace 'tenant-b'" in first["message"]
    second = eventually(lambda: (c := kube.condition(b, "steal-secret")) and c["status"] == "False" and c,
                        "a waiting condition")
    assert second["reason"] == "Waiting" and "tenant-b/a-iat" in second["message"]
    assert dev_clients(dev_server) == before
    assert kube.read_secret(b, "steal-server-oauth") is None and kube.read_secret(b, "steal-secret-oauth") is None
    # The servers' own status says the same (written through the status subresource, the only AS write allowed).
    assert eventually(lambda: server_ready(kube, a, "a-server") == ("True", "Discovered"), "a-server Ready")
    assert eventually(lambda: server_ready(kube, b, "b-server") == ("False", "Waiting"), "b-server Waiting")
    # The IAT arriving later is picked up without anyone touching the OAuthClient.
    kube.secret(b, "a-iat", {"token": "e2e-dev-iat"})
    kube.wait_ready(b, "steal-secret")


def test_operator_killed_mid_reconcile_leaves_no_duplicate(kube: Kube, operator: OperatorProcess,
                                                           dev_tenant: str, dev_server: Any,
        eventually: Any) -> None:
    before = dev_clients(dev_server)
    kube.oauth_client(dev_tenant, "crash", {"serverRef": {"name": "dev"}, **M2M, "rotation": {"gracePeriod": "2s"}})
    # Killed as soon as the registration is persisted, before the app Secret or status may exist.
    eventually(lambda: kube.read_secret(OPERATOR_NAMESPACE, record_name(kube, dev_tenant, "crash")),
               "record persisted", interval=0.02)
    operator.kill()
    operator.start()
    body = kube.wait_ready(dev_tenant, "crash")
    assert dev_clients(dev_server) - before == {body["status"]["clientId"]}
    # And during a rotation: the new client is persisted, the old one retiring, then the process dies.
    old_id = body["status"]["clientId"]
    kube.patch_client(dev_tenant, "crash", {"metadata": {"annotations": {"clientreg.dev/rotate": "crash"}}})
    eventually(lambda: record_of(kube, dev_tenant, "crash").client_id != old_id, "rotation persisted",
               interval=0.02)
    operator.kill()
    operator.start()
    new_id = record_of(kube, dev_tenant, "crash").client_id
    eventually(lambda: old_id not in dev_clients(dev_server), "old client deleted after restart")
    assert dev_clients(dev_server) - before == {new_id}
    creds = eventually(lambda: (c := kube.read_secret(dev_tenant, "crash-oauth")) and
                       c["client_id"] == new_id and c, "Secret with the new client")
    assert token_works(creds)


def test_an_upgrade_moves_the_record_out_of_the_tenant_namespace(kube: Kube, operator: OperatorProcess,
                                                                 dev_tenant: str, dev_server: Any,
                                                                 eventually: Any) -> None:
    """A record where operators before issue 11 kept it (``<name>-clientreg-record`` in the tenant's namespace,
    owned by the OAuthClient) moves to the operator's namespace on the first reconcile, with the chart's RBAC."""
    kube.oauth_client(dev_tenant, "old", {"serverRef": {"name": "dev"}, **M2M})
    body = kube.wait_ready(dev_tenant, "old")
    client_id, uid = body["status"]["clientId"], body["metadata"]["uid"]
    record, legacy = record_name(kube, dev_tenant, "old"), "old-clientreg-record"
    core = client.CoreV1Api(kube.api)
    operator.stop()
    try:
        data = core.read_namespaced_secret(record, OPERATOR_NAMESPACE).data
        core.patch_namespaced_secret(record, OPERATOR_NAMESPACE, {"metadata": {"finalizers": None}})
        core.delete_namespaced_secret(record, OPERATOR_NAMESPACE)
        core.create_namespaced_secret(dev_tenant, client.V1Secret(
            type="clientreg.dev/registration-record", data=data, metadata=client.V1ObjectMeta(
                name=legacy, finalizers=["clientreg.dev/record"],
                labels={"app.kubernetes.io/managed-by": "clientreg-operator", "clientreg.dev/role": "record",
                        "clientreg.dev/oauthclient": "old"},
                owner_references=[client.V1OwnerReference(api_version=f"{GROUP}/{VERSION}", kind="OAuthClient",
                                                          name="old", uid=uid, controller=True,
                                                          block_owner_deletion=True)])))
    finally:
        operator.start()
    eventually(lambda: kube.read_secret(dev_tenant, legacy) is None, "old-place record released and deleted")
    moved = kube.read_secret(OPERATOR_NAMESPACE, record)
    assert moved is not None and json.loads(moved["record.json"])["client_id"] == client_id
    assert eventually(lambda: [e for e in kube.events(dev_tenant, "old") if e.reason == "RecordMoved"],
                      "RecordMoved event")
    assert kube.wait_ready(dev_tenant, "old")["status"]["clientId"] == client_id
    assert client_id in dev_clients(dev_server)
    tenant_secrets = core.list_namespaced_secret(dev_tenant).items
    assert not [s.metadata.name for s in tenant_secrets if "record.json" in (s.data or {})]


def test_a_stolen_token_never_gets_a_client_replaced_silently(kube: Kube, operator: OperatorProcess,
                                                             dev_tenant: str, dev_server: Any,
                                                             eventually: Any) -> None:
    """Someone holding the registration access token PUTs a change (the dev AS, like oidc-provider, issues a new
    token on every PUT). The next read gets 401; the token endpoint still issues tokens to the client's
    credentials, so it lives (clientreg.liveness): nothing is replaced, a Warning names it, the resource is
    Stalled, and the edited client is not left live and untracked behind a new one."""
    kube.oauth_client(dev_tenant, "victim", {"serverRef": {"name": "dev"}, **M2M})
    old_id = kube.wait_ready(dev_tenant, "victim")["status"]["clientId"]
    stolen = record_of(kube, dev_tenant, "victim")
    assert stolen.registration_client_uri and stolen.registration_access_token
    with HttpClient() as http:
        current = rfc7592.read(http, stolen.registration_client_uri, stolen.registration_access_token)
        rfc7592.update(http, stolen.registration_client_uri, stolen.registration_access_token, old_id,
                       {**current.metadata, "client_name": "changed with a stolen token"})
    warning = eventually(lambda: next((e for e in kube.events(dev_tenant, "victim")
                                       if e.reason == "RegistrationAccessTokenRevoked"), None),
                         "RegistrationAccessTokenRevoked Warning", timeout=90)
    assert warning.type == "Warning" and old_id in warning.message
    assert stolen.registration_access_token.get_secret_value() not in warning.message
    body = kube.get_client(dev_tenant, "victim")
    assert body is not None and body["status"]["clientId"] == old_id, "the client was replaced"
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Stalled"]["reason"] == "RegistrationAccessTokenRevoked"
    assert old_id in dev_clients(dev_server)
    assert record_of(kube, dev_tenant, "victim").client_id == old_id
    kube.patch_client(dev_tenant, "victim", {"spec": {"deletionPolicy": "Orphan"}})
    kube.delete_client(dev_tenant, "victim")


def test_metrics_and_logs(kube: Kube, operator: OperatorProcess, dev_tenant: str) -> None:
    kube.oauth_client(dev_tenant, "seen", {"serverRef": {"name": "dev"}, **M2M})
    kube.wait_ready(dev_tenant, "seen")
    text = operator.metrics()
    assert 'clientreg_reconcile_total{result="success"}' in text
    assert "clientreg_server_requests_total{" in text and 'code="201"' in text
    assert "clientreg_registrations_total" in text and "clientreg_leader 1.0" in text
    creds = kube.read_secret(dev_tenant, "seen-oauth")
    assert creds is not None
    record = record_of(kube, dev_tenant, "seen")
    logs = operator.log_text()
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert lines and all("level" in line and "message" in line for line in lines)
    secrets = [creds["client_secret"], "e2e-dev-iat", "e2e-op-iat"]
    if record.registration_access_token:
        secrets.append(record.registration_access_token.get_secret_value())
    assert not [s for s in secrets if s in logs]


def test_printer_columns(kube: Kube, operator: OperatorProcess, dev_tenant: str, control_plane: Any) -> None:
    import shutil
    import subprocess

    kube.oauth_client(dev_tenant, "cols", {"serverRef": {"name": "dev"}, **M2M})
    body = kube.wait_ready(dev_tenant, "cols")
    kubectl = shutil.which("kubectl")
    from support.kube import ensure_kube_assets

    try:
        kubectl = str(ensure_kube_assets() / "kubectl")
    except Exception:
        if kubectl is None:
            pytest.skip("no kubectl")
    out = subprocess.run([str(kubectl), "get", "oauthclients", "-n", dev_tenant, "cols"],
                         env=control_plane.env(), capture_output=True, text=True, check=True).stdout
    header, row = out.splitlines()[:2]
    assert header.split()[:6] == ["NAME", "READY", "REASON", "CLIENT", "ID", "SERVER"]
    assert row.split()[:5] == ["cols", "True", "InSync", body["status"]["clientId"], "dev"]


def test_status_subresource_only_holds_facts(kube: Kube, operator: OperatorProcess, dev_tenant: str) -> None:
    kube.oauth_client(dev_tenant, "facts", {"serverRef": {"name": "dev"}, **M2M})
    status = kube.wait_ready(dev_tenant, "facts")["status"]
    assert {"clientId", "conditions", "observedGeneration", "registeredAt", "secretName", "server"} <= set(status)
    assert {c["type"] for c in status["conditions"]} == {"Ready", "Synced"}


def test_custom_objects_api_group_is_served(kube: Kube, chart_installed: str) -> None:
    groups = client.ApisApi(kube.api).get_api_versions()
    assert GROUP in [g.name for g in groups.groups]
    assert any(v.version == VERSION for g in groups.groups if g.name == GROUP for v in g.versions)


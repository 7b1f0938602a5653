"""The operator as users run it: the image built by scripts/build-image, installed with `helm install`,
its Deployment's replicas running the image with the chart's container spec.

No kubelet runs here (docs/kubernetes.md, "Testing", says what was tried and why it failed), so the
replicas are podman containers made from the Deployment read back from the API server
(support/podman_pods.py): the chart's user 65532, read-only root filesystem, dropped capabilities,
env, emptyDir, the ServiceAccount token where the kubelet mounts it, and the chart's probes. Each has
its own network namespace whose loopback relays to the test's API server and AS on 127.0.0.1.

The image comes from the cache (support/image.py: built once per hash of its inputs).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import SecretStr
from support.cache import unavailable
from support.image import RUN_PACKAGES, ImageUnavailable, archive_image, ensure_debian_packages, ensure_operator_image
from support.operator_process import CHART
from support.podman_pods import Replica, load_image, podman

from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.e2e

RELEASE = "image"  # fullname "image-clientreg": its own ServiceAccount, RBAC, Deployment and Lease
NAMESPACE = "clientreg-image"
FULLNAME = f"{RELEASE}-clientreg"
SHARD_LABEL = "test.clientreg.dev/shard"  # the session's own operator serves only OAuthClients without it
SHARD = "image"
M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}


@pytest.fixture(scope="module")
def image() -> tuple[str, str, Path]:
    """(name, image ID, archive) of the image for the current sources, loaded into podman."""
    try:
        archive = ensure_operator_image()
        ensure_debian_packages(RUN_PACKAGES)
    except ImageUnavailable as exc:
        unavailable("the operator image", str(exc))
    name, image_id = archive_image(archive)
    load_image(archive, image_id)
    if podman("image", "inspect", "--format", "{{.Id}}", name).stdout.strip() != image_id.split(":", 1)[1]:
        # An older build under the same name: loading again moves the name to this one.
        podman("load", "--quiet", "--input", str(archive), timeout=300)
    return name, image_id, archive


@pytest.fixture(scope="module")
def deployment(helm: Any, admin: client.ApiClient, image: tuple[str, str, Path]) -> Iterator[dict[str, Any]]:
    """`helm install` with the chart's defaults but for the test's shard, the loopback AS and short leases;
    the Deployment as the API server stores it (what a kubelet would be given)."""
    helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
         "--set", f"labelSelector={SHARD_LABEL}={SHARD}",
         "--set", "leaderElection.leaseDuration=6s",
         "--set", "driftCheckInterval=1m",
         # The dev AS listens on 127.0.0.1, which the operator refuses by default.
         "--set-json", 'extraArgs=["--allow-loopback-servers"]')
    try:
        apps = client.AppsV1Api(admin)
        found = apps.read_namespaced_deployment(FULLNAME, NAMESPACE)
        yield admin.sanitize_for_serialization(found)
    finally:
        helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)


def _service_account_token(admin: client.ApiClient, name: str) -> str:
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[],
                                                                                 expiration_seconds=3600))
    answer = client.CoreV1Api(admin).create_namespaced_service_account_token(name, NAMESPACE, request)
    return str(answer.status.token)


class Pods:
    """The module's running replicas, and how to start one more (what the ReplicaSet does after a loss)."""

    def __init__(self, start: Callable[[], Replica]) -> None:
        self.start = start
        self.replicas: list[Replica] = []


@pytest.fixture(scope="module")
def node(deployment: dict[str, Any], admin: client.ApiClient, control_plane: Any, dev_server: Any,
         tmp_path_factory: pytest.TempPathFactory, eventually: Callable[..., Any]) -> Iterator[Pods]:
    """The Deployment's replicas, started the way a kubelet would start its Pods."""
    core = client.CoreV1Api(admin)
    ca_pem = eventually(lambda: (core.read_namespaced_config_map("kube-root-ca.crt", NAMESPACE).data or {})
                        .get("ca.crt"), "kube-root-ca.crt published", timeout=60)
    pod_spec = deployment["spec"]["template"]["spec"]
    token = _service_account_token(admin, pod_spec["serviceAccountName"])
    api_port, as_port = urlsplit(control_plane.server).port, urlsplit(dev_server.issuer).port
    assert api_port and as_port
    workdir = tmp_path_factory.mktemp("pods")
    started: list[Replica] = []

    def start() -> Replica:
        replica = Replica(deployment, image=pod_spec["containers"][0]["image"], workdir=workdir,
                          apiserver_port=api_port, relay_ports=(as_port,), token=token, ca_pem=ca_pem)
        started.append(replica)
        return replica.start()

    pods = Pods(start)
    try:
        pods.replicas = [start() for _ in range(deployment["spec"]["replicas"])]
        yield pods
    finally:
        for replica in started:
            (workdir / f"{replica.name}.log").write_text(replica.logs())
            replica.close()


@pytest.fixture(scope="module")
def pods(node: Pods) -> list[Replica]:
    return node.replicas


def lease_holder(admin: client.ApiClient, name: str) -> str | None:
    try:
        lease = client.CoordinationV1Api(admin).read_namespaced_lease(name, NAMESPACE)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    holder: str | None = lease.spec.holder_identity
    return holder


def leads(replica: Replica) -> bool:
    status, body = replica.get(replica.port("metrics"), "/metrics")
    return status == 200 and any(line.startswith("clientreg_leader 1") for line in body.decode().splitlines())


def ready(replica: Replica) -> bool:
    return replica.running() and replica.probe("readinessProbe") and replica.probe("livenessProbe")


def why(replicas: list[Replica]) -> str:
    return "\n".join(f"--- {r.name}:\n" + "\n".join(r.logs().splitlines()[-15:]) for r in replicas)


def shard_client(kube: Any, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kube.custom.create_namespaced_custom_object("clientreg.dev", "v1alpha1", namespace, "oauthclients", {
        "apiVersion": "clientreg.dev/v1alpha1", "kind": "OAuthClient",
        "metadata": {"name": name, "labels": {SHARD_LABEL: SHARD}}, "spec": spec})


def token_works(creds: dict[str, str]) -> bool:
    record = RegistrationRecord(client_id=creds["client_id"], client_secret=SecretStr(creds["client_secret"]),
                                token_endpoint=creds["token_endpoint"])
    with HttpClient() as http:
        return bool(client_credentials_token(http, record).access_token.get_secret_value())


@pytest.fixture(scope="module")
def tenant(kube: Any, dev_server: Any) -> str:
    namespace = kube.namespace("image-tenant")
    kube.secret(namespace, "iat", {"token": "e2e-dev-iat"})
    with contextlib.suppress(ApiException):
        kube.server(namespace, "dev", {"issuer": dev_server.issuer,
                                       "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}})
    return namespace


# --- the image itself ----------------------------------------------------------------------------------

def test_image_is_what_the_chart_runs_by_default(image: tuple[str, str, Path], helm: Any) -> None:
    name, image_id, _ = image
    rendered = helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE).stdout
    # The chart's default (image.repository, tag = appVersion) names exactly what scripts/build-image builds.
    assert f'image: "{name}"' in rendered
    config = podman("image", "inspect", "--format",
                    "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}", image_id).stdout
    user, entrypoint, ports = config.strip().split("|")
    assert user == "65532:65532"
    assert entrypoint == '["/opt/clientreg/bin/clientreg-operator"]'
    assert "8080/tcp" in ports and "8081/tcp" in ports


def test_image_help_runs_as_nonroot_on_a_read_only_root(image: tuple[str, str, Path]) -> None:
    name = image[0]
    result = podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
                    "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                    name, "--help")
    assert "usage: clientreg-operator" in result.stdout and "run" in result.stdout
    probe = podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", "--network", "none",
                   "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
                   "--entrypoint", '["/opt/clientreg/bin/python", "-c", "import os, clientreg_operator, '
                   'kubernetes; print(os.getuid(), os.getgid(), os.access(\\"/\\", os.W_OK))"]', name).stdout
    # The image's own user (no --user given) is 65532, and nothing under / is writable to it.
    assert probe.split() == ["65532", "65532", "False"]


# --- the Deployment's replicas running the image ---------------------------------------------------------

def test_both_replicas_ready_and_exactly_one_leads(pods: list[Replica], admin: client.ApiClient,
                                                   deployment: dict[str, Any],
                                                   eventually: Callable[..., Any]) -> None:
    assert len(pods) == deployment["spec"]["replicas"] == 2
    eventually(lambda: all(ready(p) for p in pods), f"both replicas Ready\n{why(pods)}", timeout=120)
    lease = next(a for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                 if a.startswith("--lease-name=")).split("=", 1)[1]
    holder = eventually(lambda: lease_holder(admin, lease), f"a Lease holder\n{why(pods)}", timeout=90)
    assert holder in {p.name for p in pods}
    eventually(lambda: [leads(p) for p in pods].count(True) == 1, "exactly one replica leading", timeout=60)
    assert [p.name for p in pods if leads(p)] == [holder]


def test_oauthclient_reconciled_by_the_image_gets_working_credentials(
        pods: list[Replica], kube: Any, tenant: str, dev_server: Any, eventually: Callable[..., Any]) -> None:
    shard_client(kube, tenant, "imaged", {"serverRef": {"name": "dev"}, "clientName": "From the image", **M2M})
    body = kube.wait_ready(tenant, "imaged", timeout=120)
    creds = eventually(lambda: kube.read_secret(tenant, "imaged-oauth"), "credentials Secret")
    assert creds["client_id"] == body["status"]["clientId"]
    assert creds["token_endpoint"].startswith(dev_server.issuer)
    assert token_works(creds)


def test_leader_killed_the_standby_takes_over(node: Pods, pods: list[Replica], admin: client.ApiClient, kube: Any,
                                              tenant: str, deployment: dict[str, Any],
                                              eventually: Callable[..., Any]) -> None:
    eventually(lambda: all(ready(p) for p in pods), f"both replicas Ready\n{why(pods)}", timeout=120)
    lease = next(a for a in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
                 if a.startswith("--lease-name=")).split("=", 1)[1]
    holder = eventually(lambda: lease_holder(admin, lease), "a Lease holder", timeout=90)
    leader = next(p for p in pods if p.name == holder)
    standby = next(p for p in pods if p is not leader)
    leader.kill()  # SIGKILL: the Lease is not released, the standby waits for it to expire
    eventually(lambda: lease_holder(admin, lease) == standby.name and leads(standby),
               f"the standby taking the Lease\n{why(pods)}", timeout=90)
    shard_client(kube, tenant, "after-failover", {"serverRef": {"name": "dev"}, **M2M})
    kube.wait_ready(tenant, "after-failover", timeout=120)
    # The ReplicaSet would replace the dead Pod: the new one comes up Ready as a standby.
    replacement = node.start()
    eventually(lambda: ready(replacement), f"the replacement Ready\n{why([replacement])}", timeout=120)
    assert not leads(replacement) and lease_holder(admin, lease) == standby.name


def test_published_jwks_served_from_the_replicas_documents_endpoint(
        pods: list[Replica], admin: client.ApiClient, kube: Any, tenant: str, dev_server: Any,
        deployment: dict[str, Any], eventually: Callable[..., Any]) -> None:
    # Port 8080 is what the chart's Service (<release>-clientreg-metrics) targets; with no kube-proxy
    # here, the test GETs it in each replica's network namespace, as the Service's endpoints would.
    eventually(lambda: any(leads(p) for p in pods if p.running()), "a leader", timeout=90)
    jwks_uri = f"{dev_server.issuer}/image-documents/signer/jwks.json"
    shard_client(kube, tenant, "signer", {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"],
                                          "tokenEndpointAuthMethod": "private_key_jwt",
                                          "keyPair": {"algorithm": "ES256"}, "jwksUri": jwks_uri})
    path = "/documents/" + jwks_uri.split("://", 1)[1]

    def served() -> dict[str, Any] | None:
        for replica in (p for p in pods if p.running() and leads(p)):
            status, body = replica.get(replica.port("metrics"), path)
            if status == 200:
                return {"replica": replica.name, "jwks": json.loads(body)}
        return None

    found = eventually(served, f"the JWKS served at {path}\n{why(pods)}", timeout=120)
    keys = found["jwks"]["keys"]
    assert len(keys) == 1 and keys[0]["kty"] == "EC" and "d" not in keys[0]

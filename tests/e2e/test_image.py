"""The operator as users run it: the image built by scripts/build-image, `helm install` of the chart, and
real Pods on a real node.

The node (support/node.py): kubelet and kube-scheduler built from the same k8s.io/kubernetes module as
the API server, containerd and runc from Debian, a bridge CNI network, the Deployment/ReplicaSet/
EndpointSlice controllers. The image is imported into containerd's k8s.io namespace, as `kind load` does,
and the chart runs with its default image values. Each Pod's 127.0.0.1 relays to the host's loopback,
where the API server and the dev AS listen (support/cni_relay.py); the chart's `extraEnv` points the
in-cluster client there, because this plane's `kubernetes` Service has no endpoints (its loopback
advertise address) and no kube-proxy runs.

The image comes from the cache (support/image.py: built once per hash of its inputs), the node binaries
too (built once per Kubernetes version).
"""

from __future__ import annotations

import base64
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
from support.kube import ComponentUnavailable, ensure_helm, helm_env, skip_unless_ci
from support.netns import PodNetwork
from support.node import Node, NodeControlPlane
from support.operator_process import CHART

from clientreg.http import HttpClient
from clientreg.record import RegistrationRecord
from clientreg.tokens import client_credentials_token

pytestmark = pytest.mark.e2e

RELEASE = "clientreg"
NAMESPACE = "clientreg"
GROUP, VERSION = "clientreg.dev", "v1alpha1"
TENANT = "tenant"
M2M = {"grantTypes": ["client_credentials"], "tokenEndpointAuthMethod": "client_secret_basic"}
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
#: Podman's default ulimits exceed this machine's hard limits (root here lacks CAP_SYS_RESOURCE).
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


@pytest.fixture(scope="module")
def image() -> tuple[str, str, Path]:
    """(name, image ID, archive) of the image for the current sources."""
    try:
        archive = ensure_operator_image()
        ensure_debian_packages(RUN_PACKAGES)
    except ImageUnavailable as exc:
        unavailable("the operator image", str(exc))
    name, image_id = archive_image(archive)
    return name, image_id, archive


def podman(*args: str) -> str:
    import subprocess

    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
    return result.stdout


# --- the image on its own (podman) -------------------------------------------------------------------------

def test_image_help_and_user_on_a_read_only_root(image: tuple[str, str, Path]) -> None:
    name, image_id, archive = image
    loaded = podman("load", "--quiet", "--input", str(archive))
    assert name in loaded
    assert podman("image", "inspect", "--format", "{{.Id}}", name).strip() == image_id.split(":", 1)[1]
    config = podman("image", "inspect", "--format",
                    "{{.Config.User}}|{{json .Config.Entrypoint}}|{{json .Config.ExposedPorts}}", image_id)
    user, entrypoint, ports = config.strip().split("|")
    assert user == "65532:65532" and entrypoint == '["/opt/clientreg/bin/clientreg-operator"]'
    assert "8080/tcp" in ports and "8081/tcp" in ports
    helped = podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", "--cap-drop", "ALL",
                    "--network", "none", *ULIMITS, image_id, "--help")
    assert "usage: clientreg-operator" in helped and "run" in helped
    probe = podman("run", "--rm", "--read-only", "--read-only-tmpfs=false", "--network", "none", *ULIMITS,
                   "--entrypoint", '["/opt/clientreg/bin/python", "-c", "import os, clientreg_operator, '
                   'kubernetes; print(os.getuid(), os.getgid(), os.access(\\"/\\", os.W_OK))"]', image_id)
    # The image's own user (no --user given) is 65532, and nothing under / is writable to it.
    assert probe.split() == ["65532", "65532", "False"]


# --- a real node --------------------------------------------------------------------------------------------

class Cluster:
    def __init__(self, plane: NodeControlPlane, node: Node, api: client.ApiClient) -> None:
        self.plane, self.node, self.api = plane, node, api
        self.core, self.apps = client.CoreV1Api(api), client.AppsV1Api(api)
        self.custom = client.CustomObjectsApi(api)

    def pods(self) -> list[Any]:
        selector = f"app.kubernetes.io/instance={RELEASE}"
        return [p for p in self.core.list_namespaced_pod(NAMESPACE, label_selector=selector).items
                if p.metadata.deletion_timestamp is None]

    def ready_pods(self) -> list[Any]:
        return [p for p in self.pods() if p.status.phase == "Running"
                and {c.type: c.status for c in p.status.conditions or []}.get("Ready") == "True"]

    def lease_holder(self) -> str | None:
        try:
            lease = client.CoordinationV1Api(self.api).read_namespaced_lease("clientreg-operator", NAMESPACE)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        holder: str | None = lease.spec.holder_identity
        return holder

    def network(self, pod: Any) -> PodNetwork:
        netns = self.node.pod_netns(NAMESPACE, pod.metadata.name)
        assert netns is not None, f"no network namespace recorded for {pod.metadata.name}"
        return PodNetwork(path=netns)

    def get(self, pod: Any, port: int, path: str) -> tuple[int, bytes]:
        """GET on the Pod's own loopback (its network namespace), where its containers listen."""
        return self.network(pod).http_get(port, path)

    def leads(self, pod: Any) -> bool:
        status, body = self.get(pod, 8080, "/metrics")
        return status == 200 and any(line.startswith("clientreg_leader 1") for line in body.decode().splitlines())

    def oauth_client(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.create_namespaced_custom_object(GROUP, VERSION, TENANT, "oauthclients", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient", "metadata": {"name": name}, "spec": spec})

    def ready_client(self, name: str) -> dict[str, Any] | None:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(GROUP, VERSION, TENANT, "oauthclients", name)
        conditions = {c["type"]: c for c in (body.get("status") or {}).get("conditions") or []}
        ready = conditions.get("Ready") or {}
        return body if ready.get("status") == "True" and ready.get("reason") == "InSync" else None

    def secret(self, name: str) -> dict[str, str] | None:
        try:
            found = self.core.read_namespaced_secret(name, TENANT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return {k: base64.b64decode(v).decode() for k, v in (found.data or {}).items()}

    def logs(self, lines: int = 15) -> str:
        """The tail of every container log the kubelet wrote (the API's log endpoint needs a node address
        the API server can reach; this node has only loopback)."""
        out = []
        for log in sorted((self.node.workdir / "pod-logs").glob(f"{NAMESPACE}_*/*/*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.parent.parent.name.split('_')[1]} ({log.name}):\n" + "\n".join(tail))
        return "\n".join(out)


@pytest.fixture(scope="module")
def cluster(image: tuple[str, str, Path], dev_server: Any, tmp_path_factory: pytest.TempPathFactory,
            eventually: Callable[..., Any]) -> Iterator[Cluster]:
    """A control plane of its own (with ServiceAccount admission: Pods get their token), one node, and the
    chart installed with its default image, which the node has imported."""
    import subprocess

    try:
        helm = ensure_helm()
        plane = NodeControlPlane().__enter__()
    except ComponentUnavailable as exc:
        skip_unless_ci(str(exc))
    try:
        if plane.external:
            pytest.skip("KUBECONFIG names an existing cluster: this module starts its own plane and node")
        api_port, as_port = urlsplit(plane.server).port, urlsplit(dev_server.issuer).port
        assert api_port and as_port
        node = Node(plane, relay_ports=(as_port,))
        try:
            node.__enter__()
        except (ComponentUnavailable, ImageUnavailable) as exc:
            skip_unless_ci(f"no node: {exc}")
        try:
            node.import_image(image[2])
            api = plane.api_client()
            env = helm_env(plane.env(), tmp_path_factory.mktemp("helm-home"))
            extra_env = [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                         {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)}]
            installed = subprocess.run(
                [str(helm), "install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--create-namespace",
                 # Short enough for the failover test; the default image values are kept.
                 "--set", "leaderElection.leaseDuration=6s",
                 # The dev AS listens on 127.0.0.1, which the operator refuses by default.
                 "--set-json", 'extraArgs=["--allow-loopback-servers"]',
                 "--set-json", f"extraEnv={json.dumps(extra_env)}"],
                env=env, capture_output=True, text=True, timeout=300)
            assert installed.returncode == 0, installed.stderr
            yield Cluster(plane, node, api)
            api.close()
        finally:
            node.close()
    finally:
        plane.close()


@pytest.fixture(scope="module")
def tenant(cluster: Cluster, dev_server: Any) -> str:
    cluster.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=TENANT)))
    cluster.core.create_namespaced_secret(TENANT, client.V1Secret(metadata=client.V1ObjectMeta(name="iat"),
                                                                  string_data={"token": "e2e-dev-iat"}))
    cluster.custom.create_namespaced_custom_object(GROUP, VERSION, TENANT, "authorizationservers", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AuthorizationServer", "metadata": {"name": "dev"},
        "spec": {"issuer": dev_server.issuer,
                 "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}}})
    return TENANT


def token_works(creds: dict[str, str]) -> bool:
    record = RegistrationRecord(client_id=creds["client_id"], client_secret=SecretStr(creds["client_secret"]),
                                token_endpoint=creds["token_endpoint"])
    with HttpClient() as http:
        return bool(client_credentials_token(http, record).access_token.get_secret_value())


def test_helm_install_gives_two_ready_pods_running_the_image_as_the_chart_says(
        cluster: Cluster, image: tuple[str, str, Path], eventually: Callable[..., Any]) -> None:
    pods = eventually(lambda: (ready := cluster.ready_pods()) and len(ready) == 2 and ready,
                      "both replicas Running and Ready (the kubelet's readiness probes passing)", timeout=180)
    deployment = cluster.apps.read_namespaced_deployment(RELEASE, NAMESPACE)
    assert deployment.spec.replicas == 2
    eventually(lambda: cluster.apps.read_namespaced_deployment(RELEASE, NAMESPACE).status.available_replicas == 2,
               "the Deployment available")
    for pod in pods:
        status = pod.status.container_statuses[0]
        assert status.ready and status.restart_count == 0, cluster.logs()
        # The image the chart names by default, found on the node (imported, never pulled).
        assert status.image == image[0] and status.image_id.endswith(image[1].split(":", 1)[1])
        # What the kubelet gave the running process: the chart's user, a read-only root, no capabilities.
        container_id = status.container_id.split("://", 1)[1]
        pid = next(line.split()[1] for line in cluster.node.ctr("tasks", "list").splitlines()
                   if line.startswith(container_id))
        proc = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
        assert proc["Uid"].split()[:2] == ["65532", "65532"] and proc["Gid"].split()[:2] == ["65532", "65532"]
        assert int(proc["CapEff"].strip(), 16) == 0 and proc["NoNewPrivs"].strip() == "1"
        root = next(line.split() for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
                    if line.split()[4] == "/")
        assert "ro" in root[5].split(","), root


def test_exactly_one_replica_leads(cluster: Cluster, eventually: Callable[..., Any]) -> None:
    pods = eventually(lambda: (ready := cluster.ready_pods()) and len(ready) == 2 and ready, "2 ready", timeout=180)
    holder = eventually(cluster.lease_holder, f"a Lease holder\n{cluster.logs()}", timeout=90)
    assert holder in {p.metadata.name for p in pods}
    eventually(lambda: [cluster.leads(p) for p in pods].count(True) == 1, "exactly one replica leading")
    assert [p.metadata.name for p in pods if cluster.leads(p)] == [holder]


def test_oauthclient_reconciled_by_the_pods_gets_working_credentials(
        cluster: Cluster, tenant: str, dev_server: Any, eventually: Callable[..., Any]) -> None:
    cluster.oauth_client("from-pod", {"serverRef": {"name": "dev"}, "clientName": "From a Pod", **M2M})
    body = eventually(lambda: cluster.ready_client("from-pod"), f"OAuthClient Ready\n{cluster.logs()}", timeout=120)
    creds = eventually(lambda: cluster.secret("from-pod-oauth"), "credentials Secret")
    assert creds["client_id"] == body["status"]["clientId"]
    assert creds["token_endpoint"].startswith(dev_server.issuer)
    assert token_works(creds)


def test_documents_served_behind_the_service(cluster: Cluster, tenant: str, dev_server: Any,
                                             eventually: Callable[..., Any]) -> None:
    # The Service's endpoints are both Pods, port 8080 (no kube-proxy here: the test reads the
    # EndpointSlice and GETs each endpoint's Pod on its own loopback).
    pods = eventually(lambda: (ready := cluster.ready_pods()) and len(ready) == 2 and ready, "2 ready", timeout=180)

    def endpoints() -> dict[str, Any] | None:
        slices = client.DiscoveryV1Api(cluster.api).list_namespaced_endpoint_slice(
            NAMESPACE, label_selector=f"kubernetes.io/service-name={RELEASE}-metrics").items
        found = {e.target_ref.name: e for s in slices for e in s.endpoints or [] if e.conditions.ready}
        ports = {p.port for s in slices for p in s.ports or []}
        return found if len(found) == 2 and ports == {8080} else None

    found = eventually(endpoints, "the metrics Service's EndpointSlice listing both Pods ready")
    assert {name: ep.addresses[0] for name, ep in found.items()} == {p.metadata.name: p.status.pod_ip for p in pods}
    jwks_uri = f"{dev_server.issuer}/node-documents/signer/jwks.json"
    cluster.oauth_client("signer", {"serverRef": {"name": "dev"}, "grantTypes": ["client_credentials"],
                                    "tokenEndpointAuthMethod": "private_key_jwt", "keyPair": {"algorithm": "ES256"},
                                    "jwksUri": jwks_uri})
    path = "/documents/" + jwks_uri.split("://", 1)[1]

    def served() -> dict[str, Any] | None:
        for pod in pods:
            status, body = cluster.get(pod, 8080, path)
            if status == 200:
                loaded: dict[str, Any] = json.loads(body)
                return loaded
        return None

    jwks = eventually(served, f"the JWKS served at {path}\n{cluster.logs()}", timeout=120)
    assert len(jwks["keys"]) == 1 and jwks["keys"][0]["kty"] == "EC" and "d" not in jwks["keys"][0]


def test_leader_pod_deleted_another_takes_over_and_a_new_pod_comes(
        cluster: Cluster, tenant: str, eventually: Callable[..., Any]) -> None:
    pods = eventually(lambda: (ready := cluster.ready_pods()) and len(ready) == 2 and ready, "2 ready", timeout=180)
    holder = eventually(cluster.lease_holder, "a Lease holder", timeout=90)
    cluster.core.delete_namespaced_pod(holder, NAMESPACE)
    # The deleted Pod gets SIGTERM and hands the Lease back; the waiting standby and the ReplicaSet's
    # replacement (already waiting too, when the old Pod's shutdown takes longer than its start) race for it.
    replaced = eventually(lambda: (ready := cluster.ready_pods()) and len(ready) == 2
                          and holder not in {p.metadata.name for p in ready} and ready,
                          f"a replacement Pod Ready\n{cluster.logs()}", timeout=180)
    names = {p.metadata.name for p in replaced}
    assert len(names & {p.metadata.name for p in pods}) == 1  # the standby, still running
    new_holder = eventually(lambda: (h := cluster.lease_holder()) in names and h,
                            f"a live replica taking the Lease\n{cluster.logs()}", timeout=90)
    eventually(lambda: [p.metadata.name for p in replaced if cluster.leads(p)] == [new_holder],
               "exactly the Lease holder leading")
    cluster.oauth_client("after-failover", {"serverRef": {"name": "dev"}, **M2M})
    eventually(lambda: cluster.ready_client("after-failover"), f"reconciled after failover\n{cluster.logs()}",
               timeout=120)


def test_leader_process_killed_the_kubelet_restarts_it_and_one_replica_leads(
        cluster: Cluster, tenant: str, eventually: Callable[..., Any]) -> None:
    pods = eventually(lambda: (ready := cluster.ready_pods()) and len(ready) == 2 and ready, "2 ready", timeout=180)
    holder = eventually(cluster.lease_holder, "a Lease holder", timeout=90)
    leader = next(p for p in pods if p.metadata.name == holder)
    before = leader.status.container_statuses[0].restart_count
    container_id = leader.status.container_statuses[0].container_id.split("://", 1)[1]
    # SIGKILL, no Lease release. The kubelet restarts the container within seconds, in the same Pod and
    # so under the same identity: whichever replica then holds the Lease, exactly one leads.
    cluster.node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)

    def restarted() -> bool:
        status = cluster.core.read_namespaced_pod(holder, NAMESPACE).status.container_statuses[0]
        return bool(status.restart_count == before + 1 and status.ready
                    and status.last_state.terminated and status.last_state.terminated.exit_code == 137)

    eventually(restarted, f"the killed container restarted by the kubelet and Ready\n{cluster.logs()}", timeout=180)
    names = {p.metadata.name for p in pods}
    new_holder = eventually(lambda: (h := cluster.lease_holder()) in names and h, "a Lease holder", timeout=90)
    eventually(lambda: [p.metadata.name for p in pods if cluster.leads(p)] == [new_holder],
               f"exactly the Lease holder leading\n{cluster.logs()}", timeout=60)
    cluster.oauth_client("after-kill", {"serverRef": {"name": "dev"}, **M2M})
    eventually(lambda: cluster.ready_client("after-kill"), f"reconciled after the kill\n{cluster.logs()}",
               timeout=120)

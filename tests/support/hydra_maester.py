"""ory/hydra-maester, the Go controller clientreg's operator is measured against, built and run.

hydra-maester (controller-runtime, one worker) turns ``OAuth2Client`` resources
(``hydra.ory.sh/v1alpha1``) into clients through Hydra's *admin* API and writes their ``client_id``
and ``client_secret`` into a Secret. The Go module proxy refuses its module, so its source sits in
the peers folder (``shared/peers/hydra-maester`` above the checkout, or ``$CLIENTREG_PEERS_DIR``, or
``CLIENTREG_HYDRA_MAESTER_SRC``; see the README beside it);
its dependencies do come from the proxy. It is built once into the cache, in a folder keyed by a
digest of its source tree, so another upstream commit rebuilds it.

Cold: about 6 minutes of compiling on 2 idle cores with a warm module cache (8.5 measured on busy
ones, fetching a few modules). A build that hangs ends after ``CLIENTREG_HYDRA_MAESTER_BUILD_TIMEOUT``
seconds (default 1800) with :class:`ComponentUnavailable`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import yaml

from support.cache import component_dir, free_port, stop_process
from support.child_process import LoggedChild
from support.go_source import build_once, copy_source, digest, peers_dir, run_go
from support.kube import ComponentUnavailable

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

DEFAULT_BUILD_TIMEOUT = 1800.0
#: The CRD hydra-maester reconciles, relative to its source tree.
CRD_PATH = Path("config/crd/bases/hydra.ory.sh_oauth2clients.yaml")


def source_dir() -> Path | None:
    override = os.environ.get("CLIENTREG_HYDRA_MAESTER_SRC")
    if override:
        return Path(override)
    peers = peers_dir()
    return peers / "hydra-maester" if peers else None


def ensure_hydra_maester() -> Path:
    """The path of the cached hydra-maester binary, built once. Raises ComponentUnavailable.

    Its CRD is kept beside it (``crd.yaml``) so that running it needs only the cache folder.
    """
    upstream = source_dir()
    if upstream is None or not (upstream / "go.mod").exists():
        where = upstream or "no shared/peers folder above the checkout"
        raise ComponentUnavailable(f"no hydra-maester source ({where}): set CLIENTREG_PEERS_DIR or "
                                   "CLIENTREG_HYDRA_MAESTER_SRC")
    folder = component_dir("hydra-maester", digest(upstream))
    binary = folder / "hydra-maester"
    def build() -> None:
        src = folder / "src"
        copy_source(upstream, src)
        log = folder / "build.log"
        log.write_text("")
        timeout = float(os.environ.get("CLIENTREG_HYDRA_MAESTER_BUILD_TIMEOUT", DEFAULT_BUILD_TIMEOUT))
        run_go(["go", "build", "-trimpath", "-o", str(binary), "."], cwd=src, log=log, timeout=timeout,
               what="hydra-maester", unavailable=ComponentUnavailable,
               hint="raise CLIENTREG_HYDRA_MAESTER_BUILD_TIMEOUT")
        shutil.copyfile(src / CRD_PATH, folder / "crd.yaml")

    return build_once(folder, binary, build, what="hydra-maester", unavailable=ComponentUnavailable)


# -- installing and running it --------------------------------------------------------------------

GROUP, VERSION, PLURAL = "hydra.ory.sh", "v1alpha1", "oauth2clients"
#: Where its ServiceAccount lives (upstream's kustomize puts it in "<prefix>-system").
NAMESPACE = "hydra-maester-system"
SERVICE_ACCOUNT = "hydra-maester"
SERVICE_ACCOUNT_USER = f"system:serviceaccount:{NAMESPACE}:{SERVICE_ACCOUNT}"
#: The Secret keys it writes (its defaults; CLIENT_ID_KEY / CLIENT_SECRET_KEY in its environment change them).
CLIENT_ID_KEY, CLIENT_SECRET_KEY = "CLIENT_ID", "CLIENT_SECRET"
#: Hydra v2's admin API serves clients under /admin; the flag's default (/clients) is Hydra v1's path.
ADMIN_ENDPOINT = "/admin/clients"


def install(admin: ApiClient, binary: Path) -> None:
    """Its CRD, and its ServiceAccount bound to upstream's ClusterRole (config/rbac/role.yaml, verbatim
    rules), the way a real install authorises it. Upstream's leader-election Role is left out: see
    :class:`HydraMaesterProcess`. Waits for the CRD to be served."""
    from kubernetes import client

    crd = yaml.safe_load((binary.parent / "crd.yaml").read_text())
    ext = client.ApiextensionsV1Api(admin)
    ext.create_custom_resource_definition(crd)
    role = yaml.safe_load((binary.parent / "src" / "config" / "rbac" / "role.yaml").read_text())
    role["metadata"] = {"name": "hydra-maester-manager-role"}
    rbac = client.RbacAuthorizationV1Api(admin)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name="hydra-maester-manager-rolebinding"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                  name=role["metadata"]["name"]),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name=SERVICE_ACCOUNT, namespace=NAMESPACE)]))
    core = client.CoreV1Api(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    core.create_namespaced_service_account(NAMESPACE, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name=SERVICE_ACCOUNT)))
    deadline = time.monotonic() + 60
    while True:
        status = ext.read_custom_resource_definition(crd["metadata"]["name"]).status
        conditions = {c.type: c.status for c in (status.conditions if status else None) or []}
        if conditions.get("Established") == "True":
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"CRD {crd['metadata']['name']} not established within 60 s")
        time.sleep(0.25)


def oauth2client(name: str, secret_name: str) -> dict[str, Any]:
    """An OAuth2Client the way the bench asks for one: client_credentials, no scope.

    No ``scope`` on purpose: with one, hydra-maester lists *every* client at Hydra before each
    registration (its unregister-then-register step), which makes it quadratic in N; without, it skips
    that and shows its best case.
    """
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuth2Client", "metadata": {"name": name},
            "spec": {"grantTypes": ["client_credentials"], "secretName": secret_name}}


class HydraMaesterProcess(LoggedChild):
    """hydra-maester as a child process under its ServiceAccount's kubeconfig, talking to Hydra's admin API.

    Without leader election: upstream's manager.yaml passes ``--enable-leader-election`` but its
    main.go sets no LeaderElectionID, which controller-runtime v0.24 refuses at start ("LeaderElectionID
    must be configured"); so a real install runs it as a single replica without it, and so does this.
    """

    def __init__(self, binary: Path, kubeconfig: Path, admin_url: str, log_dir: Path) -> None:
        self.binary, self.kubeconfig, self.admin_url = binary, kubeconfig, admin_url
        self.log_path = log_dir / "hydra-maester.log"
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HydraMaesterProcess:
        parsed = urlsplit(self.admin_url)
        argv = [str(self.binary), "--hydra-url", f"{parsed.scheme}://{parsed.hostname}",
                "--hydra-port", str(parsed.port), "--endpoint", ADMIN_ENDPOINT,
                "--metrics-addr", f"127.0.0.1:{self.metrics_port}"]
        env = {k: v for k, v in os.environ.items() if k not in {"KUBECONFIG", "NAMESPACE"}}
        env["KUBECONFIG"] = str(self.kubeconfig)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not self.synced():
            if time.monotonic() > deadline:
                raise AssertionError(f"hydra-maester not started within 60 s:\n{self.log_tail()}")
            time.sleep(0.25)
        return self

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"hydra-maester exited with {self.proc.returncode}:\n{self.log_tail()}")

    def synced(self) -> bool:
        """Its controller's workers are running (controller-runtime logs that once the caches have synced)."""
        self._check_alive()
        return "Starting workers" in self.log_text()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, grace=20)

"""The chart's Deployment run as containers of the operator image under podman, doing the kubelet's part.

Used where no kubelet can run (see docs/kubernetes.md, "Testing"): the Deployment is read back from the
API server after ``helm install`` and each replica becomes one ``podman run`` with the very container
spec it holds: image, command and args, env (``fieldRef`` resolved as the kubelet does), the pod's and
the container's securityContext (user and group, supplementary fsGroup, read-only root filesystem,
no privilege escalation, dropped capabilities, the runtime's default seccomp profile), the emptyDir
mounts, the ServiceAccount token mounted where the kubelet puts it, and the probes, which
:meth:`Replica.probe` runs as the kubelet would (an HTTP GET of the container's named port). Whatever
the translation does not understand is refused, never silently dropped.

Each replica has its own network namespace (:class:`support.netns.PodNetwork`), as a Pod has; the
kubelet's service environment (``KUBERNETES_SERVICE_HOST``/``PORT``) names the API server on loopback,
relayed to the host's. podman runs with runc and cgroupfs: crun refuses this machine's cgroup layout.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support.netns import PodNetwork

PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
#: Podman's default ulimits are refused in this sandbox; these are what a kubelet's containerd gives.
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class Unsupported(ValueError):
    """Something in the Pod template this translation does not implement (it never ignores fields)."""


def podman(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def load_image(archive: Path, image_id: str) -> str:
    """Load the OCI archive into podman's storage unless that image (by ID) is there already."""
    if podman("image", "exists", image_id, check=False).returncode != 0:
        podman("load", "--quiet", "--input", str(archive), timeout=300)
    return image_id


def security_args(pod_sc: Mapping[str, Any], sc: Mapping[str, Any]) -> list[str]:
    """podman flags for a Pod's and a container's securityContext (the container's wins, as in Kubernetes)."""
    known_pod = {"runAsUser", "runAsGroup", "runAsNonRoot", "fsGroup", "seccompProfile", "supplementalGroups"}
    known = {"runAsUser", "runAsGroup", "runAsNonRoot", "readOnlyRootFilesystem", "allowPrivilegeEscalation",
             "capabilities", "seccompProfile", "privileged"}
    for fields, allowed, where in ((pod_sc, known_pod, "pod"), (sc, known, "container")):
        extra = {k for k, v in fields.items() if v is not None} - allowed
        if extra:
            raise Unsupported(f"{where} securityContext fields {sorted(extra)}")
    merged = {**{k: v for k, v in pod_sc.items() if v is not None}, **{k: v for k, v in sc.items() if v is not None}}
    args: list[str] = []
    user, group = merged.get("runAsUser"), merged.get("runAsGroup")
    if user is None:
        raise Unsupported("no runAsUser: the image's own user would be checked by the kubelet, not here")
    if merged.get("runAsNonRoot") and int(user) == 0:
        raise RuntimeError("runAsNonRoot with runAsUser 0: the kubelet refuses to start this container")
    args += ["--user", f"{user}:{group if group is not None else 0}"]
    for gid in [pod_sc.get("fsGroup"), *(pod_sc.get("supplementalGroups") or [])]:
        if gid is not None:
            args += ["--group-add", str(gid)]
    if merged.get("readOnlyRootFilesystem"):
        # podman's --read-only adds writable tmpfs on /tmp, /var/tmp and /run; the kubelet does not.
        args += ["--read-only", "--read-only-tmpfs=false"]
    if merged.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if merged.get("privileged"):
        raise Unsupported("privileged containers")
    caps = merged.get("capabilities") or {}
    args += [a for cap in caps.get("drop") or [] for a in ("--cap-drop", cap)]
    args += [a for cap in caps.get("add") or [] for a in ("--cap-add", cap)]
    seccomp = (merged.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    elif seccomp != "RuntimeDefault":  # podman's default profile is the runtime default
        raise Unsupported(f"seccompProfile {seccomp}")
    return args


def env_args(env: list[Mapping[str, Any]], *, pod_name: str, namespace: str) -> list[str]:
    fields = {"metadata.name": pod_name, "metadata.namespace": namespace}
    args: list[str] = []
    for var in env:
        if var.get("value") is not None:
            value = str(var["value"])
        elif (var.get("valueFrom") or {}).get("fieldRef"):
            path = var["valueFrom"]["fieldRef"]["fieldPath"]
            if path not in fields:
                raise Unsupported(f"env {var['name']}: fieldRef {path}")
            value = fields[path]
        else:
            raise Unsupported(f"env {var['name']}: {sorted(var)}")
        args += ["--env", f"{var['name']}={value}"]
    return args


class Replica:
    """One Pod of the Deployment: a podman container in its own network namespace."""

    def __init__(self, deployment: Mapping[str, Any], *, image: str, workdir: Path, apiserver_port: int,
                 relay_ports: tuple[int, ...], token: str, ca_pem: str) -> None:
        self.deployment = deployment
        self.spec: Mapping[str, Any] = deployment["spec"]["template"]["spec"]
        containers = self.spec["containers"]
        if len(containers) != 1 or self.spec.get("initContainers"):
            raise Unsupported("exactly one container and no init containers are translated")
        self.container: Mapping[str, Any] = containers[0]
        self.namespace = deployment["metadata"]["namespace"]
        self.name = f"{deployment['metadata']['name']}-{secrets.token_hex(3)}"
        self.image, self.workdir, self.apiserver_port = image, workdir / self.name, apiserver_port
        self.relay_ports, self.token, self.ca_pem = relay_ports, token, ca_pem
        self.network: PodNetwork | None = None

    # -- the container spec ---------------------------------------------------------------------------

    def _mounts(self) -> list[str]:
        volumes = {v["name"]: v for v in self.spec.get("volumes") or []}
        args: list[str] = []
        for mount in self.container.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "emptyDir" not in volume or (volume["emptyDir"] or {}).get("medium"):
                raise Unsupported(f"volume {mount['name']}: only node-disk emptyDir is translated")
            folder = self.workdir / "volumes" / mount["name"]
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(0o777)  # what the kubelet gives an emptyDir
            mode = "ro" if mount.get("readOnly") else "rw"
            args += ["--volume", f"{folder}:{mount['mountPath']}:{mode}"]
        if self.spec.get("automountServiceAccountToken", True):
            # The kubelet's projected volume: token (TokenRequest for the Pod's ServiceAccount), the
            # cluster CA (kube-root-ca.crt) and the namespace, readable by the Pod's user.
            sa = self.workdir / "serviceaccount"
            sa.mkdir(parents=True, exist_ok=True)
            for name, content in (("token", self.token), ("ca.crt", self.ca_pem), ("namespace", self.namespace)):
                (sa / name).write_text(content)
                (sa / name).chmod(0o644)
            args += ["--volume", f"{sa}:{SERVICE_ACCOUNT_DIR}:ro"]
        return args

    def podman_args(self) -> list[str]:
        assert self.network is not None
        c = self.container
        args = ["run", "--detach", "--name", self.name, "--hostname", self.name,
                "--network", f"ns:{self.network.path}", *ULIMITS,
                *security_args(self.spec.get("securityContext") or {}, c.get("securityContext") or {}),
                *self._mounts(),
                # The kubelet's service links for the API server, here its address on (relayed) loopback.
                "--env", "KUBERNETES_SERVICE_HOST=127.0.0.1",
                "--env", f"KUBERNETES_SERVICE_PORT={self.apiserver_port}",
                *env_args(c.get("env") or [], pod_name=self.name, namespace=self.namespace)]
        limits = (c.get("resources") or {}).get("limits") or {}
        if "memory" in limits:
            args += ["--memory", _podman_quantity(str(limits["memory"]))]
        if c.get("command"):
            args += ["--entrypoint", json.dumps(c["command"])]
        return [*args, self.image, *(c.get("args") or [])]

    # -- lifecycle ------------------------------------------------------------------------------------

    def start(self) -> Replica:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.network = PodNetwork().__enter__()
        for port in (self.apiserver_port, *self.relay_ports):
            self.network.relay(port)
        podman(*self.podman_args())
        return self

    def running(self) -> bool:
        result = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return result.stdout.strip() == "true"

    def kill(self) -> None:
        """SIGKILL, no Lease release: a node dying under the Pod."""
        podman("kill", "--signal", "KILL", self.name, check=False)

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def close(self) -> None:
        podman("rm", "--force", "--time", "5", self.name, check=False)
        if self.network is not None:
            self.network.close()
            self.network = None

    # -- what the kubelet and a Service would reach ------------------------------------------------------

    def port(self, name_or_number: str | int) -> int:
        if isinstance(name_or_number, int):
            return name_or_number
        for port in self.container.get("ports") or []:
            if port.get("name") == name_or_number:
                return int(port["containerPort"])
        raise Unsupported(f"no container port named {name_or_number}")

    def probe(self, kind: str) -> bool:
        """The container's ``livenessProbe``/``readinessProbe`` as the kubelet runs it: 200-399 is success."""
        spec = self.container[kind]
        if "httpGet" not in spec:
            raise Unsupported(f"{kind}: only httpGet probes are translated")
        get = spec["httpGet"]
        with contextlib.suppress(OSError):
            status, _ = self.get(self.port(get["port"]), get.get("path", "/"))
            return 200 <= status < 400
        return False

    def get(self, port: int, path: str) -> tuple[int, bytes]:
        assert self.network is not None
        return self.network.http_get(port, path)


def _podman_quantity(quantity: str) -> str:
    """A Kubernetes memory quantity (256Mi) as podman's (256m)."""
    for suffix, unit in (("Ki", "k"), ("Mi", "m"), ("Gi", "g")):
        if quantity.endswith(suffix):
            return quantity[: -len(suffix)] + unit
    if quantity.isdigit():
        return quantity
    raise Unsupported(f"memory quantity {quantity}")

"""A real node for the e2e tests: kubelet and kube-scheduler built from the same k8s.io/kubernetes module
as the control plane, containerd and runc from Debian, a bridge CNI network from Debian's
containernetworking-plugins, and the workload controllers (Deployments, ReplicaSets, EndpointSlices).

    with NodeControlPlane() as cp, Node(cp) as node:
        node.import_image(archive)
        ... helm install; Pods run for real ...

Each Pod's 127.0.0.1 relays to the host's loopback (support/cni_relay.py), where the API server and the
tests' authorization servers listen. Where the kubelet cannot run (see docs/kubernetes.md, "Testing"),
:func:`kubelet_blocker` says why and the tests fall back to support/podman_pods.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from support.cache import cache_root, component_dir, free_port, go_build_tools_module, is_complete, mark_complete
from support.image import ensure_debian_packages
from support.kube import (
    KUBE_BUILD_TAGS,
    KUBERNETES_MODULE,
    KUBERNETES_VERSION,
    ControlPlane,
    _build,
    _Process,
    _staging_replaces,
    _tail,
    _wait_until,
)

NODE_BINARIES = ("kubelet", "kube-scheduler")
NODE_PACKAGES = {"containerd": "containerd", "runc": "runc", "containernetworking-plugins": "/usr/lib/cni/bridge",
                 "iproute2": "ip", "gcc": "gcc"}
NODE_NAME = "clientreg-node"
POD_CIDR = "10.244.0.0/24"  # not podman's 10.88.0.0/16
BRIDGE = "clientreg0"
WORKLOAD_CONTROLLERS = "deployment,replicaset,endpointslice,nodelifecycle"
PAUSE_IMAGE = "localhost/clientreg-test/pause:1"
REPO = Path(__file__).resolve().parents[2]

PAUSE_C = r"""
#include <signal.h>
#include <unistd.h>
#include <sys/wait.h>
static void quit(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) { signal(SIGINT, quit); signal(SIGTERM, quit); signal(SIGCHLD, reap); for (;;) pause(); }
"""


def _build_node(folder: Path, log: Path) -> None:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    values = {"gitVersion": KUBERNETES_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    ldflags = " ".join(["-s", "-w"] + [f"-X {pkg}.{k}={v}" for pkg in ("k8s.io/component-base/version",
                                                                      "k8s.io/client-go/pkg/version")
                                       for k, v in values.items()])
    go_build_tools_module(
        workdir=folder / "tools", module_name="tools/kubernetes-node",
        requires={KUBERNETES_MODULE: KUBERNETES_VERSION}, replaces=_staging_replaces(KUBERNETES_VERSION),
        packages={f"{KUBERNETES_MODULE}/cmd/{b}": folder / b for b in NODE_BINARIES},
        tags=KUBE_BUILD_TAGS, ldflags=ldflags, log=log)


def ensure_node() -> Path:
    """kubelet and kube-scheduler (built once per version), the Debian packages, and the pause image."""
    ensure_debian_packages(NODE_PACKAGES)
    folder = _build("kube-node", KUBERNETES_VERSION, NODE_BINARIES, _build_node)
    ensure_pause_image()
    return folder


def ensure_pause_image() -> Path:
    """The Pod sandbox image (registry.k8s.io/pause is out of reach): a static pause(2) loop, packed by umoci."""
    folder = component_dir("pause-image", "1")
    archive = folder / "pause.oci.tar"
    if is_complete(folder) and archive.is_file():
        return archive
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "pause.c").write_text(PAUSE_C)
        rootfs = work / "rootfs"
        rootfs.mkdir()
        subprocess.run(["gcc", "-static", "-Os", "-s", "-o", str(rootfs / "pause"), str(work / "pause.c")], check=True)
        subprocess.run(["tar", "--owner=0", "--group=0", "-C", str(rootfs), "-cf", str(work / "layer.tar"), "pause"],
                       check=True)
        layout, tag = work / "oci", PAUSE_IMAGE.rsplit(":", 1)[1]
        for argv in (["init", "--layout", str(layout)], ["new", "--image", f"{layout}:{tag}"],
                     ["raw", "add-layer", "--image", f"{layout}:{tag}", str(work / "layer.tar")],
                     ["config", "--image", f"{layout}:{tag}", "--config.entrypoint", "/pause",
                      "--config.user", "65535:65535", "--architecture", "amd64", "--os", "linux"]):
            subprocess.run(["umoci", *argv], check=True, capture_output=True)
        index = json.loads((layout / "index.json").read_text())
        for manifest in index["manifests"]:
            manifest.setdefault("annotations", {})["io.containerd.image.name"] = PAUSE_IMAGE
        (layout / "index.json").write_text(json.dumps(index))
        subprocess.run(["tar", "-C", str(layout), "-cf", str(archive), "."], check=True)
    mark_complete(folder)
    return archive


class NodeControlPlane(ControlPlane):
    """The control plane with the ServiceAccount admission plugin on: it mounts Pods' tokens."""

    APISERVER_ARGS = ()


class Node:
    """containerd + kubelet + kube-scheduler + the workload controllers, joined to ``plane``."""

    def __init__(self, plane: ControlPlane, relay_ports: tuple[int, ...] = ()) -> None:
        """``relay_ports``: host loopback ports every Pod reaches on its own 127.0.0.1 (the API server's
        always)."""
        self.plane = plane
        self.workdir = Path(tempfile.mkdtemp(prefix="clientreg-node-"))
        self.socket = self.workdir / "containerd.sock"
        self.relay_state = self.workdir / "relays"
        self.relay_ports: list[int] = [int(plane.server.rsplit(":", 1)[1]), *relay_ports]
        self._processes: list[_Process] = []
        self._logs: list[IO[bytes]] = []
        self._lock: IO[str] | None = None

    def __enter__(self) -> Node:
        # One node per machine at a time: the bridge, the Pod CIDR and containerd's cgroup parent are
        # machine-wide (worktrees sharing a machine run their node tests one after the other).
        self._lock = open(cache_root() / ".kube-node.running.lock", "w")  # closed in close()
        fcntl.flock(self._lock, fcntl.LOCK_EX)
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _spawn(self, name: str, argv: list[str]) -> _Process:
        log = self.workdir / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - closed in close()
        self._logs.append(fh)
        popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.workdir)
        proc = _Process(name, popen, log)
        self._processes.append(proc)
        return proc

    def ctr(self, *args: str, stdin: IO[bytes] | None = None) -> str:
        result = subprocess.run(["ctr", "--address", str(self.socket), "--namespace", "k8s.io", *args],
                                stdin=stdin, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def import_image(self, archive: Path) -> None:
        with open(archive, "rb") as fh:
            self.ctr("images", "import", "-", stdin=fh)

    # -- start ---------------------------------------------------------------------------------------

    def start(self) -> None:
        binaries = ensure_node()
        self._start_containerd()
        self.import_image(ensure_pause_image())
        self._start_controllers(binaries)
        self._start_kubelet(binaries)

    def _start_containerd(self) -> None:
        cni_bin, cni_conf = self.workdir / "cni-bin", self.workdir / "cni-conf"
        cni_bin.mkdir()
        cni_conf.mkdir()
        for plugin in ("bridge", "host-local", "loopback", "portmap"):
            (cni_bin / plugin).symlink_to(f"/usr/lib/cni/{plugin}")
        relay = cni_bin / "clientreg-relay"
        relay.write_text(f"#!/bin/sh\nPYTHONPATH={REPO / 'tests'}:{REPO} exec {sys.executable} -m support.cni_relay\n")
        relay.chmod(0o755)
        (cni_conf / "10-clientreg.conflist").write_text(json.dumps({
            "cniVersion": "1.0.0", "name": "clientreg-node",
            "plugins": [
                {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR}]],
                          "dataDir": str(self.workdir / "ipam")}},
                {"type": "clientreg-relay", "ports": self.relay_ports, "stateDir": str(self.relay_state)},
            ]}))
        config = f"""
version = 2
root = "{self.workdir / 'containerd'}"
state = "{self.workdir / 'containerd-state'}"
[grpc]
  address = "{self.socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # This machine's root lacks CAP_SYS_RESOURCE: lowering oom_score_adj (the kubelet asks -998 for
  # sandboxes) fails runc's init with "can't get final child's PID from pipe: EOF". Clamp to our own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
"""
        (self.workdir / "containerd.toml").write_text(config)
        proc = self._spawn("containerd", ["containerd", "--config", str(self.workdir / "containerd.toml")])
        deadline = time.monotonic() + 60
        while not self.socket.exists():
            proc.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"containerd did not start; end of {proc.log}:\n{_tail(proc.log)}")
            time.sleep(0.1)

    def _start_controllers(self, binaries: Path) -> None:
        assets = self.plane_assets()
        kubeconfig = str(self.plane.kubeconfig)
        port = free_port()
        manager = self._spawn("kube-controller-manager-workloads", [
            str(assets / "kube-controller-manager"), f"--kubeconfig={kubeconfig}",
            f"--controllers={WORKLOAD_CONTROLLERS}", "--leader-elect=false",
            "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'kcm-certs'}", "--v=1"])
        _wait_until("workload controllers", manager, _healthz(port), timeout=90)
        port = free_port()
        scheduler = self._spawn("kube-scheduler", [
            str(binaries / "kube-scheduler"), f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}",
            f"--cert-dir={self.workdir / 'scheduler-certs'}", "--v=1"])
        _wait_until("kube-scheduler", scheduler, _healthz(port), timeout=90)

    def plane_assets(self) -> Path:
        from support.kube import ensure_kube_assets

        return ensure_kube_assets()

    def _start_kubelet(self, binaries: Path) -> None:
        healthz_port = free_port()
        config: dict[str, Any] = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
            "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False}},
            "authorization": {"mode": "AlwaysAllow"},
            "address": "127.0.0.1", "port": free_port(), "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1", "healthzPort": healthz_port,
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            # This machine has the hybrid cgroup v1 layout; the kubelet refuses v1 unless told.
            "failCgroupV1": False, "failSwapOn": False,
            "cgroupsPerQOS": False, "enforceNodeAllocatable": [],
            "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%",
                             "nodefs.inodesFree": "1%"},
            "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
            "resolvConf": "/etc/resolv.conf", "podCIDR": POD_CIDR,
            "podLogsDir": str(self.workdir / "pod-logs"),
            "serializeImagePulls": False, "registerNode": True,
        }
        (self.workdir / "kubelet.yaml").write_text(yaml.safe_dump(config))
        kubelet = self._spawn("kubelet", [
            str(binaries / "kubelet"), f"--config={self.workdir / 'kubelet.yaml'}",
            f"--kubeconfig={self.plane.kubeconfig}", f"--root-dir={self.workdir / 'kubelet'}",
            f"--hostname-override={NODE_NAME}", "--v=2"])
        _wait_until("kubelet", kubelet, _plain_healthz(healthz_port), timeout=120)
        self._wait_node_ready(kubelet)

    def _wait_node_ready(self, kubelet: _Process) -> None:
        from kubernetes import client

        api = self.plane.api_client()
        try:
            core = client.CoreV1Api(api)

            def ready() -> tuple[bool, str]:
                try:
                    node = core.read_node(NODE_NAME)
                except client.exceptions.ApiException as exc:
                    return False, f"{exc.status}"
                conditions = {c.type: (c.status, c.message) for c in node.status.conditions or []}
                return conditions.get("Ready", ("", ""))[0] == "True", str(conditions.get("Ready"))

            _wait_until(f"node {NODE_NAME} Ready", kubelet, ready, timeout=120)
        finally:
            api.close()

    # -- pods ------------------------------------------------------------------------------------------

    def pod_netns(self, namespace: str, name: str) -> Path | None:
        found = self.relay_state / f"pod-{namespace}_{name}"
        return Path(found.read_text()) if found.exists() else None

    # -- stop ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Pods first (through the kubelet, so that sandboxes, network namespaces and relays go the normal
        way), then whatever is left, then the node's processes and files."""
        kubelet = next((p for p in self._processes if p.name == "kubelet"), None)
        if kubelet is not None and kubelet.popen.poll() is None:
            with contextlib.suppress(Exception):
                self._drain()
        if kubelet is not None:
            kubelet.stop()
        if self.socket.exists():
            with contextlib.suppress(Exception):
                for task in self.ctr("tasks", "list", "--quiet").split():
                    with contextlib.suppress(Exception):
                        self.ctr("tasks", "kill", "--signal", "SIGKILL", task)
                    with contextlib.suppress(Exception):
                        self.ctr("tasks", "delete", "--force", task)
        for proc in reversed(self._processes):
            with contextlib.suppress(Exception):
                proc.stop()
        self._processes.clear()
        for fh in self._logs:
            fh.close()
        self._logs.clear()
        self._kill_leftovers()
        subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)
        # containerd's mounts (overlay snapshots, shm) must go before the folder can.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.workdir))]
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        # containerd's parent cgroup for Pods, in each v1 hierarchy; rmdir only succeeds once it is empty.
        for parent in Path("/sys/fs/cgroup").glob("*/k8s.io"):
            with contextlib.suppress(OSError):
                parent.rmdir()
        if not os.environ.get("CLIENTREG_KEEP_NODE"):
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _drain(self) -> None:
        from kubernetes import client

        api = self.plane.api_client()
        try:
            core = client.CoreV1Api(api)
            # Cordoned first: ReplicaSets would otherwise replace every Pod deleted here.
            core.patch_node(NODE_NAME, {"spec": {"unschedulable": True}})
            for pod in core.list_pod_for_all_namespaces(field_selector=f"spec.nodeName={NODE_NAME}").items:
                with contextlib.suppress(client.exceptions.ApiException):
                    core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0)
        finally:
            api.close()
        # The kubelet kills the containers and stops the sandboxes (CNI DEL: relays and namespaces go);
        # stopped tasks stay listed until garbage collection, which need not be waited for.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(
                line.split()[-1] == "RUNNING" for line in self.ctr("tasks", "list").splitlines()[1:] if line.strip()):
            time.sleep(0.5)

    def _kill_leftovers(self) -> None:
        """Shims of this node's containerd (they outlive it by design), relay processes, Pod namespaces."""
        marker = str(self.socket).encode()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (proc / "cmdline").read_bytes():
                        os.kill(int(proc.name), 9)
        if self.relay_state.exists():
            for pidfile in self.relay_state.glob("*.pid"):
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pidfile.read_text()), 15)
            for record in self.relay_state.glob("pod-*"):
                netns = Path(record.read_text())
                if netns.parent == Path("/run/netns") or netns.parent == Path("/var/run/netns"):
                    subprocess.run(["ip", "netns", "delete", netns.name], capture_output=True)


def _healthz(port: int) -> Any:
    def probe() -> tuple[bool, str]:
        r = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)
        return r.status_code == 200, f"{r.status_code} {r.text[-200:]}"
    return probe


def _plain_healthz(port: int) -> Any:
    def probe() -> tuple[bool, str]:
        r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        return r.status_code == 200, f"{r.status_code} {r.text[-200:]}"
    return probe

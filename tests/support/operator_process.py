"""`clientreg-operator run` as a child process, the way the chart's Deployment runs it: the e2e
tests and bench/converge.py share it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from support.cache import free_port
from support.child_process import LoggedChild

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "clientreg"
RELEASE = "clientreg"
OPERATOR_NAMESPACE = "clientreg"
SERVICE_ACCOUNT = "clientreg"  # the chart's fullname for release "clientreg"
SERVICE_ACCOUNT_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{SERVICE_ACCOUNT}"
CRD_PLURALS = ("oauthclients", "authorizationservers", "clusterauthorizationservers")


def wait_for(check: Callable[[], object], what: str, timeout: float = 60.0, interval: float = 0.25) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, AssertionError) as exc:
            last = exc
            if isinstance(exc, AssertionError) and "exited with" in str(exc):
                raise
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s" + (f" (last error: {last})" if last else ""))


def install_chart(helm: Callable[..., object], admin: ApiClient) -> None:
    """`helm install` of the chart, as a user would run it (CRDs, RBAC, ServiceAccount, Deployment), then
    wait for the CRDs to be served. ``helm(*args)`` runs the Helm CLI against the cluster."""
    helm("install", RELEASE, str(CHART), "--namespace", OPERATOR_NAMESPACE, "--create-namespace",
         # No kubelet here, so no Pod runs the image: the operator runs as a process under this identity.
         "--set", "image.repository=example.invalid/clientreg-operator")
    from kubernetes import client

    ext = client.ApiextensionsV1Api(admin)

    def established() -> bool:
        for plural in CRD_PLURALS:
            crd = ext.read_custom_resource_definition(f"{plural}.clientreg.dev")
            conditions = {c.type: c.status for c in crd.status.conditions or []}
            if conditions.get("Established") != "True":
                return False
        return True

    wait_for(established, "CRDs established")


class OperatorProcess(LoggedChild):
    """`clientreg-operator run` as a child process, the way the Deployment runs it."""

    def __init__(self, kubeconfig: Path, log_dir: Path, *, identity: str, extra: tuple[str, ...] = (),
                 namespaces: tuple[str, ...] = ()) -> None:
        self.kubeconfig, self.identity, self.extra = kubeconfig, identity, extra
        #: Empty: every namespace. The fault tests confine each scenario's operator to its own namespace.
        self.namespaces = namespaces
        self.log_path = log_dir / f"operator-{identity}.log"
        self.probe_port, self.metrics_port = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        scope = ["--namespace", ",".join(self.namespaces)] if self.namespaces else ["--all-namespaces"]
        argv = [sys.executable, "-m", "clientreg_operator.cli", "run", *scope,
                "--kubeconfig", str(self.kubeconfig), "--cluster-resource-namespace", OPERATOR_NAMESPACE,
                "--records-namespace", OPERATOR_NAMESPACE,  # as the chart passes the release namespace
                "--lease-namespace", OPERATOR_NAMESPACE, "--lease-duration", "4s", "--identity", self.identity,
                # Short intervals keep the suite fast; behaviour is asserted, never timing.
                "--drift-check-interval", "3s",
                "--probe-address", f"127.0.0.1:{self.probe_port}",
                "--metrics-address", f"127.0.0.1:{self.metrics_port}",
                "--log-format", "json", "--log-level", "INFO",
                # The ASes of the tests listen on 127.0.0.1; the default policy refuses loopback servers.
                "--allow-loopback-servers", *self.extra]
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child, closed by the OS with it
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        log.close()
        wait_for(self.ready, f"operator {self.identity} serving /readyz", timeout=60)
        return self

    def ready(self) -> bool:
        self._check_alive()
        return httpx.get(f"http://127.0.0.1:{self.probe_port}/readyz", timeout=2).status_code == 200

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator {self.identity} exited with {self.proc.returncode}:\n{self.log_tail()}")

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def is_leader(self) -> bool:
        return any(line.startswith("clientreg_leader 1") for line in self.metrics().splitlines())

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release, like a node dying."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

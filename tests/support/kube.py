"""A real Kubernetes control plane and Helm for the e2e tests, the way controller-runtime's envtest does it.

etcd, kube-apiserver and kube-controller-manager run as plain processes on loopback ports; there is
no kubelet and no scheduler, so Pods never run, but everything the operator touches (CRDs, RBAC,
ServiceAccount tokens, ownerReference garbage collection, namespace deletion) is the real thing.

The binaries are built once from the Go module proxy into the component cache (see
``support.cache``); ``cd tests && python -m support.kube build`` does that up front so that CI
shows the build time on its own. Users who already have binaries or a cluster skip the build:

* ``KUBEBUILDER_ASSETS`` (setup-envtest's folder) is used as is;
* ``KUBECONFIG`` pointing at an existing file (kind, k3d) is used as the cluster, nothing starts.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime as dt
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, NoReturn

import httpx
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from support.cache import (
    build_lock,
    component_dir,
    free_port,
    go_build_tools_module,
    go_env,
    in_ci,
    is_complete,
    mark_complete,
)

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

# Newest k8s.io/kubernetes release on the module proxy whose go.mod (go 1.26.0) builds with the
# Go 1.26 toolchain here; v1.38 is only a beta.
KUBERNETES_VERSION = "v1.37.2"
# Kubernetes 1.37 vendors the etcd 3.7 client (3.6 was the line for 1.34-1.36); the newest 3.7
# patch release serves it.
ETCD_VERSION = "v3.7.3"
# Helm 4 is the current major line; v3.22.0 would build the same way (module helm.sh/helm/v3).
HELM_VERSION = "v4.3.2"

KUBERNETES_MODULE = "k8s.io/kubernetes"
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
HELM_MODULE = "helm.sh/helm/v4"

# Same tags as the upstream release build (hack/lib/golang.sh): grpcnotrace lets the linker drop
# x/net/trace, notest keeps test-only code out.
KUBE_BUILD_TAGS = "selinux,notest,grpcnotrace"

START_TIMEOUT = 180.0  # kube-apiserver alone takes 20-60 s on 2 busy cores
STOP_TIMEOUT = 15.0
START_ATTEMPTS = 3
# What tests would notice missing: ownerReference garbage collection, namespace deletion, each
# namespace's default ServiceAccount and kube-root-ca.crt, and aggregated ClusterRoles (charts
# commonly aggregate into admin/edit/view). The pre-1.28 names are kept as aliases forever, so
# they also work with an older kube-controller-manager from KUBEBUILDER_ASSETS.
CONTROLLERS = ",".join(
    [
        "garbagecollector",
        "namespace",
        "serviceaccount",
        "serviceaccount-token",
        "clusterrole-aggregation",
        "root-ca-cert-publisher",
    ]
)


def _audit_policy(verbs: list[str]) -> str:
    """An audit policy logging the metadata of ``verbs`` (never bodies: they could hold Secrets), nothing else."""
    return f"""\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    verbs: {json.dumps(verbs)}
  - level: None
"""


_WRITES = ["create", "update", "patch", "delete", "deletecollection"]
#: Metadata of every write; reads are not logged, there are too many.
AUDIT_POLICY = _audit_policy(_WRITES)
#: The same, and reads too (get, list, watch): for benches that count a controller's API reads. Not the
#: default: every informer resync and test poll would be logged, and the log is read whole to count.
AUDIT_POLICY_WITH_READS = _audit_policy([*_WRITES, "get", "list", "watch"])

KUBE_BINARIES = ("kube-apiserver", "kube-controller-manager", "kubectl")


class ComponentUnavailable(RuntimeError):
    """A binary cannot be had on this machine (no Go toolchain, no assets)."""


def skip_unless_ci(reason: str) -> NoReturn:
    """Skip the calling test, except in CI where a missing component is a broken pipeline."""
    import pytest

    if in_ci():
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------------------------
# Building




def _require_go() -> None:
    if shutil.which("go") is None:
        raise ComponentUnavailable("the Go toolchain is needed to build the Kubernetes test binaries (no `go` on PATH)")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _build(name: str, version: str, binaries: tuple[str, ...], build: Any) -> Path:
    """Run ``build(folder, log)`` once per version, guarded by a lock and a completion marker."""
    folder = component_dir(name, version)
    if is_complete(folder) and all((folder / b).exists() for b in binaries):
        return folder
    _require_go()
    with build_lock(folder):
        if is_complete(folder) and all((folder / b).exists() for b in binaries):
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".complete").unlink(missing_ok=True)
        log = folder / "build.log"
        log.write_text("")
        started = time.monotonic()
        try:
            build(folder, log)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(f"building {name} {version} failed ({exc}); end of {log}:\n{_tail(log)}") from exc
        (folder / "build-seconds").write_text(f"{time.monotonic() - started:.0f}\n")
        mark_complete(folder)
    return folder


def _staging_replaces(version: str) -> dict[str, str]:
    """``replace`` lines for k8s.io/kubernetes's staging modules, generated from its own go.mod.

    Its go.mod requires every staging module at v0.0.0 and points them at ./staging; replaces
    only count in the main module, so the tools module must pin the published v0.N.P copies.
    """
    out = subprocess.run(
        ["go", "mod", "download", "-json", f"{KUBERNETES_MODULE}@{version}"],
        env=go_env(),
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    )
    gomod = Path(json.loads(out.stdout)["GoMod"]).read_text()
    staging_version = "v0." + version.split(".", 1)[1]
    replaces: dict[str, str] = {}
    for line in gomod.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("k8s.io/") and parts[1] == "v0.0.0":
            replaces[parts[0]] = f"{parts[0]} {staging_version}"
    if not replaces:
        raise RuntimeError(f"no staging modules found in {KUBERNETES_MODULE}@{version}'s go.mod")
    return replaces


def _build_kubernetes(folder: Path, log: Path) -> None:
    major, minor = KUBERNETES_VERSION.lstrip("v").split(".")[:2]
    # Without these the servers report v0.0.0-master, and clients' version checks get confused.
    values = {"gitVersion": KUBERNETES_VERSION, "gitMajor": major, "gitMinor": minor, "gitTreeState": "clean"}
    ldflags = " ".join(
        ["-s", "-w"]
        + [
            f"-X {pkg}.{k}={v}"
            for pkg in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")
            for k, v in values.items()
        ]
    )
    go_build_tools_module(
        workdir=folder / "tools",
        module_name="tools/kubernetes",
        requires={KUBERNETES_MODULE: KUBERNETES_VERSION},
        replaces=_staging_replaces(KUBERNETES_VERSION),
        packages={f"{KUBERNETES_MODULE}/cmd/{b}": folder / b for b in KUBE_BINARIES},
        tags=KUBE_BUILD_TAGS,
        ldflags=ldflags,
        log=log,
    )


def _build_etcd(folder: Path, log: Path) -> None:
    # The server module's go.mod replaces its sibling modules with ../ paths, which is why
    # `go install ...@version` refuses it; as a dependency those replaces are ignored and the
    # published siblings at the same version are used.
    go_build_tools_module(
        workdir=folder / "tools",
        module_name="tools/etcd",
        requires={ETCD_MODULE: ETCD_VERSION},
        packages={ETCD_MODULE: folder / "etcd"},
        ldflags="-s -w",
        log=log,
    )


def _build_helm(folder: Path, log: Path) -> None:
    # helm -> rubenv/sql-migrate -> godror -> UNO-SOFT/zlog -> tgulacsi/go, whose go.mod is
    # `go 1.16` (an unpruned module graph), so `go mod tidy` wants the go.mod of its requirement
    # perkeep.org@v0.0.0-20191227205925-9a1336816afd, which the module proxy answers with 403.
    # No helm package imports it: an empty local stand-in completes the graph.
    stub = folder / "tools" / "stubs" / "perkeep.org"
    stub.mkdir(parents=True, exist_ok=True)
    (stub / "go.mod").write_text("module perkeep.org\n\ngo 1.16\n")
    go_build_tools_module(
        workdir=folder / "tools",
        module_name="tools/helm",
        requires={HELM_MODULE: HELM_VERSION},
        # Helm's own go directive: without one the tools module gets go 1.16 semantics (no module graph
        # pruning) and `go mod tidy` fetches go.mod files deep in sql-migrate's graph that the proxy refuses.
        go_directive="1.26.0",
        replaces={"perkeep.org": "./stubs/perkeep.org"},
        packages={f"{HELM_MODULE}/cmd/helm": folder / "helm"},
        # The source only knows "v4.3"; the release Makefile injects the full version.
        ldflags=f"-s -w -X {HELM_MODULE}/internal/version.version={HELM_VERSION}",
        log=log,
    )


def _assets_from_env() -> Path | None:
    value = os.environ.get("KUBEBUILDER_ASSETS")
    if not value:
        return None
    folder = Path(value)
    missing = [b for b in ("kube-apiserver", "etcd") if not (folder / b).is_file()]
    if missing:
        raise ComponentUnavailable(f"KUBEBUILDER_ASSETS={folder} lacks {', '.join(missing)}")
    return folder


def ensure_kube_assets() -> Path:
    """Folder holding kube-apiserver, etcd, kube-controller-manager and kubectl.

    With ``KUBEBUILDER_ASSETS`` set, that folder is returned and nothing is built (setup-envtest's
    folders have no kube-controller-manager; ``ControlPlane`` then runs without one).
    """
    external = _assets_from_env()
    if external is not None:
        return external
    kube = _build("kubernetes", KUBERNETES_VERSION, KUBE_BINARIES, _build_kubernetes)
    etcd = _build("etcd", ETCD_VERSION, ("etcd",), _build_etcd)
    # One flat folder, like KUBEBUILDER_ASSETS, so both cases look the same to callers.
    assets = component_dir("kube-assets", f"{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}")
    if not is_complete(assets):
        assets.mkdir(parents=True, exist_ok=True)
        for binary in [kube / b for b in KUBE_BINARIES] + [etcd / "etcd"]:
            link = assets / binary.name
            link.unlink(missing_ok=True)
            link.symlink_to(binary)
        mark_complete(assets)
    return assets


def ensure_helm() -> Path:
    """The helm binary, built once per version."""
    return _build("helm", HELM_VERSION, ("helm",), _build_helm) / "helm"


def helm_env(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """``base`` plus Helm's own folders under ``home``, so tests never read or write ~/.config/helm."""
    env = dict(base)
    for var, sub in (
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_DATA_HOME", "data"),
    ):
        env[var] = str(home / sub)
    return env


# --------------------------------------------------------------------------------------------
# Certificates and kubeconfigs


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # SEC1 ("EC PRIVATE KEY"), not PKCS#8: client-go's keyutil.ParsePublicKeysPEM, which reads
    # --service-account-key-file, only recognises EC keys in SEC1 form.
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass
class Pki:
    ca_key: ec.EllipticCurvePrivateKey
    ca_cert: x509.Certificate

    @classmethod
    def create(cls) -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "clientreg-envtest-ca")])
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    def issue(self, common_name: str, groups: tuple[str, ...] = (), *, server: bool = False) -> tuple[bytes, bytes]:
        """A leaf certificate and key (PEM); the client certificate's O= entries are its groups."""
        key = ec.generate_private_key(ec.SECP256R1())
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in groups]
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        return _pem_cert(builder.sign(self.ca_key, hashes.SHA256())), _pem_key(key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _write_kubeconfig(path: Path, server: str, cluster: Mapping[str, Any], user: Mapping[str, Any]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "clientreg", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "clientreg", "user": dict(user)}],
        "contexts": [{"name": "clientreg", "context": {"cluster": "clientreg", "user": "clientreg"}}],
        "current-context": "clientreg",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)  # it holds credentials
    return path


def _current_cluster(kubeconfig: Path) -> tuple[str, dict[str, Any]]:
    """Server URL and TLS settings of the current context of an existing kubeconfig."""
    config = yaml.safe_load(kubeconfig.read_text()) or {}
    contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
    context = contexts.get(config.get("current-context", ""))
    if context is None:
        raise RuntimeError(f"{kubeconfig} has no current context")
    clusters = {c["name"]: c["cluster"] for c in config.get("clusters") or []}
    cluster = dict(clusters[context["cluster"]])
    server = str(cluster.pop("server"))
    ca_file = cluster.pop("certificate-authority", None)
    if ca_file:
        # Relative paths in a kubeconfig are relative to that file, not to the copy written here.
        ca_path = Path(ca_file) if Path(ca_file).is_absolute() else kubeconfig.parent / ca_file
        cluster["certificate-authority-data"] = _b64(ca_path.read_bytes())
    return server, cluster


# --------------------------------------------------------------------------------------------
# Processes


_PR_SET_PDEATHSIG = 1


def _parent_death_signal() -> Any:
    """A preexec_fn that kills the child when pytest dies, so no plane lingers."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        # PDEATHSIG fires when the forking *thread* exits, which would kill the plane early.
        return None
    try:
        # Loaded here, not in the child: only async-signal-safe work belongs between fork and exec.
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        # SIGKILL, not SIGTERM: kube-apiserver's graceful shutdown hangs once etcd is gone, and
        # an orphaned plane's data is worthless anyway.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise RuntimeError(f"{self.name} exited with code {code}; end of {self.log}:\n{_tail(self.log)}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(STOP_TIMEOUT)


def _readyz(http: httpx.Client) -> Any:
    def probe() -> tuple[bool, str]:
        r = http.get("/readyz")
        return r.status_code == 200, f"{r.status_code} {r.text[-300:]}"
    return probe


def _wait_until(what: str, proc: _Process, probe: Any, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = "never answered"
    while time.monotonic() < deadline:
        proc.check_alive()
        try:
            ok, last = probe()
            if ok:
                return
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.25)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s (last: {last}); end of {proc.log}:\n{_tail(proc.log)}")


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager on loopback, or an existing cluster.

    ``with ControlPlane() as cp:`` gives ``cp.kubeconfig`` (admin, group system:masters),
    ``cp.server``, ``cp.env()`` and ``cp.api_client()``. ``cp.has_controller_manager`` is False
    only when KUBEBUILDER_ASSETS provides no kube-controller-manager (then no garbage collection
    and namespaces never finish deleting).
    """

    APISERVER_ARGS: tuple[str, ...] = ("--disable-admission-plugins=ServiceAccount",)
    #: What the audit log records (a subclass may log reads too: AUDIT_POLICY_WITH_READS).
    AUDIT_POLICY: str = AUDIT_POLICY

    def __init__(self) -> None:
        self.kubeconfig: Path = Path()
        self.server: str = ""
        self.external: bool = False
        self.has_controller_manager: bool = False
        self.workdir: Path | None = None
        self._ca_pem: bytes = b""
        self._processes: list[_Process] = []
        self._logs: list[IO[bytes]] = []
        #: JSON lines, one per write request (see AUDIT_POLICY); None on an external cluster.
        self.audit_log: Path | None = None
        self._apiserver_argv: list[str] = []

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> ControlPlane:
        existing = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
        if existing and Path(existing).is_file():
            # kind, k3d or a plane started by an outer test session: use it, start nothing.
            self.external = True
            self.has_controller_manager = True
            self.kubeconfig = Path(existing)
            self.server, _ = _current_cluster(self.kubeconfig)
            return self
        assets = ensure_kube_assets()
        for attempt in range(1, START_ATTEMPTS + 1):
            self.workdir = Path(tempfile.mkdtemp(prefix="clientreg-kube-"))
            try:
                self._start(assets, self.workdir)
                return self
            except RuntimeError as exc:
                self.close()
                # free_port() only proposes a port; another process can take it before ours binds.
                if "address already in use" not in str(exc) or attempt == START_ATTEMPTS:
                    raise
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        # Reverse order: the controller-manager and apiserver would log storms about a dead etcd.
        for proc in reversed(self._processes):
            with contextlib.suppress(Exception):
                proc.stop()
        self._processes.clear()
        for fh in self._logs:
            fh.close()
        self._logs.clear()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def _spawn(self, name: str, argv: list[str], workdir: Path) -> _Process:
        log = workdir / f"{name}.log"
        fh = open(log, "wb")  # noqa: SIM115 - kept open for the process's lifetime, closed in close()
        self._logs.append(fh)
        popen = subprocess.Popen(
            argv,
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            preexec_fn=_parent_death_signal(),
        )
        proc = _Process(name, popen, log)
        self._processes.append(proc)
        return proc

    def _start(self, assets: Path, workdir: Path) -> None:
        pki = Pki.create()
        self._ca_pem = _pem_cert(pki.ca_cert)
        certs = workdir / "pki"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(self._ca_pem)
        serving_cert, serving_key = pki.issue("kube-apiserver", server=True)
        (certs / "apiserver.crt").write_bytes(serving_cert)
        (certs / "apiserver.key").write_bytes(serving_key)
        admin_cert, admin_key = pki.issue("clientreg-admin", ("system:masters",))
        (certs / "admin.crt").write_bytes(admin_cert)
        (certs / "admin.key").write_bytes(admin_key)
        sa_key = ec.generate_private_key(ec.SECP256R1())
        (certs / "sa.key").write_bytes(_pem_key(sa_key))

        # -- etcd ------------------------------------------------------------------------------
        client_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        etcd = self._spawn(
            "etcd",
            [
                str(assets / "etcd"),
                "--name=default",
                f"--data-dir={workdir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                # Throwaway data: fsync only costs time (seconds per test on a slow disk).
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
            workdir,
        )

        def etcd_health() -> tuple[bool, str]:
            r = httpx.get(f"{etcd_url}/health", timeout=2)
            return r.status_code == 200 and r.json().get("health") == "true", r.text

        _wait_until("etcd", etcd, etcd_health, timeout=60)

        # -- kube-apiserver --------------------------------------------------------------------
        port = free_port()
        self.server = f"https://127.0.0.1:{port}"
        # Every write, by whom: tests count the operator's writes (a stable client must cause none).
        (workdir / "audit-policy.yaml").write_text(self.AUDIT_POLICY)
        self.audit_log = workdir / "audit.log"
        self._apiserver_argv = [
            str(assets / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            # Since 1.37 the lease reconciler of the `kubernetes` Service's endpoints refuses a
            # loopback advertise address; nothing here routes to that Service anyway.
            "--endpoint-reconciler-type=none",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'apiserver-certs'}",
            f"--tls-cert-file={certs / 'apiserver.crt'}",
            f"--tls-private-key-file={certs / 'apiserver.key'}",
            f"--client-ca-file={certs / 'ca.crt'}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--allow-privileged=true",
            "--authorization-mode=RBAC",
            # No kubelet and no Pods here; envtest drops this plugin as well so that Pods can
            # be created before their namespace's default ServiceAccount exists. A plane with a
            # node (support/node.py) keeps it: it mounts the ServiceAccount token into Pods.
            *self.APISERVER_ARGS,
            f"--service-account-issuer={self.server}",
            f"--service-account-key-file={certs / 'sa.key'}",
            f"--service-account-signing-key-file={certs / 'sa.key'}",
            f"--audit-policy-file={workdir / 'audit-policy.yaml'}",
            f"--audit-log-path={self.audit_log}",
            # Written as requests finish, so a count taken right after a request includes it.
            "--audit-log-mode=blocking",
            "--audit-log-maxsize=0",
            "--v=1",
        ]
        apiserver = self._spawn("kube-apiserver", self._apiserver_argv, workdir)
        self.kubeconfig = _write_kubeconfig(
            workdir / "admin.kubeconfig",
            self.server,
            {"certificate-authority-data": _b64(self._ca_pem)},
            {"client-certificate-data": _b64(admin_cert), "client-key-data": _b64(admin_key)},
        )
        with self._admin_http(certs) as http:
            _wait_until("kube-apiserver", apiserver, _readyz(http))

            # -- kube-controller-manager -------------------------------------------------------
            manager = assets / "kube-controller-manager"
            if manager.is_file():
                self._start_controller_manager(manager, workdir, certs)
                self.has_controller_manager = True
            else:
                warnings.warn(
                    f"{assets} has no kube-controller-manager: running without it, so ownerReference "
                    "garbage collection and namespace deletion do not happen",
                    stacklevel=3,
                )

            def default_namespace() -> tuple[bool, str]:
                # Created by the apiserver's bootstrap controller shortly after /readyz; Helm and
                # kubectl default to it.
                r = http.get("/api/v1/namespaces/default")
                return r.status_code == 200, str(r.status_code)

            _wait_until("namespace default", apiserver, default_namespace, timeout=60)

    def _start_controller_manager(self, binary: Path, workdir: Path, certs: Path) -> None:
        port = free_port()
        manager = self._spawn(
            "kube-controller-manager",
            [
                str(binary),
                f"--kubeconfig={self.kubeconfig}",
                f"--controllers={CONTROLLERS}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                f"--service-account-private-key-file={certs / 'sa.key'}",
                f"--root-ca-file={certs / 'ca.crt'}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={workdir / 'controller-manager-certs'}",
                # Defaults are tuned for thousands of objects; tests want deletions seen quickly.
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
            workdir,
        )

        def healthz() -> tuple[bool, str]:
            # /healthz is always allowed without authentication; the serving cert is self-signed.
            r = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=False, timeout=2)
            return r.status_code == 200, f"{r.status_code} {r.text[-300:]}"

        _wait_until("kube-controller-manager", manager, healthz, timeout=90)

    # -- faults and counts --------------------------------------------------------------------

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        """Stop kube-apiserver (SIGTERM, like a rolling control-plane upgrade) and start it again on the
        same port and etcd, after ``down_for`` seconds; returns once it is ready."""
        if self.external or self.workdir is None:
            raise ComponentUnavailable("an external cluster's API server cannot be restarted from here")
        index = next(i for i, p in enumerate(self._processes) if p.name == "kube-apiserver")
        self._processes[index].stop()
        time.sleep(down_for)
        log = self.workdir / "kube-apiserver.log"
        fh = open(log, "ab")  # noqa: SIM115 - kept open for the process's lifetime, closed in close()
        self._logs.append(fh)
        popen = subprocess.Popen(self._apiserver_argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 cwd=self.workdir, preexec_fn=_parent_death_signal())
        proc = _Process("kube-apiserver", popen, log)
        self._processes[index] = proc
        with self._admin_http(self.workdir / "pki") as http:
            _wait_until("kube-apiserver (restarted)", proc, _readyz(http))

    def _admin_http(self, certs: Path) -> httpx.Client:
        tls = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        tls.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
        return httpx.Client(base_url=self.server, verify=tls, timeout=5)

    def pids(self) -> dict[str, int]:
        """Process IDs of the components this plane started (etcd, kube-apiserver, …), for CPU figures."""
        return {proc.name: proc.popen.pid for proc in self._processes}

    def audit_events(self, *, user: str | None = None) -> list[dict[str, Any]]:
        """The write requests the API server has audited so far (optionally only ``user``'s)."""
        if self.audit_log is None:
            raise ComponentUnavailable("no audit log: the cluster was not started by this test session")
        events = []
        for line in self.audit_log.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            if user is None or event.get("user", {}).get("username") == user:
                events.append(event)
        return events

    # -- clients -----------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """os.environ with KUBECONFIG pointing at the admin kubeconfig."""
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        return env

    def api_client(self) -> ApiClient:
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def service_account_kubeconfig(self, namespace: str, name: str, path: Path) -> Path:
        """Write a kubeconfig that authenticates as ServiceAccount ``namespace/name``.

        The token comes from the TokenRequest API (valid 24 h), as a projected token in a Pod
        would; the ServiceAccount must exist.
        """
        from kubernetes import client

        api = self.api_client()
        try:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=24 * 3600)
            )
            answer = client.CoreV1Api(api).create_namespaced_service_account_token(name, namespace, request)
        finally:
            api.close()
        if self.external:
            server, cluster = _current_cluster(self.kubeconfig)
        else:
            server, cluster = self.server, {"certificate-authority-data": _b64(self._ca_pem)}
        if answer.status is None or not answer.status.token:
            raise RuntimeError(f"TokenRequest for ServiceAccount {namespace}/{name} returned no token")
        return _write_kubeconfig(path, server, cluster, {"token": answer.status.token})


# --------------------------------------------------------------------------------------------
# CLI


def _build_seconds(folder: Path) -> str:
    marker = folder / "build-seconds"
    return f"built in {marker.read_text().strip()} s" if marker.exists() else "not built here"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.kube", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build (or find in the cache) every binary and print the paths")
    sub.add_parser("up", help="start a control plane and wait for Ctrl-C (prints its KUBECONFIG)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            started = time.monotonic()
            assets = ensure_kube_assets()
            helm = ensure_helm()
            for binary in sorted(assets.iterdir()):
                if not binary.name.startswith("."):
                    real = binary.resolve()
                    print(f"{binary.name:24} {real}  ({_build_seconds(real.parent)})")
            print(f"{'helm':24} {helm}  ({_build_seconds(helm.parent)})")
            print(f"KUBEBUILDER_ASSETS={assets}")
            print(f"total {time.monotonic() - started:.0f} s")
        else:
            started = time.monotonic()
            # `kill` must also stop the plane and remove its folder, not only Ctrl-C.
            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            with ControlPlane() as cp:
                print(f"started in {time.monotonic() - started:.1f} s")
                print(f"export KUBECONFIG={cp.kubeconfig}", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    while True:
                        time.sleep(3600)
    except ComponentUnavailable as exc:
        print(f"unavailable: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Side by side: ory/hydra-maester and the clientreg operator, on one control plane and one Ory Hydra.

    python bench/side_by_side.py [N ...] [--threads T] [--skip-token-check]

For each N (default 100 and 1000): one control plane (etcd + kube-apiserver + kube-controller-manager from
the test harness, auditing reads as well as writes), one Hydra v2.3.0 (in memory, dynamic client
registration on), clientreg's chart installed with Helm and hydra-maester's CRD and ClusterRole installed
from its source. Then, one controller after the other, each in its own namespace and under its own
ServiceAccount, the other one not running:

1. hydra-maester (Go, controller-runtime, one worker) creates clients through Hydra's admin API;
2. the clientreg operator (its default workers) registers them at Hydra's public RFC 7591 endpoint.

For each: N resources are created from T threads (default 8); the clock runs until every one is Ready with
a current observedGeneration (both controllers write that status) and has a Secret holding a client ID and
secret. Then the figures: seconds to all-Ready, the controller's Kubernetes writes and reads per client by
verb and resource (the API server's audit log, filtered by the controller's user; Lease renewals apart),
its CPU time per client and its RSS now and at peak (/proc), and the checks that make the columns
comparable: Hydra holds exactly N new clients, each Secret's ID is one of them (no duplicates, no strays),
and every Secret's credentials get a client_credentials token.

Prints a markdown table per N and one JSON object per N. Asserts nothing: the figures go to
docs/performance.md; tests/e2e/test_side_by_side_bench.py checks that the comparison holds at N = 3.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import cpu_seconds as _cpu_seconds
from _cluster import helm as _helm
from _cluster import ready as _ready
from support import hydra_maester as hm
from support.hydra import admin_client_ids, running_hydra
from support.kube import AUDIT_POLICY_WITH_READS, ControlPlane, ensure_helm, helm_env
from support.operator_process import (
    OPERATOR_NAMESPACE,
    SERVICE_ACCOUNT,
    SERVICE_ACCOUNT_USER,
    OperatorProcess,
    install_chart,
    wait_for,
)

from clientreg.spec import GROUP, VERSION

MANAGED = "app.kubernetes.io/managed-by=clientreg-operator"
READ_VERBS = ("get", "list", "watch")
#: After all-Ready, how long trailing writes (an Event after the status patch) still count.
SETTLE_SECONDS = 3.0


class ReadAuditingPlane(ControlPlane):
    """A control plane whose audit log also records reads, so that API reads per client can be counted."""

    AUDIT_POLICY = AUDIT_POLICY_WITH_READS


def api_requests(plane: ControlPlane, user: str) -> dict[str, int]:
    """``user``'s API requests so far, by "verb resource[/subresource]" (or "verb /path" for discovery).

    One per request: a watch is audited twice (when its response starts and when it ends), so events are
    counted once per auditID.
    """
    seen: set[str] = set()
    counts: dict[str, int] = {}
    for event in plane.audit_events(user=user):
        if event["auditID"] in seen:
            continue
        seen.add(event["auditID"])
        ref = event.get("objectRef") or {}
        if ref.get("resource"):
            what = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        else:
            what = str(event.get("requestURI", "")).split("?", 1)[0]
        key = f"{event['verb']} {what}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


@dataclass
class Contender:
    """One controller, running, and how to drive and read its resources."""

    name: str
    user: str
    pid: int
    rss: Callable[[], tuple[int, int]]
    create: Callable[[int], None]
    #: Resources Ready with a current observedGeneration, and Secrets holding an ID and a secret.
    progress: Callable[[], tuple[int, int]]
    #: (client_id, client_secret) of every credentials Secret.
    credentials: Callable[[], list[tuple[str, str]]]


def _decode(data: Mapping[str, Any] | None, key: str) -> str | None:
    value = (data or {}).get(key)
    return base64.b64decode(value).decode() if value else None


def _tokens(token_endpoint: str, credentials: list[tuple[str, str]], threads: int) -> int:
    """How many of the credentials get a client_credentials token (client_secret_basic, both controllers' default)."""
    from pydantic import SecretStr

    from clientreg.http import HttpClient
    from clientreg.record import RegistrationRecord
    from clientreg.tokens import client_credentials_token

    with HttpClient() as http:
        def one(pair: tuple[str, str]) -> bool:
            record = RegistrationRecord(client_id=pair[0], client_secret=SecretStr(pair[1]),
                                        token_endpoint=token_endpoint)
            return bool(client_credentials_token(http, record).access_token.get_secret_value())

        with ThreadPoolExecutor(threads) as pool:
            return sum(pool.map(one, credentials))


def measure(contender: Contender, n: int, *, plane: ControlPlane, admin_url: str, token_endpoint: str,
            threads: int, token_check: bool) -> dict[str, Any]:
    """Create N resources from ``threads`` threads, wait for all-Ready, and read every figure."""
    before = set(admin_client_ids(admin_url))
    cpu_before = _cpu_seconds(contender.pid)
    plane_pids = plane.pids()
    plane_before = {name: _cpu_seconds(pid) for name, pid in plane_pids.items()}
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(contender.create, range(n)))
    created = time.perf_counter() - started

    def converged() -> bool:
        ready, with_credentials = contender.progress()
        return ready == n and with_credentials == n

    wait_for(converged, f"{n} {contender.name} resources Ready", timeout=max(600.0, n * 2.0), interval=0.5)
    seconds = time.perf_counter() - started
    cpu = _cpu_seconds(contender.pid) - cpu_before
    plane_cpu = {name: _cpu_seconds(pid) - plane_before[name] for name, pid in plane_pids.items()}
    rss_now, rss_peak = contender.rss()
    time.sleep(SETTLE_SECONDS)

    requests = api_requests(plane, contender.user)
    leases = {k: v for k, v in requests.items() if k.endswith(" leases")}
    reads = {k: v for k, v in requests.items() if k.split(" ", 1)[0] in READ_VERBS and k not in leases}
    writes = {k: v for k, v in requests.items() if k not in reads and k not in leases}
    credentials = contender.credentials()
    after = admin_client_ids(admin_url)
    new = [i for i in after if i not in before]
    secret_ids = [client_id for client_id, _ in credentials]
    return {
        "seconds_to_all_ready": round(seconds, 2),
        "seconds_to_create_the_resources": round(created, 2),
        "kubernetes_writes_per_client": round(sum(writes.values()) / n, 3),
        "kubernetes_writes_per_client_by_verb_and_resource": {k: round(v / n, 3) for k, v in writes.items()},
        "kubernetes_reads_per_client": round(sum(reads.values()) / n, 3),
        "kubernetes_reads": reads,
        "lease_requests": sum(leases.values()),
        "cpu_ms_per_client": round(1000 * cpu / n, 2),
        "cpu_seconds": round(cpu, 2),
        # What its requests cost the control plane in the same window (etcd, kube-apiserver, …).
        "control_plane_cpu_ms_per_client": {name: round(1000 * c / n, 1) for name, c in plane_cpu.items()},
        "rss_mib_at_all_ready": round(rss_now / 2**20, 1),
        "rss_mib_peak": round(rss_peak / 2**20, 1),
        "new_clients_at_hydra": len(new),
        "duplicate_client_ids_at_hydra": len(after) - len(set(after)),
        "secrets": len(credentials),
        "secrets_match_new_hydra_clients": sorted(secret_ids) == sorted(new),
        "secrets_with_working_token": _tokens(token_endpoint, credentials, threads) if token_check else None,
    }


# -- the two contenders -------------------------------------------------------------------------------

def _warm_up(custom: Any, group: str, version: str, namespace: str, plural: str, create: Callable[[int], None]) -> None:
    """Create and delete one resource before the controller starts (so no finalizer holds it).

    The API server serves a new CRD's first create slowly (seconds, measured: it builds the CRD's
    handler and storage then); whichever controller ran on a cold CRD would pay for that on its clock.
    """
    create(99999)
    custom.delete_namespaced_custom_object(group, version, namespace, plural, "c99999")
    wait_for(lambda: not any(item["metadata"]["name"] == "c99999" for item in
                             custom.list_namespaced_custom_object(group, version, namespace, plural)["items"]),
             f"the warm-up {plural} gone")


def _hydra_maester(admin: Any, binary: Path, kubeconfig: Path, admin_url: str, logs: Path,
                   namespace: str) -> tuple[hm.HydraMaesterProcess, Contender]:
    from kubernetes import client

    core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))

    def create(i: int) -> None:
        custom.create_namespaced_custom_object(hm.GROUP, hm.VERSION, namespace, hm.PLURAL,
                                               hm.oauth2client(f"c{i:05d}", f"c{i:05d}-credentials"))

    _warm_up(custom, hm.GROUP, hm.VERSION, namespace, hm.PLURAL, create)
    proc = hm.HydraMaesterProcess(binary, kubeconfig, admin_url, logs).start()

    def pairs() -> list[tuple[str, str]]:
        found = []
        for secret in core.list_namespaced_secret(namespace).items:
            client_id = _decode(secret.data, hm.CLIENT_ID_KEY)
            client_secret = _decode(secret.data, hm.CLIENT_SECRET_KEY)
            if client_id and client_secret:
                found.append((client_id, client_secret))
        return found

    def progress() -> tuple[int, int]:
        items = cast(dict[str, Any], custom.list_namespaced_custom_object(
            hm.GROUP, hm.VERSION, namespace, hm.PLURAL))["items"]
        return sum(1 for item in items if _ready(item)), len(pairs())

    return proc, Contender("hydra-maester", hm.SERVICE_ACCOUNT_USER, proc.pid, proc.rss_bytes, create, progress, pairs)


def _clientreg(admin: Any, kubeconfig: Path, registration_endpoint: str, issuer: str, logs: Path,
               namespace: str) -> tuple[OperatorProcess, Contender]:
    from kubernetes import client

    core, custom = client.CoreV1Api(admin), client.CustomObjectsApi(admin)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    # Hydra's discovery document has no registration_endpoint: given directly, as a user would.
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "authorizationservers", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "AuthorizationServer", "metadata": {"name": "hydra"},
        "spec": {"issuer": issuer, "registrationEndpoint": registration_endpoint}})

    def create(i: int) -> None:
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "oauthclients", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient", "metadata": {"name": f"c{i:05d}"},
            "spec": {"serverRef": {"name": "hydra"}, "clientName": f"bench {i}",
                     "grantTypes": ["client_credentials"]}})

    _warm_up(custom, GROUP, VERSION, namespace, "oauthclients", create)
    # The operator's flags as bench/converge.py runs it: no drift round during the measurement.
    proc = OperatorProcess(kubeconfig, logs, identity="side-by-side", extra=(
        "--drift-check-interval", "3600s", "--lease-duration", "15s", "--log-level", "WARNING")).start()
    wait_for(proc.is_leader, "the operator leading", timeout=60)
    assert proc.proc is not None

    def pairs() -> list[tuple[str, str]]:
        found = []
        for secret in core.list_namespaced_secret(namespace, label_selector=MANAGED).items:
            client_id, client_secret = _decode(secret.data, "client_id"), _decode(secret.data, "client_secret")
            if client_id and client_secret:
                found.append((client_id, client_secret))
        return found

    def progress() -> tuple[int, int]:
        items = cast(dict[str, Any], custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "oauthclients"))["items"]
        return sum(1 for item in items if _ready(item)), len(pairs())

    return proc, Contender("clientreg", SERVICE_ACCOUNT_USER, proc.proc.pid, proc.rss_bytes, create, progress, pairs)


def run_side_by_side(n: int, *, threads: int = 8, work: Path, token_check: bool = True,
                     clientreg_first: bool = False) -> dict[str, Any]:
    """Both controllers at N, one after the other on one control plane and one Hydra: the figures of each.

    hydra-maester goes first unless ``clientreg_first``: the second one finds N more objects in etcd and N
    more clients in Hydra.
    """
    binary = hm.ensure_hydra_maester()
    order = ["clientreg", "hydra-maester"] if clientreg_first else ["hydra-maester", "clientreg"]
    results: dict[str, Any] = {"clients": n, "creator_threads": threads, "order": order}
    with running_hydra() as hydra, ReadAuditingPlane() as plane:
        admin = plane.api_client()
        try:
            helm_home = work / f"helm-{n}"
            helm_home.mkdir()
            install_chart(_helm(ensure_helm(), helm_env(plane.env(), helm_home)), admin)
            hm.install(admin, binary)
            admin_url = str(hydra.extra["admin_url"])

            def run(contender: Contender) -> dict[str, Any]:
                return measure(contender, n, plane=plane, admin_url=admin_url, token_endpoint=hydra.token_endpoint,
                               threads=threads, token_check=token_check)

            logs = work / f"logs-{n}"
            logs.mkdir()

            def hydra_maester_phase() -> None:
                kubeconfig = plane.service_account_kubeconfig(hm.NAMESPACE, hm.SERVICE_ACCOUNT, work / f"hm-{n}")
                proc, contender = _hydra_maester(admin, binary, kubeconfig, admin_url, logs, "bench-hydra-maester")
                try:
                    results["hydra-maester"] = run(contender)
                finally:
                    proc.stop()  # before the other one starts: the two never compete for the CPU

            def clientreg_phase() -> None:
                kubeconfig = plane.service_account_kubeconfig(OPERATOR_NAMESPACE, SERVICE_ACCOUNT, work / f"cr-{n}")
                proc, contender = _clientreg(admin, kubeconfig, hydra.registration_endpoint, hydra.issuer, logs,
                                             "bench-clientreg")
                try:
                    results["clientreg"] = run(contender)
                finally:
                    proc.stop()

            phases = [hydra_maester_phase, clientreg_phase]
            for phase in reversed(phases) if clientreg_first else phases:
                phase()
        finally:
            admin.close()
    results["ratios_clientreg_to_hydra_maester"] = ratios(results["clientreg"], results["hydra-maester"])
    return results


RATIO_KEYS = ("seconds_to_all_ready", "kubernetes_writes_per_client", "kubernetes_reads_per_client",
              "cpu_ms_per_client", "rss_mib_at_all_ready", "rss_mib_peak")


def ratios(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, float | None]:
    return {key: round(ours[key] / theirs[key], 2) if theirs[key] else None for key in RATIO_KEYS}


def table(results: dict[str, Any]) -> str:
    """The markdown table of one N: one row per figure, a column per controller and the ratio."""
    theirs, ours, ratio = results["hydra-maester"], results["clientreg"], results["ratios_clientreg_to_hydra_maester"]

    def by_resource(figures: dict[str, Any]) -> str:
        return ", ".join(f"{k} {v:g}" for k, v in figures["kubernetes_writes_per_client_by_verb_and_resource"].items())

    def checks(figures: dict[str, Any]) -> str:
        tokens = figures["secrets_with_working_token"]
        return (f"{figures['new_clients_at_hydra']} new, {figures['duplicate_client_ids_at_hydra']} dup, "
                f"Secrets {'match' if figures['secrets_match_new_hydra_clients'] else 'DIFFER'}, "
                f"tokens {'not checked' if tokens is None else tokens}")

    rows = [
        ("time to all-Ready (s)", "seconds_to_all_ready"),
        ("Kubernetes writes per client", "kubernetes_writes_per_client"),
        ("API reads per client (get/list/watch)", "kubernetes_reads_per_client"),
        ("operator CPU per client (ms)", "cpu_ms_per_client"),
        ("RSS at all-Ready (MiB)", "rss_mib_at_all_ready"),
        ("RSS peak (MiB)", "rss_mib_peak"),
    ]
    lines = [f"N = {results['clients']} ({results['creator_threads']} creator threads; "
             f"{' first, then '.join(results['order'])})", "",
             "| | hydra-maester | clientreg | clientreg / hydra-maester |", "|---|---|---|---|"]
    lines += [f"| {label} | {theirs[key]:g} | {ours[key]:g} | {ratio[key]} |" for label, key in rows]

    def plane_cpu(figures: dict[str, Any]) -> float:
        return round(sum(float(v) for k, v in figures["control_plane_cpu_ms_per_client"].items()
                         if k in ("kube-apiserver", "etcd")), 1)

    theirs_cpu, ours_cpu = plane_cpu(theirs), plane_cpu(ours)
    lines.append(f"| kube-apiserver + etcd CPU per client (ms) | {theirs_cpu:g} | {ours_cpu:g} | "
                 f"{round(ours_cpu / theirs_cpu, 2) if theirs_cpu else None} |")
    lines.append(f"| writes by verb and resource | {by_resource(theirs)} | {by_resource(ours)} | |")
    lines.append(f"| Hydra clients, Secrets, tokens | {checks(theirs)} | {checks(ours)} | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clients", nargs="*", type=int, default=[100, 1000])
    parser.add_argument("--threads", type=int, default=8, help="threads creating the resources")
    parser.add_argument("--clientreg-first", action="store_true",
                        help="run clientreg before hydra-maester (default: after), to see what the order costs")
    parser.add_argument("--skip-token-check", action="store_true",
                        help="do not request a token with every Secret's credentials (saves 2 requests per client)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clientreg-side-by-side-") as tmp:
        for n in args.clients:
            work = Path(tmp) / f"n{n}"
            work.mkdir()
            results = run_side_by_side(n, threads=args.threads, work=work, token_check=not args.skip_token_check,
                                       clientreg_first=args.clientreg_first)
            print(table(results), flush=True)
            print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()

"""The operator at scale: N OAuthClients applied at once, on a real API server, next to the core alone.

    python bench/converge.py [N ...] [--workers W] [--drift-check-interval SECONDS]

For each N (default 100 and 1000), on a fresh control plane (etcd + kube-apiserver built from Go
modules, the chart installed with Helm, the operator as a process under the chart's ServiceAccount)
and a dev AS in its own process:

1. the core alone registers N clients on that AS at the operator's concurrency (the engine in-process,
   local state, fsync'd): the baseline;
2. N OAuthClient CRs are created at once; the clock runs until every one is Ready (observedGeneration
   current) and every credentials Secret holds a client ID and secret; every Secret then gets a real
   token, and the AS holds exactly N new clients (no duplicates);
3. steady state: one scheduled drift-check round over the N unchanged clients, counting AS requests (the
   dev AS's counters) and the operator's Kubernetes writes (the API server's audit log);
4. the operator's resident memory (now and peak) and CPU time.

Prints one JSON object per N. Asserts nothing: the figures go to docs/performance.md. The write count
of the steady state is asserted by tests/e2e/test_operator_scale.py.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _cluster import cpu_seconds as _cpu_seconds
from _cluster import helm as _helm
from _cluster import ready as _ready
from registration import IAT, clientreg_in_process, start_server, write_docs
from support.kube import ControlPlane, ensure_helm, helm_env
from support.operator_process import (
    OPERATOR_NAMESPACE,
    SERVICE_ACCOUNT,
    SERVICE_ACCOUNT_USER,
    OperatorProcess,
    install_chart,
    wait_for,
)

from clientreg.spec import GROUP, VERSION

NAMESPACE = "bench"


def _writes(plane: ControlPlane, since: int) -> dict[str, int]:
    """The operator's Kubernetes writes after the ``since``-th audited write, by resource."""
    counts: dict[str, int] = {}
    for event in plane.audit_events(user=SERVICE_ACCOUNT_USER)[since:]:
        ref = event.get("objectRef", {})
        key = f"{event['verb']} {ref.get('resource')}{'/' + ref['subresource'] if ref.get('subresource') else ''}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def run_one(n: int, *, workers: int, drift_interval: float, work: Path) -> dict[str, Any]:
    from kubernetes import client

    as_proc, issuer = start_server(work / f"as-{n}.sqlite")
    try:
        # -- the core alone -------------------------------------------------------------------------
        docs = work / f"docs-{n}"
        docs.mkdir()
        write_docs(docs, issuer, n)
        core_seconds = clientreg_in_process(docs, work / f"state-{n}", workers)
        before = set(httpx.get(f"{issuer}/_dev/clients", timeout=10).json())

        with ControlPlane() as plane:
            admin = plane.api_client()
            helm_home = work / f"helm-{n}"
            helm_home.mkdir()
            install_chart(_helm(ensure_helm(), helm_env(plane.env(), helm_home)), admin)
            kubeconfig = plane.service_account_kubeconfig(OPERATOR_NAMESPACE, SERVICE_ACCOUNT, work / f"sa-{n}")
            core = client.CoreV1Api(admin)
            custom = client.CustomObjectsApi(admin)
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
            core.create_namespaced_secret(NAMESPACE, client.V1Secret(
                metadata=client.V1ObjectMeta(name="iat"), string_data={"token": IAT}))
            custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "authorizationservers", {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "AuthorizationServer", "metadata": {"name": "dev"},
                "spec": {"issuer": issuer, "initialAccessToken": {"secretKeyRef": {"name": "iat", "key": "token"}}}})

            logs = work / f"logs-{n}"
            logs.mkdir()
            operator = OperatorProcess(kubeconfig, logs, identity=f"bench-{n}", extra=(
                "--drift-check-interval", f"{drift_interval:.0f}s", "--lease-duration", "15s",
                "--log-level", "WARNING")).start()
            wait_for(operator.is_leader, "the operator leading", timeout=60)
            assert operator.proc is not None
            cpu_before = _cpu_seconds(operator.proc.pid)
            plane_pids = plane.pids()
            plane_before = {name: _cpu_seconds(pid) for name, pid in plane_pids.items()}
            try:
                # -- N OAuthClients at once -----------------------------------------------------------
                def create(i: int) -> None:
                    custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "oauthclients", {
                        "apiVersion": f"{GROUP}/{VERSION}", "kind": "OAuthClient",
                        "metadata": {"name": f"c{i:05d}"},
                        "spec": {"serverRef": {"name": "dev"}, "clientName": f"bench {i}",
                                 "grantTypes": ["client_credentials"]}})

                started = time.perf_counter()
                with ThreadPoolExecutor(workers) as pool:
                    list(pool.map(create, range(n)))
                applied = time.perf_counter() - started

                def converged() -> bool:
                    items = custom.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, "oauthclients")["items"]
                    ready = sum(1 for item in items if _ready(item))
                    secrets = core.list_namespaced_secret(
                        NAMESPACE, label_selector="app.kubernetes.io/managed-by=clientreg-operator").items
                    working = sum(1 for s in secrets if s.data and "client_secret" in s.data and "client_id" in s.data)
                    return ready == n and working >= n

                wait_for(converged, f"{n} OAuthClients Ready", timeout=max(600.0, n * 2.0), interval=1.0)
                operator_seconds = time.perf_counter() - started
                rss_converged, _ = operator.rss_bytes()
                reconciles = _reconciles(operator.metrics())
                converge_cpu = {"operator": _cpu_seconds(operator.proc.pid) - cpu_before,
                                **{name: _cpu_seconds(pid) - plane_before[name] for name, pid in plane_pids.items()}}

                # -- every Secret gets a token; the AS holds exactly N new clients -----------------------
                secrets = [s for s in core.list_namespaced_secret(
                    NAMESPACE, label_selector="app.kubernetes.io/managed-by=clientreg-operator").items
                    if s.data and "client_secret" in s.data]
                tokens = _tokens(issuer, secrets, workers)
                new_clients = set(httpx.get(f"{issuer}/_dev/clients", timeout=30).json()) - before

                # -- one scheduled drift-check round ---------------------------------------------------
                time.sleep(2)  # the last status patches and their watch events settle
                httpx.post(f"{issuer}/_dev/reset-counters", timeout=10)
                mark = len(plane.audit_events(user=SERVICE_ACCOUNT_USER))
                round_started = time.perf_counter()

                def reads() -> int:
                    counts = httpx.get(f"{issuer}/_dev/requests", timeout=10).json()
                    return sum(v for k, v in counts.items() if k.startswith("GET /register/"))

                wait_for(lambda: reads() >= n, "one drift-check round", timeout=drift_interval + n, interval=1.0)
                round_seconds = time.perf_counter() - round_started
                time.sleep(3)  # anything more than one read per client would show now
                counts = httpx.get(f"{issuer}/_dev/requests", timeout=10).json()
                writes = _writes(plane, mark)
                rss_now, rss_peak = operator.rss_bytes()
                cpu = _cpu_seconds(operator.proc.pid) - cpu_before
            finally:
                operator.stop()
                admin.close()
    finally:
        as_proc.terminate()
        as_proc.wait()

    lease = sum(v for k, v in writes.items() if k.endswith(" leases"))
    return {
        "clients": n,
        "concurrency": workers,
        "core_alone_seconds": round(core_seconds, 1),
        "operator_seconds_to_all_ready": round(operator_seconds, 1),
        "ratio_operator_to_core": round(operator_seconds / core_seconds, 2),
        "seconds_to_create_the_crs": round(applied, 1),
        "reconciles_until_all_ready": reconciles,
        "cpu_ms_per_client_until_all_ready": {name: round(1000 * cpu / n) for name, cpu in converge_cpu.items()},
        "secrets_with_working_token": tokens,
        "new_clients_at_the_as": len(new_clients),
        "drift_round": {
            "as_reads": sum(v for k, v in counts.items() if k.startswith("GET /register/")),
            "as_writes": sum(v for k, v in counts.items() if not k.startswith("GET")),
            "as_other_requests": sum(v for k, v in counts.items()
                                     if k.startswith("GET") and not k.startswith("GET /register/")),
            "kubernetes_writes": sum(writes.values()) - lease,
            "kubernetes_lease_renewals": lease,
            "kubernetes_writes_by_resource": writes,
            "seconds_for_the_round_after_counters_reset": round(round_seconds, 1),
        },
        "operator_rss_mib_converged": round(rss_converged / 2**20, 1),
        "operator_rss_mib_after_drift_round": round(rss_now / 2**20, 1),
        "operator_rss_mib_peak": round(rss_peak / 2**20, 1),
        "operator_cpu_seconds": round(cpu, 1),
    }


def _reconciles(metrics: str) -> int:
    """Reconciles so far, from the operator's own counter."""
    return round(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("clientreg_reconcile_total{")))


def _tokens(issuer: str, secrets: list[Any], workers: int) -> int:
    from pydantic import SecretStr

    from clientreg.http import HttpClient
    from clientreg.record import RegistrationRecord
    from clientreg.tokens import client_credentials_token

    def decode(secret: Any, key: str) -> str:
        return base64.b64decode(secret.data[key]).decode()

    with HttpClient() as http:
        def one(secret: Any) -> bool:
            record = RegistrationRecord(client_id=decode(secret, "client_id"),
                                        client_secret=SecretStr(decode(secret, "client_secret")),
                                        token_endpoint=decode(secret, "token_endpoint"))
            return bool(client_credentials_token(http, record).access_token.get_secret_value())

        with ThreadPoolExecutor(workers) as pool:
            return sum(pool.map(one, secrets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clients", nargs="*", type=int, default=[100, 1000])
    parser.add_argument("--workers", type=int, default=8, help="the operator's reconcile workers (its default)")
    parser.add_argument("--drift-check-interval", type=float, default=None,
                        help="seconds (default: long enough for convergence to finish first, 0.2 s per client)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="clientreg-converge-") as tmp:
        for n in args.clients:
            interval = args.drift_check_interval or max(60.0, 0.15 * n)
            print(json.dumps(run_one(n, workers=args.workers, drift_interval=interval, work=Path(tmp)), indent=2),
                  flush=True)


if __name__ == "__main__":
    main()

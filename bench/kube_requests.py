"""CPU per API request: the official kubernetes client's transport against clientreg's (clientreg_kube/transport.py).

    python bench/kube_requests.py [REQUESTS]

Starts the test harness's control plane (kube-apiserver + etcd), then sends the same requests through
both, one after the other, from one thread: a GET of a Secret and a JSON merge patch of it, REQUESTS of each
(default 2,000), and prints this process's CPU time per request (user + system) and the wall time.
The official client is driven the way KubeCluster drove it before (``param_serialize`` + ``call_api``,
JSON in and out, no generated models), so the difference is the transport alone.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.kube import ControlPlane

from clientreg_kube.conventions import MERGE_PATCH
from clientreg_kube.transport import KubeTransport

NAMESPACE, NAME = "default", "bench-transport"
OFFICIAL, OURS = "kubernetes client (urllib3)", "clientreg_kube.transport"
PATH = f"/api/v1/namespaces/{NAMESPACE}/secrets/{NAME}"


def official(api: Any) -> Callable[..., Any]:
    """A request through the official client, as clientreg_kube.cluster made them up to this change."""

    def request(method: str, path: str, *, body: Any = None, content_type: str = "application/json") -> Any:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        serialized = api.param_serialize(method=method, resource_path=path, query_params=[], header_params=headers,
                                         body=body, auth_settings=["BearerToken"])
        response = api.call_api(*serialized)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}")
        return json.loads(data)
    return request


def measure(request: Callable[..., Any], n: int) -> dict[str, float]:
    for _ in range(20):  # connections open, caches warm
        request("GET", PATH)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(n):
        request("GET", PATH)
        request("PATCH", PATH, body={"metadata": {"annotations": {"bench": str(i)}}}, content_type=MERGE_PATCH)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return {"cpu_us_per_request": round(1e6 * cpu / (2 * n), 1), "wall_us_per_request": round(1e6 * wall / (2 * n), 1)}


def compare(api: Any, n: int) -> dict[str, dict[str, Any]]:
    """Both transports' figures, and the Secret as each last read it (the same object, or the comparison is void)."""
    request = official(api)
    with contextlib.suppress(RuntimeError):  # left by an earlier run
        request("DELETE", PATH)
    request("POST", f"/api/v1/namespaces/{NAMESPACE}/secrets",
            body={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": NAME}, "data": {"k": "dg=="}})
    transport = KubeTransport(api.configuration)
    try:
        results: dict[str, dict[str, Any]] = {}
        for name, send in ((OFFICIAL, request), (OURS, transport.request)):
            results[name] = {**measure(send, n), "last_read": send("GET", PATH)}
        request("DELETE", PATH)
    finally:
        transport.close()
    return results


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with ControlPlane() as plane:
        api = plane.api_client()
        try:
            results = compare(api, n)
        finally:
            api.close()
    print(f"{n} GETs and {n} merge patches of one Secret, one thread, on kube-apiserver at 127.0.0.1\n")
    print("| transport | CPU µs / request | wall µs / request |\n|---|---|---|")
    for name, figures in results.items():
        print(f"| {name} | {figures['cpu_us_per_request']} | {figures['wall_us_per_request']} |")
    print(f"\nCPU ratio ({OURS} / {OFFICIAL}): "
          f"{results[OURS]['cpu_us_per_request'] / results[OFFICIAL]['cpu_us_per_request']:.2f}")
    print(json.dumps({name: {k: v for k, v in figures.items() if k != "last_read"}
                      for name, figures in results.items()}))


if __name__ == "__main__":
    main()

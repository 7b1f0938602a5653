"""Registrations per second through clientreg vs a raw httpx loop, and the cost of a no-op apply.

    python bench/registration.py [--clients N] [--concurrency C]

Both sides hit the same local dev AS (a separate process) at the same concurrency. Prints figures,
asserts nothing. Two clientreg figures: the CLI end to end (interpreter start, imports and YAML
included) and the engine in-process; their ratio to the raw loop is what validation, discovery and
persistence after every answer (fsync'd 0600 files) cost on top of the registration itself.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

IAT = "bench-iat"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clientreg", "dev-server", "--port", str(port),
                             "--initial-access-token", IAT, "--db", str(db)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    issuer = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{issuer}/.well-known/oauth-authorization-server", timeout=1)
            return proc, issuer
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("dev server did not start")


def raw_loop(issuer: str, n: int, concurrency: int) -> float:
    body = {"client_name": "raw", "grant_types": ["client_credentials"]}
    with httpx.Client(headers={"Authorization": f"Bearer {IAT}"}) as client:
        def one(i: int) -> None:
            r = client.post(f"{issuer}/register", json={**body, "client_name": f"raw-{i}"})
            r.raise_for_status()
        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(n)))
        return time.perf_counter() - start


def write_docs(folder: Path, issuer: str, n: int) -> None:
    docs = [f"""apiVersion: clientreg.dev/v1alpha1
kind: AuthorizationServer
metadata: {{name: bench}}
spec:
  issuer: {issuer}
  initialAccessToken: {{secretKeyRef: {{name: iat, key: token}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: iat}}
stringData: {{token: {IAT}}}
"""]
    docs += [f"""apiVersion: clientreg.dev/v1alpha1
kind: OAuthClient
metadata: {{name: c{i:05d}}}
spec:
  serverRef: {{name: bench}}
  clientName: bench {i}
  grantTypes: [client_credentials]
""" for i in range(n)]
    (folder / "clients.yaml").write_text("---\n".join(docs))


def clientreg_apply(folder: Path, state: Path, concurrency: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "clientreg", "apply", "-f", str(folder), "--state-dir", str(state),
                    "--concurrency", str(concurrency), "-o", "json"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def clientreg_in_process(folder: Path, state: Path, concurrency: int) -> float:
    """The engine's own cost: the same apply as the CLI, minus interpreter start, imports and YAML."""
    from clientreg.cli.runner import Runner
    from clientreg.documents import load_documents
    from clientreg.store import LocalStore

    docs = load_documents([folder])
    runner = Runner(docs, LocalStore(state), cluster_ns="clientreg")
    clients = [docs.clients[k] for k in sorted(docs.clients)]
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(runner.apply_one, clients))
    elapsed = time.perf_counter() - start
    runner.close()
    assert all(r.ready for r in results)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        docs = work / "docs"
        docs.mkdir()
        proc, issuer = start_server(work / "as.sqlite")
        try:
            raw = raw_loop(issuer, args.clients, args.concurrency)
            write_docs(docs, issuer, args.clients)
            ours = clientreg_apply(docs, work / "state", args.concurrency)
            engine = clientreg_in_process(docs, work / "state-in-process", args.concurrency)
            httpx.post(f"{issuer}/_dev/reset-counters")
            noop = clientreg_apply(docs, work / "state", args.concurrency)
            counts = httpx.get(f"{issuer}/_dev/requests").json()
        finally:
            proc.terminate()
            proc.wait()
    reads = sum(v for k, v in counts.items() if k.startswith("GET /register/"))
    writes = sum(v for k, v in counts.items() if not k.startswith("GET"))
    other = sum(v for k, v in counts.items() if k.startswith("GET") and not k.startswith("GET /register/"))
    print(json.dumps({
        "clients": args.clients, "concurrency": args.concurrency,
        "raw_httpx_registrations_per_s": round(args.clients / raw, 1),
        "clientreg_registrations_per_s": round(args.clients / ours, 1),
        "ratio_clientreg_cli_time_to_raw_time": round(ours / raw, 2),
        "clientreg_in_process_registrations_per_s": round(args.clients / engine, 1),
        "ratio_clientreg_in_process_time_to_raw_time": round(engine / raw, 2),
        "noop_apply_seconds": round(noop, 2),
        "noop_apply_as_reads": reads, "noop_apply_as_writes": writes, "noop_apply_other_requests": other,
    }, indent=2))


if __name__ == "__main__":
    main()

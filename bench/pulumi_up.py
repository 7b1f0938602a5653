"""How long `pulumi up` takes to register 1, 10 and 100 clients, next to the core doing the same.

Both run against the in-process dev AS. "core" is the engine's reconcile for each client with one
shared server connection, one after the other, as `clientreg apply --concurrency 1` does. "pulumi up"
is the real engine (Automation API, local file backend) with the clientreg dynamic provider; its
`destroy` is timed too. The difference is Pulumi's own cost: the CLI, the program, the provider
process, gRPC per resource and the checkpoint written after every step.

    python bench/pulumi_up.py [--sizes 1,10,100] [--parallel N]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from clientreg_pulumi import OAuthClient
from support.pulumi_engine import inline_stack

from clientreg.devserver import DevServer, DevServerSettings
from clientreg.engine import Desired, reconcile
from clientreg.record import RegistrationRecord
from clientreg.server import ServerConnection
from clientreg.spec import AuthorizationServerSpec, OAuthClientSpec, ServerRef

IAT = "bench-initial-access-token"


def client_arguments(index: int) -> dict[str, object]:
    return {"client_name": f"bench client {index}", "redirect_uris": [f"https://app{index}.example.com/cb"],
            "scope": "openid profile"}


def time_core(server: DevServer, count: int) -> float:
    connection = ServerConnection.for_spec(AuthorizationServerSpec(issuer=server.issuer),
                                           initial_access_token=SecretStr(IAT))
    records: list[RegistrationRecord] = []
    started = time.perf_counter()
    for index in range(count):
        spec = OAuthClientSpec(server_ref=ServerRef(name="bench"), **client_arguments(index))
        desired = Desired(key=f"bench/{index}", metadata=spec.wire_metadata(), spec_hash=spec.spec_hash())
        _, outcome = reconcile(desired, None, connection, lambda _record: None)
        assert outcome.record is not None
        records.append(outcome.record)
    elapsed = time.perf_counter() - started
    for record in records:  # cleanup, not timed
        reconcile(Desired(key="bench", metadata={}, spec_hash="", deleting=True), record, connection,
                  lambda _record: None)
    connection.close()
    return elapsed


def time_pulumi(server: DevServer, count: int, state_dir: Path, parallel: int | None) -> tuple[float, float]:
    def program() -> None:
        for index in range(count):
            OAuthClient(f"client-{index}", issuer=server.issuer, initial_access_token=IAT,
                        **client_arguments(index))  # type: ignore[arg-type]

    stack = inline_stack("clientreg-bench", f"n{count}", program, state_dir)
    started = time.perf_counter()
    result = stack.up(parallel=parallel)
    up = time.perf_counter() - started
    created = {str(getattr(k, "value", k)): v for k, v in (result.summary.resource_changes or {}).items()}
    assert created.get("create") == count + 1, created  # + the pulumi:pulumi:Stack resource
    started = time.perf_counter()
    stack.destroy(parallel=parallel)
    destroy = time.perf_counter() - started
    stack.workspace.remove_stack(stack.name)
    return up, destroy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10,100", help="comma-separated client counts")
    parser.add_argument("--parallel", type=int, default=None, help="pulumi --parallel (default: the CLI's)")
    options = parser.parse_args()
    sizes = [int(s) for s in options.sizes.split(",")]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    rows = []
    with DevServer(DevServerSettings(initial_access_token=IAT)) as server, \
            tempfile.TemporaryDirectory(prefix="clientreg-bench-") as tmp:
        for count in sizes:
            core = time_core(server, count)
            up, destroy = time_pulumi(server, count, Path(tmp), options.parallel)
            rows.append((count, core, up, destroy))
            print(f"  {count} clients done", file=sys.stderr)
    print(f"{'clients':>7}  {'core':>9}  {'pulumi up':>10}  {'up/client':>10}  {'pulumi destroy':>14}")
    for count, core, up, destroy in rows:
        print(f"{count:>7}  {core:>8.2f}s  {up:>9.2f}s  {up / count:>9.3f}s  {destroy:>13.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How long `pulumi up` takes to register 1, 10 and 100 clients through the provider plugin and through the
dynamic provider, next to the core doing the same, in one run.

All run against the in-process dev AS. "core" is the engine's reconcile for each client with one shared
server connection, one after the other, as `clientreg apply --concurrency 1` does. "dynamic" is the real
engine (Automation API, local file backend) with the clientreg dynamic provider in a Python program.
"plugin" is `pulumi up` in a project folder of a Pulumi YAML program declaring the clients, with
`pulumi-resource-clientreg` (one provider process for all of them). Each `destroy` is timed too. The
difference to the core is Pulumi's own cost: the CLI, the program, the provider process, gRPC per resource
and the checkpoint written after every step.

    python bench/pulumi_up.py [--sizes 1,10,100] [--parallel N]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from clientreg_pulumi import OAuthClient
from support.pulumi_engine import inline_stack
from support.pulumi_hosts import ensure_yaml_host, project_env
from support.pulumi_project import ProjectRun

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


def yaml_program(server: DevServer, count: int) -> str:
    """A Pulumi YAML program declaring ``count`` clients (JSON is YAML: no quoting to get wrong)."""
    resources = {f"client-{index}": {"type": "clientreg:index:OAuthClient", "properties": {
        "issuer": server.issuer, "initialAccessToken": IAT, "clientName": f"bench client {index}",
        "redirectUris": [f"https://app{index}.example.com/cb"], "scope": "openid profile"}}
        for index in range(count)}
    return json.dumps({"name": "clientreg-bench-plugin", "runtime": "yaml", "resources": resources}, indent=1)


def time_plugin(server: DevServer, count: int, state_dir: Path, parallel: int | None) -> tuple[float, float]:
    folder = state_dir / f"plugin-n{count}"
    folder.mkdir(parents=True)
    (folder / "Pulumi.yaml").write_text(yaml_program(server, count))
    state = state_dir / "plugin-state"
    run = ProjectRun(folder, state, stack=f"n{count}", timeout=1800, base_env=project_env(state, ensure_yaml_host()))
    flags = [f"--parallel={parallel}"] if parallel else []
    run("stack", "init", run.stack, with_stack=False)
    started = time.perf_counter()
    run("up", "--yes", "--skip-preview", *flags)
    up = time.perf_counter() - started
    started = time.perf_counter()
    run("destroy", "--yes", "--skip-preview", *flags)
    destroy = time.perf_counter() - started
    run("stack", "rm", "--yes")
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
            plugin_up, plugin_destroy = time_plugin(server, count, Path(tmp), options.parallel)
            rows.append((count, core, up, destroy, plugin_up, plugin_destroy))
            print(f"  {count} clients done", file=sys.stderr)
    print(f"{'clients':>7}  {'core':>8}  {'dynamic up':>10}  {'plugin up':>10}  {'dynamic/core':>12}  "
          f"{'plugin/core':>11}  {'plugin/dynamic':>14}  {'dynamic destroy':>15}  {'plugin destroy':>14}")
    for count, core, up, destroy, plugin_up, plugin_destroy in rows:
        print(f"{count:>7}  {core:>7.2f}s  {up:>9.2f}s  {plugin_up:>9.2f}s  {up / core:>11.1f}x  "
              f"{plugin_up / core:>10.1f}x  {plugin_up / up:>13.2f}x  {destroy:>14.2f}s  {plugin_destroy:>13.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

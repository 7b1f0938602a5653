"""Language hosts for running Pulumi programs from a project folder (`pulumi up`), as users do.

The Pulumi CLI (:mod:`support.pulumi_engine`) runs a ``Pulumi.yaml`` program through a language host
plugin found on ``PATH``:

- ``pulumi-language-yaml``: Pulumi YAML's host, an ordinary Go module served by the proxy.
- ``pulumi-language-nodejs``: the Node.js host. Its Go module is refused by the proxy, so it is built
  from the source kept in ``../shared/peers/pulumi-language-hosts/nodejs`` (copied out first: shared/ is
  read-only in CI). It needs ``@pulumi/pulumi`` and ``typescript`` from npm in the program's folder.

Each host is built once into its own cache folder; :func:`hosts_bin` returns the folders to put on PATH.

    cd tests && python -m support.pulumi_hosts build
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from support.cache import build_lock, component_dir, go_env, is_complete, mark_complete
from support.go_source import build_once, copy_source, peers_dir
from support.pulumi_engine import pulumi_env

#: ``pulumi-resource-clientreg`` (the plugin's launcher) lives here in the repository.
PLUGIN_DIR = Path(__file__).resolve().parents[2] / "scripts"
_REPO = Path(__file__).resolve().parents[2]

YAML_MODULE = "github.com/pulumi/pulumi-yaml/cmd/pulumi-language-yaml"
YAML_VERSION = "1.25.0"
#: The Node.js host's go.mod pins pkg/v3 and sdk/v3 at this version (see ../shared/peers/README.md).
NODEJS_HOST_VERSION = "3.260.0"
#: What a TypeScript program needs from npm, installed once into the cache and linked into program folders.
NODE_PACKAGES = {"@pulumi/pulumi": "3.260.0", "typescript": "5.9.3", "@types/node": "22.20.7"}


class HostUnavailable(RuntimeError):
    """A language host cannot be built here (no Go, no node, or the peer source is missing)."""


def ensure_yaml_host() -> Path:
    """Build ``pulumi-language-yaml`` (once); return the folder holding it."""
    folder = component_dir("pulumi-language-yaml", YAML_VERSION)

    def build() -> None:
        (folder / "bin").mkdir()
        with open(folder / "build.log", "w") as log:
            subprocess.run(["go", "install", f"{YAML_MODULE}@v{YAML_VERSION}"], cwd=folder,
                           env={**go_env(), "GOBIN": str(folder / "bin")}, check=True, stdout=log, stderr=log)

    host = build_once(folder, folder / "bin" / "pulumi-language-yaml", build, what="pulumi-language-yaml",
                      unavailable=HostUnavailable)
    return host.parent


def ensure_nodejs_host() -> Path:
    """Build ``pulumi-language-nodejs`` (once) from the peer source; return the folder holding it."""
    folder = component_dir("pulumi-language-nodejs", NODEJS_HOST_VERSION)
    peers = peers_dir()
    source = peers / "pulumi-language-hosts" / "nodejs" if peers else None

    def build() -> None:
        if source is None or not source.is_dir():
            raise HostUnavailable("the source of the nodejs language host is not in ../shared/peers")
        src = folder / "src"
        copy_source(source, src)
        (folder / "bin").mkdir()
        with open(folder / "build.log", "w") as log:
            subprocess.run(["go", "build", "-o", str(folder / "bin" / "pulumi-language-nodejs"), "."],
                           cwd=src, env=go_env(), check=True, stdout=log, stderr=log)

    host = build_once(folder, folder / "bin" / "pulumi-language-nodejs", build, what="pulumi-language-nodejs",
                      unavailable=HostUnavailable)
    return host.parent


def ensure_node_modules() -> Path:
    """``@pulumi/pulumi`` and ``typescript`` installed once; return the ``node_modules`` folder to link."""
    key = "-".join(f"{n.replace('/', '_').lstrip('@')}{v}" for n, v in NODE_PACKAGES.items())
    folder = component_dir("pulumi-node-modules", key[:60])
    if is_complete(folder):
        return folder / "node_modules"
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise HostUnavailable("node and npm are required for TypeScript programs (not on PATH)")
    with build_lock(folder):
        if not is_complete(folder):
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "package.json").write_text(
                '{"name": "clientreg-pulumi-node", "private": true, "dependencies": {'
                + ", ".join(f'"{n}": "{v}"' for n, v in NODE_PACKAGES.items()) + "}}\n")
            with open(folder / "install.log", "w") as log:
                subprocess.run([npm, "install", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=folder,
                               check=True, stdout=log, stderr=log)
            mark_complete(folder)
    return folder / "node_modules"


def ensure_hosts() -> list[Path]:
    """The YAML and Node.js hosts (the folders to put on PATH, next to the pulumi binary's), and the npm
    packages TypeScript programs need, so that a CI pre-build leaves nothing to fetch during the tests."""
    hosts = [ensure_yaml_host(), ensure_nodejs_host()]
    ensure_node_modules()
    return hosts


def project_env(state_dir: Path, *host_bins: Path, plugin_on_path: bool = True) -> dict[str, str]:
    """The environment a user's shell has for `pulumi up` in a project folder: the CLI, the language
    hosts and (``plugin_on_path``) the clientreg plugin on PATH, a local file backend, a passphrase, no
    Pulumi Cloud. Run the CLI in it with ``support.pulumi_project.ProjectRun(..., base_env=…)``."""
    env = {**os.environ, **pulumi_env(state_dir)}
    # The plugin runs with the interpreter that has clientreg and pulumi (PULUMI_PYTHON_CMD) and imports
    # this checkout's code, as a clone with `pip install .` would.
    env["PYTHONPATH"] = os.pathsep.join([str(_REPO), str(_REPO / "provider"), env.get("PYTHONPATH", "")])
    env["PATH"] = os.pathsep.join([*([str(PLUGIN_DIR)] if plugin_on_path else []), *map(str, host_bins),
                                   env["PATH"]])
    return env


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["build"]:
        print("usage: python -m support.pulumi_hosts build", file=sys.stderr)
        return 2
    started = time.monotonic()
    for ensure in (ensure_yaml_host, ensure_nodejs_host, ensure_node_modules):
        print(ensure(), flush=True)
    print(f"pulumi language hosts ready in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
